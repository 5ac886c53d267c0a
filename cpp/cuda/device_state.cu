// Per-sample AUM state on the device: one pass over a batch of logits computes each row's
// margin and scatters it into its sample's float64 sum and count (atomicAdd), with the label
// checks and the per-epoch tallies of the CPU core. Nothing is read back until download().
#include <cstring>

#include "launch.cuh"

namespace aum_cuda {
namespace dev {

struct StateView {
  int32_t* labels;  // -1: unknown
  double* sums;
  unsigned long long* counts;
  double* tallies;  // kTallyFields per epoch
  Status* status;
  int64_t capacity;
};

__device__ __forceinline__ void note_row(int64_t* field, int64_t row) {
  atomicMin(reinterpret_cast<long long*>(field), static_cast<long long>(row));
}

template <class E, int G>
__global__ void __launch_bounds__(kBlock)
    add_kernel(Logits z, Ints labels, Ints ids, StateView s, AddOptions o) {
  using Raw = typename E::Raw;
  using L = TeamLayout<G>;
  // The block's tallies, added to the epoch's once at the end (not one global atomic a row).
  __shared__ double rows, margin_sum, tallied_rows, tallied_fitted, tallied_sum, skipped;
  if (threadIdx.x == 0) rows = margin_sum = tallied_rows = tallied_fitted = tallied_sum = skipped = 0;
  __syncthreads();
  const bool leader = L::lane() == 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * L::kTeams;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * L::kTeams; base < z.rows;
       base += step) {
    const int64_t r = base + L::team();
    const int64_t row_no = o.row_base + r;
    bool active = r < z.rows;
    int64_t id = 0, y = 0;
    bool own_label = false;
    if (active) {
      id = load_int(ids, r);
      if (id < 0 || id >= s.capacity) {
        if (leader) note_row(&s.status->first_bad_id_row, row_no);
        active = false;
      }
    }
    if (active) {
      y = labels.data ? load_int(labels, r) : kNoLabel;
      own_label = y != kNoLabel;
      if (!own_label) {
        y = s.labels[id];
        if (y < 0) {
          if (leader) note_row(&s.status->first_unlabeled_row, row_no);
          active = false;
        }
      } else if (y < 0 || y >= z.classes) {
        if (leader) note_row(&s.status->first_bad_label_row, row_no);
        active = false;
      }
    }
    const Raw* row = static_cast<const Raw*>(z.data) + (active ? r * z.row_stride : 0);
    const double m = row_margin<E, G>(row, z.classes, y, L::lane(), active);
    if (!active || !leader) continue;
    if (!isfinite(m)) {
      atomicAdd(&skipped, 1.0);
      note_row(&s.status->first_nonfinite_row, row_no);
      continue;
    }
    if (own_label) {
      if (o.allow_label_changes) {
        s.labels[id] = static_cast<int32_t>(y);
      } else {
        const int32_t earlier = atomicCAS(&s.labels[id], -1, static_cast<int32_t>(y));
        if (earlier != -1 && earlier != y) {
          note_row(&s.status->first_conflict_row, row_no);
          continue;
        }
      }
    }
    atomicAdd(&s.sums[id], m);
    atomicAdd(&s.counts[id], 1ull);
    atomicAdd(&rows, 1.0);
    atomicAdd(&margin_sum, m);
    if (y == o.tally_label) {
      atomicAdd(&tallied_rows, 1.0);
      atomicAdd(&tallied_sum, m);
      if (m > 0) atomicAdd(&tallied_fitted, 1.0);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double* t = s.tallies + o.epoch * DeviceState::kTallyFields;
    if (rows > 0) {
      atomicAdd(t + 0, rows);
      atomicAdd(t + 1, margin_sum);
      atomicAdd(reinterpret_cast<unsigned long long*>(&s.status->rows_added),
                static_cast<unsigned long long>(rows));
    }
    if (tallied_rows > 0) {
      atomicAdd(t + 2, tallied_rows);
      atomicAdd(t + 3, tallied_fitted);
      atomicAdd(t + 4, tallied_sum);
    }
    if (skipped > 0)
      atomicAdd(reinterpret_cast<unsigned long long*>(&s.status->rows_skipped),
                static_cast<unsigned long long>(skipped));
  }
}

__global__ void set_labels_kernel(Ints ids, Ints labels, int64_t n, int64_t classes,
                                  StateView s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t id = load_int(ids, i), y = load_int(labels, i);
    if (id < 0 || id >= s.capacity) {
      note_row(&s.status->first_bad_id_row, i);
    } else if (y < 0 || y >= classes) {
      note_row(&s.status->first_bad_label_row, i);
    } else {
      const int32_t earlier = atomicCAS(&s.labels[id], -1, static_cast<int32_t>(y));
      if (earlier != -1 && earlier != y) note_row(&s.status->first_conflict_row, i);
    }
  }
}

__global__ void max_id_kernel(Ints ids, int64_t n, long long* out) {
  long long best = -1;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const long long id = load_int(ids, i);
    best = id > best ? id : best;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const long long other = __shfl_xor_sync(0xffffffffu, best, o);
    best = other > best ? other : best;
  }
  if (threadIdx.x % 32 == 0) atomicMax(out, best);
}

}  // namespace dev

