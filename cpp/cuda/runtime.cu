// What the CUDA runtime sees, for aum_score.cuda.cuda_status(): never throws, so a machine
// without a driver or a GPU gets a reason instead of a crash.
#include "launch.cuh"

#ifndef AUM_CUDA_ARCHITECTURES
#define AUM_CUDA_ARCHITECTURES "unknown"
#endif

namespace aum_cuda {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  cudaDriverGetVersion(&info.driver_version);
  cudaRuntimeGetVersion(&info.runtime_version);
  const cudaError_t status = cudaGetDeviceCount(&info.devices);
  if (status != cudaSuccess) {
    info.devices = 0;
    info.error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return info;
  }
  for (int d = 0; d < info.devices; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess) {
      info.names.emplace_back(prop.name);
      info.compute_capability.push_back(prop.major * 10 + prop.minor);
    } else {
      info.names.emplace_back("?");
      info.compute_capability.push_back(0);
    }
  }
  if (info.devices == 0) info.error = "no CUDA device";
  return info;
}

std::string built_architectures() { return AUM_CUDA_ARCHITECTURES; }

int pointer_device(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)
    return -1;
  return attributes.device;
}

int get_device() {
  int device = 0;
  host::check(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

void set_device(int device) { host::check(cudaSetDevice(device), "cudaSetDevice"); }

void* device_alloc(size_t bytes, Stream stream) {
  void* p = nullptr;
  host::check(cudaMallocAsync(&p, bytes ? bytes : 1, host::as_stream(stream)), "cudaMallocAsync");
  return p;
}

void device_free(void* p, Stream stream) {
  if (p) host::check(cudaFreeAsync(p, host::as_stream(stream)), "cudaFreeAsync");
}

void copy_to_device(void* dst, const void* src, size_t bytes, Stream stream) {
  if (bytes)
    host::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, host::as_stream(stream)),
                "copy to device");
}

void copy_to_host(void* dst, const void* src, size_t bytes, Stream stream) {
  if (bytes)
    host::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, host::as_stream(stream)),
                "copy to host");
}

void synchronize(Stream stream) {
  host::check(cudaStreamSynchronize(host::as_stream(stream)), "cudaStreamSynchronize");
}

}  // namespace aum_cuda
