// State splitting by shard (see shard.hpp) and Accumulator::split, which needs the state's
// internals and so lives in a member defined here rather than in accumulator.cpp.
#include "aum/shard.hpp"

#include <stdexcept>
#include <string>

namespace aum {

uint64_t id_hash(int64_t id) {
  uint64_t z = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t id_hash(std::string_view id) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ULL;
  return id_hash(static_cast<int64_t>(h));  // FNV's low bits are weak on short strings
}

std::vector<int32_t> sample_shards(const Accumulator& state, int32_t shards, bool drop_unscored) {
  if (shards < 1) throw std::invalid_argument("need at least 1 shard, got " + std::to_string(shards));
  const auto& keys = state.keys();
  std::vector<int32_t> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (drop_unscored && state.state(keys[i]).count == 0) {
      out[i] = -1;
      continue;
    }
    const uint64_t h = state.id_kind() == IdKind::string ? id_hash(state.strings().at(keys[i]))
                                                         : id_hash(keys[i]);
    out[i] = shard_of(h, shards);
  }
  return out;
}

std::vector<Accumulator> Accumulator::split(const int32_t* shard_of_sample, int32_t shards) const {
  if (shards < 1) throw std::invalid_argument("need at least 1 shard, got " + std::to_string(shards));
  std::vector<Accumulator> parts;
  parts.reserve(static_cast<size_t>(shards));
  for (int32_t s = 0; s < shards; ++s) parts.emplace_back(classes_, id_kind_);
  for (size_t i = 0; i < order_.size(); ++i) {
    const int32_t s = shard_of_sample[i];
    if (s < 0) continue;  // dropped
    if (s >= shards) throw std::invalid_argument("shard " + std::to_string(s) + " out of range");
    const Slot& from = *table_.find(order_[i]);
    Accumulator& to = parts[static_cast<size_t>(s)];
    const int64_t key = id_kind_ == IdKind::string ? to.strings_.intern_one(strings_.at(order_[i]))
                                                   : order_[i];
    Slot* slot = to.table_.find_or_add(key);
    to.table_.activate(slot);
    to.order_.push_back(key);
    slot->label = from.label;
    to.table_.set_source(slot, kStateSource);  // the first source of a new state: no allocation
    slot->sum = from.sum;
    slot->count = from.count;
  }
  // Whole-run totals travel once, with shard 0, so that the shards' totals add up to the run's.
  parts[0].tallies_ = tallies_;
  parts[0].rows_added_ = rows_added_;
  parts[0].rows_skipped_ = rows_skipped_;
  return parts;
}

}  // namespace aum
