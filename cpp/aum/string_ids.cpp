#include "aum/string_ids.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "aum/errors.hpp"
#include "aum/parallel.hpp"
#include "aum/prefetch.hpp"

namespace aum {

// 8 bytes a step, multiply-mixed, splitmix64 finaliser: fast on short ids, well spread for
// ids that share long prefixes ("img_000123"). Loads of a fixed size only (a copy of the last
// few bytes with a variable length was a call, a fifth of a lookup): the last word is the
// string's last 8 bytes, overlapping the one before it, and shorter strings are read as two
// overlapping halves or three single bytes. Given the length, which is mixed in first, the
// words still determine the string.
uint64_t StringIds::hash_of(const char* p, size_t n) {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  uint64_t h = 0x243f6a8885a308d3ULL ^ (n * kMul);
  auto mix = [&](uint64_t w) { h = (h ^ w) * kMul; };
  if (n >= 8) {
    const char* last = p + n - 8;
    uint64_t w;
    for (; p < last; p += 8) {
      std::memcpy(&w, p, 8);
      mix(w);
      h ^= h >> 29;
    }
    std::memcpy(&w, last, 8);
    mix(w);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    mix(a | (uint64_t{b} << 32));
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    mix(u[0] | (uint64_t{u[n / 2]} << 8) | (uint64_t{u[n - 1]} << 16));
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. ASCII, the usual
// id, 8 bytes a step.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    if (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (!(w & 0x8080808080808080ULL)) {
        p += 8;
        continue;
      }
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, code = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= extra) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[k] & 0x3F);
    }
    static constexpr uint32_t kLeast[4] = {0, 0x80, 0x800, 0x10000};
    if (code < kLeast[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

// Whether every byte is below 0x80: 8-byte words, OR-ed (vectorised), one test at the end.
bool is_ascii(const char* p, size_t n) {
  uint64_t high = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    high |= w;
  }
  for (; i < n; ++i) high |= static_cast<unsigned char>(p[i]);
  return (high & 0x8080808080808080ULL) == 0;
}

std::string_view StringIds::at(int64_t code) const {
  if (code < 0 || code >= size()) throw std::out_of_range("unknown string id code");
  const auto c = static_cast<size_t>(code);
  return std::string_view(bytes_).substr(static_cast<size_t>(starts_[c]),
                                         static_cast<size_t>(starts_[c + 1] - starts_[c]));
}

namespace {
// Whether a[0, n) == b[0, n) for n <= 20 (an entry's whole string): overlapping 8- and 4-byte
// words, no call and no loop.
bool same_short(const char* a, const char* b, size_t n) {
  auto word = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  auto half = [](const char* p) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    return w;
  };
  if (n >= 8) {
    const bool ends = word(a) == word(b) && word(a + n - 8) == word(b + n - 8);
    return n <= 16 ? ends : ends && word(a + 8) == word(b + 8);
  }
  if (n >= 4) return half(a) == half(b) && half(a + n - 4) == half(b + n - 4);
  for (size_t k = 0; k < n; ++k)
    if (a[k] != b[k]) return false;
  return true;
}
}  // namespace

int64_t StringIds::Entry::offset() const {
  int64_t at;
  std::memcpy(&at, bytes + kHead, sizeof at);
  return at;
}

bool StringIds::Entry::holds(std::string_view s, uint32_t hash_tag, const char* all_bytes) const {
  if (tag != hash_tag || !used() || length != s.size()) return false;
  if (length <= kInline) return same_short(bytes, s.data(), length);
  return same_short(bytes, s.data(), kHead) &&
         std::memcmp(all_bytes + offset() + kHead, s.data() + kHead, length - kHead) == 0;
}

// The string `code` into an empty entry of table_: `empty`, or probing from its home.
void StringIds::place(int64_t code, std::string_view s, uint64_t hash, int64_t empty) {
  uint64_t i = empty >= 0 ? static_cast<uint64_t>(empty) : home(hash);
  while (empty < 0 && table_[i].used()) i = (i + 1) & mask_;
  Entry& e = table_[i];
  e.tag = static_cast<uint32_t>(hash >> 32);
  e.stored = static_cast<int32_t>(code + 1);
  e.length = static_cast<uint32_t>(s.size());
  if (s.size() <= kInline) {
    std::memcpy(e.bytes, s.data(), s.size());
  } else {
    const int64_t offset = starts_[static_cast<size_t>(code)];
    std::memcpy(e.bytes, s.data(), kHead);
    std::memcpy(e.bytes + kHead, &offset, sizeof offset);
  }
}

