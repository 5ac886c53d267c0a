#include "aum/sample_table.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "aum/parallel.hpp"

namespace aum {

void SampleTable::prepare_source(int32_t source) {
  if (per_slot_ || uniform_source_ == kUnsetSource || uniform_source_ == source) return;
  std::vector<int32_t> direct(direct_.size(), uniform_source_), hashed(hashed_.size(), uniform_source_);
  direct_sources_.swap(direct);
  hashed_sources_.swap(hashed);
  per_slot_ = true;
}

uint64_t SampleTable::direct_limit(int64_t more) const {
  if (always_direct_ < 0) return 0;
  const uint64_t dense = kSparsity * (static_cast<uint64_t>(samples_) + static_cast<uint64_t>(more));
  return dense > static_cast<uint64_t>(always_direct_) ? dense : static_cast<uint64_t>(always_direct_);
}

const int64_t* SampleTable::refs_for(const int64_t* keys, int64_t rows,
                                     std::vector<int64_t>& scratch, int threads) {
  // Ids below `bound` are direct once the direct part covers them; the batch could at most add
  // `rows` samples, which is what the density rule allows for.
  const uint64_t limit = direct_limit(rows);
  const uint64_t bound = limit > direct_.size() ? limit : direct_.size();
  uint64_t top = 0;  // 1 + the largest id that will be direct
  int64_t outside = 0;
  const int scan_team = rows >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  (void)scan_team;  // unused without OpenMP
#pragma omp parallel for num_threads(scan_team) schedule(static) reduction(max : top) \
    reduction(+ : outside)
  for (int64_t r = 0; r < rows; ++r) {  // branch-free: vectorises; bound by reading the ids
    const uint64_t k = static_cast<uint64_t>(keys[r]);
    const uint64_t want = k < bound ? k + 1 : 0;
    top = want > top ? want : top;
    outside += k >= bound;
  }
  if (top > direct_.size()) grow_direct(top, threads);
  if (outside == 0) return keys;
  scratch.resize(static_cast<size_t>(rows));
  int64_t* refs = scratch.data();
  const uint64_t size = direct_.size();
  if (codes_.empty()) grow_codes();
  // Known ids are looked up in parallel (the code table is only read); kMiss marks the others
  // (new ids, the few outside their home line), which are then coded in row order. While the
  // batches bring mostly new ids (a first epoch), and the expected samples are not all there,
  // the lookup is left to the coding: it would miss nearly every time (measured: a third of a
  // first epoch's refs_for).
  constexpr int64_t kMiss = std::numeric_limits<int64_t>::min();  // ~code of no code
  constexpr int64_t kAhead = 128;  // see Accumulator's kAhead
  const bool all_expected = expected_ > 0 && coded_ >= static_cast<size_t>(expected_);  // (a hint)
  const bool look_up = coded_ > 0 && (!mostly_new_ || all_expected);
  const int team = rows >= (int64_t{1} << 15) && look_up ? resolve_threads(threads) : 1;
  (void)team;  // unused without OpenMP
#pragma omp parallel num_threads(team)
  {
    const auto [begin, end] = my_rows(rows);
    if (look_up) {
      for (int64_t r = begin; r < end; ++r) {
        if (r + kAhead < end) prefetch_code(keys[r + kAhead]);
        const int64_t k = keys[r];
        const int64_t code = static_cast<uint64_t>(k) < size ? -1 : code_in_home_line(k);
        refs[r] = static_cast<uint64_t>(k) < size ? k : code >= 0 ? ~code : kMiss;
      }
      // Known ids beyond their home line (~4% at load 1/2) found here too, the table being
      // read-only: on one thread in the coding loop below, they were its only known ids.
      // Their next lines are prefetched a few misses ahead.
      constexpr int64_t kProbeAhead = 8;
      int64_t ahead = begin;
      auto next_miss = [&](int64_t from) {
        while (from < end && refs[from] != kMiss) ++from;
        return from;
      };
      for (int64_t k = 0; k < kProbeAhead && (ahead = next_miss(ahead)) < end; ++k, ++ahead)
        prefetch_beyond_home(keys[ahead]);
      for (int64_t r = next_miss(begin); r < end; r = next_miss(r + 1)) {
        if ((ahead = next_miss(ahead)) < end) prefetch_beyond_home(keys[ahead++]);
        const int64_t code = code_beyond_home_line(keys[r]);
        if (code >= 0) refs[r] = ~code;
      }
    } else {
      for (int64_t r = begin; r < end; ++r) refs[r] = static_cast<uint64_t>(keys[r]) < size ? keys[r] : kMiss;
    }
  }
  // The misses (every row of a first epoch) in row order, their home lines prefetched a few
  // misses ahead: one at a time, each insertion would wait for its cache miss.
  misses_.clear();
  for (int64_t r = 0; r < rows; ++r)
    if (refs[r] == kMiss) misses_.push_back(r);
  constexpr size_t kMissAhead = 16;
  const size_t before = coded_;
  for (size_t j = 0; j < misses_.size(); ++j) {
    if (j + kMissAhead < misses_.size()) prefetch_code(keys[misses_[j + kMissAhead]]);
    const int64_t r = misses_[j];
    refs[r] = ~code_of(keys[r]);
  }
  mostly_new_ = (coded_ - before) * 2 > static_cast<size_t>(rows);
  return refs;
}

__attribute__((noinline)) int64_t SampleTable::code_of(int64_t key) {
  if ((coded_ + 1) * 2 > codes_.size()) grow_codes();  // load factor at most 1/2
  const uint64_t mask = codes_.size() - 1;
  for (uint64_t i = home(key);; i = (i + 1) & mask) {
    Code& c = codes_[i];
    if (!c.used()) {
      const size_t code = hashed_.size();
      // Room first (if that throws, the table is unchanged), then nothing below can fail.
      if (code == hashed_.capacity() || code == hashed_keys_.capacity() ||
          (per_slot_ && code == hashed_sources_.capacity())) {
        const size_t room = std::max<size_t>(1024, 2 * code);
        hashed_.reserve(room);
        hashed_keys_.reserve(room);
        if (per_slot_) hashed_sources_.reserve(room);
      }
      hashed_.emplace_back();
      hashed_keys_.push_back(key);
      if (per_slot_) hashed_sources_.emplace_back();
      c = Code::of(key, static_cast<int64_t>(code));
      ++coded_;
      return static_cast<int64_t>(code);
    }
    if (c.key == key) return c.code();
  }
}

void SampleTable::grow_codes() {
  size_t capacity = codes_.empty() ? 1024 : codes_.size() * 2;
  if (codes_.empty()) {  // the first hashed id: room for the expected samples at load 1/2
    while (capacity < 2 * static_cast<size_t>(expected_)) capacity *= 2;
    hashed_.reserve(static_cast<size_t>(expected_));
    hashed_keys_.reserve(static_cast<size_t>(expected_));
  }
  ZeroLineVector<Code> old(capacity);  // all empty: zeroed by the OS
  old.swap(codes_);
  unsigned bits = 0;
  while ((size_t{1} << bits) < capacity) ++bits;
  shift_ = 64 - bits;
  const uint64_t mask = capacity - 1;
  constexpr size_t kAhead = 32;  // the new table is too big for cache: prefetch where keys go
  for (size_t j = 0; j < old.size(); ++j) {
    if (j + kAhead < old.size() && old[j + kAhead].used()) prefetch_code(old[j + kAhead].key);
    const Code& c = old[j];
    if (!c.used()) continue;
    uint64_t i = home(c.key);
    while (codes_[i].used()) i = (i + 1) & mask;
    codes_[i] = c;
  }
}

int64_t SampleTable::find_code(int64_t key) const {
  if (codes_.empty()) return -1;
  const int64_t code = code_in_home_line(key);
  return code >= 0 ? code : code_beyond_home_line(key);
}

const Slot* SampleTable::find(int64_t key) const {
  if (static_cast<uint64_t>(key) < direct_.size()) {
    const Slot* s = &direct_[static_cast<uint64_t>(key)];
    return s->count >= 0 ? s : nullptr;
  }
  const int64_t code = find_code(key);
  if (code < 0) return nullptr;
  const Slot* s = &hashed_[static_cast<size_t>(code)];
  return s->count >= 0 ? s : nullptr;
}

void SampleTable::refs_of(const int64_t* keys, int64_t n, int64_t* refs) const {
  const uint64_t size = direct_.size();
  constexpr int64_t kAhead = 128;
  for (int64_t i = 0; i < n; ++i) {
    if (i + kAhead < n && static_cast<uint64_t>(keys[i + kAhead]) >= size) prefetch_code(keys[i + kAhead]);
    const int64_t k = keys[i];
    refs[i] = static_cast<uint64_t>(k) < size ? k : ~find_code(k);
  }
}

int64_t SampleTable::hashed() const {
  int64_t n = 0;
  for (const Slot& s : hashed_) n += s.count >= 0;
  return n;
}

// Grow the direct part to at least `top` slots. Hashed samples it now covers move in; the
// hashed part is rebuilt without them (and without slots that are not samples), in the order
// of their codes (see slot_in_order).
void SampleTable::grow_direct(uint64_t top, int threads) {
  uint64_t size = direct_.empty() ? 1024 : direct_.size();
  while (size < top) size *= 2;
  // Everything that can fail (allocation) happens before anything changes.
  std::vector<Code> live;  // (id, old code) of the hashed samples, in code order
  for (const Code& c : codes_)
    if (c.used() && hashed_[static_cast<size_t>(c.code())].count >= 0) live.push_back(c);
  std::sort(live.begin(), live.end(), [](const Code& a, const Code& b) { return a.stored < b.stored; });
  size_t stay = 0;
  for (const Code& c : live) stay += static_cast<uint64_t>(c.key) >= size;
  RawLineVector<Slot> direct(size);  // not yet initialised: filled below
  LineVector<Slot> kept;
  std::vector<int32_t> direct_sources(per_slot_ ? size : 0), kept_sources;
  ZeroLineVector<Code> codes;
  kept.reserve(stay);
  if (per_slot_) kept_sources.reserve(stay);
  if (!live.empty()) {
    size_t capacity = 1024;
    while (stay * 2 > capacity) capacity *= 2;
    codes = ZeroLineVector<Code>(capacity);  // made at its size, all empty
  }
  std::vector<int64_t> kept_keys;
  kept_keys.reserve(stay);
  // The old slots, then empty ones, on threads for a large table (a first epoch's 1M samples:
  // 16 MB, whose pages are also faulted in here).
  const int64_t old = static_cast<int64_t>(direct_.size()), n = static_cast<int64_t>(size);
  const int team = n >= (int64_t{1} << 18) ? resolve_threads(threads) : 1;
  (void)team;  // unused without OpenMP
#pragma omp parallel for num_threads(team) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const auto at = static_cast<size_t>(i);
    direct[at] = i < old ? direct_[at] : Slot{};
  }
  std::copy(direct_sources_.begin(), direct_sources_.end(), direct_sources.begin());
  direct_.swap(direct);
  direct_sources_.swap(direct_sources);
  if (live.empty()) return;
  for (const Code& c : live) {
    const auto old = static_cast<size_t>(c.code());
    if (static_cast<uint64_t>(c.key) < size) {
      direct_[static_cast<uint64_t>(c.key)] = hashed_[old];
      if (per_slot_) direct_sources_[static_cast<uint64_t>(c.key)] = hashed_sources_[old];
    } else {
      kept.push_back(hashed_[old]);
      if (per_slot_) kept_sources.push_back(hashed_sources_[old]);
      kept_keys.push_back(c.key);
    }
  }
  hashed_.swap(kept);
  hashed_sources_.swap(kept_sources);
  hashed_keys_.swap(kept_keys);
  codes_.swap(codes);
  coded_ = 0;
  unsigned bits = 0;
  while ((size_t{1} << bits) < codes_.size()) ++bits;
  shift_ = 64 - bits;
  const uint64_t mask = codes_.size() - 1;
  for (size_t code = 0; code < hashed_keys_.size(); ++code) {
    if (code + 32 < hashed_keys_.size()) prefetch_code(hashed_keys_[code + 32]);
    uint64_t i = home(hashed_keys_[code]);
    while (codes_[i].used()) i = (i + 1) & mask;
    codes_[i] = Code::of(hashed_keys_[code], static_cast<int64_t>(code));
    ++coded_;
  }
}

}  // namespace aum
