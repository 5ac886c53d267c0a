// OpenMP is optional: without it everything runs on one thread.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

namespace aum {

inline bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// 0 or less means "all the threads OpenMP would use".
inline int resolve_threads(int threads) { return threads > 0 ? threads : max_threads(); }

}  // namespace aum
