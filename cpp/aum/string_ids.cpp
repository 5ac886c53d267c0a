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

void StringIds::grow() {  // load factor at most 1/2
  size_t capacity = table_.empty() ? 1024 : table_.size() * 2;
  if (table_.empty()) {
    while (capacity < 2 * static_cast<size_t>(expected_)) capacity *= 2;
    starts_.reserve(static_cast<size_t>(expected_) + 1);
  }
  LineVector<Entry> old(capacity, Entry{0, -1, 0, 0});
  old.swap(table_);
  mask_ = capacity - 1;
  constexpr size_t kAhead = 32;  // the new table is too big for cache: prefetch where entries go
  for (size_t j = 0; j < old.size(); ++j) {
    if (j + kAhead < old.size()) prefetch(table_.data() + home(old[j + kAhead].hash));
    const Entry& e = old[j];
    if (e.code < 0) continue;
    uint64_t i = home(e.hash);
    while (table_[i].code >= 0) i = (i + 1) & mask_;
    table_[i] = e;
  }
}

// The entry with this hash among the 4 from its home (2 cache lines), without data-dependent
// branches; usually the string itself (a 64-bit hash rarely collides), checked later.
StringIds::Candidate StringIds::candidate(uint64_t hash) const {
  const uint64_t i = home(hash);
  Candidate found{-1, 0, 0};
  for (uint64_t k = 0; k < 4; ++k) {
    const Entry& e = table_[(i + k) & mask_];
    const int64_t match = -static_cast<int64_t>(e.hash == hash && e.code >= 0);
    found.code = (e.code & match) | (found.code & ~match);
    found.offset = (e.offset & match) | (found.offset & ~match);
    found.length = (e.length & match) | (found.length & ~match);
  }
  return found;
}

int64_t StringIds::find_or_add(std::string_view s, uint64_t hash) {
  if (2 * (static_cast<size_t>(size()) + 1) > table_.size()) grow();
  for (uint64_t i = home(hash);; i = (i + 1) & mask_) {
    Entry& e = table_[i];
    if (e.code < 0) {
      const int64_t code = size();
      const auto offset = static_cast<int64_t>(bytes_.size());
      if (starts_.size() == starts_.capacity()) starts_.reserve(2 * starts_.size());  // so that
      // push_back cannot fail once the bytes are in: both allocations before the table changes
      bytes_.append(s.data(), s.size());
      starts_.push_back(static_cast<int64_t>(bytes_.size()));
      e = Entry{hash, code, offset, static_cast<int64_t>(s.size())};
      return code;
    }
    if (e.hash == hash && static_cast<size_t>(e.length) == s.size() &&
        std::memcmp(bytes_.data() + e.offset, s.data(), s.size()) == 0)
      return e.code;
  }
}

int64_t StringIds::intern_one(std::string_view s) { return find_or_add(s, hash_of(s.data(), s.size())); }

// Known strings are looked up in parallel (reading the table only), three stages a row: kAhead
// rows ahead its hash's home lines are prefetched, kHalf rows ahead its candidate entry is read
// and the candidate's bytes prefetched, then the bytes are compared. What is not found that way
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
  threads = n >= (int64_t{1} << 14) ? resolve_threads(threads) : 1;
  if (size() == 0) {  // nothing to find: every string is new
    for (int64_t i = 0; i < n; ++i) {
      hashes_[static_cast<size_t>(i)] = hash_of(view(i).data(), view(i).size());
      codes[i] = -1;
    }
  } else
#pragma omp parallel num_threads(threads)
  {
    const int64_t begin = n * thread_index() / team_size(), end = n * (thread_index() + 1) / team_size();
    for (int64_t i = begin; i < end; ++i)
      hashes_[static_cast<size_t>(i)] = hash_of(view(i).data(), view(i).size());
    constexpr int64_t kAhead = 64, kHalf = 32;
    Candidate ring[kHalf];
    for (int64_t i = begin; i < end && i < begin + kHalf; ++i) ring[i % kHalf] = candidate(hashes_[static_cast<size_t>(i)]);
    for (int64_t i = begin; i < end; ++i) {
      if (i + kAhead < end) {
        const uint64_t h = home(hashes_[static_cast<size_t>(i + kAhead)]);
        prefetch(table_.data() + h);
        prefetch(table_.data() + ((h + 2) & mask_));
      }
      const Candidate mine = ring[i % kHalf];
      if (i + kHalf < end) {
        ring[i % kHalf] = candidate(hashes_[static_cast<size_t>(i + kHalf)]);
        prefetch(bytes_.data() + ring[i % kHalf].offset);
      }
      const std::string_view s = view(i);
      const bool hit = mine.code >= 0 && static_cast<size_t>(mine.length) == s.size() &&
                       std::memcmp(bytes_.data() + mine.offset, s.data(), s.size()) == 0;
      codes[i] = hit ? mine.code : -1;
    }
  }
  // The misses (all rows of a first epoch), with their home lines prefetched a few misses ahead.
  misses_.clear();
  for (int64_t i = 0; i < n; ++i)
    if (codes[i] < 0) misses_.push_back(i);
  constexpr size_t kAhead = 32;
  for (size_t j = 0; j < misses_.size(); ++j) {
    if (j + kAhead < misses_.size()) prefetch(table_.data() + home(hashes_[static_cast<size_t>(misses_[j + kAhead])]));
    const int64_t i = misses_[j];
    // Only a string not seen before is checked: a known one equals a checked one byte for byte.
    if (!valid_utf8(view(i))) throw RowError("sample_id is not valid UTF-8", i);
    codes[i] = find_or_add(view(i), hashes_[static_cast<size_t>(i)]);
  }
}

template void StringIds::intern<int32_t>(const int32_t*, int64_t, const char*, int64_t, int64_t*, int);
template void StringIds::intern<int64_t>(const int64_t*, int64_t, const char*, int64_t, int64_t*, int);

}  // namespace aum
