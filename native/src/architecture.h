// Model architectures, keyed by GGUF general.architecture, the way llama.cpp keeps src/models/<arch>: one file per
// architecture under models/ that reads its hyperparameters, loads (and shards) its tensors and composes its forward
// pass from the shared layers (layers.h). Each file registers itself with TL_REGISTER_ARCHITECTURE, and binding.gyp
// compiles every models/*.cpp, so adding an architecture (qwen2, gemma, phi3...) is adding one file.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gguf.h"
#include "model.h"
#include "threadpool.h"

namespace tl {

struct ForwardBatch;
struct RankState;

class Architecture {
public:
    virtual ~Architecture() = default;
    // The general.architecture value this builder implements.
    virtual const char * name() const = 0;
    // Hyperparameters from the metadata; MODEL_CORRUPT naming the key when one is missing or out of range.
    virtual ModelHParams read_hparams(const GgufFile & file) const = 0;
    // The shared weights and one shard per rank (layout.tp), converted to the layout's weight policy. The layout has
    // been checked against `hp` (check_layout) before.
    virtual ModelWeights load(const GgufFile & file, const ModelHParams & hp, const ModelLayout & layout,
                              ThreadPool & pool) const = 0;
    // One rank's part of the forward pass over `batch` (at least one token): fills its vocabulary columns of `logits`.
    virtual void forward(RankState & rank, const ForwardBatch & batch, float * logits) const = 0;
};

// Registers `arch` (static storage) under arch->name(); called from TL_REGISTER_ARCHITECTURE.
bool register_architecture(const Architecture * arch);
// The builder for a general.architecture value, or nullptr.
const Architecture * find_architecture(const std::string & name);
// Registered names, sorted ("llama", ...).
std::vector<std::string> architecture_names();
// The builder for the file's general.architecture: MODEL_CORRUPT when the key is missing, UNSUPPORTED_ARCHITECTURE
// (naming it and the supported ones) when no builder is registered for it.
const Architecture & architecture_of(const GgufFile & file);

} // namespace tl

#define TL_ARCH_CONCAT2(a, b) a##b
#define TL_ARCH_CONCAT(a, b)  TL_ARCH_CONCAT2(a, b)
// In a models/*.cpp file, at namespace scope: TL_REGISTER_ARCHITECTURE(LlamaArchitecture);
#define TL_REGISTER_ARCHITECTURE(Type)                                                                               \
    namespace {                                                                                                      \
    const Type TL_ARCH_CONCAT(tl_arch_instance_, __LINE__){};                                                        \
    const bool TL_ARCH_CONCAT(tl_arch_registered_,                                                                   \
                              __LINE__) = ::tl::register_architecture(&TL_ARCH_CONCAT(tl_arch_instance_, __LINE__)); \
    }
