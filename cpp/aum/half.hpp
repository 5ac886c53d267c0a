// IEEE binary16 -> binary32, exact. A 64K-entry table: one load per value, no F16C needed
// (wheels must not assume a CPU feature), and it stays in L2.
#pragma once
#include <cstdint>

namespace aum {

const float* half_table();  // table[h] == (float)h for every 16-bit pattern h

struct half_t {
  uint16_t bits;
};

}  // namespace aum
