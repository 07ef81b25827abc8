// The sampler stage of grammar-constrained decoding: a token the grammar allows, drawn from the masked distribution.
//
// Fast path: the unconstrained sampler draws first; if the grammar allows its token, that token is taken, otherwise
// the logits (a copy kept before the draw) are masked (-inf for every token the grammar refuses) and the sampler
// draws again with its next random number. For greedy decoding this is the argmax of the allowed tokens. For plain
// temperature sampling it is exactly the masked distribution: P(t) + P(refused) * P(t) / P(allowed) = P(t) / P(allowed).
// With top-k / top-p the first draw comes from the truncated unmasked distribution and the resample truncates the
// masked one (llama.cpp's common sampler behaves the same way). With logprobs every token takes the masked path, so
// the reported logprobs are always those of the grammar's distribution (log-softmax over the allowed tokens).
#pragma once
#include <cstdint>

#include "grammar_matcher.h"
#include "sampler.h"

namespace tl {

// Returns the token, or -1 when no token is allowed (a dead end: the state does not accept and no token of the
// vocabulary spells a next character).
int32_t sample_with_grammar(GrammarConstraint & gc, Sampler & sampler, float * logits, int32_t n_vocab,
                            TokenLogprob * lp, GrammarCounters & counters);

} // namespace tl
