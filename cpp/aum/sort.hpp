// The order of the result table: AUM ascending, ties in the order the samples were first seen.
#pragma once

#include <cstdint>

namespace aum {

// order[0..n) = the indices of values sorted ascending, stable (equal values keep their index
// order), as numpy's stable argsort: NaN last, -0.0 equal to +0.0. A least-significant-digit
// radix sort on the values' bits, on `threads` threads (0: all) for large n: O(n) and several
// times faster than a comparison sort for the million-sample tables it gets.
void stable_argsort(const double* values, int64_t n, int64_t* order, int threads = 0);

// out[i] = values[order[i]] for i < n, 8-byte values (the result's columns put in its order),
// on `threads` threads for large n, prefetching: order is a random permutation, so each read
// is a cache miss that numpy's take waits for one at a time. Every order[i] must be in
// [0, size) (checked first: std::out_of_range).
void take(const uint64_t* values, int64_t size, const int64_t* order, int64_t n, uint64_t* out,
          int threads = 0);

}  // namespace aum
