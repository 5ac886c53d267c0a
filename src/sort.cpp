#include "aum/sort.hpp"
#include "buffers.hpp"

void register_sort(py::module_& m) {
  m.def(
      "stable_argsort",
      [](const py::array_t<double, py::array::c_style | py::array::forcecast>& values, int threads) {
        py::array_t<int64_t> order(values.size());
        {
          py::gil_scoped_release release;
          aum::stable_argsort(values.data(), values.size(), order.mutable_data(), threads);
        }
        return order;
      },
      py::arg("values"), py::arg("threads") = 0,
      "numpy.argsort(values, kind='stable') for float64, by radix sort (several times faster).");
}
