#include "aum/simd.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace aum {
namespace {

SimdLevel detect() {
#if defined(AUM_HAVE_AVX512) || defined(AUM_HAVE_AVX2)
  // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
  __builtin_cpu_init();
#endif
#if defined(AUM_HAVE_AVX512)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return SimdLevel::avx512;
#endif
#if defined(AUM_HAVE_AVX2)
  if (__builtin_cpu_supports("avx2")) return SimdLevel::avx2;
#endif
  return SimdLevel::portable;
}

SimdLevel clamp(SimdLevel level) {
  return static_cast<int>(level) > static_cast<int>(best_simd_level()) ? best_simd_level() : level;
}

SimdLevel initial() {
  const char* env = std::getenv("AUM_SCORE_SIMD");
  if (env && *env) {
    try {
      return clamp(parse_simd_level(env));
    } catch (const std::invalid_argument&) {
      // An unknown value must not make the import fail: use the best level.
    }
  }
  return best_simd_level();
}

std::atomic<int>& current() {
  static std::atomic<int> level{static_cast<int>(initial())};
  return level;
}

}  // namespace

SimdLevel best_simd_level() {
  static const SimdLevel best = detect();
  return best;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(current().load(std::memory_order_relaxed)); }

SimdLevel set_simd_level(SimdLevel level) {
  const SimdLevel chosen = clamp(level);
  current().store(static_cast<int>(chosen), std::memory_order_relaxed);
  return chosen;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::avx2: return "avx2";
    default: return "portable";
  }
}

SimdLevel parse_simd_level(const std::string& name) {
  if (name == "portable") return SimdLevel::portable;
  if (name == "avx2") return SimdLevel::avx2;
  if (name == "avx512") return SimdLevel::avx512;
  throw std::invalid_argument("unknown SIMD level '" + name + "' (portable, avx2 or avx512)");
}

}  // namespace aum