// Codes come in any order (the result's is by AUM): starts_ and bytes_ are read at random, so
// both are prefetched some rows ahead, and the rows are split between threads.
void StringIds::lengths_of(const int64_t* codes, int64_t n, int64_t* lengths, int threads) const {
  for (int64_t i = 0; i < n; ++i)
    if (codes[i] < 0 || codes[i] >= size()) throw std::out_of_range("unknown string id code");
  constexpr int64_t kAhead = 64;
  const int team = n >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  (void)team;  // unused without OpenMP
#pragma omp parallel num_threads(team)
  {
    const auto [begin, end] = my_rows(n);
    for (int64_t i = begin; i < end; ++i) {
      if (i + kAhead < end) prefetch(starts_.data() + codes[i + kAhead]);
      const auto c = static_cast<size_t>(codes[i]);
      lengths[i] = starts_[c + 1] - starts_[c];
    }
  }
}

void StringIds::copy_out(const int64_t* codes, int64_t n, const int64_t* lengths, char* data,
                         int threads) const {
  constexpr int64_t kAhead = 32;
  const int team = n >= (int64_t{1} << 16) ? resolve_threads(threads) : 1;
  std::vector<int64_t> at(static_cast<size_t>(team) + 1, 0);  // where each thread's rows go
  for (int t = 0; t < team; ++t) {
    const int64_t begin = n * t / team, end = n * (t + 1) / team;
    at[static_cast<size_t>(t) + 1] = std::accumulate(lengths + begin, lengths + end, at[static_cast<size_t>(t)]);
  }
  // (OpenMP may give fewer threads than asked for: a thread then takes several ranges.)
#pragma omp parallel num_threads(team)
  for (int t = thread_index(); t < team; t += team_size()) {
    const int64_t begin = n * t / team, end = n * (t + 1) / team;
    char* out = data + at[static_cast<size_t>(t)];
    for (int64_t i = begin; i < end && i < begin + kAhead; ++i) prefetch(starts_.data() + codes[i]);
    for (int64_t i = begin; i < end; ++i) {
      if (i + 2 * kAhead < end) prefetch(starts_.data() + codes[i + 2 * kAhead]);
      if (i + kAhead < end) prefetch(bytes_.data() + starts_[static_cast<size_t>(codes[i + kAhead])]);
      std::memcpy(out, bytes_.data() + starts_[static_cast<size_t>(codes[i])], static_cast<size_t>(lengths[i]));
      out += lengths[i];
    }
  }
}

void StringIds::grow() {  // load factor at most 1/2
  size_t capacity = table_.empty() ? 1024 : table_.size() * 2;
  if (table_.empty()) {
    while (capacity < 2 * static_cast<size_t>(expected_)) capacity *= 2;
    starts_.reserve(static_cast<size_t>(expected_) + 1);
  }
  ZeroLineVector<Entry> bigger(capacity);  // zeroed by the OS (see allocate_zeroed_lines)
  bigger.swap(table_);
  mask_ = capacity - 1;
  // Entries keep only part of the hash: every string is hashed again, in code order (its bytes
  // are read in order), the entries it goes to prefetched some strings ahead.
  const int64_t n = size();
  std::vector<uint64_t> hashes(static_cast<size_t>(n));
  for (int64_t code = 0; code < n; ++code) hashes[static_cast<size_t>(code)] = hash(at(code));
  constexpr int64_t kAhead = 32;
  for (int64_t code = 0; code < n; ++code) {
    if (code + kAhead < n) prefetch(table_.data() + home(hashes[static_cast<size_t>(code + kAhead)]));
    place(code, at(code), hashes[static_cast<size_t>(code)]);
  }
}

int64_t StringIds::candidate(uint64_t line, uint64_t hash, size_t length) const {
  const auto tag = static_cast<uint32_t>(hash >> 32);
  int64_t found = -1;
  for (uint64_t j = line; j < line + 2; ++j) {
    const Entry& e = table_[j];
    const int64_t match = -static_cast<int64_t>(e.tag == tag && e.used() && e.length == length);
    found = (static_cast<int64_t>(j) & match) | (found & ~match);
  }
  return found;
}

int64_t StringIds::find(std::string_view s, uint64_t hash, uint64_t* empty) const {
  const auto tag = static_cast<uint32_t>(hash >> 32);
  for (uint64_t i = home(hash);; i = (i + 1) & mask_) {  // (the table is never full)
    const Entry& e = table_[i];
    if (!e.used()) {
      if (empty) *empty = i;
      return -1;
    }
    if (e.holds(s, tag, bytes_.data())) return e.code();
  }
}

int64_t StringIds::add(std::string_view s, uint64_t hash, int64_t empty) {
  if (2 * (static_cast<size_t>(size()) + 1) > table_.size()) {
    grow();
    empty = -1;  // (moved)
  }
  const int64_t code = size();
  if (code >= INT32_MAX) throw std::length_error("more than 2^31 - 1 distinct string sample ids");
  if (s.size() > UINT32_MAX) throw std::length_error("a string sample id of 4 GB or more");
  // Both allocations before the table changes, so that nothing can fail half-way.
  if (starts_.size() == starts_.capacity()) starts_.reserve(2 * starts_.size());
  bytes_.append(s.data(), s.size());
  starts_.push_back(static_cast<int64_t>(bytes_.size()));
  place(code, s, hash, empty);
  return code;
}

