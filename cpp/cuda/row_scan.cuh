// Device code shared by the kernels: reading one row of logits with a team of threads, and the
// per-row reductions (margin, compact record) combined across the team.
//
// A row is read by a team of G threads: G in {4, 8, 16, 32} lanes of one warp for rows up to
// a few thousand classes (several rows per warp when C is small, so a warp still reads
// contiguous memory), or a whole block of 256 threads per row for very wide rows (C = 21,843),
// so a batch of a few hundred rows still fills the GPU. Reads are 16-byte vector loads of the
// row's aligned middle, scalar loads of its unaligned ends: any row stride works.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "aum_cuda.hpp"

namespace aum_cuda {
namespace dev {

constexpr int kBlock = 256;  // threads per block for every kernel

// Element formats: the raw storage type, the arithmetic type A (float for 16/32-bit logits as
// in the CPU core, double for float64) and the widening.
struct F16 {
  using Raw = uint16_t;
  using A = float;
  static __device__ __forceinline__ float value(uint16_t h) {
    return __half2float(__ushort_as_half(h));
  }
};
struct BF16 {
  using Raw = uint16_t;
  using A = float;
  static __device__ __forceinline__ float value(uint16_t h) {
    return __uint_as_float(static_cast<uint32_t>(h) << 16);
  }
};
struct F32 {
  using Raw = float;
  using A = float;
  static __device__ __forceinline__ float value(float x) { return x; }
};
struct F64 {
  using Raw = double;
  using A = double;
  static __device__ __forceinline__ double value(double x) { return x; }
};

template <class A>
__device__ __forceinline__ A neg_inf();
template <>
__device__ __forceinline__ float neg_inf<float>() {
  return __int_as_float(0xff800000);
}
template <>
__device__ __forceinline__ double neg_inf<double>() {
  return __longlong_as_double(0xfff0000000000000ll);
}
template <class A>
__device__ __forceinline__ A quiet_nan();
template <>
__device__ __forceinline__ float quiet_nan<float>() {
  return __int_as_float(0x7fc00000);
}
template <>
__device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000ll);
}

__device__ __forceinline__ int64_t load_int(const Ints& a, int64_t i) {
  return a.bytes == 4 ? static_cast<int64_t>(static_cast<const int32_t*>(a.data)[i * a.stride])
                      : static_cast<const int64_t*>(a.data)[i * a.stride];
}

// Calls f(j, value) for the elements j of the row that lane `lane` of a G-thread team owns.
// The aligned middle of the row is read as 16-byte words, the ends element by element.
template <class E, int G, class F>
__device__ __forceinline__ void visit_row(const typename E::Raw* row, int64_t classes, int lane,
                                          F&& f) {
  using Raw = typename E::Raw;
  constexpr int kVec = 16 / sizeof(Raw);
  const auto address = reinterpret_cast<uintptr_t>(row);
  int64_t head = static_cast<int64_t>(((16 - (address & 15)) & 15) / sizeof(Raw));
  if (head > classes) head = classes;
  for (int64_t j = lane; j < head; j += G) f(j, E::value(row[j]));
  const int64_t words = (classes - head) / kVec;
  const uint4* vec = reinterpret_cast<const uint4*>(row + head);
#pragma unroll 4
  for (int64_t v = lane; v < words; v += G) {
    const uint4 w = __ldg(vec + v);
    const Raw* e = reinterpret_cast<const Raw*>(&w);
#pragma unroll
    for (int k = 0; k < kVec; ++k) f(head + v * kVec + k, E::value(e[k]));
  }
  for (int64_t j = head + words * kVec + lane; j < classes; j += G) f(j, E::value(row[j]));
}

template <class T>
__device__ __forceinline__ T shfl_xor(T v, int offset, int width) {
  return __shfl_xor_sync(0xffffffffu, v, offset, width);
}
__device__ __forceinline__ bool shfl_xor(bool v, int offset, int width) {
  return __shfl_xor_sync(0xffffffffu, static_cast<int>(v), offset, width) != 0;
}

// Combines every team member's accumulator; all members get the result. Acc provides
// combine(const Acc&) and shuffled(offset, width). Every lane of the warp (G <= 32) or every
// thread of the block (G == kBlock) must call it.
template <int G, class Acc>
__device__ __forceinline__ Acc team_combine(Acc a) {
#pragma unroll
  for (int o = (G < 32 ? G : 32) / 2; o > 0; o >>= 1) a.combine(a.shuffled(o, G < 32 ? G : 32));
  if constexpr (G > 32) {
    __shared__ Acc partial[G / 32];
    const int warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0) partial[warp] = a;
    __syncthreads();
    a = partial[0];
#pragma unroll
    for (int w = 1; w < G / 32; ++w) a.combine(partial[w]);
    __syncthreads();  // partial is reused by the next row
  }
  return a;
}

