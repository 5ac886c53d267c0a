// The margin kernel: margin = z[y] - max_{j != y} z[j] for each row of a block of logits.
#pragma once
#include <cstdint>

namespace aum {

// bfloat16 logits are raw uint16 bit patterns (the upper half of a float32); Arrow has no
// bfloat16 type, see the README's log format for how logs mark them.
enum class DType : uint8_t { float16, float32, float64, bfloat16 };

// A row-major block of logits: rows x classes, rows `row_stride` elements apart
// (>= classes; memory-mapped Arrow buffers and framework tensors may be padded or sliced).
struct LogitBlock {
  const void* data = nullptr;
  DType dtype = DType::float32;
  int64_t rows = 0;
  int64_t classes = 0;
  int64_t row_stride = 0;
};

// Checks the block's shape and that every label is in [0, classes); throws RowError / invalid_argument.
void check_block(const LogitBlock& block, const int64_t* labels);

// Margin of every row into margins[row]. Arithmetic is float32 for float16/bfloat16/float32
// logits (as the reference library computes it on float32 tensors) and float64 for float64.
// A row holding a NaN or an infinity gets a NaN margin (a row of finite logits never does: the
// difference of two finite values is finite or +-inf), and so does a row whose label is
// outside [0, classes) (the row is not read). Returns the number of NaN margins. Parallel over
// rows with `threads` threads (0: all) when the block is large enough to pay for it.
int64_t compute_margins(const LogitBlock& block, const int64_t* labels, double* margins,
                        int threads);

namespace detail {
// Margins of rows [begin, end); returns how many are NaN. One per instruction set.
using MarginRows = int64_t (*)(const LogitBlock&, const int64_t* labels, int64_t begin,
                               int64_t end, double* margins);
MarginRows margin_rows_portable(DType dtype);
MarginRows margin_rows_avx2(DType dtype);    // only where AUM_HAVE_AVX2
MarginRows margin_rows_avx512(DType dtype);  // only where AUM_HAVE_AVX512
}  // namespace detail

}  // namespace aum
