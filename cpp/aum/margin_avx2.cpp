// The margin kernel with AVX2 intrinsics. Compiled with -mavx2 (see cpp/CMakeLists.txt) and only
// called after simd.cpp has checked the CPU; everything here has internal linkage.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "aum/margin_kernels.hpp"

namespace aum {
namespace {

// Loading 8 lanes from kLaneMask32 + 8 - n gives a mask of the first n lanes.
alignas(64) const int32_t kLaneMask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
alignas(64) const int64_t kLaneMask64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};

struct Avx2 {
  template <class F>
  struct Float;

  template <class Format>
  struct Bits16 {
    using T = uint16_t;
    using A = float;
    using Vec = __m256i;
    using Chk = __m256i;
    static constexpr int W = 16;
    // As for floats, on the order-preserving keys (see order_key). No 16-bit masked load:
    // outside the block the last vector is copied next to lowest-finite fillers (tail).
    // Measured on AMD Zen 1, one thread, float16: C = 10: 44 -> 12 ns a row; C = 100: 65 -> 30.
    static constexpr int kWhole = 256;
    template <bool kInBlock>
    static double whole(const uint16_t* z, int64_t classes, int64_t y) {
      const __m256i label = _mm256_set1_epi16(static_cast<int16_t>(y));
      const __m256i step = _mm256_set1_epi16(W);
      const __m256i exp = _mm256_set1_epi16(static_cast<int16_t>(Format::kExp));
      __m256i lane = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      __m256i m = lowest(), check = clean();
      int64_t j = 0;
      for (; j + W <= classes; j += W) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(z + j));
        check = _mm256_or_si256(check, _mm256_cmpeq_epi16(_mm256_and_si256(x, exp), exp));
        m = _mm256_max_epi16(m, _mm256_blendv_epi8(key(x), lowest(), _mm256_cmpeq_epi16(lane, label)));
        lane = _mm256_add_epi16(lane, step);
      }
      if (j < classes) {
        const __m256i in = _mm256_cmpgt_epi16(_mm256_set1_epi16(static_cast<int16_t>(classes)), lane);
        __m256i x;
        if constexpr (kInBlock) {
          x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(z + j));
        } else {
          alignas(32) uint16_t buf[W];
          for (int k = 0; k < W; ++k) buf[k] = Format::kLowest;
          std::memcpy(buf, z + j, static_cast<size_t>(classes - j) * sizeof(uint16_t));
          x = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
        }
        check = _mm256_or_si256(check, _mm256_and_si256(_mm256_cmpeq_epi16(_mm256_and_si256(x, exp), exp), in));
        const __m256i others = _mm256_andnot_si256(_mm256_cmpeq_epi16(lane, label), in);
        m = _mm256_max_epi16(m, _mm256_blendv_epi8(lowest(), key(x), others));
      }
      if (bad(check)) return __builtin_nan("");
      return static_cast<double>(Format::value(z[y]) - max_of(m));
    }
    static __m256i key(__m256i x) {
      return _mm256_xor_si256(x, _mm256_and_si256(_mm256_srai_epi16(x, 15), _mm256_set1_epi16(0x7fff)));
    }
    static Vec lowest() { return _mm256_set1_epi16(INT16_MIN); }
    static Chk clean() { return _mm256_setzero_si256(); }
    static void add(Vec& m, Chk& c, __m256i x) {
      const __m256i exp = _mm256_set1_epi16(static_cast<int16_t>(Format::kExp));
      m = _mm256_max_epi16(m, key(x));
      c = _mm256_or_si256(c, _mm256_cmpeq_epi16(_mm256_and_si256(x, exp), exp));
    }
    static void step(Vec& m, Chk& c, const uint16_t* p) {
      add(m, c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    // No 16-bit masked load in AVX2: copy the tail next to lowest-finite fillers.
    static void tail(Vec& m, Chk& c, const uint16_t* p, int64_t n) {
      alignas(32) uint16_t buf[W];
      for (int k = 0; k < W; ++k) buf[k] = Format::kLowest;
      std::memcpy(buf, p, static_cast<size_t>(n) * sizeof(uint16_t));
      add(m, c, _mm256_load_si256(reinterpret_cast<const __m256i*>(buf)));
    }
    static Vec merge(Vec a, Vec b) { return _mm256_max_epi16(a, b); }
    static Chk merge_chk(Chk a, Chk b) { return _mm256_or_si256(a, b); }
    static float max_of(Vec m) {
      __m128i x = _mm_max_epi16(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
      x = _mm_max_epi16(x, _mm_srli_si128(x, 8));
      x = _mm_max_epi16(x, _mm_srli_si128(x, 4));
      x = _mm_max_epi16(x, _mm_srli_si128(x, 2));
      const auto key = static_cast<int16_t>(_mm_cvtsi128_si32(x) & 0xffff);
      return Format::value(kernel::key_bits(key));
    }
    static bool bad(Chk c) { return !_mm256_testz_si256(c, c); }
    static float value(uint16_t x) { return Format::value(x); }
    static bool finite(uint16_t x) { return (x & Format::kExp) != Format::kExp; }
  };
};

template <>
struct Avx2::Float<float> {
  using T = float;
  using A = float;
  using Vec = __m256;
  using Chk = __m256;
  static constexpr int W = 8;
  // Rows of up to kWhole floats, vector by vector (a trip count that is the same for every
  // row), the label's lane masked out of the max; the last vector's lanes past the row are not
  // loaded (masked load) or ignored (whole load inside the block). Measured on AMD Zen 1, one
  // thread, ns a row with the scans -> like this: C = 10: 19.5 -> 7.4 (14.5 with masked loads
  // everywhere); C = 32: 31 -> 14; C = 100: 52 -> 41 (benchmarks/bench_kernels.py); from
  // C = 256 the scans are as fast.
  static constexpr int kWhole = 128;
  template <bool kInBlock>
  static double whole(const float* z, int64_t classes, int64_t y) {
    if (classes <= 2 * W) return two<kInBlock>(z, classes, y);  // (1.4 ns a row less at C = 10)
    const __m256i label = _mm256_set1_epi32(static_cast<int32_t>(y));
    const __m256i step = _mm256_set1_epi32(W);
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // Two of each accumulator, so that consecutive vectors do not wait for each other. check
    // collects v - v, which is +0 for finite v, else NaN (OR keeps a NaN a NaN).
    __m256 m = lowest(), m1 = lowest(), check = clean(), check1 = clean();
    int64_t j = 0;
    for (; j + 2 * W <= classes; j += 2 * W) {
      const __m256i lane1 = _mm256_add_epi32(lane, step);
      const __m256 v = _mm256_loadu_ps(z + j), v1 = _mm256_loadu_ps(z + j + W);
      check = _mm256_or_ps(check, _mm256_sub_ps(v, v));
      check1 = _mm256_or_ps(check1, _mm256_sub_ps(v1, v1));
      m = _mm256_max_ps(m, _mm256_blendv_ps(v, lowest(), _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, label))));
      m1 = _mm256_max_ps(m1, _mm256_blendv_ps(v1, lowest(), _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane1, label))));
      lane = _mm256_add_epi32(lane1, step);
    }
    if (j + W <= classes) {
      const __m256 v = _mm256_loadu_ps(z + j);
      check = _mm256_or_ps(check, _mm256_sub_ps(v, v));
      m = _mm256_max_ps(m, _mm256_blendv_ps(v, lowest(), _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, label))));
      lane = _mm256_add_epi32(lane, step);
      j += W;
    }
    m = _mm256_max_ps(m, m1);
    check = _mm256_or_ps(check, check1);
    if (j < classes) {
      const __m256i in = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(classes)), lane);
      const __m256 v = kInBlock ? _mm256_loadu_ps(z + j) : _mm256_maskload_ps(z + j, in);
      check = _mm256_or_ps(check, _mm256_and_ps(_mm256_sub_ps(v, v), _mm256_castsi256_ps(in)));
      const __m256i others = _mm256_andnot_si256(_mm256_cmpeq_epi32(lane, label), in);
      m = _mm256_max_ps(m, _mm256_blendv_ps(lowest(), v, _mm256_castsi256_ps(others)));
    }
    if (bad(check)) return __builtin_nan("");  // rare: predicted
    return static_cast<double>(z[y] - max_of(m));
  }
  // Rows of up to 16 floats: both vectors at once.
  template <bool kInBlock>
  static double two(const float* z, int64_t classes, int64_t y) {
    const __m256i lane0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lane1 = _mm256_add_epi32(lane0, _mm256_set1_epi32(W));
    const __m256i row = _mm256_set1_epi32(static_cast<int32_t>(classes));
    const __m256i in0 = _mm256_cmpgt_epi32(row, lane0), in1 = _mm256_cmpgt_epi32(row, lane1);
    const __m256i label = _mm256_set1_epi32(static_cast<int32_t>(y));
    const __m256i others0 = _mm256_andnot_si256(_mm256_cmpeq_epi32(lane0, label), in0);
    const __m256i others1 = _mm256_andnot_si256(_mm256_cmpeq_epi32(lane1, label), in1);
    const __m256 v0 = kInBlock ? _mm256_loadu_ps(z) : _mm256_maskload_ps(z, in0);
    // (The block holds whole vectors of the row: the second only when C > 8.)
    const __m256 v1 = classes <= W  ? _mm256_setzero_ps()
                      : kInBlock    ? _mm256_loadu_ps(z + W)
                                    : _mm256_maskload_ps(z + W, in1);
    const __m256 check = _mm256_or_ps(_mm256_and_ps(_mm256_sub_ps(v0, v0), _mm256_castsi256_ps(in0)),
                                      _mm256_and_ps(_mm256_sub_ps(v1, v1), _mm256_castsi256_ps(in1)));
    const __m256 m = _mm256_max_ps(_mm256_blendv_ps(lowest(), v0, _mm256_castsi256_ps(others0)),
                                   _mm256_blendv_ps(lowest(), v1, _mm256_castsi256_ps(others1)));
    if (bad(check)) return __builtin_nan("");
    return static_cast<double>(z[y] - max_of(m));
  }
  static Vec lowest() { return _mm256_set1_ps(-__builtin_inff()); }
  static Chk clean() { return _mm256_setzero_ps(); }
  // max_ps(a, b) is a > b ? a : b; c accumulates v - v: 0, or NaN once a value is NaN/inf.
  static void step(Vec& m, Chk& c, const float* p) {
    const __m256 v = _mm256_loadu_ps(p);
    m = _mm256_max_ps(v, m);
    c = _mm256_add_ps(c, _mm256_sub_ps(v, v));
  }
  static void tail(Vec& m, Chk& c, const float* p, int64_t n) {
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask32 + 8 - n));
    const __m256 v = _mm256_maskload_ps(p, mask);  // unused lanes read as 0, never touched
    c = _mm256_add_ps(c, _mm256_sub_ps(v, v));
    m = _mm256_max_ps(_mm256_blendv_ps(lowest(), v, _mm256_castsi256_ps(mask)), m);
  }
  static Vec merge(Vec a, Vec b) { return _mm256_max_ps(a, b); }
  static Chk merge_chk(Chk a, Chk b) { return _mm256_add_ps(a, b); }
  static float max_of(Vec m) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
  static bool bad(Chk c) { return _mm256_movemask_ps(_mm256_cmp_ps(c, c, _CMP_UNORD_Q)) != 0; }
  static float value(float x) { return x; }
  static bool finite(float x) { return x - x == 0; }
};

