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

// Storage from allocate/release in which a vector's new elements are left as they are: its
// value-initialisation (a fill on one thread) does nothing. T trivially copyable.
template <class T, void* (*Allocate)(size_t), void (*Release)(void*, size_t)>
struct AsIsAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AsIsAllocator<U, Allocate, Release>;
  };
  AsIsAllocator() = default;
  template <class U>
  AsIsAllocator(const AsIsAllocator<U, Allocate, Release>&) {}
  T* allocate(size_t n) { return static_cast<T*>(Allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { Release(p, n * sizeof(T)); }
  template <class U>
  void construct(U*) noexcept {}
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const AsIsAllocator<U, Allocate, Release>&) const { return true; }
  template <class U>
  bool operator!=(const AsIsAllocator<U, Allocate, Release>&) const { return false; }
};

// For a table that is filled right after, on threads.
template <class T>
using RawLineVector = std::vector<T, AsIsAllocator<T, allocate_lines, free_lines>>;

// For a table whose empty entry is all zero bytes, made at its final size (never resized: a
// vector that grows within its capacity would not zero the new elements).
template <class T>
using ZeroLineVector = std::vector<T, AsIsAllocator<T, allocate_zeroed_lines, free_zeroed_lines>>;

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
