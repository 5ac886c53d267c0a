#include "aum/floors.hpp"

#include <cstring>

namespace aum {

uint64_t read_floor(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // independent lanes: the loop vectorises
  size_t i = 0;
  for (; i + 64 <= bytes; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, 64);
    for (int k = 0; k < 8; ++k) acc[k] ^= w[k];
  }
  uint64_t out = 0;
  for (; i < bytes; ++i) out ^= p[i];
  for (int k = 0; k < 8; ++k) out ^= acc[k];
  return out;
}

void scatter_floor(const int64_t* ids, const double* values, int64_t rows, double* sums,
                   int64_t* counts) {
  for (int64_t r = 0; r < rows; ++r) {
    sums[ids[r]] += values[r];
    counts[ids[r]] += 1;
  }
}

}  // namespace aum
