// Sum tree implementation; the contract and the cost of each member are in sum_tree.hpp.
#include "sum_tree.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "errors.hpp"
#include "prefetch.hpp"

namespace bher {
namespace {

constexpr std::int64_t kFanout = 8;  // children per node: 8 doubles = one 64-byte cache line
constexpr int kShift = 3;            // log2(kFanout)
constexpr double kInf = std::numeric_limits<double>::infinity();

std::int64_t round_up8(std::int64_t n) { return (n + kFanout - 1) / kFanout * kFanout; }

// Cache hints for the batched passes below (no effect on results). The batch is processed level
// by level, so the line an element needs in the next pass is known one pass ahead: prefetching
// it lets the misses of the whole batch overlap instead of queueing behind each other
// (prefetch_line, prefetch.hpp).

// Minimum of 8 doubles (exact in any order; no NaN is ever stored), SSE2 where available.
inline double min8(const double* m) {
#if defined(__SSE2__)
  __m128d a = _mm_min_pd(_mm_loadu_pd(m), _mm_loadu_pd(m + 2));
  const __m128d b = _mm_min_pd(_mm_loadu_pd(m + 4), _mm_loadu_pd(m + 6));
  a = _mm_min_pd(a, b);
  return _mm_cvtsd_f64(_mm_min_sd(a, _mm_unpackhi_pd(a, a)));
#else
  const double a = std::min(std::min(m[0], m[1]), std::min(m[2], m[3]));
  const double b = std::min(std::min(m[4], m[5]), std::min(m[6], m[7]));
  return std::min(a, b);
#endif
}

// Minimum of c[i] over the i whose bit is set in `bits` (+inf if none).
inline double min8_where_set(const double* c, unsigned bits) {
  double m[kFanout];
  for (int i = 0; i < kFanout; ++i) m[i] = ((bits >> i) & 1u) ? c[i] : kInf;
  return min8(m);
}

}  // namespace

void SumTree::FreeDeleter::operator()(double* p) const { std::free(p); }

SumTree::SumTree(std::int64_t capacity) : capacity_(capacity), levels_(0) {
  if (capacity < 1) fail("SumTree: capacity must be >= 1, got " + std::to_string(capacity));
  if (capacity > (std::int64_t{1} << 40))
    fail("SumTree: capacity " + std::to_string(capacity) + " is too large (max 2^40)");
  nodes_.push_back(capacity);
  while (nodes_.size() == 1 || nodes_.back() > 1) {
    nodes_.push_back((nodes_.back() + kFanout - 1) / kFanout);
  }
  levels_ = static_cast<int>(nodes_.size()) - 1;
  for (std::size_t l = 0; l < nodes_.size(); ++l) {
    const std::int64_t pad = round_up8(nodes_[l]);
    padded_.push_back(pad);
    if (l == 0) {
      sum_.push_back(alloc(pad, 0.0));
    } else {  // groups of 8 nodes: [8 sums][8 minima], 128 bytes
      Buffer buf = alloc(2 * pad, 0.0);
      for (std::int64_t g = 0; g < pad / kFanout; ++g) {
        for (std::int64_t i = 0; i < kFanout; ++i) buf[2 * kFanout * g + kFanout + i] = kInf;
      }
      sum_.push_back(std::move(buf));
    }
  }
  set_bits_.assign(static_cast<std::size_t>(padded_[0] / kFanout), 0);
}

// 64-byte aligned (one node's children = one cache line). Levels of 2 MiB or more are 2 MiB
// aligned and, on Linux, advised to use transparent huge pages: random leaf accesses then miss
// the TLB far less often (numpy does the same for its large arrays).
SumTree::Buffer SumTree::alloc(std::int64_t n, double fill) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  std::size_t bytes = static_cast<std::size_t>(n) * sizeof(double);
  const bool huge = bytes >= kHuge;
  if (huge) bytes = (bytes + kHuge - 1) / kHuge * kHuge;
  void* raw = std::aligned_alloc(huge ? kHuge : 64, bytes);
  if (raw == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(raw, bytes, MADV_HUGEPAGE);  // advisory: failure is harmless
#endif
  Buffer buf(static_cast<double*>(raw));
  for (std::int64_t i = 0; i < n; ++i) buf[i] = fill;
  return buf;
}

// Recomputes node j of level l >= 1 from its eight children (left-to-right sum, exact min; at
// level 1 the min skips the leaves never set).
inline void SumTree::recompute_node(int level, std::int64_t j) {
  const double* c = children(level, j);
  double s = c[0];
  s += c[1];
  s += c[2];
  s += c[3];
  s += c[4];
  s += c[5];
  s += c[6];
  s += c[7];
  sum_[level][sum_pos(j)] = s;
  const double* m = c + kFanout;  // at levels >= 2 the group's minima follow its sums
  double lo;
  if (level != 1) {
    lo = min8(m);
  } else {
    const unsigned bits = set_bits_[static_cast<std::size_t>(j)];
    lo = bits == 0xFFu ? min8(c) : min8_where_set(c, bits);
  }
  sum_[level][sum_pos(j) + kFanout] = lo;
}

void SumTree::rebuild_all() {
  for (int l = 1; l <= levels_; ++l) {
    for (std::int64_t j = 0; j < nodes_[l]; ++j) recompute_node(l, j);
  }
}

void SumTree::set(View1D<std::int64_t> idx, View1D<double> p, std::int64_t K) {
  std::lock_guard<std::mutex> lock(mutex_);
  double* leaf = sum_[0].get();
  std::uint8_t* bits = set_bits_.data();
  for (std::int64_t k = 0; k < K; ++k) {
    const std::int64_t i = idx[k];
    if (i < 0 || i >= capacity_) {
      fail("SumTree.set: indices[" + std::to_string(k) + "] = " + std::to_string(i) +
           " is out of range [0, capacity=" + std::to_string(capacity_) + ")");
    }
    const double v = p[k];
    if (!std::isfinite(v) || v < 0.0) {
      fail("SumTree.set: priorities[" + std::to_string(k) + "] = " + fmt(v) +
           " is invalid (priorities must be finite and >= 0)");
    }
    prefetch_line<1>(leaf + i);
    prefetch_line<1>(bits + (i >> kShift));
  }
  const bool level1_whole = nodes_[1] <= K;
  for (std::int64_t k = 0; k < K; ++k) {  // in order: the last write to a leaf wins
    const std::int64_t i = idx[k];
    leaf[i] = p[k] + 0.0;  // -0.0 -> +0.0
    bits[i >> kShift] |= static_cast<std::uint8_t>(1u << (i & (kFanout - 1)));
    if (!level1_whole) {
      prefetch_line<1>(sum_[1].get() + sum_pos(i >> kShift));
      prefetch_line<1>(sum_[1].get() + sum_pos(i >> kShift) + kFanout);
    }
  }
  // Level by level: when level l is recomputed, level l-1 is final, so duplicates and shared
  // ancestors need no special care (a node recomputed twice gets the same value twice).
  for (int l = 1; l <= levels_; ++l) {
    if (nodes_[l] <= K) {
      for (std::int64_t j = 0; j < nodes_[l]; ++j) recompute_node(l, j);
    } else {
      const int shift = kShift * l;
      const bool ahead = l < levels_ && nodes_[l + 1] > K;
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t j = idx[k] >> shift;
        recompute_node(l, j);
        if (ahead) {
          prefetch_line<1>(sum_[l + 1].get() + sum_pos(j >> kShift));
          prefetch_line<1>(sum_[l + 1].get() + sum_pos(j >> kShift) + kFanout);
        }
      }
    }
  }
}

