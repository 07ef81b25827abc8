// The sampler stage of grammar-constrained decoding: a token the grammar allows, drawn from the masked distribution.
//
// Fast path: the unconstrained sampler draws first; if the grammar allows its token, that token is taken, otherwise
// the logits (a copy kept before the draw) are masked (-inf for every token the grammar refuses) and the sampler
// draws again with its next random number. For greedy decoding this is the argmax of the allowed tokens. For plain
// temperature sampling it is exactly the masked distribution: P(t) + P(refused) * P(t) / P(allowed) = P(t) / P(allowed).
// After two misses in a row a request skips the first draw (retrying it every 8th token): a model that does not
// follow the grammar by itself then pays one masked draw per token, which is the masked distribution directly. The
// choice depends only on the request's own tokens, so a seed gives the same tokens whatever the caches hold.
// With top-k / top-p the first draw comes from the truncated unmasked distribution and the resample truncates the
// masked one (llama.cpp's common sampler behaves the same way). With logprobs every token takes the masked path, so
// the reported logprobs are always those of the grammar's distribution (log-softmax over the allowed tokens).
#pragma once
#include <cstdint>

#include "grammar_matcher.h"
#include "sampler.h"

namespace tl {

// Returns the token, or -1 when no token is allowed (a dead end: the state does not accept and no token of the
// vocabulary spells a next character). Adds to *sampler_ns the time of the one sampler call an unconstrained
// request would also make (the caller counts it as sampling time, the rest as grammar mask time).
int32_t sample_with_grammar(GrammarConstraint & gc, Sampler & sampler, float * logits, int32_t n_vocab,
                            TokenLogprob * lp, GrammarCounters & counters, uint64_t * sampler_ns);

} // namespace tl
