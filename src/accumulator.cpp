#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "aum/accumulator.hpp"
#include "buffers.hpp"

namespace {

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& values) {
  py::array_t<T> out(static_cast<py::ssize_t>(values.size()));
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

// (keys, labels, sums or AUMs, counts), all filled on the gather's threads.
py::tuple gathered(const aum::Accumulator& self, int threads, bool aums) {
  const auto n = static_cast<py::ssize_t>(self.keys().size());
  py::array_t<int64_t> keys(n), labels(n), counts(n);
  py::array_t<double> sums(n);
  int64_t* k = keys.mutable_data();
  int64_t* l = labels.mutable_data();
  int64_t* c = counts.mutable_data();
  double* s = sums.mutable_data();
  {
    py::gil_scoped_release release;
    self.gather(l, s, c, threads, k, aums);
  }
  return py::make_tuple(keys, labels, sums, counts);
}

// The options add and add_margins share, checked against the batch's rows.
aum::AddOptions add_options(int64_t rows, int32_t source, bool skip_nonfinite,
                            bool allow_label_changes, int threads, int64_t epoch,
                            const std::optional<Int64Array>& epochs, int64_t tally_label) {
  aum::AddOptions options;
  if (epochs) {
    check_length(*epochs, rows, "epochs");
    options.epochs = epochs->data();
  }
  options.epoch = epoch;
  options.tally_label = tally_label;
  options.skip_nonfinite = skip_nonfinite;
  options.allow_label_changes = allow_label_changes;
  options.threads = threads;
  options.source = source;
  return options;
}

}  // namespace

