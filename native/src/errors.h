// Engine errors. Every failure that can reach a user carries a stable code; the binding turns an
// EngineException into the JS EngineError with the same code (see src/engine/errors.ts for the catalogue).
#pragma once
#include <stdexcept>
#include <string>

namespace tl {

enum class ErrorCode {
    INVALID_ARGUMENT,         // a request or option the engine cannot honour
    MODEL_NOT_FOUND,          // the model path does not exist or cannot be opened
    MODEL_CORRUPT,            // truncated, malformed or inconsistent GGUF
    UNSUPPORTED_ARCHITECTURE, // general.architecture we do not implement
    UNSUPPORTED_TENSOR_TYPE,  // a ggml tensor type we cannot read
    CONTEXT_OVERFLOW,         // prompt (+ generation) longer than the context window
    ENGINE_CLOSED,            // call after close()
    CANCELLED,                // request cancelled by its caller
    OUT_OF_MEMORY,            // allocation failed
    QUEUE_FULL,               // admission refused: the waiting queue is at maxQueueLength
    TIMEOUT,                  // the request's deadline passed before it finished
    INTERNAL,                 // a bug: an invariant did not hold
};

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
