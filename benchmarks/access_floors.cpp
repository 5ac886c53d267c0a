// What one row's random accesses cost on this machine, without the rest of the scorer: the
// floor under the per-sample update of a row at small C, for dense ids (one access: the
// sample's slot) and for hashed ids (a lookup of the id's code, then the slot: two accesses),
// against a table whose entries hold the slot itself (one access, to a bigger table), timed
// for the ids in their home line only and then with the probing a real table needs, and a
// table with no probing at all (a perfect hash built once the ids are known: each id's
// position from a small table that stays in cache, then its id and slot, 24 bytes, at load 1).
// 1M samples, 5M rows in random order, one thread, slots prefetched 128 rows ahead and tables
// on huge pages, as the core does.
//
//   g++ -O2 -o /tmp/access_floors benchmarks/access_floors.cpp && /tmp/access_floors
//   (two at once: /tmp/access_floors & /tmp/access_floors; wait)
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

struct Code {  // id -> code, as in SampleTable
  int64_t key, code;
};
struct Slot {
  double sum;
  int32_t count, label;
};
struct Entry {  // id and slot together, two to a line
  int64_t key, used;
  Slot slot;
};
struct Placed {  // id and slot together at a perfect hash's position: 24 bytes, no empty ones
  int64_t key;
  double sum;
  int32_t count, label;
};

template <class T>
T* table(size_t n) {
  const size_t bytes = (n * sizeof(T) + (2u << 20) - 1) / (2u << 20) * (2u << 20);
  T* p = static_cast<T*>(std::aligned_alloc(2u << 20, bytes));
  madvise(p, bytes, MADV_HUGEPAGE);
  std::memset(p, 0, bytes);
  return p;
}

double ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