int64_t StringIds::intern_one(std::string_view s) {
  const uint64_t h = hash(s);
  if (table_.empty()) grow();
  const int64_t code = find(s, h);
  return code >= 0 ? code : add(s, h);
}

void StringIds::weaken_hash(uint64_t mask) {
  if (size() > 0) throw std::logic_error("weaken_hash: strings were already interned");
  hash_mask_ = mask;
}

// The codes of rows [begin, end) whose strings are in the table, -1 for the others (a
// thread's share of a batch; reads the table only).
template <typename View>
void StringIds::look_up(const View& view, int64_t begin, int64_t end, int64_t* codes) const {
  // Three stages a row: kAhead rows ahead its home line is prefetched; kHalf rows ahead its
  // candidate entry is picked there and, for a string longer than an entry holds, the rest of
  // the candidate's bytes prefetched; then the string is compared. A string not in its home
  // line can only be in the next one if the home line is full: that line is then prefetched at
  // the pick and searched at the compare (prefetching both lines for every string, when the
  // second is rarely needed, measured 5-10% slower).
  constexpr int64_t kAhead = 64, kHalf = 32;
  constexpr int64_t kNextLine = -2;
  int64_t ring[kHalf];
  auto pick = [&](int64_t i) {
    const uint64_t hash = hashes_[static_cast<size_t>(i)], line = home(hash);
    const int64_t e = candidate(line, hash, view(i).size());
    if (e < 0) {
      if (!table_[line].used() || !table_[line + 1].used()) return int64_t{-1};
      prefetch(table_.data() + ((line + 2) & mask_));
      return kNextLine;
    }
    if (table_[static_cast<size_t>(e)].length > kInline)
      prefetch(bytes_.data() + table_[static_cast<size_t>(e)].offset() + kHead);
    return e;
  };
  for (int64_t i = begin; i < end && i < begin + kHalf; ++i) ring[i % kHalf] = pick(i);
  for (int64_t i = begin; i < end; ++i) {
    if (i + kAhead < end) prefetch(table_.data() + home(hashes_[static_cast<size_t>(i + kAhead)]));
    int64_t mine = ring[i % kHalf];
    if (i + kHalf < end) ring[i % kHalf] = pick(i + kHalf);
    const uint64_t hash = hashes_[static_cast<size_t>(i)];
    if (mine == kNextLine) mine = candidate((home(hash) + 2) & mask_, hash, view(i).size());
    const Entry* e = mine >= 0 ? &table_[static_cast<size_t>(mine)] : nullptr;
    codes[i] = e && e->holds(view(i), static_cast<uint32_t>(hash >> 32), bytes_.data()) ? e->code() : -1;
  }
}

// Rows [begin, end) not found by look_up (all of them if !known_ones), written to misses_ from
// index begin on; returns where they end. Known strings beyond their window are found here.
template <typename View>
int64_t StringIds::misses_of(const View& view, int64_t begin, int64_t end, bool known_ones,
                             int64_t* codes) {
  int64_t k = begin;
  for (int64_t i = begin; i < end; ++i) {
    misses_[static_cast<size_t>(k)] = i;
    k += !known_ones || codes[i] < 0;
  }
  if (known_ones && (k - begin) * 8 <= end - begin) {
    // Known strings beyond their window (3% at the table's final load), their next lines
    // prefetched; what is left is new. (Not when most strings were not found, as in a first
    // epoch: they are new, and probing for them again here measured slower.)
    constexpr int64_t kAhead = 16;
    const int64_t last = k;
    k = begin;
    for (int64_t j = begin; j < last; ++j) {
      if (j + kAhead < last) {
        const auto ahead = static_cast<size_t>(misses_[static_cast<size_t>(j + kAhead)]);
        const uint64_t h = home(hashes_[ahead]);
        for (uint64_t line = 0; line < 6; line += 2) prefetch(table_.data() + ((h + line) & mask_));
      }
      const int64_t i = misses_[static_cast<size_t>(j)];
      codes[i] = find(view(i), hashes_[static_cast<size_t>(i)]);
      misses_[static_cast<size_t>(k)] = i;
      k += codes[i] < 0;
    }
  }
  return k;
}

template <typename View>
int64_t StringIds::first_invalid(const View& view, const int64_t* rows, int64_t n) const {
  for (int64_t j = 0; j < n; ++j)
    if (!valid_utf8(view(rows[j]))) return rows[j];
  return std::numeric_limits<int64_t>::max();
}

