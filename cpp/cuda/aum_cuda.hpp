// The CUDA path of aum-score: margins, compact records and per-sample AUM state on the GPU.
//
// This header is plain C++ (no CUDA headers), so the Python binding compiles with the host
// compiler; every CUDA call lives in the .cu files. Streams are cudaStream_t passed as void*.
// Nothing here synchronises the host unless its comment says so: kernels are queued on the
// caller's stream, and errors found on the device (a bad label, NaN logits) are kept in a
// device-side Status read back only when the caller asks.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace aum_cuda {

using Stream = void*;  // cudaStream_t; nullptr is the legacy default stream

enum class DType : uint8_t { float16, float32, float64, bfloat16 };

// rows x classes logits in device memory, rows `row_stride` elements apart (>= classes).
struct Logits {
  const void* data = nullptr;
  DType dtype = DType::float32;
  int64_t rows = 0;
  int64_t classes = 0;
  int64_t row_stride = 0;
};

// A 1-D device array of int32 or int64 (`bytes`), `stride` elements apart (framework views).
struct Ints {
  const void* data = nullptr;
  int32_t bytes = 8;
  int64_t stride = 1;
};

// Row labels equal to this take the sample's known label (as aum::kNoLabel in the CPU core).
constexpr int64_t kNoLabel = INT64_MIN;

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the runtime sees: devices, versions, and why CUDA is unusable ("" if it is usable).
struct RuntimeInfo {
  int devices = 0;
  int driver_version = 0;   // 0: no driver
  int runtime_version = 0;  // the cudart linked in (statically)
  std::string error;
  std::vector<std::string> names;
  std::vector<int> compute_capability;  // major * 10 + minor, per device
};
RuntimeInfo runtime_info();
// SASS architectures compiled in (e.g. 75, 80, ...) and the PTX one, from the build.
std::string built_architectures();

// Device of a pointer (-1 if it is not device memory the runtime knows).
int pointer_device(const void* p);
int get_device();
void set_device(int device);

// Stream-ordered scratch memory and copies for the binding (async unless said otherwise).
void* device_alloc(size_t bytes, Stream stream);
void device_free(void* p, Stream stream);
void copy_to_device(void* dst, const void* host_src, size_t bytes, Stream stream);
void copy_to_host(void* host_dst, const void* src, size_t bytes, Stream stream);
void synchronize(Stream stream);  // waits for the stream

// Per-row first bad label: kNoBadRow when every label is in [0, classes).
constexpr int64_t kNoBadRow = INT64_MAX;

// margins[r] = z[r, y] - max_{j != y} z[r, j] in float32 arithmetic for 16/32-bit logits and
// float64 for float64 (the CPU core's arithmetic, bit for bit); NaN for a row holding a NaN or
// an infinity, and for a row whose label is outside [0, classes). `bad_label_row` (device, may
// be null) gets atomicMin of such rows. Queued on `stream`.
void margins(const Logits& z, Ints labels, double* margins, int64_t* bad_label_row, Stream stream);

// The compact record of each row (aum_score.compact): the label's logit, the largest other
// logit and its class (NaN counts as the largest, the first one on ties, the label's column
// taking part as -inf: numpy's argmax of the masked row), and the row's log-sum-exp (NaN where
// the row's maximum is infinite or a value is NaN). Values are float for 16/32-bit logits and
// double for float64 (label_logit, other_logit, logsumexp point to that type).
void compact_records(const Logits& z, Ints labels, void* label_logit, void* other_logit,
                     int32_t* other_class, void* logsumexp, int64_t* bad_label_row,
                     Stream stream);

// Device-resident per-sample state for dense non-negative integer ids: label (or none), float64
// sum of margins, count; plus per-epoch tallies (the memorisation monitor) and a Status.
struct Status {
  int64_t rows_added = 0;
  int64_t rows_skipped = 0;          // NaN/inf rows not added
  int64_t first_nonfinite_row = kNoBadRow;
  int64_t first_bad_label_row = kNoBadRow;  // label outside [0, classes)
  int64_t first_bad_id_row = kNoBadRow;     // id outside [0, capacity)
  int64_t first_unlabeled_row = kNoBadRow;  // no label in the row nor known for the sample
  int64_t first_conflict_row = kNoBadRow;   // label differs from the sample's earlier one
};

struct AddOptions {
  int64_t epoch = 0;
  int64_t tally_label = kNoLabel;  // rows of this label are tallied apart (threshold samples)
  bool allow_label_changes = false;
  int64_t row_base = 0;  // number of the batch's first row, for the Status's rows
};

struct Snapshot {
  std::vector<int32_t> labels;  // -1: unknown
  std::vector<double> sums;
  std::vector<int64_t> counts;
  // Per epoch 0..epochs-1: rows, margin_sum, tallied_rows, tallied_fitted, tallied_margin_sum.
  std::vector<double> tallies;
  Status status;
};

class DeviceState {
 public:
  static constexpr int kTallyFields = 5;

  DeviceState(int64_t classes, int device);
  ~DeviceState();
  DeviceState(const DeviceState&) = delete;
  DeviceState& operator=(const DeviceState&) = delete;

  int64_t classes() const { return classes_; }
  int64_t capacity() const { return capacity_; }
  int device() const { return device_; }

  // Room for ids [0, samples) (grows geometrically, stream-ordered; never shrinks).
  void reserve(int64_t samples, Stream stream);
  // Largest id of a batch (-1 if empty). Synchronises the stream: callers that know the number
  // of samples reserve once and never need it.
  int64_t max_id(Ints ids, int64_t rows, Stream stream);
  // One margin per row into its sample's sum (float64 atomicAdd) and count, in one pass over
  // the logits. Rows that are bad (see Status) are not added. `labels.data` null: every row
  // takes its sample's known label.
  void add(const Logits& z, Ints labels, Ints ids, const AddOptions& options, Stream stream);
  // Known labels for ids (device arrays of n entries); conflicts are Status conflicts.
  void set_labels(Ints ids, Ints labels, int64_t n, Stream stream);
  // Copies everything to the host. Synchronises the stream.
  Snapshot download(Stream stream) const;

 private:
  void reserve_epochs(int64_t epochs, Stream stream);

  int64_t classes_;
  int device_;
  int64_t capacity_ = 0;
  int64_t epochs_ = 0;
  int32_t* labels_ = nullptr;
  double* sums_ = nullptr;
  unsigned long long* counts_ = nullptr;
  double* tallies_ = nullptr;
  Status* status_ = nullptr;
};

// Post-hoc scoring: margins of host-resident batches (a log read from disk), streamed through
// two pinned host buffers so that the copy of one batch overlaps the kernel of the other.
class HostMargins {
 public:
  explicit HostMargins(int device);
  ~HostMargins();
  HostMargins(const HostMargins&) = delete;
  HostMargins& operator=(const HostMargins&) = delete;

  // Queues a host batch (row-major, rows `row_stride` apart) and its int64 labels into slot
  // `slot` (0 or 1): memcpy into pinned memory, async copy, kernel, async copy of the margins
  // back. Waits first for the slot's previous batch to be finished.
  void submit(int slot, const Logits& host_z, const int64_t* host_labels);
  // Waits for the slot's batch; its margins (float64, NaN for NaN/inf rows) and the first row
  // with a label outside [0, classes) (kNoBadRow if none).
  const double* wait(int slot, int64_t* bad_label_row);

 private:
  struct Slot;
  int device_;
  Slot* slots_[2] = {nullptr, nullptr};
};

}  // namespace aum_cuda
