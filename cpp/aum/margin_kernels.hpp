// The margin kernel, written once over a "vector traits" type V and instantiated once per
// instruction set (margin_portable.cpp, margin_avx2.cpp, margin_avx512.cpp).
//
// Only include this from those files, after defining V in an anonymous namespace: the template
// instances then have internal linkage, so code compiled with -mavx2 can never be picked by the
// linker for a call made on a CPU without AVX2 (the usual pitfall of per-file ISA flags).
//
// V provides:
//   T (element), A (arithmetic type: float or double), Vec, Chk, W (lanes)
//   Vec lowest(); Chk clean();
//   void step(Vec& m, Chk& c, const T* p)            m = max(m, p[0..W)), c notes NaN/inf
//   void tail(Vec& m, Chk& c, const T* p, int64_t n) the same for 0 < n < W values
//   Vec merge(Vec a, Vec b); Chk merge_chk(Chk a, Chk b);
//   A max_of(Vec m)          the largest value, widened to A
//   bool bad(Chk c)          any NaN/inf seen
//   A value(T x); bool finite(T x)
//   kWhole: the largest C for which template <bool kInBlock> double whole(const T* z, int64_t C,
//   int64_t y) is used (0: none): a row of up to a few vectors, every vector read whatever the
//   label, the label's lane masked out of the max: no data-dependent branch, where the scans
//   below mispredict on nearly every row when C is small (labels come in no pattern).
//   kInBlock: z[0, C rounded up to W) lies inside the block, so it may be read with whole
//   vectors (values past the row are ignored); else only z[0, C) may be read.
#pragma once
#include <cstdint>

#include "aum/margin.hpp"
#include "aum/prefetch.hpp"

