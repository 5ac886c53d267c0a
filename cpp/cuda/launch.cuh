// Host-side helpers of the .cu files: error checks, the device guard, grid sizes, and the
// dispatch from a runtime (dtype, classes) to a kernel instance <format, team size>.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "aum_cuda.hpp"
#include "row_scan.cuh"

namespace aum_cuda {
namespace host {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw Error(std::string(what) + ": " + cudaGetErrorName(status) + ": " +
                cudaGetErrorString(status));
}

inline cudaStream_t as_stream(Stream s) { return static_cast<cudaStream_t>(s); }

// Makes `device` current for a scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device >= 0 && device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

int multiprocessors();  // of the current device (cached)

// Team size for rows of `classes` logits: a few lanes per row for tiny rows (so that a warp
// reads several neighbouring rows at once), a warp per row up to a few thousand classes, a
// block per row beyond (few wide rows must still fill every multiprocessor).
constexpr int64_t kBlockPerRowFrom = 4096;
inline int team_for(int64_t classes) {
  if (classes <= 4) return 4;
  if (classes <= 8) return 8;
  if (classes <= 16) return 16;
  if (classes < kBlockPerRowFrom) return 32;
  return dev::kBlock;
}

// Blocks for `rows` rows with teams of G: one team per row, at most a few waves of blocks
// (the kernels loop over further rows).
inline unsigned grid_for(int64_t rows, int team) {
  const int64_t teams = team <= 32 ? dev::kBlock / team : 1;
  int64_t blocks = (rows + teams - 1) / teams;
  const int64_t cap = static_cast<int64_t>(multiprocessors()) * 16;
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

template <int G>
using Team = std::integral_constant<int, G>;

// f(Format{}, Team<G>{}) for the block's dtype and the team size its width calls for.
template <class F>
void dispatch(DType dtype, int64_t classes, F&& f) {
  auto with_format = [&](auto format) {
    switch (team_for(classes)) {
      case 4: f(format, Team<4>{}); break;
      case 8: f(format, Team<8>{}); break;
      case 16: f(format, Team<16>{}); break;
      case 32: f(format, Team<32>{}); break;
      default: f(format, Team<dev::kBlock>{}); break;
    }
  };
  switch (dtype) {
    case DType::float16: with_format(dev::F16{}); break;
    case DType::bfloat16: with_format(dev::BF16{}); break;
    case DType::float32: with_format(dev::F32{}); break;
    case DType::float64: with_format(dev::F64{}); break;
  }
}

inline void check_logits(const Logits& z) {
  if (z.rows < 0 || z.classes < 2 || (z.rows > 1 && z.row_stride < z.classes))
    throw Error("logits must be rows x classes with at least 2 classes and rows that do not "
                "overlap");
  if (z.classes > INT32_MAX) throw Error("too many classes");
}

}  // namespace host
}  // namespace aum_cuda
