// Post-hoc scoring on the GPU: batches of a log read from disk go through pinned host memory,
// two slots each with its own stream, so the host-to-device copy of one batch overlaps the
// kernel (and the CPU's work) of the other. Only the margins (8 bytes a row) come back.
#include <cstring>

#include "launch.cuh"

namespace aum_cuda {

struct HostMargins::Slot {
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  bool busy = false;
  size_t logit_bytes = 0, rows = 0;
  void* pinned_logits = nullptr;  // host, pinned
  int64_t* pinned_labels = nullptr;
  double* pinned_margins = nullptr;
  int64_t* pinned_bad = nullptr;
  void* device_logits = nullptr;
  int64_t* device_labels = nullptr;
  double* device_margins = nullptr;
  int64_t* device_bad = nullptr;

  void release() {
    if (stream) cudaStreamSynchronize(stream);
    cudaFreeHost(pinned_logits);
    cudaFreeHost(pinned_labels);
    cudaFreeHost(pinned_margins);
    cudaFreeHost(pinned_bad);
    cudaFree(device_logits);
    cudaFree(device_labels);
    cudaFree(device_margins);
    cudaFree(device_bad);
    if (done) cudaEventDestroy(done);
    if (stream) cudaStreamDestroy(stream);
  }

  void fit(size_t bytes, size_t n) {
    if (bytes > logit_bytes) {
      cudaFreeHost(pinned_logits);
      cudaFree(device_logits);
      pinned_logits = device_logits = nullptr;
      logit_bytes = 0;
      const size_t size = bytes + bytes / 4;  // batches vary a little: room to spare
      host::check(cudaMallocHost(&pinned_logits, size), "cudaMallocHost");
      host::check(cudaMalloc(&device_logits, size), "cudaMalloc");
      logit_bytes = size;
    }
    if (n > rows) {
      cudaFreeHost(pinned_labels);
      cudaFreeHost(pinned_margins);
      cudaFree(device_labels);
      cudaFree(device_margins);
      pinned_labels = nullptr;
      pinned_margins = nullptr;
      device_labels = nullptr;
      device_margins = nullptr;
      rows = 0;
      const size_t size = n + n / 4;
      host::check(cudaMallocHost(reinterpret_cast<void**>(&pinned_labels), 8 * size), "pin");
      host::check(cudaMallocHost(reinterpret_cast<void**>(&pinned_margins), 8 * size), "pin");
      host::check(cudaMalloc(reinterpret_cast<void**>(&device_labels), 8 * size), "alloc");
      host::check(cudaMalloc(reinterpret_cast<void**>(&device_margins), 8 * size), "alloc");
      rows = size;
    }
  }
};

HostMargins::HostMargins(int device) : device_(device) {
  host::DeviceGuard guard(device_);
  for (auto*& slot : slots_) {
    slot = new Slot();
    try {
      host::check(cudaStreamCreateWithFlags(&slot->stream, cudaStreamNonBlocking), "stream");
      host::check(cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming), "event");
      host::check(cudaMallocHost(reinterpret_cast<void**>(&slot->pinned_bad), 8), "pin");
      host::check(cudaMalloc(reinterpret_cast<void**>(&slot->device_bad), 8), "alloc");
    } catch (...) {
      for (auto*& s : slots_)
        if (s) {
          s->release();
          delete s;
          s = nullptr;
        }
      throw;
    }
  }
}

HostMargins::~HostMargins() {
  cudaSetDevice(device_);
  for (auto* slot : slots_)
    if (slot) {
      slot->release();
      delete slot;
    }
}

static size_t element_size(DType dtype) {
  return dtype == DType::float64 ? 8 : dtype == DType::float32 ? 4 : 2;
}

void HostMargins::submit(int index, const Logits& z, const int64_t* labels) {
  host::check_logits(z);
  if (index < 0 || index > 1) throw Error("slot must be 0 or 1");
  host::DeviceGuard guard(device_);
  Slot& slot = *slots_[index];
  if (slot.busy) host::check(cudaEventSynchronize(slot.done), "cudaEventSynchronize");
  const size_t item = element_size(z.dtype);
  const size_t row_bytes = item * static_cast<size_t>(z.classes);
  const size_t rows = static_cast<size_t>(z.rows);
  slot.fit(row_bytes * (rows ? rows : 1), rows ? rows : 1);
  // Into pinned memory, packed (rows `classes` apart), so the copy to the device is one DMA.
  auto* dst = static_cast<char*>(slot.pinned_logits);
  const auto* src = static_cast<const char*>(z.data);
  if (z.row_stride == z.classes || rows <= 1) {
    std::memcpy(dst, src, row_bytes * rows);
  } else {
    const size_t stride = item * static_cast<size_t>(z.row_stride);
    for (size_t r = 0; r < rows; ++r) std::memcpy(dst + r * row_bytes, src + r * stride, row_bytes);
  }
  std::memcpy(slot.pinned_labels, labels, 8 * rows);
  *slot.pinned_bad = kNoBadRow;
  const cudaStream_t s = slot.stream;
  host::check(cudaMemcpyAsync(slot.device_logits, slot.pinned_logits, row_bytes * rows,
                              cudaMemcpyHostToDevice, s), "copy to device");
  host::check(cudaMemcpyAsync(slot.device_labels, slot.pinned_labels, 8 * rows,
                              cudaMemcpyHostToDevice, s), "copy to device");
  host::check(cudaMemcpyAsync(slot.device_bad, slot.pinned_bad, 8, cudaMemcpyHostToDevice, s),
              "copy to device");
  Logits packed = z;
  packed.data = slot.device_logits;
  packed.row_stride = z.classes;
  margins(packed, Ints{slot.device_labels, 8, 1}, slot.device_margins, slot.device_bad, s);
  host::check(cudaMemcpyAsync(slot.pinned_margins, slot.device_margins, 8 * rows,
                              cudaMemcpyDeviceToHost, s), "copy to host");
  host::check(cudaMemcpyAsync(slot.pinned_bad, slot.device_bad, 8, cudaMemcpyDeviceToHost, s),
              "copy to host");
  host::check(cudaEventRecord(slot.done, s), "cudaEventRecord");
  slot.busy = true;
}

const double* HostMargins::wait(int index, int64_t* bad_label_row) {
  if (index < 0 || index > 1) throw Error("slot must be 0 or 1");
  Slot& slot = *slots_[index];
  if (!slot.busy) throw Error("nothing was submitted to this slot");
  host::check(cudaEventSynchronize(slot.done), "cudaEventSynchronize");
  slot.busy = false;
  if (bad_label_row) *bad_label_row = *slot.pinned_bad;
  return slot.pinned_margins;
}

}  // namespace aum_cuda
