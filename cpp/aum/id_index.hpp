// Sample id -> slot: open addressing with linear probing over int64 keys.
// std::unordered_map allocates a node per sample; this keeps two flat arrays.
#pragma once
#include <cstdint>
#include <vector>

namespace aum {

class IdIndex {
 public:
  // Slot of `key`, or -1.
  int64_t find(int64_t key) const {
    if (slots_.empty()) return -1;
    for (uint64_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i] < 0) return -1;
      if (keys_[i] == key) return slots_[i];
    }
  }

  // Slot of `key`; if absent, `key` gets slot `next_slot`. Sets `inserted`.
  int64_t find_or_insert(int64_t key, int64_t next_slot, bool& inserted) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    for (uint64_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i] < 0) {
        keys_[i] = key;
        slots_[i] = next_slot;
        ++size_;
        inserted = true;
        return next_slot;
      }
      if (keys_[i] == key) {
        inserted = false;
        return slots_[i];
      }
    }
  }

  void reserve(size_t n) {
    while ((n + 1) * 2 > slots_.size()) grow();
  }

 private:
  static uint64_t hash(int64_t key) {  // splitmix64 finaliser: dense and strided ids spread well
    uint64_t x = static_cast<uint64_t>(key);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
  }

  void grow() {
    const size_t capacity = slots_.empty() ? 1024 : slots_.size() * 2;
    std::vector<int64_t> old_keys(capacity), old_slots(capacity, -1);
    old_keys.swap(keys_);
    old_slots.swap(slots_);
    mask_ = capacity - 1;
    for (size_t i = 0; i < old_slots.size(); ++i) {
      if (old_slots[i] < 0) continue;
      uint64_t j = hash(old_keys[i]) & mask_;
      while (slots_[j] >= 0) j = (j + 1) & mask_;
      keys_[j] = old_keys[i];
      slots_[j] = old_slots[i];
    }
  }

  std::vector<int64_t> keys_;
  std::vector<int64_t> slots_;  // -1 = empty
  uint64_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace aum