void SumTree::get(View1D<std::int64_t> idx, std::int64_t K, double* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (std::int64_t k = 0; k < K; ++k) {
    const std::int64_t i = idx[k];
    if (i < 0 || i >= capacity_) {
      fail("SumTree.get: indices[" + std::to_string(k) + "] = " + std::to_string(i) +
           " is out of range [0, capacity=" + std::to_string(capacity_) + ")");
    }
  }
  const double* leaf = sum_[0].get();
  for (std::int64_t k = 0; k < K; ++k) out[k] = leaf[idx[k]];
}

double SumTree::total() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sum_[levels_][0];
}

double SumTree::min() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sum_[levels_][kFanout];
}

void SumTree::check_query_preconditions(View1D<double> x, std::int64_t K) const {
  const double tot = sum_[levels_][0];
  if (!(tot > 0.0)) {
    fail("SumTree.query: total() is 0 (every priority is zero or none was set); nothing to "
         "sample");
  }
  if (!std::isfinite(tot)) fail("SumTree.query: total() overflowed to " + fmt(tot));
  for (std::int64_t k = 0; k < K; ++k) {
    const double v = x[k];
    if (!(v >= 0.0 && v < tot)) {
      fail("SumTree.query: targets[" + std::to_string(k) + "] = " + fmt(v) +
           " is outside [0, total()=" + fmt(tot) + ")");
    }
  }
}

