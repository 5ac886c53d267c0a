#include "aum/memory.hpp"

#include <cstdlib>
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

void free_lines(void* p, size_t bytes) {
#if defined(__linux__)
  if (bytes >= kHugeFrom) return std::free(p);
#endif
  ::operator delete(p, std::align_val_t{64});
}

}  // namespace aum
