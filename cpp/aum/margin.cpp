#include "aum/margin.hpp"

#include <limits>
#include <stdexcept>
#include <string>

#include "aum/errors.hpp"
#include "aum/half.hpp"
#include "aum/parallel.hpp"

namespace aum {
namespace {

// Eight independent running maxima let the compiler keep several vector lanes busy.
constexpr int kLanes = 8;

// Max of z[begin, end) and a NaN/inf detector: v - v is 0 for finite v and NaN otherwise,
// so `check` stays 0 exactly when every value is finite.
template <typename Acc, typename T, typename Load>
inline Acc max_of(const T* z, int64_t begin, int64_t end, Load load, Acc& check) {
  Acc m[kLanes];
  Acc c[kLanes];
  for (int k = 0; k < kLanes; ++k) {
    m[k] = -std::numeric_limits<Acc>::infinity();
    c[k] = 0;
  }
  int64_t j = begin;
  for (; j + kLanes <= end; j += kLanes) {
    for (int k = 0; k < kLanes; ++k) {
      const Acc v = load(z[j + k]);
      m[k] = v > m[k] ? v : m[k];
      c[k] += v - v;
    }
  }
  for (; j < end; ++j) {
    const Acc v = load(z[j]);
    m[0] = v > m[0] ? v : m[0];
    c[0] += v - v;
  }
  Acc best = m[0];
  for (int k = 0; k < kLanes; ++k) {
    best = m[k] > best ? m[k] : best;
    check += c[k];
  }
  return best;
}

template <typename Acc, typename T, typename Load>
void margins_of(const LogitBlock& b, const int64_t* labels, double* margins, uint8_t* finite,
                int threads, Load load) {
  const T* base = static_cast<const T*>(b.data);
  const int64_t rows = b.rows, C = b.classes, stride = b.row_stride;
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * C > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = base + r * stride;
    const int64_t y = labels[r];
    Acc check = 0;
    const Acc target = load(z[y]);
    check += target - target;
    const Acc left = max_of<Acc>(z, 0, y, load, check);
    const Acc right = max_of<Acc>(z, y + 1, C, load, check);
    const Acc other = left > right ? left : right;
    // Subtract in Acc (float32 for float32 input), then widen: the reference's arithmetic.
    const Acc margin = target - other;
    margins[r] = static_cast<double>(margin);
    finite[r] = check == 0 ? 1 : 0;
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

void compute_margins(const LogitBlock& b, const int64_t* labels, double* margins,
                     uint8_t* finite, int threads) {
  threads = resolve_threads(threads);
  switch (b.dtype) {
    case DType::float16: {
      const float* table = half_table();
      margins_of<float, uint16_t>(b, labels, margins, finite, threads,
                                  [table](uint16_t h) { return table[h]; });
      break;
    }
    case DType::float32:
      margins_of<float, float>(b, labels, margins, finite, threads, [](float v) { return v; });
      break;
    case DType::float64:
      margins_of<double, double>(b, labels, margins, finite, threads,
                                 [](double v) { return v; });
      break;
  }
}

}  // namespace aum
