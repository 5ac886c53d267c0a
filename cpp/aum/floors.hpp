// Reference loops for the benchmarks: what the hardware does with the least possible work, so
// the scorer's throughput can be reported as a fraction of it. Not used by the scorer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aum {

// Reads every byte once, one thread, and folds them with xor: the memory-read floor.
uint64_t read_floor(const void* data, size_t bytes);

// sums[ids[r]] += values[r]; counts[ids[r]] += 1 for ids already known to be in [0, size):
// the per-sample scatter with no id lookup, no checks and no margin.
void scatter_floor(const int64_t* ids, const double* values, int64_t rows, double* sums,
                   int64_t* counts);

}  // namespace aum
