// aum_score._cuda: the thin binding of the CUDA path (cpp/cuda). Device arrays arrive as DLPack
// capsules (obj.__dlpack__(stream=...)), taken without a copy; kernels are queued on the
// caller's stream (an integer cudaStream_t: 1 is the legacy default stream, 2 per-thread) and
// the functions without "host" in their name return without waiting for them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "aum_cuda.hpp"
#include "dlpack.hpp"

namespace py = pybind11;
using aum_cuda::DType;

namespace {

aum_cuda::Stream as_stream(uintptr_t stream) { return reinterpret_cast<aum_cuda::Stream>(stream); }

// A consumed DLPack capsule: the tensor stays valid until this is destroyed, which calls the
// producer's deleter (the capsule was renamed "used_...", so the producer will not).
class DLView {
 public:
  DLView(const py::object& capsule, const char* what) : what_(what) {
    if (!PyCapsule_CheckExact(capsule.ptr()))
      throw py::type_error(std::string(what) + ": expected a DLPack capsule");
    const char* name = PyCapsule_GetName(capsule.ptr());
    if (name && std::strcmp(name, "dltensor_versioned") == 0) {
      auto* managed = static_cast<dlpack::ManagedTensorVersioned*>(
          PyCapsule_GetPointer(capsule.ptr(), name));
      if (!managed) throw py::error_already_set();
      if (managed->version.major != 1)
        throw py::value_error(std::string(what) + ": DLPack version " +
                              std::to_string(managed->version.major) + " is not supported");
      versioned_ = managed;
      tensor_ = &managed->dl_tensor;
      read_only_ = (managed->flags & dlpack::kFlagReadOnly) != 0;
      PyCapsule_SetName(capsule.ptr(), "used_dltensor_versioned");
    } else if (name && std::strcmp(name, "dltensor") == 0) {
      auto* managed = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), name));
      if (!managed) throw py::error_already_set();
      legacy_ = managed;
      tensor_ = &managed->dl_tensor;
      PyCapsule_SetName(capsule.ptr(), "used_dltensor");
    } else {
      throw py::value_error(std::string(what) +
                            ": not an unused DLPack capsule (each capsule can be used once)");
    }
  }
  ~DLView() {
    if (versioned_ && versioned_->deleter) versioned_->deleter(versioned_);
    if (legacy_ && legacy_->deleter) legacy_->deleter(legacy_);
  }
  DLView(const DLView&) = delete;
  DLView& operator=(const DLView&) = delete;

  const dlpack::Tensor& t() const { return *tensor_; }
  const char* what() const { return what_; }
  bool read_only() const { return read_only_; }
  void* data() const { return static_cast<char*>(tensor_->data) + tensor_->byte_offset; }
  int64_t dim(int i) const { return tensor_->shape[i]; }
  int64_t stride(int i) const {  // in elements
    if (tensor_->strides) return tensor_->strides[i];
    int64_t s = 1;
    for (int k = tensor_->ndim - 1; k > i; --k) s *= tensor_->shape[k];
    return s;
  }
  int device() const { return tensor_->device.device_id; }

  std::string fail(const std::string& message) const { return std::string(what_) + ": " + message; }

  // On a CUDA device (or managed memory), and on `device` when that is >= 0.
  void require_cuda(int device) const {
    const int type = tensor_->device.device_type;
    if (type != dlpack::kCUDA && type != dlpack::kCUDAManaged)
      throw py::value_error(fail("is not on a CUDA device (DLPack device type " +
                                 std::to_string(type) + ")"));
    if (device >= 0 && tensor_->device.device_id != device)
      throw py::value_error(fail("is on cuda:" + std::to_string(tensor_->device.device_id) +
                                 ", the logits on cuda:" + std::to_string(device)));
  }

 private:
  const char* what_;
  dlpack::ManagedTensorVersioned* versioned_ = nullptr;
  dlpack::ManagedTensor* legacy_ = nullptr;
  dlpack::Tensor* tensor_ = nullptr;
  bool read_only_ = false;
};

