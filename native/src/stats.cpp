#include "stats.h"

namespace tl {

const char * flush_reason_name(FlushReason r) {
    switch (r) {
        case FlushReason::FULL: return "full";
        case FlushReason::TIMEOUT: return "timeout";
        case FlushReason::QUEUE_THRESHOLD: return "queue_threshold";
    }
    return "timeout";
}

const char * step_phase_name(StepPhase p) {
    switch (p) {
        case StepPhase::PREFILL: return "prefill";
        case StepPhase::DECODE: return "decode";
        case StepPhase::MIXED: return "mixed";
    }
    return "mixed";
}

const char * reject_reason_name(RejectReason r) {
    switch (r) {
        case RejectReason::QUEUE_FULL: return "queue_full";
        case RejectReason::CONTEXT_OVERFLOW: return "context_overflow";
        case RejectReason::INVALID: return "invalid";
        case RejectReason::CLOSED: return "closed";
    }
    return "invalid";
}

} // namespace tl