// Largest value outside the label's column, and whether the row holds a NaN or an infinity.
template <class A>
struct MaxOther {
  A max;
  bool bad;
  __device__ __forceinline__ void combine(const MaxOther& o) {
    max = max > o.max ? max : o.max;
    bad = bad || o.bad;
  }
  __device__ __forceinline__ MaxOther shuffled(int offset, int width) const {
    return {shfl_xor(max, offset, width), shfl_xor(bad, offset, width)};
  }
};

// The margin of one row (all team members return it): the CPU core's definition and
// arithmetic: NaN when the row holds a NaN or an infinity.
template <class E, int G>
__device__ __forceinline__ double row_margin(const typename E::Raw* row, int64_t classes,
                                             int64_t y, int lane, bool active) {
  using A = typename E::A;
  MaxOther<A> acc{neg_inf<A>(), false};
  if (active) {
    visit_row<E, G>(row, classes, lane, [&](int64_t j, A x) {
      acc.bad = acc.bad || !isfinite(x);
      if (j != y && x > acc.max) acc.max = x;
    });
  }
  acc = team_combine<G>(acc);
  if (!active) return 0.0;
  const A label = E::value(row[y]);
  if (acc.bad || !isfinite(label)) return quiet_nan<double>();
  const A margin = label - acc.max;  // subtract in A, then widen: the reference's rounding
  return static_cast<double>(margin);
}

// numpy's argmax of the row with the label's column set to -inf (NaN is the largest, the first
// index wins ties) and the row's log-sum-exp, online (running maximum and rescaled sum).
template <class A>
struct Record {
  A best;
  int32_t best_class;
  A top;    // running maximum of the finite-or-inf values
  A scale;  // sum of exp(x - top)
  bool nan;

  __device__ __forceinline__ static bool better(A v, int32_t i, A w, int32_t k) {
    const bool nv = isnan(v), nw = isnan(w);
    if (nv != nw) return nv;
    if (!nv && v != w) return v > w;
    return i < k;
  }
  __device__ __forceinline__ void add_lse(A t, A s) {
    if (t == neg_inf<A>()) return;  // adds nothing (and -inf - -inf would be NaN)
    if (t > top) {
      scale = (top == neg_inf<A>() ? A(0) : scale * exp(top - t)) + s;
      top = t;
    } else {
      scale += s * exp(t - top);
    }
  }
  __device__ __forceinline__ void combine(const Record& o) {
    if (better(o.best, o.best_class, best, best_class)) {
      best = o.best;
      best_class = o.best_class;
    }
    nan = nan || o.nan;
    add_lse(o.top, o.scale);
  }
  __device__ __forceinline__ Record shuffled(int offset, int width) const {
    return {shfl_xor(best, offset, width), shfl_xor(best_class, offset, width),
            shfl_xor(top, offset, width), shfl_xor(scale, offset, width),
            shfl_xor(nan, offset, width)};
  }
};

template <class E, int G>
__device__ __forceinline__ Record<typename E::A> row_record(const typename E::Raw* row,
                                                            int64_t classes, int64_t y, int lane,
                                                            bool active) {
  using A = typename E::A;
  Record<A> acc{neg_inf<A>(), INT32_MAX, neg_inf<A>(), A(0), false};
  if (active) {
    visit_row<E, G>(row, classes, lane, [&](int64_t j, A x) {
      const A v = j == y ? neg_inf<A>() : x;
      if (Record<A>::better(v, static_cast<int32_t>(j), acc.best, acc.best_class)) {
        acc.best = v;
        acc.best_class = static_cast<int32_t>(j);
      }
      if (isnan(x))
        acc.nan = true;
      else
        acc.add_lse(x, A(1));
    });
  }
  return team_combine<G>(acc);
}

template <class A>
__device__ __forceinline__ A record_logsumexp(const Record<A>& r) {
  // numpy: top + log(sum(exp(z - top))) is NaN when top is infinite or a value is NaN.
  if (r.nan || isinf(r.top)) return quiet_nan<A>();
  return r.top + log(r.scale);
}

// Rows handled by one team; the loop bound is uniform across the warp (or block), so every
// thread takes part in the team's shuffles even past the last row.
template <int G>
struct TeamLayout {
  static constexpr int kTeams = G <= 32 ? kBlock / G : 1;  // teams per block
  __device__ __forceinline__ static int team() { return G <= 32 ? threadIdx.x / G : 0; }
  __device__ __forceinline__ static int lane() { return G <= 32 ? threadIdx.x % G : threadIdx.x; }
};

}  // namespace dev
}  // namespace aum_cuda