std::string dtype_name(const dlpack::DataType& d) {
  static const char* codes[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  std::string name = d.code < 7 ? codes[d.code] : "code" + std::to_string(d.code);
  name += std::to_string(d.bits);
  if (d.lanes != 1) name += "x" + std::to_string(d.lanes);
  return name;
}

aum_cuda::Logits logits_of(const DLView& v) {
  const auto& t = v.t();
  if (t.ndim != 2)
    throw py::value_error(v.fail("must be 2-D (rows x classes), got " + std::to_string(t.ndim) + "-D"));
  aum_cuda::Logits z;
  const auto& d = t.dtype;
  if (d.lanes != 1) throw py::value_error(v.fail("vector dtypes are not supported"));
  if (d.code == dlpack::kFloat && d.bits == 16) z.dtype = DType::float16;
  else if (d.code == dlpack::kFloat && d.bits == 32) z.dtype = DType::float32;
  else if (d.code == dlpack::kFloat && d.bits == 64) z.dtype = DType::float64;
  else if (d.code == dlpack::kBfloat && d.bits == 16) z.dtype = DType::bfloat16;
  else
    throw py::value_error(v.fail("must be float16, bfloat16, float32 or float64, got " + dtype_name(d)));
  z.rows = v.dim(0);
  z.classes = v.dim(1);
  z.data = v.data();
  if (z.classes < 2) throw py::value_error(v.fail("need at least 2 classes"));
  const int64_t item = d.bits / 8;
  if (reinterpret_cast<uintptr_t>(z.data) % item != 0)
    throw py::value_error(v.fail("data is not aligned to its element size"));
  if (z.rows > 0 && v.stride(1) != 1)
    throw py::value_error(v.fail("must be contiguous within a row (column stride " +
                                 std::to_string(v.stride(1)) + ")"));
  z.row_stride = z.rows > 1 ? v.stride(0) : z.classes;
  if (z.rows > 1 && z.row_stride < z.classes)
    throw py::value_error(v.fail("rows overlap or run backwards (row stride " +
                                 std::to_string(z.row_stride) + ")"));
  return z;
}

aum_cuda::Ints ints_of(const DLView& v, int64_t rows) {
  const auto& t = v.t();
  if (t.ndim != 1 || v.dim(0) != rows)
    throw py::value_error(v.fail("must be 1-D with one entry per row (" + std::to_string(rows) + ")"));
  if (t.dtype.code != dlpack::kInt || (t.dtype.bits != 32 && t.dtype.bits != 64) || t.dtype.lanes != 1)
    throw py::value_error(v.fail("must be int32 or int64, got " + dtype_name(t.dtype)));
  return aum_cuda::Ints{v.data(), t.dtype.bits / 8, rows > 1 ? v.stride(0) : 1};
}

// A writable, contiguous 1-D output of `rows` entries with the given code and bits.
void* output_of(const DLView& v, int64_t rows, uint8_t code, uint8_t bits, int device) {
  v.require_cuda(device);
  const auto& t = v.t();
  if (t.ndim != 1 || v.dim(0) != rows || (rows > 1 && v.stride(0) != 1))
    throw py::value_error(v.fail("must be a contiguous 1-D array of " + std::to_string(rows) + " entries"));
  if (t.dtype.code != code || t.dtype.bits != bits || t.dtype.lanes != 1)
    throw py::value_error(v.fail("has dtype " + dtype_name(t.dtype) + ", expected " +
                                 dtype_name(dlpack::DataType{code, bits, 1})));
  if (v.read_only()) throw py::value_error(v.fail("is read-only"));
  return v.data();
}

// The caller's current device, restored when the scope ends.
class DeviceScope {
 public:
  explicit DeviceScope(int device) : previous_(aum_cuda::get_device()) {
    if (device != previous_) aum_cuda::set_device(device);
  }
  ~DeviceScope() {
    try {
      aum_cuda::set_device(previous_);
    } catch (...) {
    }
  }

 private:
  int previous_;
};

// Device scratch freed in stream order when the scope ends.
struct Scratch {
  void* p;
  aum_cuda::Stream stream;
  Scratch(size_t bytes, aum_cuda::Stream s) : p(aum_cuda::device_alloc(bytes, s)), stream(s) {}
  ~Scratch() {
    try {
      aum_cuda::device_free(p, stream);
    } catch (...) {
    }
  }
};

void raise_bad_label(int64_t row, const char* what = "labels") {
  if (row != aum_cuda::kNoBadRow)
    throw py::value_error(std::string(what) + ": row " + std::to_string(row) +
                          ": the label is outside [0, classes)");
}

size_t value_bytes(DType dtype) { return dtype == DType::float64 ? 8 : 4; }

py::dict describe(const py::object& capsule) {
  DLView v(capsule, "array");
  const auto& t = v.t();
  py::list shape, strides;
  for (int i = 0; i < t.ndim; ++i) {
    shape.append(t.shape[i]);
    strides.append(v.stride(i));
  }
  py::dict out;
  out["device_type"] = t.device.device_type;
  out["device_id"] = t.device.device_id;
  out["dtype"] = dtype_name(t.dtype);
  out["shape"] = py::tuple(shape);
  out["strides"] = py::tuple(strides);
  out["byte_offset"] = t.byte_offset;
  out["read_only"] = v.read_only();
  out["versioned"] = std::strcmp(PyCapsule_GetName(capsule.ptr()), "used_dltensor_versioned") == 0;
  return out;
}

py::dict runtime_info() {
  const aum_cuda::RuntimeInfo info = aum_cuda::runtime_info();
  py::dict out;
  out["devices"] = info.devices;
  out["driver_version"] = info.driver_version;
  out["runtime_version"] = info.runtime_version;
  out["error"] = info.error;
  out["names"] = info.names;
  out["compute_capability"] = info.compute_capability;
  return out;
}

void margins(const py::object& logits, const py::object& labels, const py::object& out,
             uintptr_t stream) {
  DLView lv(logits, "logits"), yv(labels, "labels"), ov(out, "out");
  lv.require_cuda(-1);
  const auto z = logits_of(lv);
  yv.require_cuda(lv.device());
  const auto y = ints_of(yv, z.rows);
  auto* dst = static_cast<double*>(output_of(ov, z.rows, dlpack::kFloat, 64, lv.device()));
  DeviceScope scope(lv.device());
  py::gil_scoped_release release;
  aum_cuda::margins(z, y, dst, nullptr, as_stream(stream));
}

py::array_t<double> margins_host(const py::object& logits, const py::object& labels,
                                 uintptr_t stream) {
  DLView lv(logits, "logits"), yv(labels, "labels");
  lv.require_cuda(-1);
  const auto z = logits_of(lv);
  yv.require_cuda(lv.device());
  const auto y = ints_of(yv, z.rows);
  py::array_t<double> result(z.rows);
  int64_t bad = aum_cuda::kNoBadRow;
  {
    DeviceScope scope(lv.device());
    py::gil_scoped_release release;
    const auto s = as_stream(stream);
    Scratch out(8 * z.rows, s), bad_row(8, s);
    aum_cuda::copy_to_device(bad_row.p, &bad, 8, s);
    aum_cuda::margins(z, y, static_cast<double*>(out.p), static_cast<int64_t*>(bad_row.p), s);
    aum_cuda::copy_to_host(result.mutable_data(), out.p, 8 * z.rows, s);
    aum_cuda::copy_to_host(&bad, bad_row.p, 8, s);
    aum_cuda::synchronize(s);
  }
  raise_bad_label(bad);
  return result;
}

void compact_records(const py::object& logits, const py::object& labels,
                     const py::object& label_logit, const py::object& other_logit,
                     const py::object& other_class, const py::object& logsumexp,
                     uintptr_t stream) {
  DLView lv(logits, "logits"), yv(labels, "labels"), a(label_logit, "label_logit"),
      b(other_logit, "other_logit"), c(other_class, "other_class"), d(logsumexp, "logsumexp");
  lv.require_cuda(-1);
  const auto z = logits_of(lv);
  yv.require_cuda(lv.device());
  const auto y = ints_of(yv, z.rows);
  const uint8_t bits = z.dtype == DType::float64 ? 64 : 32;
  void* pa = output_of(a, z.rows, dlpack::kFloat, bits, lv.device());
  void* pb = output_of(b, z.rows, dlpack::kFloat, bits, lv.device());
  auto* pc = static_cast<int32_t*>(output_of(c, z.rows, dlpack::kInt, 32, lv.device()));
  void* pd = output_of(d, z.rows, dlpack::kFloat, bits, lv.device());
  DeviceScope scope(lv.device());
  py::gil_scoped_release release;
  aum_cuda::compact_records(z, y, pa, pb, pc, pd, nullptr, as_stream(stream));
}

py::tuple compact_records_host(const py::object& logits, const py::object& labels,
                               uintptr_t stream) {
  DLView lv(logits, "logits"), yv(labels, "labels");
  lv.require_cuda(-1);
  const auto z = logits_of(lv);
  yv.require_cuda(lv.device());
  const auto y = ints_of(yv, z.rows);
  const bool wide = z.dtype == DType::float64;
  const py::dtype values = wide ? py::dtype::of<double>() : py::dtype::of<float>();
  const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(z.rows)};
  py::array label_logit(values, shape), other_logit(values, shape), lse(values, shape);
  py::array_t<int32_t> other_class(z.rows);
  int64_t bad = aum_cuda::kNoBadRow;
  {
    DeviceScope scope(lv.device());
    void* ha = label_logit.mutable_data();
    void* hb = other_logit.mutable_data();
    void* hd = lse.mutable_data();
    int32_t* hc = other_class.mutable_data();
    py::gil_scoped_release release;
    const auto s = as_stream(stream);
    const size_t vb = value_bytes(z.dtype) * z.rows;
    Scratch a(vb, s), b(vb, s), c(4 * z.rows, s), d(vb, s), bad_row(8, s);
    aum_cuda::copy_to_device(bad_row.p, &bad, 8, s);
    aum_cuda::compact_records(z, y, a.p, b.p, static_cast<int32_t*>(c.p), d.p,
                              static_cast<int64_t*>(bad_row.p), s);
    aum_cuda::copy_to_host(ha, a.p, vb, s);
    aum_cuda::copy_to_host(hb, b.p, vb, s);
    aum_cuda::copy_to_host(hc, c.p, 4 * z.rows, s);
    aum_cuda::copy_to_host(hd, d.p, vb, s);
    aum_cuda::copy_to_host(&bad, bad_row.p, 8, s);
    aum_cuda::synchronize(s);
  }
  raise_bad_label(bad);
  return py::make_tuple(label_logit, other_logit, other_class, lse);
}

