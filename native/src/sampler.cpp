// Token sampling (greedy, temperature, top-k, top-p) and stop-sequence matching.
// Sampler::sample() is a composition of small stages (namespace sampling, sampler.h), each testable alone.
// Sampling never sorts the whole vocabulary: top-k keeps a bounded heap, top-p alone histograms the probability mass
// and sorts only the bucket where the nucleus ends, and plain temperature sampling is a linear scan.
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "errors.h"

namespace tl {

namespace {

// Higher value first; equal values: lower id first, so every cut and argmax is deterministic.
bool better(const std::pair<float, int32_t> & a, const std::pair<float, int32_t> & b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// exp(x) for x in [-87, 0] to ~3e-7 relative error. std::exp costs ~5 ns a call and is never vectorised; this
// branch-free form is (at -O3), which keeps a pass over a 32k vocabulary well under 0.1 ms.
inline float exp_core(float x) {
    const float t = x * 1.44269504088896341f; // x / ln 2
    const int32_t n = (int32_t) (t - 0.5f);   // round to nearest (t <= 0)
    const float fn = (float) n;
    const float y = (x - fn * 0.693359375f) - fn * -2.12194440e-4f; // x - n ln2, ln2 split so the product is exact
    // exp(y), |y| <= ln2 / 2, by its Taylor series to degree 6 (remainder y^7/7! < 1.2e-7).
    float p = 1.0f / 720.0f;
    p = p * y + 1.0f / 120.0f;
    p = p * y + 1.0f / 24.0f;
    p = p * y + 1.0f / 6.0f;
    p = p * y + 0.5f;
    p = p * y + 1.0f;
    p = p * y + 1.0f;
    const uint32_t bits = (uint32_t) (n + 127) << 23; // 2^n, n in [-126, 0]
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// out[i] = exp((logits[i] - max) * inv_t), exactly 0 where that is below -87 (-inf logits get no mass); returns
// the sum. Two simple loops rather than one so that the compiler vectorises both.
double exp_weights(const float * logits, int32_t n, float max_logit, float inv_t, float * out) {
    for (int32_t i = 0; i < n; i++) {
        const float x = (logits[i] - max_logit) * inv_t;
        out[i] = x < -87.0f ? -87.0f : x; // also keeps the float -> int conversion in exp_core in range
    }
    for (int32_t i = 0; i < n; i++) {
        const float x = out[i];
        const float r = exp_core(x);
        uint32_t rb;
        std::memcpy(&rb, &r, sizeof rb);
        rb &= -(uint32_t) (x > -87.0f); // zero the clamped ones without a branch
        std::memcpy(&out[i], &rb, sizeof rb);
    }
    // Eight partial sums in double: independent adds pipeline (and vectorise), and no float drift over 1e5+ terms.
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; k++) part[k] += out[i + k];
    }
    double total = 0.0;
    for (; i < n; i++) total += out[i];
    for (double p : part) total += p;
    return total;
}

// Maximum of the logits, replacing NaN by -inf. Eight running maxima so the loop vectorises (a single running
// maximum is a serial dependency chain); `x > m` is false for NaN, so NaN never becomes the maximum.
float max_and_sanitize(float * logits, int32_t n) {
    const float NEG_INF = -std::numeric_limits<float>::infinity();
    float mx[8] = {NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF, NEG_INF};
    int32_t nan[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; k++) {
            const float x = logits[i + k];
            mx[k] = x > mx[k] ? x : mx[k];
            nan[k] |= x != x;
        }
    }
    float m = NEG_INF;
    int32_t any_nan = 0;
    for (; i < n; i++) {
        const float x = logits[i];
        m = x > m ? x : m;
        any_nan |= x != x;
    }
    for (int k = 0; k < 8; k++) {
        m = mx[k] > m ? mx[k] : m;
        any_nan |= nan[k];
    }
    if (any_nan) {
        for (int32_t j = 0; j < n; j++) {
            if (logits[j] != logits[j]) logits[j] = NEG_INF;
        }
    }
    return m;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Stages

namespace sampling {

Argmax sanitize_and_argmax(float * logits, int32_t n) {
    Argmax a;
    // NaN would poison every comparison and sum downstream; a NaN logit is treated as impossible (-inf).
    a.max_logit = max_and_sanitize(logits, n);
    int32_t best = 0; // the first maximum, so ties go to the lowest id
    while (best < n && !(logits[best] == a.max_logit)) best++;
    a.best = best == n ? 0 : best;
    return a;
}

double uniform01(std::mt19937_64 & rng) {
    // 53 random bits -> uniform double in [0, 1): portable, unlike std::uniform_real_distribution whose algorithm
    // differs between standard libraries.
    return (double) (rng() >> 11) * (1.0 / 9007199254740992.0);
}

void top_k(const float * logits, int32_t n, int32_t k, std::vector<std::pair<float, int32_t>> & out) {
    // A bounded heap whose root is the worst kept candidate. Ids arrive in increasing order, so a logit equal to the
    // root's is worse than it (higher id): one float compare rejects most logits.
    out.clear();
    for (int32_t i = 0; i < k; i++) out.push_back({logits[i], i});
    std::make_heap(out.begin(), out.end(), better);
    float worst = out.front().first;
    for (int32_t i = k; i < n; i++) {
        if (!(logits[i] > worst)) continue;
        std::pop_heap(out.begin(), out.end(), better);
        out.back() = {logits[i], i};
        std::push_heap(out.begin(), out.end(), better);
        worst = out.front().first;
    }
    std::sort_heap(out.begin(), out.end(), better); // best first
}

double temper(std::vector<std::pair<float, int32_t>> & candidates, float max_logit, float inv_t) {
    double total = 0.0;
    for (auto & c : candidates) {
        c.first = std::exp((c.first - max_logit) * inv_t); // few of them: the exact exp is cheap
        total += c.first;
    }
    return total;
}

size_t nucleus_prefix(const std::vector<std::pair<float, int32_t>> & candidates, double top_p, double * total) {
    const double target = top_p * *total;
    double cum = 0.0;
    for (size_t i = 0; i < candidates.size(); i++) {
        cum += candidates[i].first;
        if (cum >= target) {
            *total = cum;
            return i + 1;
        }
    }
    return candidates.size();
}

double weights(const float * logits, int32_t n, float max_logit, float inv_t, float * out) {
    return exp_weights(logits, n, max_logit, inv_t, out);
}

int32_t draw_linear(const float * weights, int32_t n, double total, double u, int32_t fallback) {
    const double r = u * total;
    double cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += weights[i];
        if (cum > r) return i;
    }
    return fallback; // rounding left r at the very end of the sum
}

size_t nucleus_buckets(const float * logits, const float * weights, int32_t n, float max_logit, float inv_t,
                       double top_p, double * total, NucleusScratch & scratch,
                       std::vector<std::pair<float, int32_t>> & out) {
    // Histogram the mass by log-weight, find the bucket where the best-first cumulative sum crosses top_p, keep every
    // token of the buckets above it and sort only the crossing bucket. Same set as a full sort (buckets are ordered
    // by weight).
    constexpr int NB = 512;
    constexpr float Z = 32.0f; // log-weights below -Z share the last bucket (< e^-32 each)
    const float scale = NB / Z;
    scratch.buckets.resize(n);
    double mass[NB] = {0.0};
    for (int32_t i = 0; i < n; i++) {
        const float z = (max_logit - logits[i]) * inv_t; // >= 0 (+inf for -inf logits)
        const int b = z >= Z ? NB - 1 : std::min(NB - 1, (int) (z * scale));
        scratch.buckets[i] = (uint16_t) b;
        mass[b] += weights[i];
    }
    const double target = top_p * *total;
    double cum = 0.0;
    int cross = NB - 1;
    for (int b = 0; b < NB; b++) {
        if (cum + mass[b] >= target) {
            cross = b;
            break;
        }
        cum += mass[b];
    }
    // Buckets above the crossing one first (all kept), then the crossing bucket, sorted best first.
    out.clear();
    scratch.crossing.clear();
    for (int32_t i = 0; i < n; i++) {
        if (scratch.buckets[i] < cross) out.push_back({weights[i], i});
        else if (scratch.buckets[i] == cross) scratch.crossing.push_back({weights[i], i});
    }
    const size_t n_above = out.size();
    std::sort(scratch.crossing.begin(), scratch.crossing.end(), better);
    out.insert(out.end(), scratch.crossing.begin(), scratch.crossing.end());
    const size_t n_cross = out.size();
    size_t n_keep = n_cross;
    for (size_t i = n_above; i < n_cross; i++) {
        cum += out[i].first;
        if (cum >= target) {
            n_keep = i + 1;
            break;
        }
    }
    *total = cum;
    if (n_keep == n_cross) {
        *total = 0.0; // rounding kept the whole bucket: recompute the kept mass exactly
        for (size_t i = 0; i < n_keep; i++) *total += out[i].first;
    }
    return n_keep;
}

int32_t draw(const std::vector<std::pair<float, int32_t>> & candidates, size_t n, double total, double u) {
    const double r = u * total;
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += candidates[i].first;
        if (cum > r) return candidates[i].second;
    }
    return candidates[0].second; // rounding left r at the very end of the sum: take the most likely
}

void logprobs(const float * logits, int32_t n, float max_logit, int32_t chosen, int n_top, std::vector<float> & scratch,
              TokenLogprob * lp) {
    const float NEG_INF = -std::numeric_limits<float>::infinity();
    // Log-softmax of the raw logits (temperature 1), as the OpenAI API reports it.
    double sum = 0.0;
    if (std::isfinite(max_logit)) {
        scratch.resize(n);
        sum = exp_weights(logits, n, max_logit, 1.0f, scratch.data());
    }
    const double lse = std::isfinite(max_logit) ? max_logit + std::log(sum) : 0.0;
    auto logprob = [&](int32_t id) -> float {
        // All -inf: report a uniform distribution rather than NaN. A +inf logit: it has probability 1.
        if (!std::isfinite(max_logit)) {
            if (max_logit > 0) return logits[id] == max_logit ? 0.0f : NEG_INF;
            return (float) -std::log((double) n);
        }
        return (float) ((double) logits[id] - lse);
    };
    lp->token = chosen;
    lp->logprob = logprob(chosen);
    lp->top.clear();
    n_top = std::min(n_top, n);
    if (n_top > 0) {
        // Small bounded insertion list: one pass over the vocabulary, almost every logit rejected by one compare.
        std::vector<std::pair<float, int32_t>> top;
        top.reserve(n_top + 1);
        // Ids arrive in increasing order: a logit equal to the last kept one ranks after it.
        float worst = NEG_INF;
        for (int32_t i = 0; i < n; i++) {
            if ((int32_t) top.size() == n_top && !(logits[i] > worst)) continue;
            const std::pair<float, int32_t> c{logits[i], i};
            top.insert(std::upper_bound(top.begin(), top.end(), c, better), c);
            if ((int32_t) top.size() > n_top) top.pop_back();
            worst = top.back().first;
        }
        for (const auto & c : top) lp->top.emplace_back(c.second, logprob(c.second));
    }
}

void apply_logit_bias(float * logits, int32_t n, const std::vector<std::pair<int32_t, float>> & bias) {
    for (const auto & [id, b] : bias)
        if (id >= 0 && id < n) logits[id] += b;
}

void apply_penalties(float * logits, int32_t n, const std::unordered_set<int32_t> & seen, float repetition,
                     const std::unordered_map<int32_t, int32_t> & counts, float frequency, float presence) {
    // Repetition first, then frequency / presence: vLLM's and llama.cpp's order.
    if (repetition != 1.0f) {
        for (int32_t id : seen) {
            if (id < 0 || id >= n) continue;
            float & l = logits[id];
            l = l > 0.0f ? l / repetition : l * repetition;
        }
    }
    if (frequency != 0.0f || presence != 0.0f) {
        for (const auto & [id, c] : counts) {
            if (id < 0 || id >= n || c <= 0) continue;
            logits[id] -= (float) c * frequency + presence;
        }
    }
}

int32_t apply_min_p(float * logits, int32_t n, float max_logit, float inv_t, float min_p) {
    // p_i / p_max = exp((l_i - max) * inv_t) >= min_p  <=>  l_i >= max + ln(min_p) / inv_t: a logit threshold, so no
    // softmax is needed. The top logit always passes (ln(min_p) <= 0).
    if (!(min_p > 0.0f) || !std::isfinite(max_logit)) return n;
    const float NEG_INF = -std::numeric_limits<float>::infinity();
    const float threshold = max_logit + std::log(min_p) / inv_t;
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++) {
        const bool keep = logits[i] >= threshold;
        logits[i] = keep ? logits[i] : NEG_INF;
        kept += keep;
    }
    return kept;
}

} // namespace sampling