namespace {

// Grows a device array from `old_n` to `new_n` elements on the stream, filling the new part with
// `fill` bytes; frees the old one in stream order.
template <class T>
T* grow(T* old, int64_t old_n, int64_t new_n, int fill, cudaStream_t stream) {
  void* p = nullptr;
  host::check(cudaMallocAsync(&p, sizeof(T) * new_n, stream), "cudaMallocAsync");
  T* fresh = static_cast<T*>(p);
  if (old_n > 0)
    host::check(cudaMemcpyAsync(fresh, old, sizeof(T) * old_n, cudaMemcpyDeviceToDevice, stream),
                "cudaMemcpyAsync");
  host::check(cudaMemsetAsync(fresh + old_n, fill, sizeof(T) * (new_n - old_n), stream),
              "cudaMemsetAsync");
  if (old) host::check(cudaFreeAsync(old, stream), "cudaFreeAsync");
  return fresh;
}

dev::StateView view(int32_t* labels, double* sums, unsigned long long* counts, double* tallies,
                    Status* status, int64_t capacity) {
  return dev::StateView{labels, sums, counts, tallies, status, capacity};
}

}  // namespace

DeviceState::DeviceState(int64_t classes, int device) : classes_(classes), device_(device) {
  if (classes < 2) throw Error("the logits need at least 2 classes");
  host::DeviceGuard guard(device_);
  void* p = nullptr;
  host::check(cudaMalloc(&p, sizeof(Status)), "cudaMalloc");
  status_ = static_cast<Status*>(p);
  const Status fresh;
  host::check(cudaMemcpy(status_, &fresh, sizeof(Status), cudaMemcpyHostToDevice), "cudaMemcpy");
}

DeviceState::~DeviceState() {
  // Stream-ordered allocations are freed after every queued use of them on any stream.
  cudaSetDevice(device_);
  cudaDeviceSynchronize();
  cudaFree(labels_);
  cudaFree(sums_);
  cudaFree(counts_);
  cudaFree(tallies_);
  cudaFree(status_);
}

void DeviceState::reserve(int64_t samples, Stream stream) {
  if (samples <= capacity_) return;
  host::DeviceGuard guard(device_);
  const int64_t n = samples > 2 * capacity_ ? samples : 2 * capacity_;
  const auto s = host::as_stream(stream);
  labels_ = grow(labels_, capacity_, n, 0xff, s);  // all ones: -1, no label
  sums_ = grow(sums_, capacity_, n, 0, s);
  counts_ = grow(counts_, capacity_, n, 0, s);
  capacity_ = n;
}