// --------------------------------------------------------------------------- DeviceState
void state_add(aum_cuda::DeviceState& self, const py::object& logits, const py::object& labels,
               const py::object& ids, int64_t epoch, int64_t tally_label,
               bool allow_label_changes, int64_t row_base, uintptr_t stream) {
  DLView lv(logits, "logits"), iv(ids, "sample ids");
  lv.require_cuda(self.device());
  const auto z = logits_of(lv);
  iv.require_cuda(self.device());
  const auto id = ints_of(iv, z.rows);
  aum_cuda::Ints y{nullptr, 8, 1};
  std::unique_ptr<DLView> yv;
  if (!labels.is_none()) {
    yv = std::make_unique<DLView>(labels, "labels");
    yv->require_cuda(self.device());
    y = ints_of(*yv, z.rows);
  }
  aum_cuda::AddOptions options;
  options.epoch = epoch;
  options.tally_label = tally_label;
  options.allow_label_changes = allow_label_changes;
  options.row_base = row_base;
  DeviceScope scope(self.device());
  py::gil_scoped_release release;
  self.add(z, y, id, options, as_stream(stream));
}

int64_t state_max_id(aum_cuda::DeviceState& self, const py::object& ids, uintptr_t stream) {
  DLView iv(ids, "sample ids");
  iv.require_cuda(self.device());
  if (iv.t().ndim != 1) throw py::value_error("sample ids must be 1-D");
  const int64_t n = iv.dim(0);
  const auto id = ints_of(iv, n);
  DeviceScope scope(self.device());
  py::gil_scoped_release release;
  return self.max_id(id, n, as_stream(stream));
}

