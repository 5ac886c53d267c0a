#include <string>

#include "aum/floors.hpp"
#include "aum/simd.hpp"
#include "buffers.hpp"

void register_simd(py::module_& m) {
  m.def("simd_level", [] { return std::string(aum::simd_level_name(aum::simd_level())); },
        "Instruction set of the margin kernels in use: 'portable', 'avx2' or 'avx512'.");
  m.def(
      "simd_levels",
      [] {
        py::list out;
        for (int l = 0; l <= static_cast<int>(aum::best_simd_level()); ++l)
          out.append(aum::simd_level_name(static_cast<aum::SimdLevel>(l)));
        return out;
      },
      "Instruction sets this build and CPU support, from the portable one up.");
  m.def(
      "set_simd_level",
      [](const std::string& name) {
        return std::string(aum::simd_level_name(aum::set_simd_level(aum::parse_simd_level(name))));
      },
      py::arg("level"),
      "Use this instruction set (clamped to what is supported); returns the level set. For "
      "tests and benchmarks; AUM_SCORE_SIMD does the same from the environment.");
  m.def(
      "read_floor",
      [](const py::buffer& buffer) {
        const py::buffer_info info = buffer.request();
        if (!PyBuffer_IsContiguous(info.view(), 'C'))
          throw std::invalid_argument("read_floor needs a contiguous buffer");
        const auto bytes = static_cast<size_t>(info.size * info.itemsize);
        py::gil_scoped_release release;
        return aum::read_floor(info.ptr, bytes);
      },
      py::arg("buffer"), "Benchmark floor: xor of every byte of a buffer, one thread.");
  m.def(
      "scatter_floor",
      [](const Int64Array& ids, const py::array_t<double, py::array::c_style | py::array::forcecast>& values,
         py::array_t<double, py::array::c_style>& sums, py::array_t<int64_t, py::array::c_style>& counts) {
        check_length(values, ids.size(), "values");
        const int64_t size = sums.size();
        if (counts.size() != size) throw std::invalid_argument("sums and counts differ in size");
        const int64_t* id = ids.data();
        for (int64_t r = 0; r < ids.size(); ++r)
          if (id[r] < 0 || id[r] >= size) throw std::invalid_argument("id out of range");
        double* s = sums.mutable_data();
        int64_t* c = counts.mutable_data();
        py::gil_scoped_release release;
        aum::scatter_floor(id, values.data(), ids.size(), s, c);
      },
      py::arg("ids"), py::arg("values"), py::arg("sums"), py::arg("counts"),
      "Benchmark floor: sums[ids] += values, counts[ids] += 1 (ids in range), one thread.");
}
