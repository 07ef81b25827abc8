// Token sampling and stop-sequence matching.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tl {

struct SamplingParams {
    float temperature = 1.0f; // 0 = greedy (argmax)
    int top_k = 0;            // 0 = off
    float top_p = 1.0f;       // 1 = off
    uint64_t seed = 0;
    int n_logprobs = -1;      // -1: no logprobs; 0: logprob of the chosen token only; k>0: also the top-k alternatives
};

struct TokenLogprob {
    int32_t token = -1;
    float logprob = 0.0f;                         // log-softmax of the raw logits (temperature 1), as OpenAI reports
    std::vector<std::pair<int32_t, float>> top;   // top alternatives, best first
};

class Sampler {
public:
    explicit Sampler(const SamplingParams & params);
    // logits: float[n_vocab]; may be modified in place (scratch). Fills *lp when params.n_logprobs >= 0 and lp != null.
    int32_t sample(float * logits, int32_t n_vocab, TokenLogprob * lp);

private:
    SamplingParams params_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> candidates_; // scratch
    std::vector<float> weights_;                        // scratch: exp((logit - max) / T) per token
    std::vector<uint16_t> buckets_;                     // scratch (top-p): log-weight bucket per token
    std::vector<std::pair<float, int32_t>> crossing_;   // scratch (top-p): tokens of the bucket where it ends

    int32_t draw(size_t n, double total, double u) const;
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