namespace aum {
namespace {  // internal linkage: see above
namespace kernel {

// max over p[begin, end) into m (two accumulators, so two loads are in flight per step).
template <class V>
inline void scan(const typename V::T* p, int64_t begin, int64_t end, typename V::Vec& m0,
                 typename V::Vec& m1, typename V::Chk& c0, typename V::Chk& c1) {
  int64_t j = begin;
  for (; j + 2 * V::W <= end; j += 2 * V::W) {
    V::step(m0, c0, p + j);
    V::step(m1, c1, p + j + V::W);
  }
  if (j + V::W <= end) {
    V::step(m0, c0, p + j);
    j += V::W;
  }
  if (j < end) V::tail(m1, c1, p + j, end - j);
}

// margin = z[y] - max over [0, y) and (y, C): the label's column is skipped, never copied.
// Returns NaN for a row with a NaN or an infinity.
template <class V>
inline double row_margin(const typename V::T* z, int64_t classes, int64_t y) {
  typename V::Vec m0 = V::lowest(), m1 = V::lowest();
  typename V::Chk c0 = V::clean(), c1 = V::clean();
  scan<V>(z, 0, y, m0, m1, c0, c1);
  scan<V>(z, y + 1, classes, m0, m1, c0, c1);
  if (V::bad(V::merge_chk(c0, c1)) || !V::finite(z[y])) return __builtin_nan("");
  // Subtract in A (float32 for 16/32-bit logits), then widen: the reference's arithmetic.
  const typename V::A margin = V::value(z[y]) - V::max_of(V::merge(m0, m1));
  return static_cast<double>(margin);
}

// A label outside [0, C) (kNoLabel included): the row is not read, its margin is NaN.
inline bool outside(int64_t y, int64_t classes) {
  return static_cast<uint64_t>(y) >= static_cast<uint64_t>(classes);
}

template <class V>
int64_t rows_of(const LogitBlock& b, const int64_t* labels, int64_t begin, int64_t end,
                double* margins) {
  const auto* base = static_cast<const typename V::T*>(b.data);
  const double nan = __builtin_nan("");
  int64_t bad = 0;
  if constexpr (V::kWhole > 0) {
    if (b.classes <= V::kWhole) {
      // A short row (C = 10 floats: one AVX-512 vector, two AVX2 ones). All but the last rows
      // or so can be loaded in whole vectors, reading into the next row: no masked load, which
      // is slow on some CPUs (AMD Zen 1: 5 ns a load).
      const int64_t span = (b.rows - 1) * b.row_stride + b.classes;  // values in the block
      const int64_t reach = (b.classes + V::W - 1) / V::W * V::W;    // values a row's loads read
      int64_t in_block = span >= reach ? (span - reach) / b.row_stride + 1 : 0;
      in_block = in_block < begin ? begin : in_block > end ? end : in_block;
      // The rows are read once: prefetched ~4 KB ahead past the outer caches, they do not push
      // out the per-sample slots that the scatter after the kernel updates (measured on AMD
      // Zen 4, 1M x 10 x 5: later epochs 55-60 -> 49-54 ms in all).
      const int64_t row_bytes = b.row_stride * static_cast<int64_t>(sizeof(typename V::T));
      const int64_t ahead = row_bytes >= 512 ? 8 : 4096 / row_bytes;
      int64_t r = begin;
      for (; r < in_block; ++r) {
        if (r + ahead < in_block) {
          const char* next = reinterpret_cast<const char*>(base + (r + ahead) * b.row_stride);
          for (int64_t at = 0; at < row_bytes; at += 64) prefetch_once(next + at);
        }
        const int64_t y = labels[r];
        const double m = outside(y, b.classes)
                             ? nan
                             : V::template whole<true>(base + r * b.row_stride, b.classes, y);
        margins[r] = m;
        bad += m != m;
      }
      for (; r < end; ++r) {
        const int64_t y = labels[r];
        const double m = outside(y, b.classes)
                             ? nan
                             : V::template whole<false>(base + r * b.row_stride, b.classes, y);
        margins[r] = m;
        bad += m != m;
      }
      return bad;
    }
  }
  for (int64_t r = begin; r < end; ++r) {
    const int64_t y = labels[r];
    const double m =
        outside(y, b.classes) ? nan : row_margin<V>(base + r * b.row_stride, b.classes, y);
    margins[r] = m;
    bad += m != m;
  }
  return bad;
}

// 16-bit floats (float16, bfloat16) compared as integers: x ^ ((x >> 15) & 0x7fff) orders the
// bit patterns of all non-NaN values like the values themselves (-0 just below +0, which
// changes no margin), so the max needs no conversion; only the winner is widened.
inline int16_t order_key(uint16_t x) {
  const int16_t s = static_cast<int16_t>(x);
  return static_cast<int16_t>(s ^ ((s >> 15) & 0x7fff));
}
inline uint16_t key_bits(int16_t key) { return static_cast<uint16_t>(order_key(static_cast<uint16_t>(key))); }

// Exact IEEE binary16 -> binary32.
inline float half_value(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = h & 0x7fffu;
  uint32_t bits;
  if (em >= 0x7c00u) {
    bits = sign | 0x7f800000u | ((em & 0x3ffu) << 13);  // inf or NaN
  } else if (em >= 0x0400u) {
    bits = sign | ((em << 13) + 0x38000000u);  // normal: rebias the exponent (127 - 15) << 23
  } else {
    const float f = static_cast<float>(em) * 5.9604644775390625e-8f;  // subnormal: em * 2^-24
    __builtin_memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float out;
  __builtin_memcpy(&out, &bits, 4);
  return out;
}

inline float bfloat_value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float out;
  __builtin_memcpy(&out, &bits, 4);
  return out;
}

// Per 16-bit format: the exponent mask (all ones = inf/NaN), the lowest finite pattern (fills
// the unused lanes of a tail) and the widening.
struct Half {
  static constexpr uint16_t kExp = 0x7c00, kLowest = 0xfbff;
  static float value(uint16_t h) { return half_value(h); }
};
struct BFloat {
  static constexpr uint16_t kExp = 0x7f80, kLowest = 0xff7f;
  static float value(uint16_t h) { return bfloat_value(h); }
};

template <class V>
detail::MarginRows pick(DType dtype) {
  switch (dtype) {
    case DType::float16: return &rows_of<typename V::template Bits16<Half>>;
    case DType::bfloat16: return &rows_of<typename V::template Bits16<BFloat>>;
    case DType::float32: return &rows_of<typename V::template Float<float>>;
    case DType::float64: return &rows_of<typename V::template Float<double>>;
  }
  return nullptr;
}

}  // namespace kernel
}  // namespace
}  // namespace aum
