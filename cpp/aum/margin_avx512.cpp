// The margin kernel with AVX-512 (F, BW, VL, DQ): 16 floats / 32 halves a step and masked loads
// for the tails, which matter for small C. Compiled with -mavx512*; called only after simd.cpp
// has checked the CPU; everything here has internal linkage.
// GCC 12's own AVX-512 headers trip -Wmaybe-uninitialized (their _mm*_undefined_* helpers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "aum/margin_kernels.hpp"

namespace aum {
namespace {

struct Avx512 {
  template <class F>
  struct Float;

  template <class Format>
  struct Bits16 {
    using T = uint16_t;
    using A = float;
    using Vec = __m512i;
    using Chk = __mmask32;
    static constexpr int W = 32;
    static constexpr int kWhole = W;
    template <bool kInBlock>  // (masked loads are fast here)
    static double whole(const uint16_t* z, int64_t classes, int64_t y) {
      const __mmask32 row = static_cast<__mmask32>(0xffffffffu >> (32 - classes));
      const __m512i x = _mm512_mask_loadu_epi16(lowest_finite(), row, z);
      const __m512i exp = _mm512_set1_epi16(static_cast<int16_t>(Format::kExp));
      if (_mm512_cmpeq_epi16_mask(_mm512_and_si512(x, exp), exp)) return __builtin_nan("");
      const __m512i key =
          _mm512_xor_si512(x, _mm512_and_si512(_mm512_srai_epi16(x, 15), _mm512_set1_epi16(0x7fff)));
      const __mmask32 others = row & ~(static_cast<__mmask32>(1) << y);
      const float other = max_of(_mm512_mask_mov_epi16(lowest(), others, key));
      return static_cast<double>(Format::value(z[y]) - other);
    }
    static __m512i lowest_finite() { return _mm512_set1_epi16(static_cast<int16_t>(Format::kLowest)); }
    static Vec lowest() { return _mm512_set1_epi16(INT16_MIN); }
    static Chk clean() { return 0; }
    static void add(Vec& m, Chk& c, __m512i x) {
      const __m512i exp = _mm512_set1_epi16(static_cast<int16_t>(Format::kExp));
      const __m512i key =
          _mm512_xor_si512(x, _mm512_and_si512(_mm512_srai_epi16(x, 15), _mm512_set1_epi16(0x7fff)));
      m = _mm512_max_epi16(m, key);
      c |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(x, exp), exp);
    }
    static void step(Vec& m, Chk& c, const uint16_t* p) { add(m, c, _mm512_loadu_si512(p)); }
    static void tail(Vec& m, Chk& c, const uint16_t* p, int64_t n) {
      const __mmask32 k = static_cast<__mmask32>((1u << n) - 1u);
      add(m, c, _mm512_mask_loadu_epi16(lowest_finite(), k, p));  // masked lanes are never read
    }
    static Vec merge(Vec a, Vec b) { return _mm512_max_epi16(a, b); }
    static Chk merge_chk(Chk a, Chk b) { return a | b; }
    static float max_of(Vec m) {
      const __m256i h = _mm256_max_epi16(_mm512_castsi512_si256(m), _mm512_extracti64x4_epi64(m, 1));
      __m128i x = _mm_max_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      x = _mm_max_epi16(x, _mm_srli_si128(x, 8));
      x = _mm_max_epi16(x, _mm_srli_si128(x, 4));
      x = _mm_max_epi16(x, _mm_srli_si128(x, 2));
      const auto key = static_cast<int16_t>(_mm_cvtsi128_si32(x) & 0xffff);
      return Format::value(kernel::key_bits(key));
    }
    static bool bad(Chk c) { return c != 0; }
    static float value(uint16_t x) { return Format::value(x); }
    static bool finite(uint16_t x) { return (x & Format::kExp) != Format::kExp; }
  };
};

template <>
struct Avx512::Float<float> {
  using T = float;
  using A = float;
  using Vec = __m512;
  using Chk = __m512;
  static constexpr int W = 16;
  static constexpr int kWhole = W;
  template <bool kInBlock>
  static double whole(const float* z, int64_t classes, int64_t y) {
    const __mmask16 row = static_cast<__mmask16>(0xffffu >> (16 - classes));
    const __m512 v = _mm512_maskz_loadu_ps(row, z);
    if (_mm512_cmp_ps_mask(_mm512_sub_ps(v, v), _mm512_setzero_ps(), _CMP_NEQ_UQ))
      return __builtin_nan("");  // v - v is 0 exactly for finite v
    const __mmask16 others = row & static_cast<__mmask16>(~(1u << y));
    const float other = max_of(_mm512_mask_mov_ps(lowest(), others, v));
    return static_cast<double>(z[y] - other);
  }
  static Vec lowest() { return _mm512_set1_ps(-__builtin_inff()); }
  static Chk clean() { return _mm512_setzero_ps(); }
  static void step(Vec& m, Chk& c, const float* p) {
    const __m512 v = _mm512_loadu_ps(p);
    m = _mm512_max_ps(v, m);
    c = _mm512_add_ps(c, _mm512_sub_ps(v, v));
  }
  static void tail(Vec& m, Chk& c, const float* p, int64_t n) {
    const __mmask16 k = static_cast<__mmask16>((1u << n) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(k, p);
    c = _mm512_add_ps(c, _mm512_sub_ps(v, v));
    m = _mm512_mask_max_ps(m, k, v, m);
  }
  static Vec merge(Vec a, Vec b) { return _mm512_max_ps(a, b); }
  static Chk merge_chk(Chk a, Chk b) { return _mm512_add_ps(a, b); }
  static float max_of(Vec m) {
    __m256 h = _mm256_max_ps(_mm512_castps512_ps256(m),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(m), 1)));
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
    return _mm_cvtss_f32(x);
  }
  static bool bad(Chk c) { return _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) != 0; }
  static float value(float x) { return x; }
  static bool finite(float x) { return x - x == 0; }
};

