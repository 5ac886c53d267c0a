// Cache-line aligned storage for the large tables of per-sample state and for sorting.
#pragma once
#include <cstddef>
#include <vector>

namespace aum {

// Large tables on huge pages where the OS allows (Linux: madvise), small ones on the heap.
void* allocate_lines(size_t bytes);
void free_lines(void* p, size_t bytes);

// Cache-line aligned storage: slots and code-table lines never straddle two lines.
template <class T>
struct LineAllocator {
  using value_type = T;
  LineAllocator() = default;
  template <class U>
  LineAllocator(const LineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_lines(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_lines(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const LineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const LineAllocator<U>&) const { return false; }
};
template <class T>
using LineVector = std::vector<T, LineAllocator<T>>;

// n uninitialised T (trivially copyable) in such storage: scratch that is written before it is
// read, so it is not zeroed first as a vector's would be.
template <class T>
class LineBuffer {
 public:
  explicit LineBuffer(size_t n) : data_(static_cast<T*>(allocate_lines(n * sizeof(T)))), n_(n) {}
  ~LineBuffer() { free_lines(data_, n_ * sizeof(T)); }
  LineBuffer(const LineBuffer&) = delete;
  LineBuffer& operator=(const LineBuffer&) = delete;
  T* data() { return data_; }
  T& operator[](size_t i) { return data_[i]; }

 private:
  T* data_;
  size_t n_;
};

}  // namespace aum