template <>
struct Avx2::Float<double> {
  using T = double;
  using A = double;
  using Vec = __m256d;
  using Chk = __m256d;
  static constexpr int W = 4;
  // As for floats (Zen 1: C = 10: 23 -> 11 ns a row, C = 64: 56 -> 47).
  static constexpr int kWhole = 128;
  template <bool kInBlock>
  static double whole(const double* z, int64_t classes, int64_t y) {
    const __m256i label = _mm256_set1_epi64x(y);
    const __m256i step = _mm256_set1_epi64x(W);
    __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256d m = lowest(), m1 = lowest(), check = clean(), check1 = clean();
    int64_t j = 0;
    for (; j + 2 * W <= classes; j += 2 * W) {
      const __m256i lane1 = _mm256_add_epi64(lane, step);
      const __m256d v = _mm256_loadu_pd(z + j), v1 = _mm256_loadu_pd(z + j + W);
      check = _mm256_or_pd(check, _mm256_sub_pd(v, v));
      check1 = _mm256_or_pd(check1, _mm256_sub_pd(v1, v1));
      m = _mm256_max_pd(m, _mm256_blendv_pd(v, lowest(), _mm256_castsi256_pd(_mm256_cmpeq_epi64(lane, label))));
      m1 = _mm256_max_pd(m1, _mm256_blendv_pd(v1, lowest(), _mm256_castsi256_pd(_mm256_cmpeq_epi64(lane1, label))));
      lane = _mm256_add_epi64(lane1, step);
    }
    if (j + W <= classes) {
      const __m256d v = _mm256_loadu_pd(z + j);
      check = _mm256_or_pd(check, _mm256_sub_pd(v, v));
      m = _mm256_max_pd(m, _mm256_blendv_pd(v, lowest(), _mm256_castsi256_pd(_mm256_cmpeq_epi64(lane, label))));
      lane = _mm256_add_epi64(lane, step);
      j += W;
    }
    m = _mm256_max_pd(m, m1);
    check = _mm256_or_pd(check, check1);
    if (j < classes) {
      const __m256i in = _mm256_cmpgt_epi64(_mm256_set1_epi64x(classes), lane);
      const __m256d v = kInBlock ? _mm256_loadu_pd(z + j) : _mm256_maskload_pd(z + j, in);
      check = _mm256_or_pd(check, _mm256_and_pd(_mm256_sub_pd(v, v), _mm256_castsi256_pd(in)));
      const __m256i others = _mm256_andnot_si256(_mm256_cmpeq_epi64(lane, label), in);
      m = _mm256_max_pd(m, _mm256_blendv_pd(lowest(), v, _mm256_castsi256_pd(others)));
    }
    if (bad(check)) return __builtin_nan("");
    return z[y] - max_of(m);
  }
  static Vec lowest() { return _mm256_set1_pd(-__builtin_inf()); }
  static Chk clean() { return _mm256_setzero_pd(); }
  static void step(Vec& m, Chk& c, const double* p) {
    const __m256d v = _mm256_loadu_pd(p);
    m = _mm256_max_pd(v, m);
    c = _mm256_add_pd(c, _mm256_sub_pd(v, v));
  }
  static void tail(Vec& m, Chk& c, const double* p, int64_t n) {
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask64 + 4 - n));
    const __m256d v = _mm256_maskload_pd(p, mask);
    c = _mm256_add_pd(c, _mm256_sub_pd(v, v));
    m = _mm256_max_pd(_mm256_blendv_pd(lowest(), v, _mm256_castsi256_pd(mask)), m);
  }
  static Vec merge(Vec a, Vec b) { return _mm256_max_pd(a, b); }
  static Chk merge_chk(Chk a, Chk b) { return _mm256_add_pd(a, b); }
  static double max_of(Vec m) {
    __m128d x = _mm_max_pd(_mm256_castpd256_pd128(m), _mm256_extractf128_pd(m, 1));
    x = _mm_max_sd(x, _mm_unpackhi_pd(x, x));
    return _mm_cvtsd_f64(x);
  }
  static bool bad(Chk c) { return _mm256_movemask_pd(_mm256_cmp_pd(c, c, _CMP_UNORD_Q)) != 0; }
  static double value(double x) { return x; }
  static bool finite(double x) { return x - x == 0; }
};

}  // namespace

detail::MarginRows detail::margin_rows_avx2(DType dtype) { return kernel::pick<Avx2>(dtype); }

}  // namespace aum