// ---------------------------------------------------------------------------------------------------------------
// The composition

Sampler::Sampler(const SamplingParams & params, const std::vector<int32_t> & prompt)
    : params_(params), rng_(params.seed) {
    if (params_.repetition_penalty != 1.0f) seen_.insert(prompt.begin(), prompt.end());
}

std::unique_ptr<Sampler> Sampler::fork(uint64_t seed) const {
    auto s = std::make_unique<Sampler>(*this);
    s->params_.seed = seed;
    s->rng_.seed(seed);
    return s;
}

void Sampler::record(int32_t token) {
    if (params_.repetition_penalty != 1.0f) seen_.insert(token);
    if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) ++counts_[token];
}

int32_t Sampler::sample(float * logits, int32_t n_vocab, TokenLogprob * lp, bool record_choice) {
    if (logits == nullptr || n_vocab <= 0) fail(ErrorCode::INVALID_ARGUMENT, "sample: empty logits");
    sampling::Argmax am = sampling::sanitize_and_argmax(logits, n_vocab);
    const bool want_lp = lp != nullptr && params_.n_logprobs >= 0;
    const float raw_max = am.max_logit;
    const bool modifies = params_.modifies_logits();
    const float * lp_logits = logits;
    if (modifies) {
        // Logprobs report the raw distribution (docs/api.md): keep a copy only when both are asked for, so the plain
        // paths pay nothing.
        if (want_lp) {
            raw_.assign(logits, logits + n_vocab);
            lp_logits = raw_.data();
        }
        const bool sparse = !params_.logit_bias.empty() || params_.has_penalties();
        if (!params_.logit_bias.empty()) sampling::apply_logit_bias(logits, n_vocab, params_.logit_bias);
        if (params_.has_penalties())
            sampling::apply_penalties(logits, n_vocab, seen_, params_.repetition_penalty, counts_,
                                      params_.frequency_penalty, params_.presence_penalty);
        // A bias of +-inf-like size or a penalty can move the maximum anywhere: find it again (NaN cannot arise from
        // finite inputs, but a sanitizing pass costs the same as a plain one).
        if (sparse) am = sampling::sanitize_and_argmax(logits, n_vocab);
    }
    // Greedy when asked, and when there is nothing to sample from: every logit -inf (no finite distribution) or a
    // +inf logit (all mass on it). Only the tempered path draws a random number.
    const bool greedy = !(params_.temperature > 0.0f && std::isfinite(am.max_logit));
    // min_p cannot change the argmax: it only matters to the tempered draw.
    if (!greedy && params_.min_p > 0.0f)
        sampling::apply_min_p(logits, n_vocab, am.max_logit, 1.0f / params_.temperature, params_.min_p);
    const int32_t chosen = greedy ? am.best : sample_tempered(logits, n_vocab, am);
    if (want_lp) sampling::logprobs(lp_logits, n_vocab, raw_max, chosen, params_.n_logprobs, weights_, lp);
    if (record_choice) record(chosen);
    return chosen;
}

