#include "aum/margin.hpp"
#include "buffers.hpp"

void register_margins(py::module_& m) {
  m.def(
      "margins",
      [](const py::array& logits, const Int64Array& labels, int threads, bool bfloat16) {
        const aum::LogitBlock block = logit_block(logits, bfloat16);
        check_length(labels, block.rows, "labels");
        aum::check_block(block, labels.data());
        py::array_t<double> margins(block.rows);
        {
          py::gil_scoped_release release;
          aum::compute_margins(block, labels.data(), margins.mutable_data(), threads);
        }
        return margins;
      },
      py::arg("logits"), py::arg("labels"), py::arg("threads") = 0, py::arg("bfloat16") = false,
      "Margin of each row: logit of its label minus the largest other logit (NaN where the row "
      "holds NaN or inf). bfloat16: logits are uint16 bfloat16 bit patterns.");
}
