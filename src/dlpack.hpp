// The DLPack ABI (https://dmlc.github.io/dlpack/latest/c_api.html), only what a consumer needs:
// the structs' layout as the specification defines it (versions 0.x and 1.x), written here so
// the build needs no extra header.
#pragma once
#include <cstdint>

namespace dlpack {

struct Version {
  uint32_t major;
  uint32_t minor;
};

enum DeviceType : int32_t {  // a C enum: int-sized
  kCPU = 1,
  kCUDA = 2,
  kCUDAHost = 3,
  kROCM = 10,
  kCUDAManaged = 13,
};

struct Device {
  int32_t device_type;
  int32_t device_id;
};

enum TypeCode : uint8_t { kInt = 0, kUInt = 1, kFloat = 2, kOpaqueHandle = 3, kBfloat = 4,
                          kComplex = 5, kBool = 6 };

struct DataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct Tensor {
  void* data;
  Device device;
  int32_t ndim;
  DataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null: compact row-major
  uint64_t byte_offset;
};

// Capsule "dltensor" (renamed "used_dltensor" once consumed).
struct ManagedTensor {
  Tensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(ManagedTensor* self);
};

// Capsule "dltensor_versioned" (renamed "used_dltensor_versioned"), DLPack >= 1.0.
struct ManagedTensorVersioned {
  Version version;
  void* manager_ctx;
  void (*deleter)(ManagedTensorVersioned* self);
  uint64_t flags;  // bit 0: read only
  Tensor dl_tensor;
};

constexpr uint64_t kFlagReadOnly = 1;

}  // namespace dlpack
