// Sharding a per-sample state by sample id, for scoring on a cluster (aum_score.distributed):
// every process must put a sample in the same shard, so the hash is fixed here (not std::hash,
// which may differ between builds) and depends only on the id's value or bytes.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "aum/accumulator.hpp"

namespace aum {

// splitmix64's finaliser of the id: consecutive ids spread evenly over the shards.
uint64_t id_hash(int64_t id);
// FNV-1a 64 of the id's UTF-8 bytes, finalised like the integer hash.
uint64_t id_hash(std::string_view id);

inline int32_t shard_of(uint64_t hash, int32_t shards) {
  return static_cast<int32_t>(hash % static_cast<uint64_t>(shards));
}

// The shard of every sample of `state`, in the order of state.keys(); -1 for samples without
// margins when `drop_unscored` (samples only named in a labels table).
std::vector<int32_t> sample_shards(const Accumulator& state, int32_t shards, bool drop_unscored);

}  // namespace aum
