// OpenMP is optional: without it everything runs on one thread.
#pragma once
#include <cstdint>
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

// Inside a parallel region: this thread's number and the team's size (0 and 1 without OpenMP).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Inside a parallel region: this thread's contiguous share [begin, end) of n rows (shares in
// thread order cover [0, n) in row order).
struct RowRange {
  int64_t begin, end;
};
inline RowRange my_rows(int64_t n) {
  const int64_t t = thread_index(), team = team_size();
  return {n * t / team, n * (t + 1) / team};
}

// 0 or less means "all the threads OpenMP would use"; without OpenMP always 1.
inline int resolve_threads(int threads) {
  if (!has_openmp()) return 1;
  return threads > 0 ? threads : max_threads();
}

}  // namespace aum