void SumTree::query_locked(View1D<double> x, std::int64_t K, std::int64_t* out) const {
  std::vector<double> rest(static_cast<std::size_t>(K));
  for (std::int64_t k = 0; k < K; ++k) {
    rest[k] = x[k];
    out[k] = 0;
  }
  // All K descents advance one level at a time: the lookups of one level are independent, so
  // their cache misses overlap.
  for (int l = levels_; l >= 1; --l) {
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t node = out[k];
      const double* c = children(l, node);
      double target = rest[k];
      // prefix[i] = c[0] + ... + c[i-1], left to right (prefix[8] == the parent's stored sum).
      // The child is the smallest i with target < prefix[i+1]; prefixes never decrease, so it is
      // the count of prefixes <= target: no data-dependent branch.
      double prefix[kFanout + 1];
      prefix[0] = 0.0;
      for (int i = 0; i < kFanout; ++i) prefix[i + 1] = prefix[i] + c[i];
      int i = 0;
      for (int j = 1; j <= kFanout; ++j) i += !(target < prefix[j]);
      if (i < kFanout) {
        target -= prefix[i];
      } else {  // rounding pushed the target past this node's children: take the last positive
        i = kFanout - 1;
        while (i > 0 && !(c[i] > 0.0)) --i;
        target = std::nextafter(c[i], 0.0);
      }
      const std::int64_t child = node * kFanout + i;
      out[k] = child;
      rest[k] = target;
      if (l >= 2) prefetch_line<0>(children(l - 1, child));  // the next pass's line
    }
  }
}

void SumTree::query(View1D<double> x, std::int64_t K, std::int64_t* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  check_query_preconditions(x, K);
  query_locked(x, K, out);
}

void SumTree::query_weighted(View1D<double> x, std::int64_t K, double beta,
                             std::int64_t* out_idx, float* out_w) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!(std::isfinite(beta) && beta >= 0.0)) {
    fail("SumTree.query_weighted: beta = " + fmt(beta) + " must be finite and >= 0");
  }
  check_query_preconditions(x, K);
  const double lo = sum_[levels_][kFanout];
  if (!(lo > 0.0)) {
    fail("SumTree.query_weighted: min() is 0 (a leaf was set to priority 0), so the "
         "importance-sampling weights are undefined");
  }
  query_locked(x, K, out_idx);
  const double* leaf = sum_[0].get();
  // (p / lo)^-beta as exp(-beta * log(p / lo)): p >= lo > 0, so the ratio is >= 1 and the weight
  // in (0, 1]; the float64 error (~|beta log ratio| ulps) is far below float32 rounding.
  for (std::int64_t k = 0; k < K; ++k) {
    const double ratio = leaf[out_idx[k]] / lo;
    out_w[k] = beta == 0.0 ? 1.0f : static_cast<float>(std::exp(-beta * std::log(ratio)));
  }
}

void SumTree::export_state(double* values, std::uint8_t* is_set) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const double* leaf = sum_[0].get();
  for (std::int64_t i = 0; i < capacity_; ++i) {
    values[i] = leaf[i];
    is_set[i] = (set_bits_[static_cast<std::size_t>(i >> kShift)] >> (i & (kFanout - 1))) & 1u;
  }
}

void SumTree::import_state(const double* values, const std::uint8_t* is_set) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (std::int64_t i = 0; i < capacity_; ++i) {
    const double v = values[i];
    if (!std::isfinite(v) || v < 0.0 || (!is_set[i] && v != 0.0)) {
      fail("SumTree state: leaf " + std::to_string(i) + " has value " + fmt(v) +
           (is_set[i] ? " (must be finite and >= 0)" : " but is marked unset (must be 0)"));
    }
  }
  double* leaf = sum_[0].get();
  std::fill(set_bits_.begin(), set_bits_.end(), std::uint8_t{0});
  for (std::int64_t i = 0; i < capacity_; ++i) {
    leaf[i] = values[i] + 0.0;
    if (is_set[i]) set_bits_[static_cast<std::size_t>(i >> kShift)] |= 1u << (i & (kFanout - 1));
  }
  rebuild_all();
}

}  // namespace bher
