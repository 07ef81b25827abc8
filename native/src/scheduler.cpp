#include "scheduler.h"

#include <algorithm>

#include "errors.h"

namespace tl {

Clock::time_point Scheduler::ready_at(const SchedulerConfig & cfg) const {
    for (const SeqState * s : running_)
        if (!s->paused) return Clock::time_point::min();
    // Nothing runnable is running (no paused sequence either, unless the test hook is in use).
    if ((int32_t) running_.size() >= cfg.max_batch_size) return Clock::time_point::max(); // slots held by paused ones
    int32_t n_waiting = 0;
    int64_t tokens = 0;
    const SeqState * first = nullptr;
    for (const SeqState * s : waiting_) {
        if (s->paused) continue;
        if (!first) first = s;
        ++n_waiting;
        tokens += (int64_t) s->tokens.size() - s->n_computed;
    }
    if (n_waiting == 0) return Clock::time_point::max();
    if (n_waiting >= cfg.max_batch_size || n_waiting > cfg.queue_grow_threshold) return Clock::time_point::min();
    if (tokens >= cfg.max_batch_tokens) return Clock::time_point::min();
    return first->arrival + std::chrono::microseconds((int64_t) (cfg.max_queue_delay_ms * 1000.0));
}

bool Scheduler::has_paused() const {
    for (const SeqState * s : running_)
        if (s->paused) return true;
    for (const SeqState * s : waiting_)
        if (s->paused) return true;
    return false;
}

bool Scheduler::ensure_blocks(SeqState * s, int32_t n_tokens_total) {
    const int32_t bs = pool_.block_size();
    const size_t need = (size_t) ((n_tokens_total + bs - 1) / bs);
    while (s->blocks.size() < need) {
        int32_t id = pool_.allocate();
        if (id < 0) return false;
        s->blocks.push_back(id);
    }
    return true;
}

void Scheduler::release_blocks(SeqState * s) {
    for (int32_t id : s->blocks) pool_.release(id);
    s->blocks.clear();
    s->n_computed = 0;
    s->n_hashed = 0;
    s->last_hash = 0;
}

// Reuse cached full blocks of the sequence's leading tokens. The last token is never covered: its logits are needed.
void Scheduler::reuse_cached_prefix(SeqState * s) {
    const int32_t bs = pool_.block_size();
    const int32_t max_blocks = ((int32_t) s->tokens.size() - 1) / bs;
    uint64_t h = 0;
    for (int32_t b = 0; b < max_blocks; ++b) {
        const int32_t * toks = s->tokens.data() + (size_t) b * bs;
        uint64_t hb = BlockPool::hash_block(h, toks, bs);
        int32_t id = pool_.lookup(hb, toks);
        if (id < 0) break;
        s->blocks.push_back(id);
        h = hb;
        s->n_hashed = b + 1;
        s->last_hash = hb;
        s->n_computed = (b + 1) * bs;
    }
}

void Scheduler::preempt(SeqState * s) {
    release_blocks(s);
    running_.erase(std::find(running_.begin(), running_.end(), s));
    waiting_.push_front(s);
}

StepPlan Scheduler::plan(const SchedulerConfig & cfg, Clock::time_point now) {
    StepPlan p;
    // Nothing to run yet: nothing (unpaused) is running, and the waiting batch is empty or may still wait.
    if (now < ready_at(cfg)) return p;
    const bool over_threshold = (int32_t) waiting_.size() > cfg.queue_grow_threshold;
    int32_t budget = cfg.max_batch_tokens;
    int32_t n_seqs = 0;

    // 1. Running sequences, oldest first. When blocks run out, preempt from the newest end.
    for (size_t i = 0; i < running_.size() && n_seqs < cfg.max_batch_size && budget > 0;) {
        SeqState * s = running_[i];
        if (s->paused) { // keeps its batch slot
            ++n_seqs;
            ++i;
            continue;
        }
        const int32_t take = std::min<int32_t>((int32_t) s->tokens.size() - s->n_computed, budget);
        bool self_preempted = false;
        while (!ensure_blocks(s, s->n_computed + take)) {
            SeqState * victim = running_.back();
            p.preempted.push_back(victim);
            preempt(victim);
            if (victim == s) {
                self_preempted = true;
                break;
            }
        }
        if (self_preempted) break; // s was the newest: nothing after it remains
        p.seqs.push_back({s, take, s->n_computed + take == (int32_t) s->tokens.size()});
        budget -= take;
        ++n_seqs;
        ++i;
    }

    // 2. Admission, in arrival order (paused ones passed over), while the budgets and the pool allow (no preemption
    // for newcomers).
    for (auto it = waiting_.begin(); it != waiting_.end() && n_seqs < cfg.max_batch_size && budget > 0;) {
        SeqState * s = *it;
        if (s->paused) {
            ++it;
            continue;
        }
        if (s->use_prefix_cache && s->blocks.empty()) reuse_cached_prefix(s);
        const int32_t take = std::min<int32_t>((int32_t) s->tokens.size() - s->n_computed, budget);
        if (!ensure_blocks(s, s->n_computed + take)) {
            release_blocks(s);
            break;
        }
        it = waiting_.erase(it);
        running_.push_back(s);
        s->admitted_once = true;
        p.seqs.push_back({s, take, s->n_computed + take == (int32_t) s->tokens.size()});
        budget -= take;
        ++n_seqs;
    }

    if (p.seqs.empty()) return p;
    p.n_tokens = cfg.max_batch_tokens - budget;
    p.reason = (n_seqs >= cfg.max_batch_size || budget <= 0) ? FlushReason::FULL
               : over_threshold                              ? FlushReason::QUEUE_THRESHOLD
                                                             : FlushReason::TIMEOUT;
    int decode = 0;
    for (const ScheduledSeq & q : p.seqs)
        if (q.n_tokens == 1 && q.seq->n_computed >= q.seq->n_prompt) ++decode;
    p.phase = decode == (int) p.seqs.size() ? StepPhase::DECODE : decode == 0 ? StepPhase::PREFILL : StepPhase::MIXED;
    return p;
}

void Scheduler::commit(const StepPlan & plan) {
    const int32_t bs = pool_.block_size();
    for (const ScheduledSeq & q : plan.seqs) {
        SeqState * s = q.seq;
        s->n_computed += q.n_tokens;
        if (!s->use_prefix_cache) continue;
        while ((s->n_hashed + 1) * bs <= s->n_computed) {
            const int32_t * toks = s->tokens.data() + (size_t) s->n_hashed * bs;
            uint64_t h = BlockPool::hash_block(s->last_hash, toks, bs);
            pool_.register_block(s->blocks[s->n_hashed], h, toks);
            s->last_hash = h;
            ++s->n_hashed;
        }
    }
}

void Scheduler::remove(SeqState * s) {
    auto r = std::find(running_.begin(), running_.end(), s);
    if (r != running_.end()) running_.erase(r);
    auto w = std::find(waiting_.begin(), waiting_.end(), s);
    if (w != waiting_.end()) waiting_.erase(w);
    release_blocks(s);
}

std::deque<SeqState *> Scheduler::take_waiting(size_t max_tokens) {
    std::deque<SeqState *> out, keep;
    for (SeqState * s : waiting_) {
        if (s->tokens.size() <= max_tokens) {
            release_blocks(s);
            out.push_back(s);
        } else {
            keep.push_back(s);
        }
    }
    waiting_.swap(keep);
    return out;
}

SeqState * Scheduler::unservable() const {
    if (!running_.empty() || waiting_.empty()) return nullptr;
    SeqState * s = waiting_.front();
    const int64_t need = ((int64_t) s->tokens.size() + pool_.block_size() - 1) / pool_.block_size();
    return need > pool_.n_blocks() ? s : nullptr;
}

double Scheduler::fragmentation() const {
    int64_t reserved = 0, used = 0;
    for (const SeqState * s : running_) {
        reserved += (int64_t) s->blocks.size() * pool_.block_size();
        used += s->n_computed;
    }
    return used > 0 ? (double) reserved / (double) used : 1.0;
}

} // namespace tl
