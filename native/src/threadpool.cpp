#include "threadpool.h"

#include <algorithm>
#include <cerrno>
#include <chrono>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tl {

// How long a worker spins for the next job before it sleeps. Decode issues jobs back to back (a few tens of
// microseconds apart), so spinning that long keeps wake-up latency near zero; between requests workers sleep.
static constexpr auto SPIN_FOR = std::chrono::microseconds(300);

void lower_compute_priority() {
#if defined(__linux__)
    // On Linux a thread id names one thread for setpriority, unlike POSIX's per-process nice. Raising nice needs no
    // privilege; failure (a sandbox forbidding it) only leaves the thread at its inherited priority.
    const id_t tid = (id_t) syscall(SYS_gettid);
    errno = 0;
    const int now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) (void) setpriority(PRIO_PROCESS, tid, std::min(19, now + COMPUTE_NICE));
#endif
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_.store(true);
        epoch_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto & t : workers_) t.join();
}

void ThreadPool::worker_main(int index) {
    lower_compute_priority();
    uint64_t seen = 0;
    for (;;) {
        auto spin_start = std::chrono::steady_clock::now();
        int spins = 0;
        while (epoch_.load(std::memory_order_acquire) == seen) {
            cpu_relax();
            if (++spins % 256 == 0 && std::chrono::steady_clock::now() - spin_start > SPIN_FOR) {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return epoch_.load(std::memory_order_acquire) != seen; });
                break;
            }
        }
        seen = epoch_.load(std::memory_order_acquire);
        if (stop_.load()) return;
        (*job_)(index, n_threads_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::run(const std::function<void(int, int)> & fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_release);
    {
        // The lock orders the epoch bump with a worker that is about to sleep, so no wake-up is lost.
        std::lock_guard<std::mutex> lock(mu_);
        epoch_.fetch_add(1, std::memory_order_acq_rel);
    }
    cv_.notify_all();
    fn(0, n_threads_);
    spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> & fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    int64_t max_chunks = (n + grain - 1) / grain;
    int n_use = (int) std::min<int64_t>(n_threads_, max_chunks);
    if (n_use <= 1) {
        fn(0, n);
        return;
    }
    // Chunks are multiples of `grain` so kernels that tile rows by 4 keep their tiles whole.
    int64_t per = ((n + n_use - 1) / n_use + grain - 1) / grain * grain;
    run([&](int idx, int) {
        int64_t b = idx * per;
        int64_t e = std::min(n, b + per);
        if (b < e) fn(b, e);
    });
}

} // namespace tl
