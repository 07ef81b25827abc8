// Tensor-parallel rank threads and the in-process communicator (tp.h).
#include "tp.h"

#include <algorithm>
#include <chrono>

#include "simd_clones.h"
#include "threadpool.h"

namespace tl {

namespace {

using Clock = std::chrono::steady_clock;

TL_CLONES void add_into(float * y, const float * x, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

void spin_for_us(int us) {
    auto until = Clock::now() + std::chrono::microseconds(us);
    while (Clock::now() < until) cpu_relax();
}

} // namespace

SharedMemoryCommunicator::SharedMemoryCommunicator(int n_ranks, int delay_us)
    : n_(n_ranks), delay_us_(delay_us), slots_(n_ranks, nullptr) {}

// Sense-reversing spin barrier.
void SharedMemoryCommunicator::barrier(int) {
    uint64_t phase = barrier_phase_.load(std::memory_order_acquire);
    if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
        barrier_count_.store(0, std::memory_order_relaxed);
        barrier_phase_.fetch_add(1, std::memory_order_acq_rel);
    } else {
        spin_until([&] { return barrier_phase_.load(std::memory_order_acquire) != phase; });
    }
}

// Each rank publishes its buffer, then sums all of them in rank order into its own `recv`. The second barrier keeps a
// fast rank from reusing its `send` while a slower one is still reading it.
void SharedMemoryCommunicator::all_reduce_sum(int rank, const float * send, float * recv, size_t n) {
    if (delay_us_ > 0) spin_for_us(delay_us_);
    slots_[rank] = send;
    barrier(rank);
    std::copy(slots_[0], slots_[0] + n, recv);
    for (int r = 1; r < n_; ++r) add_into(recv, slots_[r], n);
    barrier(rank);
}

RankThreads::RankThreads(int n_ranks) : n_(n_ranks) {
    for (int r = 1; r < n_; ++r) threads_.emplace_back([this, r] { rank_main(r); });
}

RankThreads::~RankThreads() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
        epoch_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto & t : threads_) t.join();
}

void RankThreads::rank_main(int r) {
    uint64_t seen = 0;
    for (;;) {
        // Spin briefly (forward passes come back to back during decode), then sleep.
        auto t0 = Clock::now();
        int spins = 0;
        while (epoch_.load(std::memory_order_acquire) == seen) {
            cpu_relax();
            if (++spins % 256 == 0 && Clock::now() - t0 > std::chrono::microseconds(300)) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return epoch_.load(std::memory_order_acquire) != seen; });
                break;
            }
        }
        seen = epoch_.load(std::memory_order_acquire);
        if (stop_) return;
        (*job_)(r);
        done_.fetch_add(1, std::memory_order_acq_rel);
    }
}

void RankThreads::run(const std::function<void(int)> & job) {
    if (n_ == 1) {
        job(0);
        return;
    }
    job_ = &job;
    done_.store(0, std::memory_order_release);
    {
        std::lock_guard<std::mutex> lock(mu_);
        epoch_.fetch_add(1, std::memory_order_acq_rel);
    }
    cv_.notify_all();
    job(0);
    spin_until([&] { return done_.load(std::memory_order_acquire) == n_ - 1; });
}

} // namespace tl
