// The grammar's sampler stage (grammar_sampling.h).
#include "grammar_sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tl {

int32_t sample_with_grammar(GrammarConstraint & gc, Sampler & sampler, float * logits, int32_t n_vocab,
                            TokenLogprob * lp, GrammarCounters & counters) {
    if (!gc.active()) return sampler.sample(logits, n_vocab, lp);
    GrammarRuntime & rt = gc.runtime();
    rt.maybe_reset(); // a safe point: no state id of this step is held yet
    counters.tokens.fetch_add(1, std::memory_order_relaxed);
    const int32_t state = gc.state();
    float * masked = logits;
    if (!lp) {
        gc.scratch.assign(logits, logits + n_vocab); // the sampler may rewrite its input
        const int32_t tok = sampler.sample(logits, n_vocab, nullptr);
        if (rt.allowed(state, tok)) {
            counters.fast_accepts.fetch_add(1, std::memory_order_relaxed);
            return tok;
        }
        masked = gc.scratch.data();
    }
    bool cached = false;
    const std::vector<uint64_t> & bits = rt.mask(state, &cached);
    (cached ? counters.mask_cache_hits : counters.masks_computed).fetch_add(1, std::memory_order_relaxed);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    bool any = false;
    const size_t words = ((size_t) n_vocab + 63) / 64;
    for (size_t w = 0; w < words; ++w) {
        const uint64_t m = w < bits.size() ? bits[w] : 0;
        const size_t base = w * 64, end = std::min<size_t>(base + 64, (size_t) n_vocab);
        if (m == ~0ull && end - base == 64) {
            any = true;
            continue;
        }
        if (m != 0) any = true;
        for (size_t i = base; i < end; ++i)
            if (!((m >> (i - base)) & 1)) masked[i] = neg_inf;
    }
    if (!any) return -1;
    return sampler.sample(masked, n_vocab, lp);
}

} // namespace tl
