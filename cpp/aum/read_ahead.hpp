// Read-ahead for memory-mapped logs: the scorer asks the OS for the pages of the batches ahead
// of it, and a helper thread maps them, so neither disk reads nor page faults sit on the scoring
// thread's path.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aum {

// Whether [data, data + bytes) is in memory, judged from a sample of its pages (Linux:
// mincore). Elsewhere, or if the OS cannot tell, false: read-ahead then goes ahead, which is
// only wasted on a warm cache.
bool resident(const void* data, size_t bytes);

// Asks the OS to start reading [data, data + bytes) in the background (madvise WILLNEED where
// there is one; a hint: returns at once, and nothing happens where it is not supported).
void will_need(const void* data, size_t bytes);

// Reads one byte per page, so that every page is in memory and mapped when this returns.
// Returns the bytes read folded together (so the reads cannot be optimised away).
uint64_t touch_pages(const void* data, size_t bytes);

}  // namespace aum
