// The margin kernel: margin = z[y] - max_{j != y} z[j] for each row of a block of logits.
#pragma once
#include <cstdint>

namespace aum {

enum class DType : uint8_t { float16, float32, float64 };

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

// Margin of every row into margins[row]. Arithmetic is float32 for float16/float32 logits (as the
// reference library computes it on float32 tensors) and float64 for float64. finite[row] is 0
// where the row holds a NaN or an infinity (its margin is then meaningless), else 1.
// Labels must already be checked. Parallel over rows with `threads` threads (0: all).
void compute_margins(const LogitBlock& block, const int64_t* labels, double* margins,
                     uint8_t* finite, int threads);

}  // namespace aum
