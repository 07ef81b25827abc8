// Token sampling and stop-sequence matching.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tl {

struct SamplingParams {
    float temperature = 1.0f; // 0 = greedy (argmax)
    int top_k = 0;            // 0 = off
    float top_p = 1.0f;       // 1 = off
    uint64_t seed = 0;
    int n_logprobs = -1; // -1: no logprobs; 0: logprob of the chosen token only; k>0: also the top-k alternatives
    // Logit processing, applied in this order before any truncation or temperature (docs/api.md, "Sampling"):
    std::vector<std::pair<int32_t, float>> logit_bias; // added to the raw logit of each id (OpenAI: -100..100)
    float repetition_penalty = 1.0f; // CTRL / vLLM / llama.cpp: over prompt + generated ids, l > 0 ? l / p : l * p
    float frequency_penalty = 0.0f;  // OpenAI: l -= count * frequency_penalty, count over generated tokens
    float presence_penalty = 0.0f;   // OpenAI: l -= presence_penalty once a token has been generated
    float min_p = 0.0f;              // keep tokens whose tempered probability is >= min_p x the top one; 0 = off

    bool has_penalties() const {
        return repetition_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f;
    }
    // Anything that changes logits before the draw (so logprobs must be taken from a copy of the raw ones).
    bool modifies_logits() const { return !logit_bias.empty() || has_penalties() || min_p > 0.0f; }
};

struct TokenLogprob {
    int32_t token = -1;
    float logprob = 0.0f;                       // log-softmax of the raw logits (temperature 1), as OpenAI reports
    std::vector<std::pair<int32_t, float>> top; // top alternatives, best first
};

// The stages Sampler::sample() composes. Each is a plain function over its inputs (tests call them one by one);
// `candidates` are (value, id) pairs, best first where ordered: higher value first, equal values lower id first.
namespace sampling {

struct Argmax {
    float max_logit = 0.0f; // the largest logit (-inf when all are, +inf when one is)
    int32_t best = 0;       // its first id
};
// Replaces NaN logits by -inf in place and finds the maximum.
Argmax sanitize_and_argmax(float * logits, int32_t n);
// The sampler's one random draw per tempered token: a uniform double in [0, 1) from 53 bits of `rng`.
double uniform01(std::mt19937_64 & rng);
// The k largest logits (0 < k <= n), best first, as (logit, id).
void top_k(const float * logits, int32_t n, int32_t k, std::vector<std::pair<float, int32_t>> & out);
// Turns candidate logits into weights exp((logit - max) * inv_t) in place; returns their sum.
double temper(std::vector<std::pair<float, int32_t>> & candidates, float max_logit, float inv_t);
// Nucleus over weighted candidates sorted best first: the length of the shortest prefix holding >= top_p of *total
// (then *total becomes that prefix's mass), else all of them (*total unchanged).
size_t nucleus_prefix(const std::vector<std::pair<float, int32_t>> & candidates, double top_p, double * total);
// out[i] = exp((logits[i] - max) * inv_t) over the whole vocabulary (exactly 0 below e^-87); returns the sum.
double weights(const float * logits, int32_t n, float max_logit, float inv_t, float * out);
// Plain temperature sampling: the first id whose cumulative weight exceeds u * total (`fallback` if rounding
// leaves none).
int32_t draw_linear(const float * weights, int32_t n, double total, double u, int32_t fallback);
struct NucleusScratch {
    std::vector<uint16_t> buckets;                   // log-weight bucket per token
    std::vector<std::pair<float, int32_t>> crossing; // tokens of the bucket where the nucleus ends
};
// Nucleus over the whole vocabulary without sorting it: `out` gets the nucleus candidates (weight, id) and the
// return value is how many are kept; *total (the vocabulary's weight sum on entry) becomes the kept mass.
size_t nucleus_buckets(const float * logits, const float * weights, int32_t n, float max_logit, float inv_t,
                       double top_p, double * total, NucleusScratch & scratch,
                       std::vector<std::pair<float, int32_t>> & out);
// Picks from candidates[0, n) with probability proportional to their weights (summing to `total`).
int32_t draw(const std::vector<std::pair<float, int32_t>> & candidates, size_t n, double total, double u);
// Fills *lp: the chosen token's log-softmax of the raw logits (temperature 1) and the n_top best alternatives.
void logprobs(const float * logits, int32_t n, float max_logit, int32_t chosen, int n_top, std::vector<float> & scratch,
              TokenLogprob * lp);
// logits[id] += bias for each (id, bias) with id < n.
void apply_logit_bias(float * logits, int32_t n, const std::vector<std::pair<int32_t, float>> & bias);
// Repetition penalty over the ids in `seen` (positive logits divided by `penalty`, others multiplied), then
// logits[t] -= counts[t] * frequency + presence for each generated id t. Touches only the ids in the two maps.
void apply_penalties(float * logits, int32_t n, const std::unordered_set<int32_t> & seen, float repetition,
                     const std::unordered_map<int32_t, int32_t> & counts, float frequency, float presence);
// min_p at temperature 1 / inv_t: every logit below max + ln(min_p) / inv_t becomes -inf (the top one always stays).
// Returns how many remain.
int32_t apply_min_p(float * logits, int32_t n, float max_logit, float inv_t, float min_p);

} // namespace sampling

class Sampler {
public:
    // `prompt`: the request's prompt ids, which the repetition penalty counts as seen (ignored when it is off).
    explicit Sampler(const SamplingParams & params, const std::vector<int32_t> & prompt = {});
    // logits: float[n_vocab]; may be modified in place (scratch). Fills *lp when params.n_logprobs >= 0 and lp != null:
    // logprobs are always those of the raw logits (before bias, penalties, min_p, temperature). The chosen id is
    // recorded as generated: every sampled token is one of the sequence's (an end-of-generation one ends it).
    // `record_choice` false leaves the choice unrecorded: the grammar stage's trial draw, which records the token it
    // finally takes with record().
    int32_t sample(float * logits, int32_t n_vocab, TokenLogprob * lp, bool record_choice = true);
    // Counts `token` as generated (for the frequency / presence / repetition penalties).
    void record(int32_t token);
    // A copy of this sampler's state (penalty counts, parameters) with its own random stream: choice i > 0 of n.
    std::unique_ptr<Sampler> fork(uint64_t seed) const;
    const SamplingParams & params() const { return params_; }

private:
    SamplingParams params_;
    std::mt19937_64 rng_;
    std::unordered_set<int32_t> seen_;            // prompt + generated ids (repetition penalty only)
    std::unordered_map<int32_t, int32_t> counts_; // generated id -> count (frequency / presence penalties only)
    std::vector<float> raw_;                      // scratch: the raw logits, when logprobs and processing both apply
    std::vector<std::pair<float, int32_t>> candidates_; // scratch
    std::vector<float> weights_;                        // scratch: exp((logit - max) / T) per token
    sampling::NucleusScratch nucleus_scratch_;

    // Temperature > 0 over a finite distribution: top-k and/or top-p, then one random draw.
    int32_t sample_tempered(const float * logits, int32_t n_vocab, const sampling::Argmax & am);
};

// Streams text through a set of stop sequences. Text that could still be the start of a stop sequence is held
// back until it is known not to be one, so a stop string never reaches the client even across token boundaries.
class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);
    // Append `text`; returns what can be emitted now. When a stop sequence completes, *stopped becomes true and the
    // returned text ends just before the stop sequence (the stop sequence itself is never emitted).
    std::string push(const std::string & text, bool * stopped);
    // End of generation without a stop: everything held back.
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false; // a stop sequence was seen: everything after it is dropped
};

} // namespace tl
