// Sample id -> per-sample state (a 16-byte Slot: all a row touches, four to a cache line).
//
// Two kinds of ids, two places:
//  - direct: direct_[id] for ids in [0, direct_.size()): no hashing at all. The part grows to
//    cover a batch's ids while it stays dense enough: up to kAlwaysDirect entries whatever the
//    density, beyond that at most kSparsity entries per sample (ids 0..N-1 in any order
//    qualify; a few huge ids do not).
//  - hashed: every other id (negative, huge, sparse) gets a dense code from a compact
//    key -> code table, and its slot is hashed_[code].
// A batch first turns its ids into refs (refs_for): the id itself for direct ids, ~code for
// the others, so the passes over the rows index slots without looking anything up.
// A slot whose count is < 0 is not a sample (yet, or any more after a roll-back). Who set each
// sample's label is kept beside the slots (sources), as only label conflicts read it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "aum/memory.hpp"
#include "aum/prefetch.hpp"

namespace aum {

// Internal label type: labels are < classes, and classes fit in int32 (checked by Accumulator).
constexpr int32_t kNoLabel32 = std::numeric_limits<int32_t>::min();

// Margins a sample may have: counts are int32 to keep slots at 16 bytes.
constexpr int64_t kMaxCount = std::numeric_limits<int32_t>::max();
// No label has a source yet.
constexpr int32_t kUnsetSource = std::numeric_limits<int32_t>::min();

struct alignas(16) Slot {
  double sum = 0.0;    // float64 sum of the sample's margins
  int32_t count = -1;  // margins added; < 0: not a sample
  int32_t label = kNoLabel32;
};
static_assert(sizeof(Slot) == 16, "a slot must be a quarter of a cache line");

class SampleTable {
 public:
  static constexpr int64_t kAlwaysDirect = int64_t{1} << 20;  // 32 MB of direct slots
  static constexpr uint64_t kSparsity = 4;

  // always_direct: direct sizes allowed whatever the density (tests lower it); negative: no
  // direct part, every id is hashed (tests of the hash path).
  explicit SampleTable(int64_t always_direct = kAlwaysDirect) : always_direct_(always_direct) {}

  // The refs of a batch's ids (see above): `keys` itself when every id is direct, else
  // `scratch` filled in (known ids looked up on `threads` threads, 0: all). May grow the direct
  // part and create empty hashed slots; refs stay valid until the next refs_for or find_or_add.
  const int64_t* refs_for(const int64_t* keys, int64_t rows, std::vector<int64_t>& scratch,
                          int threads = 1);

  // The refs of ids that are all samples already: looks up, never creates or grows.
  void refs_of(const int64_t* keys, int64_t n, int64_t* refs) const;

  Slot* at(int64_t ref) { return ref >= 0 ? direct_.data() + ref : hashed_.data() + ~ref; }
  const Slot* at(int64_t ref) const { return ref >= 0 ? direct_.data() + ref : hashed_.data() + ~ref; }
  void prefetch_ref(int64_t ref) const {
    prefetch(ref >= 0 ? direct_.data() + ref : hashed_.data() + ~ref);
  }
  void prefetch_if_direct(int64_t key) const {
    if (static_cast<uint64_t>(key) < direct_.size()) prefetch(direct_.data() + key);
  }

  // For a pass over the samples in order of first appearance, which is the order of the
  // hashed ones' codes (they are made in row order, and a move keeps their order): the slot of
  // `key`, trying the code `next` first and setting it to the code after the one found. So
  // hashed slots are read in order, without a lookup; a wrong guess (after a roll-back left a
  // gap, or when samples were made in another order) costs a lookup and adds 1 to `missed`.
  const Slot* slot_in_order(int64_t key, int64_t& next, int64_t& missed) const {
    if (static_cast<uint64_t>(key) < direct_.size()) return direct_.data() + key;
    int64_t code = next;
    if (static_cast<uint64_t>(code) >= hashed_keys_.size() || hashed_keys_[static_cast<size_t>(code)] != key) {
      code = find_code(key);
      ++missed;
    }
    next = code + 1;
    return hashed_.data() + code;
  }

  // The sample `key`, or null.
  const Slot* find(int64_t key) const;
  Slot* find(int64_t key) { return const_cast<Slot*>(static_cast<const SampleTable*>(this)->find(key)); }

  // Makes `slot` (from `at` or find_or_add) a sample if it is not one yet; returns whether it
  // was new.
  // `counted` false: from parallel threads, which report how many they made (add_samples).
  bool activate(Slot* slot, bool counted = true) {
    if (slot->count >= 0) return false;
    *slot = Slot{0.0, 0, kNoLabel32};
    samples_ += counted;
    return true;
  }
  // Who set the label of a sample (a file number or a kind of source, see errors.hpp). One
  // value for all samples while their labels all come from one place (a run's first file, or
  // its labels file): an array beside the slots only once they do not.
  int32_t source(const Slot* slot) const { return per_slot_ ? source_at(slot) : uniform_source_; }
  bool sources_per_slot() const { return per_slot_; }
  // Makes sure that set_source(..., source) needs no allocation: call first, as it may throw.
  void prepare_source(int32_t source);
  // Records `source` for `slot` (after prepare_source(source); never throws).
  void set_source(const Slot* slot, int32_t source) {
    if (per_slot_)
      source_at(slot) = source;
    else
      uniform_source_ = source;  // prepare_source made sure it is the same or the first
  }
  void prefetch_source(const Slot* slot) {
    if (per_slot_) prefetch(&source_at(slot));
  }
  // Forgets the sample `key` (the roll-back of a batch that created it).
  void deactivate(int64_t key, bool counted = true) {
    if (Slot* slot = find(key)) {
      slot->count = -1;
      samples_ -= counted;
    }
  }
  void add_samples(int64_t n) { samples_ += n; }