void state_set_labels(aum_cuda::DeviceState& self,
                      const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& ids,
                      const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& labels,
                      uintptr_t stream) {
  if (ids.ndim() != 1 || labels.ndim() != 1 || ids.shape(0) != labels.shape(0))
    throw py::value_error("sample ids and labels must be 1-D and of equal length");
  const int64_t n = ids.shape(0);
  DeviceScope scope(self.device());
  py::gil_scoped_release release;
  const auto s = as_stream(stream);
  Scratch di(8 * n, s), dl(8 * n, s);
  aum_cuda::copy_to_device(di.p, ids.data(), 8 * n, s);
  aum_cuda::copy_to_device(dl.p, labels.data(), 8 * n, s);
  self.set_labels(aum_cuda::Ints{di.p, 8, 1}, aum_cuda::Ints{dl.p, 8, 1}, n, s);
  aum_cuda::synchronize(s);  // the host arrays are pageable: finish before they can go
}

py::dict state_download(const aum_cuda::DeviceState& self, uintptr_t stream) {
  aum_cuda::Snapshot snap;
  {
    DeviceScope scope(self.device());
    py::gil_scoped_release release;
    snap = self.download(as_stream(stream));
  }
  const auto n = static_cast<py::ssize_t>(snap.sums.size());
  const auto epochs = static_cast<py::ssize_t>(snap.tallies.size() / aum_cuda::DeviceState::kTallyFields);
  py::dict out;
  out["labels"] = py::array_t<int32_t>(n, snap.labels.data());
  out["sums"] = py::array_t<double>(n, snap.sums.data());
  out["counts"] = py::array_t<int64_t>(n, snap.counts.data());
  out["tallies"] = py::array_t<double>({epochs, static_cast<py::ssize_t>(aum_cuda::DeviceState::kTallyFields)},
                                       snap.tallies.data());
  const auto& st = snap.status;
  auto row = [](int64_t r) -> py::object {
    return r == aum_cuda::kNoBadRow ? py::object(py::none()) : py::object(py::int_(r));
  };
  out["rows_added"] = st.rows_added;
  out["rows_skipped"] = st.rows_skipped;
  out["first_nonfinite_row"] = row(st.first_nonfinite_row);
  out["first_bad_label_row"] = row(st.first_bad_label_row);
  out["first_bad_id_row"] = row(st.first_bad_id_row);
  out["first_unlabeled_row"] = row(st.first_unlabeled_row);
  out["first_conflict_row"] = row(st.first_conflict_row);
  return out;
}

