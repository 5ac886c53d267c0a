// numpy arrays -> core views. Every shape, dtype and stride is checked here, with the GIL held,
// before the core touches the memory.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "aum/margin.hpp"

namespace py = pybind11;

using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// float16/32/64 arrays; bfloat16 as raw uint16 bit patterns with `bfloat16` set, or as an
// ml_dtypes.bfloat16 array (a 2-byte numpy dtype named "bfloat16").
inline aum::LogitBlock logit_block(const py::array& logits, bool bfloat16 = false) {
  if (logits.ndim() != 2)
    throw std::invalid_argument("logits must be 2-D (rows x classes), got " +
                                std::to_string(logits.ndim()) + "-D");
  const auto dtype = logits.dtype();
  const char kind = dtype.kind();
  const auto item = dtype.itemsize();
  aum::LogitBlock block;
  if (bfloat16) {
    if (!(kind == 'u' && item == 2))
      throw std::invalid_argument("bfloat16 logits must be given as uint16 bit patterns");
    block.dtype = aum::DType::bfloat16;
  } else if (item == 2 && kind == 'V' && py::str(dtype.attr("name")).cast<std::string>() == "bfloat16") {
    block.dtype = aum::DType::bfloat16;
  } else if (kind == 'f' && item == 2) {
    block.dtype = aum::DType::float16;
  } else if (kind == 'f' && item == 4) {
    block.dtype = aum::DType::float32;
  } else if (kind == 'f' && item == 8) {
    block.dtype = aum::DType::float64;
  } else {
    throw std::invalid_argument("logits must be float16, float32, float64 or bfloat16");
  }
  block.rows = logits.shape(0);
  block.classes = logits.shape(1);
  block.data = logits.data();
  if (block.rows == 0) {  // numpy gives empty arrays arbitrary strides
    block.row_stride = block.classes;
    return block;
  }
  if (block.rows > 1 && (logits.strides(0) < 0 || logits.strides(0) % item != 0))
    throw std::invalid_argument("logits rows must be evenly spaced in memory");
  if (block.classes > 1 && logits.strides(1) != item)
    throw std::invalid_argument("logits must be contiguous within a row");
  block.row_stride = block.rows > 1 ? logits.strides(0) / item : block.classes;
  if (block.rows > 1 && block.row_stride < block.classes)
    throw std::invalid_argument("logits rows overlap in memory");
  return block;
}

inline void check_length(const py::array& a, int64_t rows, const char* name) {
  if (a.ndim() != 1 || a.shape(0) != rows)
    throw std::invalid_argument(std::string(name) + " must be 1-D with one entry per row (" +
                                std::to_string(rows) + "), got shape of " +
                                std::to_string(a.ndim() == 1 ? a.shape(0) : -1) + " entries");
}
