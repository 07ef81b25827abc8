// Engine errors. Every failure that can reach a user carries a stable code; the binding turns an
// EngineException into the JS EngineError with the same code (see src/engine/errors.ts for the catalogue, which
// tests/engine/error-codes.test.ts keeps equal to this list through the addon's `errorCodes`).
#pragma once
#include <stdexcept>
#include <string>

namespace tl {

// Every code, once: the enum, error_code_name() and the exported list are all made from it.
#define TL_ERROR_CODES(X)                                                                       \
    X(INVALID_ARGUMENT)         /* a request or option the engine cannot honour */              \
    X(MODEL_NOT_FOUND)          /* the model path does not exist or cannot be opened */         \
    X(MODEL_CORRUPT)            /* truncated, malformed or inconsistent GGUF */                 \
    X(UNSUPPORTED_ARCHITECTURE) /* general.architecture we do not implement */                  \
    X(UNSUPPORTED_TENSOR_TYPE)  /* a ggml tensor type we cannot read */                         \
    X(CONTEXT_OVERFLOW)         /* prompt (+ generation) longer than the context window */      \
    X(ENGINE_CLOSED)            /* call after close() */                                        \
    X(CANCELLED)                /* request cancelled by its caller */                           \
    X(OUT_OF_MEMORY)            /* allocation failed */                                         \
    X(QUEUE_FULL)               /* admission refused: the waiting queue is at maxQueueLength */ \
    X(TIMEOUT)                  /* the request's deadline passed before it finished */          \
    X(INTERNAL)                 /* a bug: an invariant did not hold */

enum class ErrorCode {
#define TL_ERROR_CODE_ENUM(name) name,
    TL_ERROR_CODES(TL_ERROR_CODE_ENUM)
#undef TL_ERROR_CODE_ENUM
};

#define TL_ERROR_CODE_COUNT(name) +1
constexpr int N_ERROR_CODES = 0 TL_ERROR_CODES(TL_ERROR_CODE_COUNT);
#undef TL_ERROR_CODE_COUNT

const char * error_code_name(ErrorCode code);

class EngineException : public std::runtime_error {
public:
    EngineException(ErrorCode code, const std::string & message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

private:
    ErrorCode code_;
};

[[noreturn]] inline void fail(ErrorCode code, const std::string & message) { throw EngineException(code, message); }

} // namespace tl
