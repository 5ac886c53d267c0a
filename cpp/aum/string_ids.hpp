// String sample ids -> dense int64 codes (0, 1, ... in order of first appearance), so the
// accumulator only ever sees int64 keys (and, the codes being dense, its direct slots).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aum/memory.hpp"

namespace aum {

// Whether `s` is well-formed UTF-8 (RFC 3629).
bool valid_utf8(std::string_view s);
// Whether p[0, n) is ASCII (then also UTF-8).
bool is_ascii(const char* p, size_t n);

class StringIds {
 public:
  // Codes for n strings laid out as Arrow does: string i is data[offsets[i], offsets[i + 1]).
  // Offsets are checked against data_size before any byte is read. Lookups of known strings
  // run on `threads` threads (0: all) when n is large enough.
  template <typename Offset>
  void intern(const Offset* offsets, int64_t n, const char* data, int64_t data_size,
              int64_t* codes, int threads = 0);

  int64_t intern_one(std::string_view s);
  // Tests only, before any string: keep only these bits of every hash, so that ids collide
  // and the byte compares and probing are exercised.
  void weaken_hash(uint64_t mask);
  // How many strings to expect (a hint): the table is made that big when first needed.
  void expect(int64_t strings) { expected_ = strings > 0 ? strings : 0; }
  // The string of `code`; throws std::out_of_range for an unknown code.
  std::string_view at(int64_t code) const;
  int64_t size() const { return static_cast<int64_t>(starts_.size()) - 1; }
  // The strings of n codes back to back, as Arrow lays them out: lengths_of fills lengths[n]
  // (and checks the codes), copy_out then writes the bytes (data holds the lengths' sum). Both
  // on `threads` threads (0: all) when n is large.
  void lengths_of(const int64_t* codes, int64_t n, int64_t* lengths, int threads = 0) const;
  void copy_out(const int64_t* codes, int64_t n, const int64_t* lengths, char* data,
                int threads = 0) const;
  size_t bytes() const { return bytes_.size(); }

 private:
  // Open addressing, 2 entries a cache line; a string's home is the first entry of a line and
  // it is looked for in 4 entries from there. An entry holds the string itself when it is short
  // (most ids): a lookup then reads one prefetched line and nothing else. A longer string keeps
  // its first bytes and where the rest is in bytes_, which is prefetched ahead of the compare.
  static constexpr uint32_t kInline = 20;  // longest string held whole in its entry
  static constexpr uint32_t kHead = 12;    // bytes of a longer one held in its entry
  struct Entry {  // all zeros: an empty entry (a new table is zeroed memory, nothing to fill)
    uint32_t tag;     // the hash's high half (the low bits pick the home)
    int32_t stored;   // the code + 1; 0: empty
    uint32_t length;
    char bytes[kInline];  // length <= kInline: the string; else kHead bytes, then its offset
    bool used() const { return stored != 0; }
    int64_t code() const { return int64_t{stored} - 1; }
    int64_t offset() const;
    bool holds(std::string_view s, uint32_t tag, const char* all_bytes) const;
  };
  static_assert(sizeof(Entry) == 32, "two entries a cache line");
  static uint64_t hash_of(const char* p, size_t n);
  uint64_t hash(std::string_view s) const { return hash_of(s.data(), s.size()) & hash_mask_; }
  uint64_t home(uint64_t hash) const { return hash & mask_ & ~uint64_t{1}; }
  // The entry of the line that starts at entry `line` whose tag and length match `hash` and
  // `length`, or -1: no data-dependent branch. Usually the string itself, checked by the caller.
  int64_t candidate(uint64_t line, uint64_t hash, size_t length) const;
  // The two stages of intern on a thread's rows [begin, end), `view(i)` being row i's string.
  template <typename View>
  void look_up(const View& view, int64_t begin, int64_t end, int64_t* codes) const;
  template <typename View>
  int64_t misses_of(const View& view, int64_t begin, int64_t end, bool known_ones, int64_t* codes);
  // Its code, or -1; then *empty (if given) is the empty entry where it would go.
  int64_t find(std::string_view s, uint64_t hash, uint64_t* empty = nullptr) const;
  // A string not in the table; `empty` from find, if no string was added since.
  int64_t add(std::string_view s, uint64_t hash, int64_t empty = -1);
  void place(int64_t code, std::string_view s, uint64_t hash, int64_t empty = -1);
  // The first of n `rows` whose string is not valid UTF-8 (the largest int64: none).
  template <typename View>
  int64_t first_invalid(const View& view, const int64_t* rows, int64_t n) const;
  void grow();

  std::string bytes_;                 // every string, back to back
  std::vector<int64_t> starts_{0};    // string `code` is bytes_[starts_[code], starts_[code + 1])
  ZeroLineVector<Entry> table_;  // cache-line aligned: a home is 2 entries of 1 line
  uint64_t mask_ = 0;
  std::vector<uint64_t> hashes_;      // per-batch scratch
  std::vector<int64_t> misses_;
  int64_t expected_ = 0;
  uint64_t hash_mask_ = ~uint64_t{0};
};

}  // namespace aum