// Known strings are looked up in parallel (reading the table only), each thread its own rows,
// after checking their offsets. What is not found that way, new strings, is then added in row
// order on one thread, so codes stay in order of first appearance.
template <typename Offset>
void StringIds::intern(const Offset* offsets, int64_t n, const char* data, int64_t data_size,
                       int64_t* codes, int threads) {
  auto view = [&](int64_t i) {
    return std::string_view(data + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]));
  };
  hashes_.resize(static_cast<size_t>(n));
  misses_.resize(static_cast<size_t>(n));
  if (table_.empty()) grow();
  threads = n >= (int64_t{1} << 14) ? resolve_threads(threads) : 1;
  // Per thread: its first corrupt row (n: none), its first new string that is not UTF-8 (n:
  // none), how many misses it found, where its rows start.
  const auto team = static_cast<size_t>(threads);
  std::vector<int64_t> first_bad(team, n), first_invalid_row(team, n), found(team, 0), starts(team, -1);
  const bool known_ones = size() > 0;  // else every string is new: nothing to look up
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_index();
    const auto [begin, end] = my_rows(n);
    starts[static_cast<size_t>(t)] = begin;
    // A thread reads only the strings of its own rows, once it has checked their offsets.
    int64_t bad = end;
    for (int64_t i = begin; i < end && bad == end; ++i) {
      const auto from = static_cast<int64_t>(offsets[i]), to = static_cast<int64_t>(offsets[i + 1]);
      if (from < 0 || to < from || to > data_size) bad = i;
    }
    if (bad < end) {
      first_bad[static_cast<size_t>(t)] = bad;
    } else {
      for (int64_t i = begin; i < end; ++i) hashes_[static_cast<size_t>(i)] = hash(view(i));
      if (known_ones) look_up(view, begin, end, codes);
      const int64_t k = misses_of(view, begin, end, known_ones, codes) - begin;
      found[static_cast<size_t>(t)] = k;
      // Strings not found may be new, so they are checked here, before any is added. (Some
      // are known, beyond their window: checked when added, they pass again.) A range of
      // ASCII bytes, the usual ids, needs no check per string.
      bool ascii = true;
      if (k > 0) ascii = is_ascii(data + offsets[begin], static_cast<size_t>(offsets[end] - offsets[begin]));
      if (!ascii) first_invalid_row[static_cast<size_t>(t)] = first_invalid(view, misses_.data() + begin, k);
    }
  }
  for (size_t t = 0; t < team; ++t)
    if (first_bad[t] < n) throw RowError("string offsets are corrupt", first_bad[t]);
  for (size_t t = 0; t < team; ++t)
    if (first_invalid_row[t] < n) throw RowError("sample_id is not valid UTF-8", first_invalid_row[t]);
  int64_t missed = 0;  // the misses in row order, at the start of misses_
  for (size_t t = 0; t < team; ++t) {
    if (starts[t] < 0) continue;  // (a smaller team than asked for)
    std::copy_n(misses_.begin() + starts[t], found[t], misses_.begin() + missed);
    missed += found[t];
  }
  misses_.resize(static_cast<size_t>(missed));
  if (size() == 0 && n > 0 && expected_ > n) {
    // Room for the expected strings at this batch's mean length (and a quarter more): bytes_
    // would otherwise be copied each time it doubles. Pages never written cost nothing.
    const double mean = static_cast<double>(offsets[n] - offsets[0]) / static_cast<double>(n);
    bytes_.reserve(static_cast<size_t>(1.25 * mean * static_cast<double>(expected_)) + 64);
  }
  // The new strings (and those a string new in this batch repeats) in row order, both lines of
  // their window prefetched some misses ahead: a new string goes after the last entry in use
  // from its home, often in the next line once the table fills.
  constexpr size_t kAhead = 128;
  for (size_t j = 0; j < misses_.size(); ++j) {
    if (j + kAhead < misses_.size()) {
      const uint64_t h = home(hashes_[static_cast<size_t>(misses_[j + kAhead])]);
      prefetch(table_.data() + h);
      prefetch(table_.data() + ((h + 2) & mask_));
    }
    const int64_t i = misses_[j];
    const uint64_t hash = hashes_[static_cast<size_t>(i)];
    uint64_t empty = 0;  // where the probe ended: the new string goes there
    codes[i] = find(view(i), hash, &empty);
    if (codes[i] < 0) codes[i] = add(view(i), hash, static_cast<int64_t>(empty));
  }
}

template void StringIds::intern<int32_t>(const int32_t*, int64_t, const char*, int64_t, int64_t*, int);
template void StringIds::intern<int64_t>(const int64_t*, int64_t, const char*, int64_t, int64_t*, int);

}  // namespace aum