void register_accumulator(py::module_& m) {
  py::class_<aum::Accumulator>(m, "Accumulator")
      .def(py::init([](int64_t classes, bool string_ids, int64_t direct_table) {
             return aum::Accumulator(
                 classes, string_ids ? aum::IdKind::string : aum::IdKind::integer, direct_table);
           }),
           py::arg("classes"), py::arg("string_ids") = false,
           py::arg("direct_table") = aum::SampleTable::kAlwaysDirect,
           "direct_table: ids below it may always be stored directly (that many entries are allowed "
           "however sparse); -1: hash every id. For tests; keep the default.")
      .def(
          "add",
          [](aum::Accumulator& self, const py::array& logits, const Int64Array& labels,
             const Int64Array& keys, int32_t source, bool skip_nonfinite,
             bool allow_label_changes, int threads, int64_t epoch,
             const std::optional<Int64Array>& epochs, int64_t tally_label, bool bfloat16) {
            const aum::LogitBlock block = logit_block(logits, bfloat16);
            check_length(labels, block.rows, "labels");
            check_length(keys, block.rows, "sample ids");
            const aum::AddOptions options =
                add_options(block.rows, source, skip_nonfinite, allow_label_changes, threads,
                            epoch, epochs, tally_label);
            aum::AddStats stats;
            {
              py::gil_scoped_release release;
              stats = self.add(block, labels.data(), keys.data(), options);
            }
            return py::make_tuple(stats.added, stats.skipped);
          },
          py::arg("logits"), py::arg("labels"), py::arg("keys"), py::arg("source") = 0,
          py::arg("skip_nonfinite") = false, py::arg("allow_label_changes") = false,
          py::arg("threads") = 0, py::arg("epoch") = 0, py::arg("epochs") = py::none(),
          py::arg("tally_label") = aum::kNoLabel, py::arg("bfloat16") = false,
          "Add one margin per row; returns (added, skipped). All-or-nothing on error. Rows are "
          "tallied per epoch (`epochs` per row, else `epoch`), rows labelled `tally_label` apart. "
          "bfloat16: logits are uint16 bfloat16 bit patterns.")
      .def(
          "add_margins",
          [](aum::Accumulator& self, const py::array_t<double, py::array::c_style | py::array::forcecast>& margins,
             const Int64Array& labels, const Int64Array& keys, int32_t source,
             bool skip_nonfinite, bool allow_label_changes, int threads, int64_t epoch,
             const std::optional<Int64Array>& epochs, int64_t tally_label) {
            if (margins.ndim() != 1) throw std::invalid_argument("margins must be 1-D");
            const int64_t rows = margins.shape(0);
            check_length(labels, rows, "labels");
            check_length(keys, rows, "sample ids");
            const aum::AddOptions options = add_options(
                rows, source, skip_nonfinite, allow_label_changes, threads, epoch, epochs,
                tally_label);
            aum::AddStats stats;
            {
              py::gil_scoped_release release;
              stats = self.add_margins(margins.data(), rows, labels.data(), keys.data(), options);
            }
            return py::make_tuple(stats.added, stats.skipped);
          },
          py::arg("margins"), py::arg("labels"), py::arg("keys"), py::arg("source") = 0,
          py::arg("skip_nonfinite") = false, py::arg("allow_label_changes") = false,
          py::arg("threads") = 0, py::arg("epoch") = 0, py::arg("epochs") = py::none(),
          py::arg("tally_label") = aum::kNoLabel,
          "Like add, for margins computed elsewhere (compact logs).")
      .def(
          "intern",
          [](aum::Accumulator& self, const py::array& offsets, const py::array& data,
             int threads) {
            if (data.ndim() != 1 || data.itemsize() != 1)
              throw std::invalid_argument("string data must be a 1-D byte array");
            if (offsets.ndim() != 1 || offsets.shape(0) < 1 || offsets.dtype().kind() != 'i' ||
                !(offsets.flags() & py::array::c_style))
              throw std::invalid_argument("string offsets must be a contiguous 1-D int array");
            const int64_t n = offsets.shape(0) - 1;
            py::array_t<int64_t> codes(n);
            const auto* bytes = static_cast<const char*>(data.data());
            const int64_t size = data.shape(0);
            int64_t* out = codes.mutable_data();
            if (offsets.itemsize() == 4) {
              const auto* o = static_cast<const int32_t*>(offsets.data());
              py::gil_scoped_release release;
              self.strings().intern(o, n, bytes, size, out, threads);
            } else if (offsets.itemsize() == 8) {
              const auto* o = static_cast<const int64_t*>(offsets.data());
              py::gil_scoped_release release;
              self.strings().intern(o, n, bytes, size, out, threads);
            } else {
              throw std::invalid_argument("string offsets must be int32 or int64");
            }
            return codes;
          },
          py::arg("offsets"), py::arg("data"), py::arg("threads") = 0,
          "Codes (int64 keys) for Arrow-layout strings: offsets[n + 1] into data.")
      .def(
          "strings_of",
          [](const aum::Accumulator& self, const Int64Array& keys) {
            py::list out;
            for (int64_t i = 0; i < keys.size(); ++i) out.append(self.strings().at(keys.data()[i]));
            return out;
          },
          py::arg("keys"), "The string ids of the given codes.")
      .def(
          "_weaken_string_hash",
          [](aum::Accumulator& self, uint64_t mask) { self.strings().weaken_hash(mask); },
          py::arg("mask"), "Tests only: keep only these bits of string hashes (ids collide).")
      .def(
          "string_buffers",
          [](const aum::Accumulator& self, const Int64Array& keys, int threads) {
            // int32 offsets (Arrow's string) when the bytes allow, else int64 (large_string).
            const int64_t n = keys.size();
            std::vector<int64_t> lengths(static_cast<size_t>(n));
            {
              py::gil_scoped_release release;
              self.strings().lengths_of(keys.data(), n, lengths.data(), threads);
            }
            int64_t total = 0;
            for (int64_t length : lengths) total += length;
            auto offsets_of = [&](auto zero) {
              py::array_t<decltype(zero)> offsets(n + 1);
              auto* o = offsets.mutable_data();
              o[0] = 0;
              for (int64_t i = 0; i < n; ++i) o[i + 1] = o[i] + static_cast<decltype(zero)>(lengths[static_cast<size_t>(i)]);
              return py::object(offsets);
            };
            py::object offsets = total < INT32_MAX ? offsets_of(int32_t{0}) : offsets_of(int64_t{0});
            py::array_t<uint8_t> data(total);
            {
              py::gil_scoped_release release;
              self.strings().copy_out(keys.data(), n, lengths.data(),
                                      reinterpret_cast<char*>(data.mutable_data()), threads);
            }
            return py::make_tuple(offsets, data);
          },
          py::arg("keys"), py::arg("threads") = 0,
          "The string ids of the given codes as Arrow string buffers (offsets[n + 1], int32 "
          "when the bytes allow, else int64 for large_string; bytes): build the column with "
          "from_buffers.")
      .def(
          "set_labels",
          [](aum::Accumulator& self, const Int64Array& keys, const Int64Array& labels,
             int32_t source) {
            check_length(labels, keys.size(), "labels");
            self.set_labels(keys.data(), labels.data(), keys.size(), source);
          },
          py::arg("keys"), py::arg("labels"), py::arg("source") = -1)
      .def("merge", &aum::Accumulator::merge, py::arg("other"),
           py::arg("allow_label_changes") = false,
           py::call_guard<py::gil_scoped_release>())
      .def("to_bytes",
           [](const aum::Accumulator& self) { return py::bytes(self.serialize()); })
      .def_static("from_bytes",
                  [](const py::bytes& data) {
                    const std::string_view view(data);
                    return aum::Accumulator::deserialize(view.data(), view.size());
                  })
      .def(
          "arrays", [](const aum::Accumulator& self, int threads) { return gathered(self, threads, false); },
          py::arg("threads") = 0,
          "(keys, labels, sums, counts) of every sample slot, in order of first appearance.")
      .def(
          "aums", [](const aum::Accumulator& self, int threads) { return gathered(self, threads, true); },
          py::arg("threads") = 0,
          "(keys, labels, aums, counts) of every sample slot, in order of first appearance; "
          "aum = sum / count, NaN for a sample without margins.")
      .def(
          "epoch_tallies",
          [](const aum::Accumulator& self) {
            const auto& tallies = self.epoch_tallies();
            std::vector<int64_t> epoch, rows, tallied, fitted;
            std::vector<double> sum, tallied_sum;
            for (const auto& [e, t] : tallies) {
              epoch.push_back(e);
              rows.push_back(t.rows);
              sum.push_back(t.margin_sum);
              tallied.push_back(t.tallied_rows);
              fitted.push_back(t.tallied_fitted);
              tallied_sum.push_back(t.tallied_margin_sum);
            }
            py::dict out;
            out["epoch"] = to_numpy(epoch);
            out["rows"] = to_numpy(rows);
            out["margin_sum"] = to_numpy(sum);
            out["tallied_rows"] = to_numpy(tallied);
            out["tallied_fitted"] = to_numpy(fitted);
            out["tallied_margin_sum"] = to_numpy(tallied_sum);
            return out;
          },
          "Per-epoch tallies of margins (all rows; rows of the tallied class), epoch ascending.")
      .def(
          "index_info",
          [](const aum::Accumulator& self) {
            py::dict out;
            out["direct_size"] = self.table().direct_size();
            out["hashed"] = self.table().hashed();
            return out;
          },
          "How samples are stored: entries of the direct part (indexed by id), ids hashed.")
      .def_property_readonly("classes", &aum::Accumulator::classes)
      .def_property_readonly("string_ids",
                             [](const aum::Accumulator& self) {
                               return self.id_kind() == aum::IdKind::string;
                             })
      .def("expect_samples", &aum::Accumulator::expect_samples, py::arg("samples"),
           "A hint: size the tables for this many samples when first needed.")
      .def_property_readonly("num_slots", &aum::Accumulator::num_slots)
      .def_property_readonly("rows_added", &aum::Accumulator::rows_added)
      .def_property_readonly("rows_skipped", &aum::Accumulator::rows_skipped);
  m.attr("NO_LABEL") = aum::kNoLabel;
}
