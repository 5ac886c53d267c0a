#include "aum/read_ahead.hpp"
#include "buffers.hpp"

namespace {
std::pair<const void*, size_t> bytes_of(const py::buffer& buffer) {
  const py::buffer_info info = buffer.request();
  return {info.ptr, static_cast<size_t>(info.size * info.itemsize)};
}
}  // namespace

void register_read_ahead(py::module_& m) {
  m.def(
      "resident",
      [](const py::buffer& buffer) {
        const auto [data, bytes] = bytes_of(buffer);
        py::gil_scoped_release release;
        return aum::resident(data, bytes);
      },
      py::arg("buffer"),
      "Whether every page of a (memory-mapped) buffer is in memory; False where the OS cannot "
      "tell.");
  m.def(
      "will_need",
      [](const py::buffer& buffer) {
        const auto [data, bytes] = bytes_of(buffer);
        py::gil_scoped_release release;
        aum::will_need(data, bytes);
      },
      py::arg("buffer"), "Ask the OS to start reading a memory-mapped buffer (a hint).");
  m.def(
      "touch_pages",
      [](const py::buffer& buffer) {
        const auto [data, bytes] = bytes_of(buffer);
        py::gil_scoped_release release;
        return aum::touch_pages(data, bytes);
      },
      py::arg("buffer"),
      "Read one byte per page of a buffer, without the GIL, so its pages are in memory and "
      "mapped (a helper thread does this for the batches ahead of the scorer).");
}
