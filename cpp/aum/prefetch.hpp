// A software prefetch the compiler keeps. GCC 12 silently drops some __builtin_prefetch calls
// whose address needs arithmetic (seen with a hashed address in a conditional), so on x86 the
// instruction is emitted directly. A prefetch never faults: any address is safe.
#pragma once

namespace aum {

inline void prefetch(const void* address) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm volatile("prefetcht0 (%0)" : : "r"(address));
#elif defined(__GNUC__)
  __builtin_prefetch(address);
#else
  (void)address;
#endif
}

// For data read once (a block of logits): fetched without taking a place in the outer caches,
// so that streaming it does not push out what is reused (the per-sample slots).
inline void prefetch_once(const void* address) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm volatile("prefetchnta (%0)" : : "r"(address));
#elif defined(__GNUC__)
  __builtin_prefetch(address, 0, 0);
#else
  (void)address;
#endif
}

}  // namespace aum
