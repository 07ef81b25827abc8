// Names of the error codes (errors.h): what the JS EngineError's `code` says.
#include "errors.h"

namespace tl {

const char * error_code_name(ErrorCode code) {
    switch (code) {
#define TL_ERROR_CODE_CASE(name) \
    case ErrorCode::name: return #name;
        TL_ERROR_CODES(TL_ERROR_CODE_CASE)
#undef TL_ERROR_CODE_CASE
    }
    return "INTERNAL";
}

} // namespace tl
