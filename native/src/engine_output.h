// What a request sends back to its caller, and how it ends. The step loop (engine.cpp) samples a token or computes an
// evaluation's logits and hands the result here; this unit turns tokens into text (incremental detokenization that
// holds back incomplete UTF-8 and possible stop-sequence prefixes), decides when a generation is over
// (end-of-generation token, stop sequence, max_tokens, full context) and delivers the final event with usage and
// timings. Cancellation, deadlines and failures come here too: RequestOutput::end() is the only code that ends a
// request (marks it done, retires its id, removes its sequence from the scheduler), so every ending path frees the
// request's KV blocks and sends exactly one final event.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "engine_request.h"
#include "errors.h"
#include "stats.h"
#include "tokenizer.h"

namespace tl {

class RequestOutput {
public:
    // `retire(id)`: the engine forgets the id, so that cancel(id) answers false from then on.
    RequestOutput(const Tokenizer & tokenizer, EngineCounters & counters, std::function<void(uint64_t)> retire)
        : tokenizer_(tokenizer), counters_(counters), retire_(std::move(retire)) {}

    // A token sampled for a generation. Ends it on an end-of-generation token (when stop_at_eos); otherwise appends
    // the token to the sequence, streams it (with its logprob when `lp`), and ends the request if a stop sequence
    // completed, max_tokens is reached or the context is full.
    void token(EngineRequest & r, int32_t tok, const TokenLogprob * lp);
    // An evaluation whose tokens are all computed: ends it and hands over its logits.
    void evaluated(EngineRequest & r);
    // Ends a request as cancelled (by its caller or by close()). No-op on an ended request.
    void cancel(EngineRequest & r) { finish(r, FinishReason::CANCELLED); }
    // Ends a generation with `stop` where its grammar ends it (complete, or a dead end). No-op on an ended request.
    void stop(EngineRequest & r) { finish(r, FinishReason::STOP); }
    // Ends a request with an error (deadline, unservable, failed step). No-op on an ended request.
    void fail(EngineRequest & r, ErrorCode code, const std::string & msg);

private:
    const Tokenizer & tokenizer_;
    EngineCounters & counters_;
    std::function<void(uint64_t)> retire_;

    void emit(EngineRequest & r, int32_t tok, const TokenLogprob * lp);
    void finish(EngineRequest & r, FinishReason reason);
    void end(EngineRequest & r);
};

} // namespace tl
