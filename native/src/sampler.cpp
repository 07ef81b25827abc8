// Token sampling (greedy, temperature, top-k, top-p) and stop-sequence matching.
// Sampling avoids sorting the whole vocabulary: top-k uses nth_element, top-p sorts growing prefixes only until
// they hold top_p of the mass, and plain temperature sampling is a single linear scan.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "errors.h"

namespace tl {

namespace {

// Higher value first; equal values: lower id first, so every cut and argmax is deterministic.
bool better(const std::pair<float, int32_t> & a, const std::pair<float, int32_t> & b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

} // namespace

Sampler::Sampler(const SamplingParams & params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(float * logits, int32_t n_vocab, TokenLogprob * lp) {
    if (logits == nullptr || n_vocab <= 0) fail(ErrorCode::INVALID_ARGUMENT, "sample: empty logits");
    const float NEG_INF = -std::numeric_limits<float>::infinity();

    // NaN would poison every comparison and sum below; a NaN logit is treated as impossible (-inf).
    // The same pass finds the argmax (first maximum = lowest id on ties).
    int32_t best = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (std::isnan(logits[i])) logits[i] = NEG_INF;
        if (logits[i] > logits[best]) best = i;
    }
    const float max_logit = logits[best];

    int32_t chosen = best;
    const float temp = params_.temperature;
    // Greedy when asked, and when there is nothing to sample from: every logit -inf (no finite distribution) or
    // a +inf logit (all mass on it).
    if (temp > 0.0f && std::isfinite(max_logit)) {
        // Weights exp((l - max) / T) are in (0, 1]: subtracting the max keeps exp from overflowing.
        const float inv_t = 1.0f / temp;
        const int32_t k = params_.top_k > 0 && params_.top_k < n_vocab ? params_.top_k : 0; // 0: keep all
        const float top_p = params_.top_p;
        // 53 random bits -> uniform double in [0, 1): portable, unlike std::uniform_real_distribution whose
        // algorithm differs between standard libraries.
        const double u = (double) (rng_() >> 11) * (1.0 / 9007199254740992.0);

        if (k <= 0 && !(top_p < 1.0f)) {
            // Plain temperature sampling: no ordering needed.
            double total = 0.0;
            for (int32_t i = 0; i < n_vocab; i++) total += std::exp((logits[i] - max_logit) * inv_t);
            const double r = u * total;
            double cum = 0.0;
            chosen = best; // fallback if rounding leaves r just above the final cumulative sum
            for (int32_t i = 0; i < n_vocab; i++) {
                const double w = std::exp((logits[i] - max_logit) * inv_t);
                if (w <= 0.0) continue;
                cum += w;
                if (cum > r) {
                    chosen = i;
                    break;
                }
            }
        } else {
            // candidates_: the tokens still in play, best first once sorted; .first holds the logit, then the weight.
            candidates_.resize(n_vocab);
            for (int32_t i = 0; i < n_vocab; i++) candidates_[i] = {logits[i], i};
            size_t n_keep = (size_t) n_vocab;
            size_t n_sorted = 0; // candidates_[0, n_sorted) is sorted best first
            if (k > 0) {
                std::nth_element(candidates_.begin(), candidates_.begin() + (k - 1), candidates_.end(), better);
                n_keep = (size_t) k;
                candidates_.resize(n_keep);
                std::sort(candidates_.begin(), candidates_.end(), better);
                n_sorted = n_keep;
            }
            double total = 0.0;
            for (size_t i = 0; i < n_keep; i++) {
                candidates_[i].first = std::exp((candidates_[i].first - max_logit) * inv_t);
                total += candidates_[i].first;
            }

            if (top_p < 1.0f) {
                // Nucleus: the smallest best-first prefix holding >= top_p of the (top-k renormalised) mass.
                // Sort only as much as needed: blocks of growing size, each picked with nth_element.
                const double target = (double) std::max(top_p, 0.0f) * total;
                double cum = 0.0;
                size_t cut = 0, scanned = 0;
                while (cut == 0) {
                    if (scanned == n_sorted) {
                        const size_t next = std::min(n_keep, std::max<size_t>(64, n_sorted * 4));
                        if (next < n_keep) {
                            std::nth_element(candidates_.begin() + n_sorted, candidates_.begin() + (next - 1),
                                             candidates_.begin() + n_keep, better);
                        }
                        std::sort(candidates_.begin() + n_sorted, candidates_.begin() + next, better);
                        n_sorted = next;
                    }
                    for (; scanned < n_sorted; scanned++) {
                        cum += candidates_[scanned].first;
                        if (cum >= target) {
                            cut = scanned + 1;
                            break;
                        }
                    }
                    if (cut == 0 && n_sorted == n_keep) cut = n_keep; // rounding: keep everything
                }
                n_keep = cut;
                total = cum;
            }

            const double r = u * total;
            double cum = 0.0;
            chosen = candidates_[0].second;
            for (size_t i = 0; i < n_keep; i++) {
                cum += candidates_[i].first;
                if (cum > r) {
                    chosen = candidates_[i].second;
                    break;
                }
            }
        }
    }

    if (lp != nullptr && params_.n_logprobs >= 0) {
        // Log-softmax of the raw logits (temperature 1), as the OpenAI API reports it.
        double sum = 0.0;
        if (std::isfinite(max_logit)) {
            for (int32_t i = 0; i < n_vocab; i++) sum += std::exp((double) logits[i] - max_logit);
        }
        // All -inf: report a uniform distribution rather than NaN. A +inf logit: it has probability 1.
        const double lse = std::isfinite(max_logit) ? max_logit + std::log(sum)
                         : (max_logit > 0 ? (double) max_logit : std::log((double) n_vocab));
        auto logprob = [&](int32_t id) -> float {
            if (!std::isfinite(max_logit)) {
                if (max_logit > 0) return logits[id] == max_logit ? 0.0f : NEG_INF;
                return (float) -std::log((double) n_vocab);
            }
            return (float) ((double) logits[id] - lse);
        };
        lp->token = chosen;
        lp->logprob = logprob(chosen);
        lp->top.clear();
        const int32_t n_top = std::min(params_.n_logprobs, n_vocab);
        if (n_top > 0) {
            // Small bounded insertion list: one pass over the vocabulary, almost every logit rejected by one compare.
            std::vector<std::pair<float, int32_t>> top;
            top.reserve(n_top + 1);
            for (int32_t i = 0; i < n_vocab; i++) {
                const std::pair<float, int32_t> c{logits[i], i};
                if ((int32_t) top.size() == n_top && !better(c, top.back())) continue;
                top.insert(std::upper_bound(top.begin(), top.end(), c, better), c);
                if ((int32_t) top.size() > n_top) top.pop_back();
            }
            for (const auto & c : top) lp->top.emplace_back(c.second, logprob(c.second));
        }
    }
    return chosen;
}

// ---------------------------------------------------------------------------------------------------------------

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto & s : stops) {
        if (!s.empty()) stops_.push_back(std::move(s)); // an empty stop would match everywhere: ignore it
    }
}

std::string StopMatcher::push(const std::string & text, bool * stopped) {
    if (stopped_) {
        if (stopped) *stopped = true;
        return "";
    }
    if (stopped) *stopped = false;
    pending_ += text;

    // A complete stop sequence: emit everything before the earliest one and drop the rest.
    size_t first = std::string::npos;
    for (const auto & s : stops_) first = std::min(first, pending_.find(s));
    if (first != std::string::npos) {
        std::string out = pending_.substr(0, first);
        pending_.clear();
        stopped_ = true;
        if (stopped) *stopped = true;
        return out;
    }

    // Hold back the longest tail that is a proper prefix of some stop sequence: the next chunk may complete it.
    size_t hold = 0;
    for (const auto & s : stops_) {
        for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; len--) {
            if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

} // namespace tl
