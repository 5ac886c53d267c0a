// The stateless kernels: per-row margins and compact records.
#include <atomic>

#include "launch.cuh"

namespace aum_cuda {
namespace dev {

template <class E, int G>
__global__ void __launch_bounds__(kBlock)
    margins_kernel(Logits z, Ints labels, double* out, int64_t* bad_label_row) {
  using Raw = typename E::Raw;
  using L = TeamLayout<G>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * L::kTeams;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * L::kTeams; base < z.rows;
       base += step) {
    const int64_t r = base + L::team();
    bool active = r < z.rows;
    const int64_t y = active ? load_int(labels, r) : 0;
    if (active && (y < 0 || y >= z.classes)) {
      if (L::lane() == 0) {
        out[r] = quiet_nan<double>();
        if (bad_label_row) atomicMin(reinterpret_cast<long long*>(bad_label_row), r);
      }
      active = false;
    }
    const Raw* row = static_cast<const Raw*>(z.data) + (active ? r * z.row_stride : 0);
    const double m = row_margin<E, G>(row, z.classes, y, L::lane(), active);
    if (active && L::lane() == 0) out[r] = m;
  }
}

template <class E, int G>
__global__ void __launch_bounds__(kBlock)
    records_kernel(Logits z, Ints labels, typename E::A* label_logit, typename E::A* other_logit,
                   int32_t* other_class, typename E::A* logsumexp, int64_t* bad_label_row) {
  using Raw = typename E::Raw;
  using A = typename E::A;
  using L = TeamLayout<G>;
  const int64_t step = static_cast<int64_t>(gridDim.x) * L::kTeams;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * L::kTeams; base < z.rows;
       base += step) {
    const int64_t r = base + L::team();
    bool active = r < z.rows;
    const int64_t y = active ? load_int(labels, r) : 0;
    if (active && (y < 0 || y >= z.classes)) {
      if (L::lane() == 0) {
        label_logit[r] = other_logit[r] = logsumexp[r] = quiet_nan<A>();
        other_class[r] = -1;
        if (bad_label_row) atomicMin(reinterpret_cast<long long*>(bad_label_row), r);
      }
      active = false;
    }
    const Raw* row = static_cast<const Raw*>(z.data) + (active ? r * z.row_stride : 0);
    const Record<A> rec = row_record<E, G>(row, z.classes, y, L::lane(), active);
    if (active && L::lane() == 0) {
      label_logit[r] = E::value(row[y]);
      other_logit[r] = rec.best;
      other_class[r] = rec.best_class;
      logsumexp[r] = record_logsumexp(rec);
    }
  }
}

}  // namespace dev

namespace host {

int multiprocessors() {
  static std::atomic<int> cached[64] = {};
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  if (device < 0 || device >= 64) device = 0;
  int n = cached[device].load(std::memory_order_relaxed);
  if (n == 0) {
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device),
          "cudaDeviceGetAttribute");
    cached[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

}  // namespace host

void margins(const Logits& z, Ints labels, double* out, int64_t* bad_label_row, Stream stream) {
  host::check_logits(z);
  if (z.rows == 0) return;
  host::dispatch(z.dtype, z.classes, [&](auto format, auto team) {
    using E = decltype(format);
    constexpr int G = decltype(team)::value;
    dev::margins_kernel<E, G><<<host::grid_for(z.rows, G), dev::kBlock, 0,
                                host::as_stream(stream)>>>(z, labels, out, bad_label_row);
  });
  host::check(cudaGetLastError(), "margins kernel launch");
}

void compact_records(const Logits& z, Ints labels, void* label_logit, void* other_logit,
                     int32_t* other_class, void* logsumexp, int64_t* bad_label_row,
                     Stream stream) {
  host::check_logits(z);
  if (z.rows == 0) return;
  host::dispatch(z.dtype, z.classes, [&](auto format, auto team) {
    using E = decltype(format);
    using A = typename E::A;
    constexpr int G = decltype(team)::value;
    dev::records_kernel<E, G><<<host::grid_for(z.rows, G), dev::kBlock, 0,
                                host::as_stream(stream)>>>(
        z, labels, static_cast<A*>(label_logit), static_cast<A*>(other_logit), other_class,
        static_cast<A*>(logsumexp), bad_label_row);
  });
  host::check(cudaGetLastError(), "compact records kernel launch");
}

}  // namespace aum_cuda
