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

}  // namespace

void register_accumulator(py::module_& m) {
  py::class_<aum::Accumulator>(m, "Accumulator")
      .def(py::init([](int64_t classes, bool string_ids) {
             return aum::Accumulator(classes,
                                     string_ids ? aum::IdKind::string : aum::IdKind::integer);
           }),
           py::arg("classes"), py::arg("string_ids") = false)
      .def(
          "add",
          [](aum::Accumulator& self, const py::array& logits, const Int64Array& labels,
             const Int64Array& keys, int32_t source, bool skip_nonfinite,
             bool allow_label_changes, int threads, int64_t epoch,
             const std::optional<Int64Array>& epochs, int64_t tally_label) {
            const aum::LogitBlock block = logit_block(logits);
            check_length(labels, block.rows, "labels");
            check_length(keys, block.rows, "sample ids");
            aum::AddOptions options;
            if (epochs) {
              check_length(*epochs, block.rows, "epochs");
              options.epochs = epochs->data();
            }
            options.epoch = epoch;
            options.tally_label = tally_label;
            options.skip_nonfinite = skip_nonfinite;
            options.allow_label_changes = allow_label_changes;
            options.threads = threads;
            options.source = source;
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
          py::arg("tally_label") = aum::kNoLabel,
          "Add one margin per row; returns (added, skipped). All-or-nothing on error. Rows are "
          "tallied per epoch (`epochs` per row, else `epoch`), rows labelled `tally_label` apart.")
      .def(
          "intern",
          [](aum::Accumulator& self, const py::array& offsets, const py::array& data) {
            if (data.ndim() != 1 || data.itemsize() != 1)
              throw std::invalid_argument("string data must be a 1-D byte array");
            if (offsets.ndim() != 1 || offsets.shape(0) < 1 || offsets.dtype().kind() != 'i' ||
                !(offsets.flags() & py::array::c_style))
              throw std::invalid_argument("string offsets must be a contiguous 1-D int array");
            const int64_t n = offsets.shape(0) - 1;
            py::array_t<int64_t> codes(n);
            const auto* bytes = static_cast<const char*>(data.data());
            if (offsets.itemsize() == 4) {
              self.strings().intern(static_cast<const int32_t*>(offsets.data()), n, bytes,
                                    data.shape(0), codes.mutable_data());
            } else if (offsets.itemsize() == 8) {
              self.strings().intern(static_cast<const int64_t*>(offsets.data()), n, bytes,
                                    data.shape(0), codes.mutable_data());
            } else {
              throw std::invalid_argument("string offsets must be int32 or int64");
            }
            return codes;
          },
          py::arg("offsets"), py::arg("data"),
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
          "arrays",
          [](const aum::Accumulator& self) {
            return py::make_tuple(to_numpy(self.keys()), to_numpy(self.labels()),
                                  to_numpy(self.sums()), to_numpy(self.counts()));
          },
          "(keys, labels, sums, counts) of every sample slot, in order of first appearance.")
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
      .def_property_readonly("classes", &aum::Accumulator::classes)
      .def_property_readonly("string_ids",
                             [](const aum::Accumulator& self) {
                               return self.id_kind() == aum::IdKind::string;
                             })
      .def_property_readonly("num_slots", &aum::Accumulator::num_slots)
      .def_property_readonly("rows_added", &aum::Accumulator::rows_added)
      .def_property_readonly("rows_skipped", &aum::Accumulator::rows_skipped);
  m.attr("NO_LABEL") = aum::kNoLabel;
}
