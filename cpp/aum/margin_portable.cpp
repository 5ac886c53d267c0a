// The margin kernel in plain C++ for any CPU (the fallback, and the build on non-x86 machines).
// Fixed-width lane arrays keep several independent maxima, which compilers vectorise.
#include <cstdint>

#include "aum/margin_kernels.hpp"

namespace aum {
namespace {

struct Portable {
  template <class F>
  struct Float {
    using T = F;
    using A = F;
    static constexpr int W = 8;
    static constexpr int kWhole = 0;
    struct Vec {
      F v[W];
    };
    using Chk = Vec;
    static Vec lowest() {
      Vec m;
      for (int k = 0; k < W; ++k) m.v[k] = -__builtin_inf();
      return m;
    }
    static Chk clean() {
      Chk c;
      for (int k = 0; k < W; ++k) c.v[k] = 0;
      return c;
    }
    // v - v is 0 for finite v and NaN otherwise, so c stays 0 exactly while all are finite.
    static void step(Vec& m, Chk& c, const F* p) {
      for (int k = 0; k < W; ++k) {
        const F x = p[k];
        m.v[k] = x > m.v[k] ? x : m.v[k];
        c.v[k] += x - x;
      }
    }
    static void tail(Vec& m, Chk& c, const F* p, int64_t n) {
      for (int64_t k = 0; k < n; ++k) {
        const F x = p[k];
        m.v[k] = x > m.v[k] ? x : m.v[k];
        c.v[k] += x - x;
      }
    }
    static Vec merge(Vec a, const Vec& b) {
      for (int k = 0; k < W; ++k) a.v[k] = b.v[k] > a.v[k] ? b.v[k] : a.v[k];
      return a;
    }
    static Chk merge_chk(Chk a, const Chk& b) {
      for (int k = 0; k < W; ++k) a.v[k] += b.v[k];
      return a;
    }
    static F max_of(const Vec& m) {
      F best = m.v[0];
      for (int k = 1; k < W; ++k) best = m.v[k] > best ? m.v[k] : best;
      return best;
    }
    static bool bad(const Chk& c) {
      F sum = 0;
      for (int k = 0; k < W; ++k) sum += c.v[k];
      return sum != 0;
    }
    static F value(F x) { return x; }
    static bool finite(F x) { return x - x == 0; }
  };

  template <class Format>
  struct Bits16 {
    using T = uint16_t;
    using A = float;
    static constexpr int W = 16;
    static constexpr int kWhole = 0;
    struct Vec {
      int16_t v[W];
    };
    struct Chk {
      uint16_t v[W];
    };
    static Vec lowest() {
      Vec m;
      for (int k = 0; k < W; ++k) m.v[k] = INT16_MIN;
      return m;
    }
    static Chk clean() {
      Chk c;
      for (int k = 0; k < W; ++k) c.v[k] = 0;
      return c;
    }
    static void step(Vec& m, Chk& c, const uint16_t* p) {
      for (int k = 0; k < W; ++k) {
        const int16_t key = kernel::order_key(p[k]);
        m.v[k] = key > m.v[k] ? key : m.v[k];
        c.v[k] |= (p[k] & Format::kExp) == Format::kExp;
      }
    }
    static void tail(Vec& m, Chk& c, const uint16_t* p, int64_t n) {
      for (int64_t k = 0; k < n; ++k) {
        const int16_t key = kernel::order_key(p[k]);
        m.v[k] = key > m.v[k] ? key : m.v[k];
        c.v[k] |= (p[k] & Format::kExp) == Format::kExp;
      }
    }
    static Vec merge(Vec a, const Vec& b) {
      for (int k = 0; k < W; ++k) a.v[k] = b.v[k] > a.v[k] ? b.v[k] : a.v[k];
      return a;
    }
    static Chk merge_chk(Chk a, const Chk& b) {
      for (int k = 0; k < W; ++k) a.v[k] |= b.v[k];
      return a;
    }
    static float max_of(const Vec& m) {
      int16_t best = m.v[0];
      for (int k = 1; k < W; ++k) best = m.v[k] > best ? m.v[k] : best;
      return Format::value(kernel::key_bits(best));
    }
    static bool bad(const Chk& c) {
      uint16_t any = 0;
      for (int k = 0; k < W; ++k) any |= c.v[k];
      return any != 0;
    }
    static float value(uint16_t x) { return Format::value(x); }
    static bool finite(uint16_t x) { return (x & Format::kExp) != Format::kExp; }
  };
};

}  // namespace

detail::MarginRows detail::margin_rows_portable(DType dtype) {
  return kernel::pick<Portable>(dtype);
}

}  // namespace aum
