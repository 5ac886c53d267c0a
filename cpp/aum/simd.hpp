// Run-time choice of the margin kernels' instruction set. Wheels are built for the baseline CPU;
// wider kernels live in their own translation units compiled with -mavx2 / -mavx512* and are
// only called after the CPU (and OS) were checked to support them.
#pragma once
#include <string>

namespace aum {

enum class SimdLevel : int { portable = 0, avx2 = 1, avx512 = 2 };

// Best level this build and this CPU support.
SimdLevel best_simd_level();
// Level in use: the best one, or AUM_SCORE_SIMD=portable|avx2|avx512 from the environment
// (read once; clamped to what is supported), or what set_simd_level chose.
SimdLevel simd_level();
// Force a level (tests, benchmarks); returns the level actually set (clamped to the best).
SimdLevel set_simd_level(SimdLevel level);

const char* simd_level_name(SimdLevel level);
// "portable", "avx2", "avx512" -> level; throws std::invalid_argument otherwise.
SimdLevel parse_simd_level(const std::string& name);

}  // namespace aum
