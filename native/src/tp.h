// Tensor-parallel ranks: the threads that run them and the collective operations between them.
//
// A model instance with tp ranks runs every forward pass SPMD: each rank computes with its own shard of the weights
// (model.h) and the ranks meet only in collectives. RankThreads runs one job on every rank (rank 0 on the caller's
// thread, ranks 1.. on leader threads of their own). Communicator is the collectives' interface: the seam where a
// multi-device backend (NCCL, MPI) would plug in. SharedMemoryCommunicator is the in-process implementation used
// today: ranks are threads of this process that publish pointers to their buffers and meet at a spinning barrier;
// its `delay_us` emulates a slow interconnect (allreduceDelayUs).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tl {

// Collectives among the ranks of one group. Every rank calls the same operations in the same order.
class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int size() const = 0;
    // recv[0, n) = the sum over ranks of their send[0, n), identical (bit for bit) on every rank. `send` and `recv`
    // must not overlap; `send` may be reused once the call returns.
    virtual void all_reduce_sum(int rank, const float * send, float * recv, size_t n) = 0;
    // Returns once every rank has called it.
    virtual void barrier(int rank) = 0;
};

// Ranks as threads of this process. The sum adds the ranks' buffers in rank order (rank 0's first), so it is the
// same on every rank and the same from run to run.
class SharedMemoryCommunicator final : public Communicator {
public:
    SharedMemoryCommunicator(int n_ranks, int delay_us);
    int size() const override { return n_; }
    void all_reduce_sum(int rank, const float * send, float * recv, size_t n) override;
    void barrier(int rank) override;

private:
    const int n_;
    const int delay_us_; // spun before each all-reduce, on every rank
    std::atomic<int> barrier_count_{0};
    std::atomic<uint64_t> barrier_phase_{0};
    std::vector<const float *> slots_; // each rank's send buffer during an all-reduce
};

// Runs a job on every rank and waits for all. Leader threads of ranks 1.. spin briefly for the next job (forward
// passes come back to back during decode), then sleep.
class RankThreads {
public:
    explicit RankThreads(int n_ranks);
    ~RankThreads();
    RankThreads(const RankThreads &) = delete;
    RankThreads & operator=(const RankThreads &) = delete;

    int size() const { return n_; }
    // job(rank) on every rank; rank 0 runs on the calling thread.
    void run(const std::function<void(int)> & job);

private:
    const int n_;
    std::vector<std::thread> threads_; // ranks 1..n-1
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<uint64_t> epoch_{0};
    std::atomic<int> done_{0};
    bool stop_ = false;
    const std::function<void(int)> * job_ = nullptr;

    void rank_main(int rank);
};

} // namespace tl