int main() {
  constexpr size_t kSamples = 1 << 20, kRows = 5000000, kCapacity = 2 * kSamples;
  constexpr unsigned kShift = 64 - 21;  // log2(kCapacity) bits of the hash
  constexpr size_t kAhead = 128;
  Code* codes = table<Code>(kCapacity);
  Slot* slots = table<Slot>(kSamples);
  Entry* entries = table<Entry>(kCapacity);
  Placed* placed = table<Placed>(kSamples);
  uint8_t* pilots = table<uint8_t>(kSamples / 4);  // a perfect hash's per-bucket values
  for (size_t i = 0; i < kCapacity; ++i) codes[i].code = -1;
  auto line4 = [](int64_t k) { return (static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL >> kShift) & ~uint64_t{3}; };
  auto line2 = [](int64_t k) { return (static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL >> kShift) & ~uint64_t{1}; };
  std::mt19937_64 rng(1);
  std::vector<int64_t> ids(kSamples);
  for (size_t i = 0; i < kSamples; ++i) {
    ids[i] = static_cast<int64_t>(rng());
    size_t h = line4(ids[i]);
    while (codes[h].code >= 0) h = (h + 1) % kCapacity;
    codes[h] = Code{ids[i], static_cast<int64_t>(i)};
    h = line2(ids[i]);
    while (entries[h].used) h = (h + 1) % kCapacity;
    entries[h].key = ids[i];
    entries[h].used = 1;
  }
  size_t displaced = 0;  // ids not in their home line of two entries (load 1/2)
  for (size_t i = 0; i < kSamples; ++i) {
    const Entry* pair = entries + line2(ids[i]);
    displaced += pair[0].key != ids[i] && pair[1].key != ids[i];
  }
  std::vector<uint32_t> position(kSamples);  // where the perfect hash puts each id (a shuffle)
  for (size_t i = 0; i < kSamples; ++i) position[i] = static_cast<uint32_t>(i);
  std::shuffle(position.begin(), position.end(), rng);
  for (size_t i = 0; i < kSamples; ++i) placed[position[i]].key = ids[i];
  for (size_t i = 0; i < kSamples / 4; ++i) pilots[i] = static_cast<uint8_t>(rng() & 0x7f);
  std::vector<int64_t> dense(kRows), sparse(kRows), refs(kRows);
  std::vector<uint32_t> at(kRows);
  std::vector<double> margin(kRows);
  for (size_t r = 0; r < kRows; ++r) {
    dense[r] = static_cast<int64_t>(rng() % kSamples);
    sparse[r] = ids[static_cast<size_t>(dense[r])];
    at[r] = position[static_cast<size_t>(dense[r])];
    margin[r] = 1e-3 * static_cast<double>(r);
  }
  for (int round = 0; round < 3; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t r = 0; r < kRows; ++r) {  // dense ids: the slot
      if (r + kAhead < kRows) __builtin_prefetch(slots + dense[r + kAhead]);
      Slot& s = slots[dense[r]];
      s.sum += margin[r];
      s.count += 1;
    }
    const auto t1 = std::chrono::steady_clock::now();
    for (size_t r = 0; r < kRows; ++r) {  // hashed ids: the code (a pass), then the slot
      if (r + kAhead < kRows) __builtin_prefetch(codes + line4(sparse[r + kAhead]));
      const Code* line = codes + line4(sparse[r]);
      int64_t code = -1;
      for (int k = 0; k < 4; ++k) {
        const int64_t match = -static_cast<int64_t>(line[k].key == sparse[r]);
        code = (line[k].code & match) | (code & ~match);
      }
      refs[r] = code;
    }
    for (size_t r = 0; r < kRows; ++r) {
      if (r + kAhead < kRows && refs[r + kAhead] >= 0) __builtin_prefetch(slots + refs[r + kAhead]);
      if (refs[r] < 0) continue;  // (beyond its home line: not timed here)
      Slot& s = slots[refs[r]];
      s.sum += margin[r];
      s.count += 1;
    }
    const auto t2 = std::chrono::steady_clock::now();
    for (size_t r = 0; r < kRows; ++r) {  // the slot in the id's entry
      if (r + kAhead < kRows) __builtin_prefetch(entries + line2(sparse[r + kAhead]));
      Entry* pair = entries + line2(sparse[r]);
      Entry* e = pair[0].key == sparse[r] ? pair : pair + 1;  // (further probes not timed)
      e->slot.sum += margin[r];
      e->slot.count += 1;
    }
    const auto t3 = std::chrono::steady_clock::now();
    for (size_t r = 0; r < kRows; ++r) {  // the same, probing for ids beyond their home line
      if (r + kAhead < kRows) __builtin_prefetch(entries + line2(sparse[r + kAhead]));
      const int64_t k = sparse[r];
      Entry* pair = entries + line2(k);
      Entry* e = pair[0].key == k ? pair : pair[1].key == k ? pair + 1 : nullptr;
      if (e == nullptr) {  // (its line was not prefetched, and the branch mispredicts)
        size_t h = (line2(k) + 2) % kCapacity;
        while (entries[h].key != k) h = (h + 1) % kCapacity;
        e = entries + h;
      }
      e->slot.sum += margin[r];
      e->slot.count += 1;
    }
    const auto t4 = std::chrono::steady_clock::now();
    // A perfect hash: the id's bucket value (a 256 KB table, in cache), a few operations to its
    // position (here the precomputed one: the value is < 128, so `>> 7` adds 0, which the
    // compiler cannot know), then one line, the id checked before its slot is updated.
    auto pilot = [&](int64_t k) { return pilots[(static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL) >> 46]; };
    for (size_t r = 0; r < kRows; ++r) {
      if (r + kAhead < kRows) __builtin_prefetch(placed + at[r + kAhead] + (pilot(sparse[r + kAhead]) >> 7));
      const int64_t k = sparse[r];
      Placed& p = placed[at[r] + (pilot(k) >> 7)];
      const double match = p.key == k;
      p.sum += match * margin[r];
      p.count += static_cast<int32_t>(match);
    }
    const auto t5 = std::chrono::steady_clock::now();
    std::printf("5M rows: dense ids %.1f ms, hashed ids (code, then slot) %.1f ms, slot in the entry %.1f ms "
                "(%.1f ms probing for the %.0f%% of ids beyond their home line), perfect hash %.1f ms\n",
                ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), 100.0 * displaced / kSamples, ms(t4, t5));
  }
  return 0;
}