// --------------------------------------------------------------------------- HostMargins
DType host_dtype(const py::array& a, bool bfloat16) {
  const char kind = a.dtype().kind();
  const auto item = a.itemsize();
  if (bfloat16) {
    if (kind != 'u' || item != 2) throw py::value_error("bfloat16 logits must be uint16 bit patterns");
    return DType::bfloat16;
  }
  if (kind == 'f' && item == 2) return DType::float16;
  if (kind == 'f' && item == 4) return DType::float32;
  if (kind == 'f' && item == 8) return DType::float64;
  throw py::value_error("logits must be float16, float32, float64 or bfloat16");
}

void host_submit(aum_cuda::HostMargins& self, int slot, const py::array& logits,
                 const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& labels,
                 bool bfloat16) {
  if (logits.ndim() != 2) throw py::value_error("logits must be 2-D");
  aum_cuda::Logits z;
  z.dtype = host_dtype(logits, bfloat16);
  z.rows = logits.shape(0);
  z.classes = logits.shape(1);
  z.data = logits.data();
  const auto item = logits.itemsize();
  if (z.rows > 1 && (logits.strides(0) < 0 || logits.strides(0) % item))
    throw py::value_error("logits rows must be evenly spaced in memory");
  if (z.classes > 1 && logits.strides(1) != item)
    throw py::value_error("logits must be contiguous within a row");
  z.row_stride = z.rows > 1 ? logits.strides(0) / item : z.classes;
  if (labels.ndim() != 1 || labels.shape(0) != z.rows)
    throw py::value_error("labels must be 1-D with one entry per row");
  py::gil_scoped_release release;
  self.submit(slot, z, labels.data());
}

