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
  m.def(
      "take",
      [](const py::array& values, const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& order,
         int threads) -> py::array {
        const char kind = values.dtype().kind();
        if (values.ndim() != 1 || values.itemsize() != 8 || !(kind == 'i' || kind == 'f') ||
            !(values.flags() & py::array::c_style))
          throw std::invalid_argument("take: values must be a contiguous 1-D int64 or float64 array");
        auto gather = [&](auto out) {
          {
            py::gil_scoped_release release;
            aum::take(static_cast<const uint64_t*>(values.data()), values.shape(0), order.data(),
                      order.size(), reinterpret_cast<uint64_t*>(out.mutable_data()), threads);
          }
          return py::array(out);
        };
        return kind == 'f' ? gather(py::array_t<double>(order.size())) : gather(py::array_t<int64_t>(order.size()));
      },
      py::arg("values"), py::arg("order"), py::arg("threads") = 0,
      "values[order] for int64 or float64 values, on threads and prefetching.");
}
