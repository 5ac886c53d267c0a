#include "aum/sort.hpp"

#include <cstring>
#include <vector>

namespace aum {
namespace {

// A double's bits as an unsigned integer in the same order as the doubles: flip every bit of a
// negative (larger magnitude = smaller) and only the sign bit of a positive. As in numpy, -0.0
// equals +0.0 and every NaN sorts last.
uint64_t ordered_bits(double value) {
  if (value != value) return ~uint64_t{0};
  if (value == 0.0) value = 0.0;
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint64_t negative = bits >> 63;
  return bits ^ ((0 - negative) | (uint64_t{1} << 63));
}

constexpr int kDigitBits = 11;  // 2048 buckets: the counts and write positions stay in L1
constexpr int kDigits = (64 + kDigitBits - 1) / kDigitBits;
constexpr uint64_t kBuckets = uint64_t{1} << kDigitBits;

struct Item {
  uint64_t key;
  int64_t index;
};

}  // namespace

void stable_argsort(const double* values, int64_t n, int64_t* order) {
  if (n <= 0) return;
  std::vector<Item> items(static_cast<size_t>(n)), spare(static_cast<size_t>(n));
  // One pass counts every digit's buckets; a digit that is the same for all values is skipped.
  std::vector<uint64_t> counts(kDigits * kBuckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t key = ordered_bits(values[i]);
    items[static_cast<size_t>(i)] = {key, i};
    for (int d = 0; d < kDigits; ++d) ++counts[d * kBuckets + ((key >> (d * kDigitBits)) & (kBuckets - 1))];
  }
  for (int d = 0; d < kDigits; ++d) {
    uint64_t* count = counts.data() + d * kBuckets;
    const int shift = d * kDigitBits;
    if (count[(items[0].key >> shift) & (kBuckets - 1)] == static_cast<uint64_t>(n)) continue;
    uint64_t start = 0;  // counts become each bucket's first position
    for (uint64_t b = 0; b < kBuckets; ++b) {
      const uint64_t c = count[b];
      count[b] = start;
      start += c;
    }
    for (const Item& item : items) spare[count[(item.key >> shift) & (kBuckets - 1)]++] = item;
    items.swap(spare);
  }
  for (int64_t i = 0; i < n; ++i) order[i] = items[static_cast<size_t>(i)].index;
}

}  // namespace aum
