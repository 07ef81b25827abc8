// Memory read bandwidth of this machine, measured the way decode uses memory: several threads streaming a buffer
// much larger than the caches. The benchmark prints decode bytes/s as a share of this figure.
#pragma once
#include <cstddef>

namespace tl {
// Returns GB/s (1e9 bytes per second), best of `repeats` passes over a buffer of `bytes`.
double measure_read_bandwidth(int threads, size_t bytes, int repeats);
} // namespace tl