int32_t Sampler::sample_tempered(const float * logits, int32_t n_vocab, const sampling::Argmax & am) {
    // Weights exp((l - max) / T) are in (0, 1]: subtracting the max keeps exp from overflowing.
    const float inv_t = 1.0f / params_.temperature;
    const int32_t k = params_.top_k > 0 && params_.top_k < n_vocab ? params_.top_k : 0; // 0: keep all
    const bool nucleus = params_.top_p < 1.0f;
    // Probabilities are float: a cumulative sum that reaches top_p up to rounding counts as reaching it.
    const double top_p = std::max(0.0, (double) params_.top_p * (1.0 - 1e-6));
    const double u = sampling::uniform01(rng_);

    if (k > 0) {
        // Top-k, then (optionally) the nucleus of the top-k renormalised.
        sampling::top_k(logits, n_vocab, k, candidates_);
        double total = sampling::temper(candidates_, am.max_logit, inv_t);
        const size_t n_keep = nucleus ? sampling::nucleus_prefix(candidates_, top_p, &total) : candidates_.size();
        return sampling::draw(candidates_, n_keep, total, u);
    }
    weights_.resize(n_vocab);
    double total = sampling::weights(logits, n_vocab, am.max_logit, inv_t, weights_.data());
    // Plain temperature sampling needs no ordering; the nucleus alone sorts only the bucket where it ends.
    if (!nucleus) return sampling::draw_linear(weights_.data(), n_vocab, total, u, am.best);
    const size_t n_keep = sampling::nucleus_buckets(logits, weights_.data(), n_vocab, am.max_logit, inv_t, top_p,
                                                    &total, nucleus_scratch_, candidates_);
    return sampling::draw(candidates_, n_keep, total, u);
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
