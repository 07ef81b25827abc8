// Reading a GGUF into a Model. What a file holds depends on its architecture (architecture.h: one builder per
// general.architecture under models/); this unit has the entry points the engine calls, and the readers every
// builder shares: checked metadata, the standard <arch>.* hyperparameters, and tensor readers that check each shape
// against the metadata before touching data, decode, re-quantize to the weight policy and cut tensor-parallel shards.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gguf.h"
#include "model.h"
#include "threadpool.h"

namespace tl {

// The file's hyperparameters, read by its architecture's builder (UNSUPPORTED_ARCHITECTURE for an unknown one).
ModelHParams read_model_hparams(const GgufFile & file);
// Checks that the layout can shard this model (heads, KV heads and FFN divisible by tp) and is in range.
void check_layout(const ModelHParams & hp, const ModelLayout & layout);
// Loads every rank's shard through the file's architecture. `pool` is used for decoding and quantizing in parallel.
std::unique_ptr<Model> load_model(const GgufFile & file, const ModelLayout & layout, ThreadPool & pool);

// --- For architecture builders (models/*.cpp) ---

// Weight type per matrix under a policy. `mixed` keeps attention projections at 16-bit and the rest in int8.
WeightType weight_type_for(WeightsPolicy policy, bool attention_projection);
// MODEL_CORRUPT: "model '<path>': <what>".
[[noreturn]] void corrupt(const GgufFile & f, const std::string & what);
// An integer metadata value in [1, max] (`def` when absent); MODEL_CORRUPT naming the key otherwise.
int32_t positive_int(const GgufFile & f, const std::string & key, int64_t def, int64_t max);
// The hyperparameters most GGUF decoder architectures share, under the `<arch>.` prefix: embedding_length,
// block_count, attention.head_count(_kv), feed_forward_length, context_length, rope.dimension_count, rope.freq_base,
// attention.layer_norm_rms_epsilon; the vocabulary from token_embd.weight and a tied head when output.weight is absent.
ModelHParams read_transformer_hparams(const GgufFile & f, const std::string & arch);
// A [n] f32 vector tensor (norm weights), decoded; MODEL_CORRUPT on a wrong shape or a non-finite value.
std::vector<float> load_vector(const GgufFile & f, const std::string & name, int64_t n);
// A half-open range of rows or columns.
struct Range {
    int64_t begin, end;
    int64_t size() const { return end - begin; }
};
// Decodes and quantizes the rows rr x columns cr part of a [rows x cols] tensor, in parallel, a band of rows per
// thread at a time. Column-split shards take a range of rows, row-split ones a range of columns; the whole matrix is
// the full range of both.
void load_matrix(const GgufFile & f, const std::string & name, int64_t rows, int64_t cols, WeightType type,
                 QMatrix & out, ThreadPool & pool, Range rr, Range cr);
// Rank r's part of a tp-way Megatron split: its query heads, KV heads, FFN columns and vocabulary rows.
void assign_shard(const ModelHParams & hp, int tp, int r, ShardWeights & shard);

} // namespace tl
