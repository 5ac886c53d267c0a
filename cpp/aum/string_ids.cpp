#include "aum/string_ids.hpp"

#include <cstring>
#include <stdexcept>

#include "aum/errors.hpp"
#include "aum/parallel.hpp"
#include "aum/prefetch.hpp"

namespace aum {

// 8 bytes a step, multiply-mixed, splitmix64 finaliser: fast on short ids, well spread for
// ids that share long prefixes ("img_000123").
uint64_t StringIds::hash_of(const char* p, size_t n) {
  constexpr uint64_t kMul = 0x9e3779b97f4a7c15ULL;
  uint64_t h = 0x243f6a8885a308d3ULL ^ (n * kMul);
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
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
  if (tag != hash_tag || code < 0 || length != s.size()) return false;
  if (length <= kInline) return same_short(bytes, s.data(), length);
  return same_short(bytes, s.data(), kHead) &&
         std::memcmp(all_bytes + offset() + kHead, s.data() + kHead, length - kHead) == 0;
}

// The string `code` into an empty entry of table_ (probing from its home).
void StringIds::place(int64_t code, std::string_view s, uint64_t hash) {
  uint64_t i = home(hash);
  while (table_[i].code >= 0) i = (i + 1) & mask_;
  Entry& e = table_[i];
  e.tag = static_cast<uint32_t>(hash >> 32);
  e.code = static_cast<int32_t>(code);
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
// both are prefetched some rows ahead.
void StringIds::lengths_of(const int64_t* codes, int64_t n, int64_t* lengths) const {
  for (int64_t i = 0; i < n; ++i)
    if (codes[i] < 0 || codes[i] >= size()) throw std::out_of_range("unknown string id code");
  constexpr int64_t kAhead = 64;
  for (int64_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetch(starts_.data() + codes[i + kAhead]);
    const auto c = static_cast<size_t>(codes[i]);
    lengths[i] = starts_[c + 1] - starts_[c];
  }
}

void StringIds::copy_out(const int64_t* codes, int64_t n, const int64_t* lengths, char* data) const {
  constexpr int64_t kAhead = 32;
  for (int64_t i = 0; i < n && i < kAhead; ++i) prefetch(starts_.data() + codes[i]);
  for (int64_t i = 0; i < n; ++i) {
    if (i + 2 * kAhead < n) prefetch(starts_.data() + codes[i + 2 * kAhead]);
    if (i + kAhead < n) prefetch(bytes_.data() + starts_[static_cast<size_t>(codes[i + kAhead])]);
    std::memcpy(data, bytes_.data() + starts_[static_cast<size_t>(codes[i])], static_cast<size_t>(lengths[i]));
    data += lengths[i];
  }
}

void StringIds::grow() {  // load factor at most 1/2
  size_t capacity = table_.empty() ? 1024 : table_.size() * 2;
  if (table_.empty()) {
    while (capacity < 2 * static_cast<size_t>(expected_)) capacity *= 2;
    starts_.reserve(static_cast<size_t>(expected_) + 1);
  }
  LineVector<Entry> bigger(capacity, Entry{0, -1, 0, {}});
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

int64_t StringIds::candidate(uint64_t hash, size_t length) const {
  const uint64_t i = home(hash);
  const auto tag = static_cast<uint32_t>(hash >> 32);
  int64_t found = -1;
  for (uint64_t k = 0; k < 4; ++k) {
    const uint64_t j = (i + k) & mask_;
    const Entry& e = table_[j];
    const int64_t match = -static_cast<int64_t>(e.tag == tag && e.code >= 0 && e.length == length);
    found = (static_cast<int64_t>(j) & match) | (found & ~match);
  }
  return found;
}

int64_t StringIds::find_or_add(std::string_view s, uint64_t hash) {
  if (2 * (static_cast<size_t>(size()) + 1) > table_.size()) grow();
  const auto tag = static_cast<uint32_t>(hash >> 32);
  for (uint64_t i = home(hash);; i = (i + 1) & mask_) {
    const Entry& e = table_[i];
    if (e.code < 0) break;
    if (e.holds(s, tag, bytes_.data())) return e.code;
  }
  const int64_t code = size();
  if (code >= INT32_MAX) throw std::length_error("more than 2^31 - 1 distinct string sample ids");
  if (s.size() > UINT32_MAX) throw std::length_error("a string sample id of 4 GB or more");
  // Both allocations before the table changes, so that nothing can fail half-way.
  if (starts_.size() == starts_.capacity()) starts_.reserve(2 * starts_.size());
  bytes_.append(s.data(), s.size());
  starts_.push_back(static_cast<int64_t>(bytes_.size()));
  place(code, s, hash);
  return code;
}

int64_t StringIds::intern_one(std::string_view s) { return find_or_add(s, hash(s)); }

void StringIds::weaken_hash(uint64_t mask) {
  if (size() > 0) throw std::logic_error("weaken_hash: strings were already interned");
  hash_mask_ = mask;
}

// Known strings are looked up in parallel (reading the table only). What is not found that way
// (new strings, the few outside their window) is then added in row order on one thread, so
// codes stay in order of first appearance.
template <typename Offset>
void StringIds::intern(const Offset* offsets, int64_t n, const char* data, int64_t data_size,
                       int64_t* codes, int threads) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = static_cast<int64_t>(offsets[i]);
    const int64_t end = static_cast<int64_t>(offsets[i + 1]);
    if (begin < 0 || end < begin || end > data_size)
      throw RowError("string offsets are corrupt", i);
  }
  auto view = [&](int64_t i) {
    return std::string_view(data + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]));
  };
  hashes_.resize(static_cast<size_t>(n));
  if (table_.empty()) grow();
  if (size() == 0 && n > 0 && expected_ > n) {
    // Room for the expected strings at this batch's mean length (and a quarter more): bytes_
    // would otherwise be copied each time it doubles. Pages never written cost nothing.
    const double mean = static_cast<double>(offsets[n] - offsets[0]) / static_cast<double>(n);
    bytes_.reserve(static_cast<size_t>(1.25 * mean * static_cast<double>(expected_)) + 64);
  }
  threads = n >= (int64_t{1} << 14) ? resolve_threads(threads) : 1;
  if (size() == 0) {  // nothing to find: every string is new
    for (int64_t i = 0; i < n; ++i) {
      hashes_[static_cast<size_t>(i)] = hash(view(i));
      codes[i] = -1;
    }
  } else