void DeviceState::reserve_epochs(int64_t epochs, Stream stream) {
  if (epochs <= epochs_) return;
  const int64_t n = epochs > 2 * epochs_ ? epochs : 2 * epochs_;
  tallies_ = grow(tallies_, epochs_ * kTallyFields, n * kTallyFields, 0, host::as_stream(stream));
  epochs_ = n;
}

int64_t DeviceState::max_id(Ints ids, int64_t rows, Stream stream) {
  if (rows <= 0) return -1;
  host::DeviceGuard guard(device_);
  const auto s = host::as_stream(stream);
  long long result = -1;
  void* p = nullptr;
  host::check(cudaMallocAsync(&p, sizeof(long long), s), "cudaMallocAsync");
  host::check(cudaMemcpyAsync(p, &result, sizeof result, cudaMemcpyHostToDevice, s), "copy");
  unsigned blocks = static_cast<unsigned>((rows + dev::kBlock - 1) / dev::kBlock);
  if (blocks > 1024) blocks = 1024;
  dev::max_id_kernel<<<blocks, dev::kBlock, 0, s>>>(ids, rows, static_cast<long long*>(p));
  host::check(cudaGetLastError(), "max id kernel launch");
  host::check(cudaMemcpyAsync(&result, p, sizeof result, cudaMemcpyDeviceToHost, s), "copy");
  host::check(cudaFreeAsync(p, s), "cudaFreeAsync");
  host::check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return result;
}

void DeviceState::add(const Logits& z, Ints labels, Ints ids, const AddOptions& options,
                      Stream stream) {
  host::check_logits(z);
  if (z.classes != classes_)
    throw Error("logits have " + std::to_string(z.classes) + " classes, expected " +
                std::to_string(classes_));
  if (options.epoch < 0) throw Error("epochs must be >= 0 on the device");
  if (z.rows == 0) return;
  host::DeviceGuard guard(device_);
  reserve_epochs(options.epoch + 1, stream);
  const dev::StateView s = view(labels_, sums_, counts_, tallies_, status_, capacity_);
  host::dispatch(z.dtype, z.classes, [&](auto format, auto team) {
    using E = decltype(format);
    constexpr int G = decltype(team)::value;
    dev::add_kernel<E, G><<<host::grid_for(z.rows, G), dev::kBlock, 0,
                            host::as_stream(stream)>>>(z, labels, ids, s, options);
  });
  host::check(cudaGetLastError(), "AUM scatter kernel launch");
}

void DeviceState::set_labels(Ints ids, Ints labels, int64_t n, Stream stream) {
  if (n <= 0) return;
  host::DeviceGuard guard(device_);
  unsigned blocks = static_cast<unsigned>((n + dev::kBlock - 1) / dev::kBlock);
  if (blocks > 1024) blocks = 1024;
  dev::set_labels_kernel<<<blocks, dev::kBlock, 0, host::as_stream(stream)>>>(
      ids, labels, n, classes_, view(labels_, sums_, counts_, tallies_, status_, capacity_));
  host::check(cudaGetLastError(), "set labels kernel launch");
}

Snapshot DeviceState::download(Stream stream) const {
  host::DeviceGuard guard(device_);
  const auto s = host::as_stream(stream);
  Snapshot out;
  out.labels.resize(capacity_);
  out.sums.resize(capacity_);
  out.counts.resize(capacity_);
  out.tallies.resize(epochs_ * kTallyFields);
  auto copy = [&](void* dst, const void* src, size_t bytes) {
    if (bytes) host::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy");
  };
  copy(out.labels.data(), labels_, sizeof(int32_t) * capacity_);
  copy(out.sums.data(), sums_, sizeof(double) * capacity_);
  copy(out.counts.data(), counts_, sizeof(int64_t) * capacity_);
  copy(out.tallies.data(), tallies_, sizeof(double) * out.tallies.size());
  copy(&out.status, status_, sizeof(Status));
  host::check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return out;
}

}  // namespace aum_cuda
