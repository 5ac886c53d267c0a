// Binding of cpp/aum/shard.hpp: splitting a state by shard of sample id (aum_score.distributed).
#include <pybind11/stl.h>

#include "aum/shard.hpp"
#include "buffers.hpp"

void register_shard(py::module_& m) {
  m.def(
      "split_state",
      [](const aum::Accumulator& state, int32_t shards, bool drop_unscored) {
        const std::vector<int32_t> shard = aum::sample_shards(state, shards, drop_unscored);
        py::gil_scoped_release release;
        return state.split(shard.data(), shards);
      },
      py::arg("state"), py::arg("shards"), py::arg("drop_unscored") = true,
      "The state split into `shards` states by a fixed hash of the sample id (the same in every "
      "process); samples without margins are dropped when `drop_unscored`. Shard 0 carries the "
      "rows and per-epoch tallies, so the shards' totals add up to the state's.");
  m.def(
      "shard_of_ids",
      [](const Int64Array& ids, int32_t shards) {
        if (shards < 1) throw std::invalid_argument("need at least 1 shard");
        py::array_t<int32_t> out(ids.size());
        for (int64_t i = 0; i < ids.size(); ++i)
          out.mutable_data()[i] = aum::shard_of(aum::id_hash(ids.data()[i]), shards);
        return out;
      },
      py::arg("ids"), py::arg("shards"), "The shard of each integer sample id.");
  m.def(
      "shard_of_strings",
      [](const std::vector<std::string>& ids, int32_t shards) {
        if (shards < 1) throw std::invalid_argument("need at least 1 shard");
        py::array_t<int32_t> out(static_cast<py::ssize_t>(ids.size()));
        for (size_t i = 0; i < ids.size(); ++i)
          out.mutable_data()[i] = aum::shard_of(aum::id_hash(std::string_view(ids[i])), shards);
        return out;
      },
      py::arg("ids"), py::arg("shards"), "The shard of each string sample id (UTF-8 bytes).");
}
