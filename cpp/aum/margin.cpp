#include "aum/margin.hpp"

#include <stdexcept>
#include <string>

#include "aum/errors.hpp"
#include "aum/parallel.hpp"
#include "aum/simd.hpp"

namespace aum {
namespace {

detail::MarginRows kernel_for(DType dtype) {
  switch (simd_level()) {
#ifdef AUM_HAVE_AVX512
    case SimdLevel::avx512: return detail::margin_rows_avx512(dtype);
#endif
#ifdef AUM_HAVE_AVX2
    case SimdLevel::avx2: return detail::margin_rows_avx2(dtype);
#endif
    default: return detail::margin_rows_portable(dtype);
  }
}

}  // namespace

void check_block(const LogitBlock& b, const int64_t* labels) {
  if (b.rows < 0) throw std::invalid_argument("negative number of rows");
  if (b.classes < 2)
    throw std::invalid_argument("logits need at least 2 classes, got " +
                                std::to_string(b.classes));
  if (b.row_stride < b.classes)
    throw std::invalid_argument("row stride is smaller than the number of classes");
  if (b.rows > 0 && b.data == nullptr) throw std::invalid_argument("logits buffer is null");
  for (int64_t r = 0; r < b.rows; ++r) {
    if (labels[r] < 0 || labels[r] >= b.classes)
      throw RowError("label " + std::to_string(labels[r]) + " is outside [0, " +
                         std::to_string(b.classes) + ")",
                     r);
  }
}

int64_t compute_margins(const LogitBlock& b, const int64_t* labels, double* margins,
                        int threads) {
  const detail::MarginRows rows_of = kernel_for(b.dtype);
  threads = resolve_threads(threads);
  // A parallel region costs a few microseconds: worth it from about 64K values (small C is
  // counted as 16 values a row: a row costs more than its values there).
  const int64_t work = b.rows * (b.classes < 16 ? 16 : b.classes);
  if (threads <= 1 || work < (int64_t{1} << 16)) return rows_of(b, labels, 0, b.rows, margins);
  int64_t bad = 0;
#pragma omp parallel num_threads(threads) reduction(+ : bad)
  {
    const auto [begin, end] = my_rows(b.rows);
    bad += rows_of(b, labels, begin, end, margins);
  }
  return bad;
}

}  // namespace aum
