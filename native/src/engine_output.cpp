// Output processing of the engine's requests: text, stop sequences, and every way a request ends (engine_output.h).
#include "engine_output.h"

#include <algorithm>

namespace tl {

namespace {

// Length of the longest prefix of `s` that is complete UTF-8 (an incomplete trailing sequence is held back until
// the next token supplies the rest of its bytes).
size_t complete_utf8_prefix(const std::string & s) {
    size_t n = s.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        unsigned char c = (unsigned char) s[n - back];
        if ((c & 0xC0) == 0x80) continue; // continuation byte
        size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
        return back >= need ? n : n - back;
    }
    return n;
}

} // namespace

void RequestOutput::end(EngineRequest & r) {
    r.done = true;
    retire_(r.seq.id);
    if (r.inst) r.inst->sched->remove(&r.seq);
    // Choices still waiting to fork from this one's prompt lose their source: they queue on their own (the prefix
    // cache may still serve them the prompt's full blocks).
    for (auto & c : r.forks) {
        if (c->done || !c->held) continue;
        c->held = false;
        c->inst = r.inst;
        if (c->inst) c->inst->sched->add(&c->seq);
    }
    r.forks.clear();
}

void RequestOutput::token(EngineRequest & r, int32_t tok, const TokenLogprob * lp) {
    if (r.params.stop_at_eos && tokenizer_.is_end_of_generation(tok)) {
        finish(r, FinishReason::STOP);
        return;
    }
    ++r.completion;
    counters_.generation_tokens.fetch_add(1, std::memory_order_relaxed);
    r.seq.tokens.push_back(tok);
    emit(r, tok, lp);
    if (r.done) return; // a stop sequence completed
    if (r.completion >= r.params.max_tokens || (int) r.seq.tokens.size() >= r.inst->n_ctx)
        finish(r, FinishReason::LENGTH);
    else if (r.completion == r.params.pause_after_tokens) r.seq.paused = true; // test hook (engine.h)
}

void RequestOutput::emit(EngineRequest & r, int32_t tok, const TokenLogprob * lp) {
    GenerateEvent ev;
    ev.tokens.push_back(tok);
    if (lp) {
        EventLogprob out;
        out.token = lp->token;
        out.logprob = lp->logprob;
        out.text = tokenizer_.decode_one(lp->token);
        out.top.reserve(lp->top.size());
        for (const auto & [id, logprob] : lp->top) out.top.push_back({id, logprob, tokenizer_.decode_one(id)});
        ev.logprobs.push_back(std::move(out));
    }
    r.pending_bytes += tokenizer_.token_to_piece(tok);
    size_t ready = complete_utf8_prefix(r.pending_bytes);
    bool stopped = false;
    ev.text = r.stops->push(r.pending_bytes.substr(0, ready), &stopped);
    r.pending_bytes.erase(0, ready);
    r.sink(std::move(ev));
    if (stopped) finish(r, FinishReason::STOP);
}

void RequestOutput::evaluated(EngineRequest & r) {
    if (r.done) return;
    end(r);
    counters_.requests_finished.fetch_add(1, std::memory_order_relaxed);
    r.eval_done(std::move(r.eval_logits), nullptr);
}

void RequestOutput::finish(EngineRequest & r, FinishReason reason) {
    if (r.done) return;
    end(r);
    auto now = Clock::now();
    if (r.is_evaluate) {
        EngineException ex(ErrorCode::CANCELLED, "evaluation cancelled");
        r.eval_done({}, &ex);
        counters_.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    GenerateEvent ev;
    ev.final = true;
    ev.finish = reason;
    if (reason != FinishReason::CANCELLED && !r.stops->stopped()) {
        // Text held back as a possible stop-sequence prefix, and a trailing partial character, go out as they are.
        bool stopped = false;
        ev.text = r.stops->push(r.pending_bytes, &stopped);
        if (stopped) ev.finish = FinishReason::STOP;
        else ev.text += r.stops->flush();
    }
    ev.prompt_tokens = r.seq.n_prompt;
    ev.cached_prompt_tokens = std::max(0, r.cached_prompt_tokens);
    ev.completion_tokens = r.completion;
    const auto start = std::min(r.first_scheduled, now);
    ev.timings.queue_ms = ms_between(r.seq.arrival, start);
    ev.timings.prefill_ms =
        r.prefill_done == Clock::time_point::max() ? ms_between(start, now) : ms_between(start, r.prefill_done);
    ev.timings.decode_ms = r.prefill_done == Clock::time_point::max() ? 0 : ms_between(r.prefill_done, now);
    ev.timings.ttft_ms = r.prefill_done == Clock::time_point::max() ? 0 : ms_between(r.seq.arrival, r.prefill_done);
    if (reason == FinishReason::CANCELLED) counters_.requests_cancelled.fetch_add(1, std::memory_order_relaxed);
    else counters_.requests_finished.fetch_add(1, std::memory_order_relaxed);
    counters_.e2e.observe(s_between(r.seq.arrival, now));
    counters_.generation_len.observe(r.completion);
    r.sink(std::move(ev));
}

void RequestOutput::fail(EngineRequest & r, ErrorCode code, const std::string & msg) {
    if (r.done) return;
    end(r);
    if (code == ErrorCode::TIMEOUT) counters_.requests_timed_out.fetch_add(1, std::memory_order_relaxed);
    else counters_.requests_failed.fetch_add(1, std::memory_order_relaxed);
    if (r.is_evaluate) {
        EngineException ex(code, msg);
        r.eval_done({}, &ex);
        return;
    }
    GenerateEvent ev;
    ev.final = true;
    ev.failed = true;
    ev.error_code = code;
    ev.error = msg;
    r.sink(std::move(ev));
}

} // namespace tl