  // The slot for `key`, maybe not a sample yet (activate it). For one-off ids (merging,
  // loading); batches use refs_for.
  Slot* find_or_add(int64_t key) { return at(*refs_for(&key, 1, single_)); }

  // How many samples to expect (a hint): a hashed part, when it is first needed, is made that
  // big at once instead of growing (and rehashing) step by step.
  void expect(int64_t samples) { expected_ = samples > 0 ? samples : 0; }

  int64_t samples() const { return samples_; }
  // Whether every sample is direct (its id is its ref).
  bool all_direct() const { return hashed_.empty(); }
  uint64_t direct_size() const { return direct_.size(); }
  int64_t hashed() const;  // hashed ids that are samples

 private:
  struct Code {  // all zeros: an empty entry (a new table is zeroed memory, nothing to fill)
    int64_t key;
    int64_t stored;  // the code + 1; 0: empty
    bool used() const { return stored != 0; }
    int64_t code() const { return stored - 1; }
    static Code of(int64_t key, int64_t code) { return Code{key, code + 1}; }
  };

  // Fibonacci hashing: one multiply, the top bits index a table of 2^bits entries.
  uint64_t home(int64_t key) const {
    return ((static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ULL) >> shift_) & ~uint64_t{3};
  }
  void prefetch_code(int64_t key) const { prefetch(codes_.data() + home(key)); }
  // The code of `key` if it is in its home line, else -1: 4 compares and conditional moves, no
  // data-dependent branch (a mispredicted probe stalls the row and with it the overlap of the
  // next rows' misses: measured 3-4x slower than this).
  int64_t code_in_home_line(int64_t key) const {
    const Code* line = codes_.data() + home(key);
    // Masks, not `?:`: GCC turns the conditional form back into branches.
    // At most one entry in use holds the key; an empty entry (key 0, stored 0) that matches
    // id 0 adds nothing to the OR, so id 0 is found in its home line like any other id.
    int64_t stored = 0;
    for (int k = 0; k < 4; ++k) {
      const int64_t match = -static_cast<int64_t>(line[k].key == key);
      stored |= line[k].stored & match;
    }
    return stored - 1;
  }
  // The code of a `key` not in its home line, or -1. Linear probing fills a key's home line
  // before any later one: a key whose home line has an empty entry is not in the table.
  int64_t code_beyond_home_line(int64_t key) const {
    const uint64_t mask = codes_.size() - 1, first = home(key);
    for (uint64_t i = first; i < first + 4; ++i)
      if (!codes_[i].used()) return -1;
    for (uint64_t i = (first + 4) & mask;; i = (i + 1) & mask) {  // (never full)
      const Code& c = codes_[i];
      if (!c.used() || c.key == key) return c.code();
    }
  }
  void prefetch_beyond_home(int64_t key) const {
    prefetch(codes_.data() + ((home(key) + 4) & (codes_.size() - 1)));
  }
  int64_t code_of(int64_t key);  // the slow path: probing, creating a hashed slot for a new key
  int64_t find_code(int64_t key) const;  // -1 if absent
  void grow_codes();
  uint64_t direct_limit(int64_t more) const;
  void grow_direct(uint64_t size, int threads);

  // Where a slot is: (true, its index in direct_) or (false, its index in hashed_).
  std::pair<bool, size_t> place_of(const Slot* slot) const {
    const auto at = reinterpret_cast<uintptr_t>(slot);
    const auto first = reinterpret_cast<uintptr_t>(direct_.data());
    if (at - first < direct_.size() * sizeof(Slot)) return {true, (at - first) / sizeof(Slot)};
    return {false, static_cast<size_t>(slot - hashed_.data())};
  }
  int32_t& source_at(const Slot* slot) {
    const auto [direct, i] = place_of(slot);
    return direct ? direct_sources_[i] : hashed_sources_[i];
  }
  int32_t source_at(const Slot* slot) const {
    const auto [direct, i] = place_of(slot);
    return direct ? direct_sources_[i] : hashed_sources_[i];
  }

  int64_t always_direct_;
  RawLineVector<Slot> direct_;  // (grow_direct fills new slots itself, on threads)
  LineVector<Slot> hashed_;
  std::vector<int64_t> hashed_keys_;  // the id of each hashed slot
  int32_t uniform_source_ = kUnsetSource;  // every sample's source, while !per_slot_
  bool per_slot_ = false;
  std::vector<int32_t> direct_sources_, hashed_sources_;  // beside direct_ and hashed_ if per_slot_
  ZeroLineVector<Code> codes_;  // open addressing; a key's home is the first entry of a line
  unsigned shift_ = 64;
  size_t coded_ = 0;        // entries in codes_
  bool mostly_new_ = true;  // whether the last batch's hashed ids were mostly new
  int64_t samples_ = 0;
  int64_t expected_ = 0;
  std::vector<int64_t> single_;
  std::vector<int64_t> misses_;  // refs_for's scratch: rows whose id was not found
};

}  // namespace aum
