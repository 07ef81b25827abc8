// Reads a llama-architecture GGUF into a LlamaModel, quantizing weights to the policy's formats as it goes.
// Checks every shape against the metadata before touching tensor data.
#pragma once
#include <memory>

#include "gguf.h"
#include "model.h"
#include "threadpool.h"

namespace tl {

LlamaHParams read_llama_hparams(const GgufFile & file);
// Weight type per matrix under a policy. `mixed` keeps attention projections at 16-bit and the rest in int8.
WeightType weight_type_for(WeightsPolicy policy, bool attention_projection);
// Checks that the layout can shard this model (heads, KV heads and FFN divisible by tp), then loads every rank's
// shard. `pool` is used for decoding and quantizing in parallel.
void check_layout(const LlamaHParams & hp, const ModelLayout & layout);
std::unique_ptr<LlamaModel> load_llama(const GgufFile & file, const ModelLayout & layout, ThreadPool & pool);

} // namespace tl
