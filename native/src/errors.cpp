#include "errors.h"

namespace tl {

const char * error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
        case ErrorCode::MODEL_NOT_FOUND: return "MODEL_NOT_FOUND";
        case ErrorCode::MODEL_CORRUPT: return "MODEL_CORRUPT";
        case ErrorCode::UNSUPPORTED_ARCHITECTURE: return "UNSUPPORTED_ARCHITECTURE";
        case ErrorCode::UNSUPPORTED_TENSOR_TYPE: return "UNSUPPORTED_TENSOR_TYPE";
        case ErrorCode::CONTEXT_OVERFLOW: return "CONTEXT_OVERFLOW";
        case ErrorCode::ENGINE_CLOSED: return "ENGINE_CLOSED";
        case ErrorCode::CANCELLED: return "CANCELLED";
        case ErrorCode::OUT_OF_MEMORY: return "OUT_OF_MEMORY";
        case ErrorCode::QUEUE_FULL: return "QUEUE_FULL";
        case ErrorCode::TIMEOUT: return "TIMEOUT";
        case ErrorCode::INTERNAL: return "INTERNAL";
    }
    return "INTERNAL";
}

} // namespace tl
