// A fixed pool of worker threads for data-parallel loops inside one forward pass. Decode runs ~10 parallel
// regions per layer, each a few tens of microseconds, so workers spin briefly on an epoch counter before sleeping
// on a condition variable: waking a sleeping thread costs more than the work itself.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tl {

// Pause hint for spin-wait loops (lets the sibling hyper-thread run, saves power).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

// Spin until `done()` holds. After a while it also yields the CPU: when cores are oversubscribed (more busy threads
// than cores, as on a shared 2-core machine), the thread being waited for may be the one this spinner keeps off
// the core.
template <typename Pred>
inline void spin_until(Pred done) {
    for (uint32_t spins = 0; !done(); ++spins) {
        cpu_relax();
        if (spins >= 4096 && (spins & 255) == 0) std::this_thread::yield();
    }
}

// Lower the calling thread's CPU priority (Linux: nice +COMPUTE_NICE for this thread only; elsewhere nothing).
// Engine compute threads call it so the server's event loop (health checks, admission, 429s, the tuner) wins the
// CPU when compute saturates the cores: a control plane must stay responsive under the load it manages. Against an
// idle machine it changes nothing; only contended CPU time shifts toward the control path.
constexpr int COMPUTE_NICE = 5;
void lower_compute_priority();

class ThreadPool {
public:
    explicit ThreadPool(int n_threads); // n_threads >= 1; the calling thread is worker 0
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool & operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }
    // Run fn(thread_index, n_threads) on every worker (the caller is index 0) and wait for all.
    void run(const std::function<void(int, int)> & fn);
    // Split [0, n) into contiguous chunks of at least `grain` items, one per thread: fn(begin, end).
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> & fn);

private:
    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> epoch_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    const std::function<void(int, int)> * job_ = nullptr;

    void worker_main(int index);
};

} // namespace tl
