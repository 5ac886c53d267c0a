#include "aum/memory.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace aum {
namespace {
// Blocks from 4 MB up get 2 MB alignment and a huge-page hint: per-sample slots are touched in
// random order, and with 4 KB pages nearly every touch of a large table also misses the TLB;
// and a fresh block costs a fault per page on first touch (512 times fewer with 2 MB pages).
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeFrom = size_t{4} << 20;
}  // namespace

void* allocate_lines(size_t bytes) {
#if defined(__linux__)
  if (bytes >= kHugeFrom) {
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (p == nullptr) throw std::bad_alloc();
    madvise(p, rounded, MADV_HUGEPAGE);  // only a hint: fine if it fails
    return p;
  }
#endif
  return ::operator new(bytes, std::align_val_t{64});
}

void* allocate_zeroed_lines(size_t bytes) {
#if defined(__linux__)
  if (bytes >= kHugeFrom) {
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    // One huge page more, to align the block (mmap aligns to 4 KB only).
    void* raw = mmap(nullptr, rounded + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = start + rounded + kHugePage;
    if (end > aligned + rounded)
      munmap(reinterpret_cast<void*>(aligned + rounded), end - aligned - rounded);
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, rounded, MADV_HUGEPAGE);  // only a hint: fine if it fails
    return p;
  }
#endif
  void* p = ::operator new(bytes, std::align_val_t{64});
  std::memset(p, 0, bytes);
  return p;
}

void free_zeroed_lines(void* p, size_t bytes) {
#if defined(__linux__)
  if (bytes >= kHugeFrom) {
    munmap(p, (bytes + kHugePage - 1) / kHugePage * kHugePage);
    return;
  }
#endif
  ::operator delete(p, std::align_val_t{64});
}

void free_lines(void* p, size_t bytes) {
#if defined(__linux__)
  if (bytes >= kHugeFrom) return std::free(p);
#endif
  ::operator delete(p, std::align_val_t{64});
}

}  // namespace aum
