// Cache-line aligned storage for the large tables of per-sample state and for sorting.
#pragma once
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace aum {

// Large tables on huge pages where the OS allows (Linux: madvise), small ones on the heap.
void* allocate_lines(size_t bytes);
void free_lines(void* p, size_t bytes);
// The same, all zeros: large blocks straight from the OS (Linux: mmap), whose pages are zeroed
// when first touched, so nothing writes the zeros a second time; small ones zeroed here.
void* allocate_zeroed_lines(size_t bytes);
void free_zeroed_lines(void* p, size_t bytes);

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

// The same storage, but a vector's new elements are left as they are (T trivially copyable):
// for a table that is filled right after, on threads (a fill on one thread is the
// value-initialisation std::vector does otherwise).
template <class T>
struct RawLineAllocator : LineAllocator<T> {
  template <class U>
  struct rebind {
    using other = RawLineAllocator<U>;
  };
  RawLineAllocator() = default;
  template <class U>
  RawLineAllocator(const RawLineAllocator<U>&) {}
  template <class U>
  void construct(U*) noexcept {}
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <class T>
using RawLineVector = std::vector<T, RawLineAllocator<T>>;

// For tables whose empty entry is all zero bytes, made at their final size (never resized: a
// vector that grows within its capacity would not zero the new elements): `n` elements of
// zeroed storage, left as they are.
template <class T>
struct ZeroLineAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = ZeroLineAllocator<U>;
  };
  ZeroLineAllocator() = default;
  template <class U>
  ZeroLineAllocator(const ZeroLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_zeroed_lines(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_zeroed_lines(p, n * sizeof(T)); }
  template <class U>
  void construct(U*) noexcept {}
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const ZeroLineAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const ZeroLineAllocator<U>&) const { return false; }
};
template <class T>
using ZeroLineVector = std::vector<T, ZeroLineAllocator<T>>;

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
