#include <vector>

#include "aum/margin.hpp"
#include "buffers.hpp"

void register_margins(py::module_& m) {
  m.def(
      "margins",
      [](const py::array& logits, const Int64Array& labels, int threads) {
        const aum::LogitBlock block = logit_block(logits);
        check_length(labels, block.rows, "labels");
        aum::check_block(block, labels.data());
        py::array_t<double> margins(block.rows);
        std::vector<uint8_t> finite(static_cast<size_t>(block.rows));
        {
          py::gil_scoped_release release;
          aum::compute_margins(block, labels.data(), margins.mutable_data(), finite.data(),
                               threads);
        }
        // A row with NaN/inf has no meaningful margin.
        auto out = margins.mutable_unchecked<1>();
        for (int64_t r = 0; r < block.rows; ++r)
          if (!finite[r]) out(r) = std::numeric_limits<double>::quiet_NaN();
        return margins;
      },
      py::arg("logits"), py::arg("labels"), py::arg("threads") = 0,
      "Margin of each row: logit of its label minus the largest other logit (NaN where the row "
      "holds NaN or inf).");
}
