#include "aum/sort.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "aum/memory.hpp"
#include "aum/parallel.hpp"
#include "aum/prefetch.hpp"

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

// LSD radix sort of (key, index) items, one digit a pass, on `threads` threads: each thread
// owns a contiguous chunk of the items; a pass counts each chunk's digits, then every thread
// writes its chunk's items to their bucket, after the same bucket's items of earlier chunks
// (so the sort stays stable whatever the thread count).
void stable_argsort(const double* values, int64_t n, int64_t* order, int threads) {
  if (n <= 0) return;
  const int team = n >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  LineBuffer<Item> first(static_cast<size_t>(n)), second(static_cast<size_t>(n));
  Item* items = first.data();
  Item* spare = second.data();
  // counts[t][d][b]: items of chunk t whose digit d is b. The first pass counts every digit
  // (a digit that is the same for all values is then skipped); on one thread the chunk is all
  // items, whose counts a pass does not change.
  std::vector<uint64_t> counts(static_cast<size_t>(team) * kDigits * kBuckets, 0);
  auto chunk_counts = [&](int t, int d) { return counts.data() + (t * kDigits + d) * kBuckets; };
  auto chunk = [&](int t) { return std::pair<int64_t, int64_t>{n * t / team, n * (t + 1) / team}; };
  // (OpenMP may give fewer threads than asked for: a thread then takes several chunks.)
#pragma omp parallel num_threads(team)
  for (int t = thread_index(); t < team; t += team_size()) {
    const auto [begin, end] = chunk(t);
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t key = ordered_bits(values[i]);
      items[i] = {key, i};
      for (int d = 0; d < kDigits; ++d) ++chunk_counts(t, d)[(key >> (d * kDigitBits)) & (kBuckets - 1)];
    }
  }
  std::vector<uint64_t> total(kBuckets);
  for (int d = 0; d < kDigits; ++d) {
    const int shift = d * kDigitBits;
    std::fill(total.begin(), total.end(), 0);
    for (int t = 0; t < team; ++t)
      for (uint64_t b = 0; b < kBuckets; ++b) total[b] += chunk_counts(t, d)[b];
    if (total[(items[0].key >> shift) & (kBuckets - 1)] == static_cast<uint64_t>(n)) continue;
#pragma omp parallel num_threads(team)
    {
      for (int t = thread_index(); t < team && team > 1; t += team_size()) {
        // This chunk now holds other items than when first counted.
        const auto [begin, end] = chunk(t);
        uint64_t* count = chunk_counts(t, d);
        std::fill(count, count + kBuckets, 0);
        for (int64_t i = begin; i < end; ++i) ++count[(items[i].key >> shift) & (kBuckets - 1)];
      }
#pragma omp barrier
#pragma omp single
      {  // counts become each chunk's first position in each bucket
        uint64_t start = 0;
        for (uint64_t b = 0; b < kBuckets; ++b)
          for (int u = 0; u < team; ++u) {
            const uint64_t c = chunk_counts(u, d)[b];
            chunk_counts(u, d)[b] = start;
            start += c;
          }
      }
      for (int t = thread_index(); t < team; t += team_size()) {
        const auto [begin, end] = chunk(t);
        uint64_t* count = chunk_counts(t, d);
        for (int64_t i = begin; i < end; ++i) spare[count[(items[i].key >> shift) & (kBuckets - 1)]++] = items[i];
      }
    }
    std::swap(items, spare);
  }
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t i = 0; i < n; ++i) order[i] = items[i].index;
}

void take(const uint64_t* values, int64_t size, const int64_t* order, int64_t n, uint64_t* out,
          int threads) {
  int64_t bad = 0;
  const int team = n >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  (void)team;  // unused without OpenMP
#pragma omp parallel for num_threads(team) schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < n; ++i) bad += static_cast<uint64_t>(order[i]) >= static_cast<uint64_t>(size);
  if (bad > 0) throw std::out_of_range("take: an index is outside the values");
  constexpr int64_t kAhead = 64;
#pragma omp parallel num_threads(team)
  {
    const auto [begin, end] = my_rows(n);
    for (int64_t i = begin; i < end; ++i) {
      if (i + kAhead < end) prefetch(values + order[i + kAhead]);
      out[i] = values[order[i]];
    }
  }
}

}  // namespace aum
