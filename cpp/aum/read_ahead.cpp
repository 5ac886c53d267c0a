#include "aum/read_ahead.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define AUM_HAVE_MADVISE 1
#endif

namespace aum {
namespace {
size_t page_size() {
#ifdef AUM_HAVE_MADVISE
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
#else
  return 4096;
#endif
}
}  // namespace

bool resident(const void* data, size_t bytes) {
#if defined(__linux__)
  // A sample of 4 pages, spread over the range: asking about every page walks the page cache
  // for each (as slow as the reads it would save on a warm cache); a cold file shows at once.
  if (data == nullptr || bytes == 0) return true;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  constexpr int kSamples = 4;
  for (int i = 0; i < kSamples; ++i) {
    const uintptr_t at = begin + static_cast<uintptr_t>(bytes - 1) * i / (kSamples - 1);
    unsigned char page = 0;
    const uintptr_t start = at & ~(uintptr_t{page_size()} - 1);
    if (mincore(reinterpret_cast<void*>(start), 1, &page) != 0 || !(page & 1)) return false;
  }
  return true;
#else
  (void)data;
  (void)bytes;
  return false;
#endif
}

void will_need(const void* data, size_t bytes) {
#ifdef AUM_HAVE_MADVISE
  if (data == nullptr || bytes == 0) return;
  const uintptr_t start = reinterpret_cast<uintptr_t>(data) & ~(uintptr_t{page_size()} - 1);
  const size_t length = bytes + (reinterpret_cast<uintptr_t>(data) - start);
  madvise(reinterpret_cast<void*>(start), length, MADV_WILLNEED);  // failure is fine: a hint
#else
  (void)data;
  (void)bytes;
#endif
}

uint64_t touch_pages(const void* data, size_t bytes) {
  if (data == nullptr || bytes == 0) return 0;
  const auto* begin = static_cast<const volatile unsigned char*>(data);
  uint64_t folded = begin[bytes - 1];
  for (size_t offset = 0; offset < bytes; offset += page_size()) folded ^= begin[offset];
  return folded;
}

}  // namespace aum
