// aum_score._core: the thin binding of the C++ core. Logic lives in cpp/ and python/.
#include <pybind11/pybind11.h>

#include "aum/errors.hpp"
#include "aum/parallel.hpp"

namespace py = pybind11;

void register_margins(py::module_& m);
void register_accumulator(py::module_& m);
void register_simd(py::module_& m);
void register_sort(py::module_& m);
void register_read_ahead(py::module_& m);
void register_shard(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "C++ core of aum-score: margin kernels and the per-sample AUM accumulator.";

  // RowError(message, row, source): a bad value in one row of a batch; Python adds the file.
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> row_error;
  row_error.call_once_and_store_result(
      [&]() { return py::exception<aum::RowError>(m, "RowError", PyExc_ValueError); });
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const aum::RowError& e) {
      py::tuple args = py::make_tuple(e.what(), e.row, e.source);
      PyErr_SetObject(row_error.get_stored().ptr(), args.ptr());
    }
  });

  register_margins(m);
  register_accumulator(m);
  register_simd(m);
  register_sort(m);
  register_read_ahead(m);
  register_shard(m);
  m.def("has_openmp", &aum::has_openmp);
  m.def("max_threads", &aum::max_threads);
  m.attr("NO_SOURCE") = aum::kNoSource;
  m.attr("LABELS_SOURCE") = aum::kLabelsSource;
  m.attr("STATE_SOURCE") = aum::kStateSource;
}
