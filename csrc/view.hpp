// Small helpers shared by the kernels: a strided read-only 1-D view. O(1) per element.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace bher {

// Read-only view of a 1-D numpy array of any byte stride (0 and negative included). Elements are
// read with memcpy, so no alignment is assumed.
template <typename T>
struct View1D {
  const char* ptr;
  std::ptrdiff_t stride;  // in bytes

  T operator[](std::int64_t i) const {
    T v;
    std::memcpy(&v, ptr + static_cast<std::ptrdiff_t>(i) * stride, sizeof(T));
    return v;
  }
};

}  // namespace bher
