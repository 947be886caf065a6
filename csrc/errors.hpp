// Error helpers shared by the kernels: fail() throws std::invalid_argument (-> ValueError).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace bher {

[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// Shortest %g text that reads back as v (same as sampling_kernels._fmt).
inline std::string fmt(double v) {
  char buf[32];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v || v != v) break;
  }
  return buf;
}

}  // namespace bher
