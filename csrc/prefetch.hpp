// Cache-line prefetch hints shared by the kernels (no effect on results). O(1) per line.
//
// Always inlined on purpose: GCC 12 at -O2 and above removed every call to our small,
// non-inlined wrapper around __builtin_prefetch (its interprocedural passes treat the wrapper as
// free of side effects; -fdump-tree-all showed the prefetch gone after IPA inlining), so the
// gather kernel had no prefetch instruction left and ran ~1.8x slower on a 1e6-transition buffer.
// Inlined early, the builtin stays in the caller.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__GNUC__) || defined(__clang__)
#define BHER_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define BHER_ALWAYS_INLINE inline
#endif

namespace bher {

// Hints the line holding p into the cache, for reading (kWrite = 0) or writing (kWrite = 1).
template <int kWrite>
BHER_ALWAYS_INLINE void prefetch_line(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, kWrite, 3);
#else
  (void)p;
#endif
}

// Hints every line of [p, p + bytes) into the cache for reading.
BHER_ALWAYS_INLINE void prefetch_span(const void* p, std::size_t bytes) {
  const auto begin = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{63};
  const auto end = reinterpret_cast<std::uintptr_t>(p) + bytes;
  for (std::uintptr_t line = begin; line < end; line += 64) {
    prefetch_line<0>(reinterpret_cast<const void*>(line));
  }
}

}  // namespace bher
