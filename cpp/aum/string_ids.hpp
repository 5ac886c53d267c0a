// String sample ids -> dense int64 codes (0, 1, ... in order of first appearance), so the
// accumulator only ever sees int64 keys (and, the codes being dense, its direct slots).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aum/sample_table.hpp"  // LineVector

namespace aum {

// Whether `s` is well-formed UTF-8 (RFC 3629).
bool valid_utf8(std::string_view s);

class StringIds {
 public:
  // Codes for n strings laid out as Arrow does: string i is data[offsets[i], offsets[i + 1]).
  // Offsets are checked against data_size before any byte is read. Lookups of known strings
  // run on `threads` threads (0: all) when n is large enough.
  template <typename Offset>
  void intern(const Offset* offsets, int64_t n, const char* data, int64_t data_size,
              int64_t* codes, int threads = 0);

  int64_t intern_one(std::string_view s);
  // How many strings to expect (a hint): the table is made that big when first needed.
  void expect(int64_t strings) { expected_ = strings > 0 ? strings : 0; }
  // The string of `code`; throws std::out_of_range for an unknown code.
  std::string_view at(int64_t code) const;
  int64_t size() const { return static_cast<int64_t>(starts_.size()) - 1; }
  size_t bytes() const { return bytes_.size(); }

 private:
  // Open addressing; an entry holds where its bytes are, so a lookup reads the entry and the
  // bytes, and both can be prefetched. A string's home is the first entry of a cache line.
  struct Entry {
    uint64_t hash;
    int64_t code;  // -1: empty
    int64_t offset;
    int64_t length;
  };
  // A probable match found ahead of time (code -1: none).
  struct Candidate {
    int64_t code, offset, length;
  };
  static uint64_t hash_of(const char* p, size_t n);
  uint64_t home(uint64_t hash) const { return hash & mask_ & ~uint64_t{1}; }
  Candidate candidate(uint64_t hash) const;
  int64_t find_or_add(std::string_view s, uint64_t hash);
  void grow();

  std::string bytes_;                 // every string, back to back
  std::vector<int64_t> starts_{0};    // string `code` is bytes_[starts_[code], starts_[code + 1])
  LineVector<Entry> table_;  // cache-line aligned: a home is 2 entries of 1 line
  uint64_t mask_ = 0;
  std::vector<uint64_t> hashes_;      // per-batch scratch
  std::vector<int64_t> misses_;
  int64_t expected_ = 0;
};

}  // namespace aum