template <>
struct Avx512::Float<double> {
  using T = double;
  using A = double;
  using Vec = __m512d;
  using Chk = __m512d;
  static constexpr int W = 8;
  static constexpr int kWhole = W;
  template <bool kInBlock>
  static double whole(const double* z, int64_t classes, int64_t y) {
    const __mmask8 row = static_cast<__mmask8>(0xffu >> (8 - classes));
    const __m512d v = _mm512_maskz_loadu_pd(row, z);
    if (_mm512_cmp_pd_mask(_mm512_sub_pd(v, v), _mm512_setzero_pd(), _CMP_NEQ_UQ))
      return __builtin_nan("");
    const __mmask8 others = row & static_cast<__mmask8>(~(1u << y));
    return z[y] - max_of(_mm512_mask_mov_pd(lowest(), others, v));
  }
  static Vec lowest() { return _mm512_set1_pd(-__builtin_inf()); }
  static Chk clean() { return _mm512_setzero_pd(); }
  static void step(Vec& m, Chk& c, const double* p) {
    const __m512d v = _mm512_loadu_pd(p);
    m = _mm512_max_pd(v, m);
    c = _mm512_add_pd(c, _mm512_sub_pd(v, v));
  }
  static void tail(Vec& m, Chk& c, const double* p, int64_t n) {
    const __mmask8 k = static_cast<__mmask8>((1u << n) - 1u);
    const __m512d v = _mm512_maskz_loadu_pd(k, p);
    c = _mm512_add_pd(c, _mm512_sub_pd(v, v));
    m = _mm512_mask_max_pd(m, k, v, m);
  }
  static Vec merge(Vec a, Vec b) { return _mm512_max_pd(a, b); }
  static Chk merge_chk(Chk a, Chk b) { return _mm512_add_pd(a, b); }
  static double max_of(Vec m) {
    __m256d h = _mm256_max_pd(_mm512_castpd512_pd256(m), _mm512_extractf64x4_pd(m, 1));
    __m128d x = _mm_max_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    x = _mm_max_sd(x, _mm_unpackhi_pd(x, x));
    return _mm_cvtsd_f64(x);
  }
  static bool bad(Chk c) { return _mm512_cmp_pd_mask(c, c, _CMP_UNORD_Q) != 0; }
  static double value(double x) { return x; }
  static bool finite(double x) { return x - x == 0; }
};

}  // namespace

detail::MarginRows detail::margin_rows_avx512(DType dtype) { return kernel::pick<Avx512>(dtype); }

}  // namespace aum