#pragma omp parallel num_threads(threads)
  {
    const int64_t begin = n * thread_index() / team_size(), end = n * (thread_index() + 1) / team_size();
    for (int64_t i = begin; i < end; ++i)
      hashes_[static_cast<size_t>(i)] = hash(view(i));
    // Three stages a row: kAhead rows ahead its home lines are prefetched; kHalf rows ahead its
    // candidate entry is picked and, for a string longer than an entry holds, the rest of the
    // candidate's bytes prefetched; then the string is compared.
    constexpr int64_t kAhead = 64, kHalf = 32;
    int64_t ring[kHalf];
    auto pick = [&](int64_t i) {
      const int64_t e = candidate(hashes_[static_cast<size_t>(i)], view(i).size());
      if (e >= 0 && table_[static_cast<size_t>(e)].length > kInline)
        prefetch(bytes_.data() + table_[static_cast<size_t>(e)].offset() + kHead);
      return e;
    };
    for (int64_t i = begin; i < end && i < begin + kHalf; ++i) ring[i % kHalf] = pick(i);
    for (int64_t i = begin; i < end; ++i) {
      if (i + kAhead < end) {
        const uint64_t h = home(hashes_[static_cast<size_t>(i + kAhead)]);
        prefetch(table_.data() + h);
        prefetch(table_.data() + ((h + 2) & mask_));
      }
      const int64_t mine = ring[i % kHalf];
      if (i + kHalf < end) ring[i % kHalf] = pick(i + kHalf);
      const uint64_t hash = hashes_[static_cast<size_t>(i)];
      const Entry* e = mine >= 0 ? &table_[static_cast<size_t>(mine)] : nullptr;
      codes[i] = e && e->holds(view(i), static_cast<uint32_t>(hash >> 32), bytes_.data()) ? e->code : -1;
    }
  }
  // The misses (all rows of a first epoch), with their home lines prefetched a few misses ahead.
  misses_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (codes[i] < 0) misses_.push_back(i);
  // Both lines of the 4-entry window: a new string is placed after the last entry in use from
  // its home, often in the next line once the table fills.
  constexpr size_t kAhead = 128;
  for (size_t j = 0; j < misses_.size(); ++j) {
    if (j + kAhead < misses_.size()) {
      const uint64_t h = home(hashes_[static_cast<size_t>(misses_[j + kAhead])]);
      prefetch(table_.data() + h);
      prefetch(table_.data() + ((h + 2) & mask_));
    }
    const int64_t i = misses_[j];
    // Only a string not seen before is checked: a known one equals a checked one byte for byte.
    if (!valid_utf8(view(i))) throw RowError("sample_id is not valid UTF-8", i);
    codes[i] = find_or_add(view(i), hashes_[static_cast<size_t>(i)]);
  }
}

template void StringIds::intern<int32_t>(const int32_t*, int64_t, const char*, int64_t, int64_t*, int);
template void StringIds::intern<int64_t>(const int64_t*, int64_t, const char*, int64_t, int64_t*, int);

}  // namespace aum