py::tuple host_wait(aum_cuda::HostMargins& self, int slot, int64_t rows) {
  int64_t bad = aum_cuda::kNoBadRow;
  const double* margins;
  {
    py::gil_scoped_release release;
    margins = self.wait(slot, &bad);
  }
  py::array_t<double> out(rows, margins);  // a copy: the pinned buffer is reused
  return py::make_tuple(out, bad == aum_cuda::kNoBadRow ? py::object(py::none())
                                                        : py::object(py::int_(bad)));
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "CUDA path of aum-score: margins, compact records and per-sample AUM state on the GPU.";
  py::register_exception<aum_cuda::Error>(m, "CudaError", PyExc_RuntimeError);

  m.def("runtime_info", &runtime_info, "Devices, driver and runtime versions; never raises.");
  m.def("built_architectures", &aum_cuda::built_architectures);
  m.def("describe", &describe, py::arg("capsule"),
        "Consumes a DLPack capsule and describes it (device, dtype, shape, strides).");
  m.def("margins", &margins, py::arg("logits"), py::arg("labels"), py::arg("out"),
        py::arg("stream"), "Margins into `out` (float64), queued on `stream`; no sync.");
  m.def("margins_host", &margins_host, py::arg("logits"), py::arg("labels"), py::arg("stream"),
        "Margins as a numpy array (waits for the stream).");
  m.def("compact_records", &compact_records, py::arg("logits"), py::arg("labels"),
        py::arg("label_logit"), py::arg("other_logit"), py::arg("other_class"),
        py::arg("logsumexp"), py::arg("stream"));
  m.def("compact_records_host", &compact_records_host, py::arg("logits"), py::arg("labels"),
        py::arg("stream"));
  m.attr("NO_LABEL") = aum_cuda::kNoLabel;

  py::class_<aum_cuda::DeviceState>(m, "DeviceState")
      .def(py::init<int64_t, int>(), py::arg("classes"), py::arg("device"))
      .def_property_readonly("classes", &aum_cuda::DeviceState::classes)
      .def_property_readonly("capacity", &aum_cuda::DeviceState::capacity)
      .def_property_readonly("device", &aum_cuda::DeviceState::device)
      .def(
          "reserve",
          [](aum_cuda::DeviceState& self, int64_t samples, uintptr_t stream) {
            DeviceScope scope(self.device());
            self.reserve(samples, as_stream(stream));
          },
          py::arg("samples"), py::arg("stream"))
      .def("max_id", &state_max_id, py::arg("ids"), py::arg("stream"))
      .def("add", &state_add, py::arg("logits"), py::arg("labels"), py::arg("ids"),
           py::arg("epoch"), py::arg("tally_label"), py::arg("allow_label_changes"),
           py::arg("row_base"), py::arg("stream"))
      .def("set_labels", &state_set_labels, py::arg("ids"), py::arg("labels"), py::arg("stream"))
      .def("download", &state_download, py::arg("stream"));

  py::class_<aum_cuda::HostMargins>(m, "HostMargins")
      .def(py::init<int>(), py::arg("device"))
      .def("submit", &host_submit, py::arg("slot"), py::arg("logits"), py::arg("labels"),
           py::arg("bfloat16") = false)
      .def("wait", &host_wait, py::arg("slot"), py::arg("rows"));
}
