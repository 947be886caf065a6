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

// Levels with at most this many nodes find the nodes above a batch's leaves through a bitmap, so
// each is recomputed once and in address order (on a 1e6-leaf tree, 256 updates then recompute
// ~160 of the 245 level-4 nodes instead of all of them). update_levels keeps two bitmaps of 64
// words on the stack.
constexpr std::int64_t kBitmapNodes = 4096;
constexpr std::int64_t kBitmapWords = kBitmapNodes / 64;

// Bit b of the result is set iff byte b of x is nonzero: a child level's dirty bitmap word (64
// nodes) becomes the 8 bits of their 8 parents.
inline std::uint64_t nonzero_bytes(std::uint64_t x) {
  x |= x >> 4;
  x |= x >> 2;
  x |= x >> 1;
  x &= 0x0101010101010101ull;           // bit 8b: byte b was nonzero
  return (x * 0x0102040810204080ull) >> 56;  // gathers bits 0, 8, ..., 56 into the top byte
}

std::int64_t round_up8(std::int64_t n) { return (n + kFanout - 1) / kFanout * kFanout; }

// Cache hints (prefetch_line, prefetch.hpp; no effect on results). A query batch descends level
// by level, so the line an element needs in the next pass is known one pass ahead: prefetching
// it lets the misses of the whole batch overlap. set() prefetches only the leaves it validates:
// its other lines were read by the query that drew the batch. In a C++ driver A/B (256 updates
// of a 1e6 tree) hinting them one pass ahead cost ~0.5 us more than it saved, and
// hinting 8 or 16 elements ahead saved nothing.

// Eight consecutive doubles (one node's children), loaded once for both of their reductions.
// sum() adds them left to right, (((c0 + c1) + c2) + ... + c7): the operations of query()'s
// prefix scan, so a node's stored sum is exactly the last prefix. min() is exact in any order (no
// NaN is ever stored). With SSE2 the eight are four 16-byte loads whose lanes feed the same
// scalar additions as the plain loop. The gain is at level 1, where the sum and the min share
// those four loads (GCC 12 emits 4 loads there instead of 12); at the higher levels the sum and
// the min read different lines and GCC folds the adds' loads back in, so nothing changes there.
// 3-7% off an update of 256 leaves in same-machine A/B runs of set().
#if defined(__SSE2__)
struct Eight {
  __m128d v0, v1, v2, v3;
  explicit Eight(const double* c)
      : v0(_mm_loadu_pd(c)), v1(_mm_loadu_pd(c + 2)), v2(_mm_loadu_pd(c + 4)),
        v3(_mm_loadu_pd(c + 6)) {}
  double sum() const {
    __m128d s = _mm_add_sd(v0, _mm_unpackhi_pd(v0, v0));
    s = _mm_add_sd(s, v1);
    s = _mm_add_sd(s, _mm_unpackhi_pd(v1, v1));
    s = _mm_add_sd(s, v2);
    s = _mm_add_sd(s, _mm_unpackhi_pd(v2, v2));
    s = _mm_add_sd(s, v3);
    s = _mm_add_sd(s, _mm_unpackhi_pd(v3, v3));
    return _mm_cvtsd_f64(s);
  }
  double min() const {
    const __m128d m = _mm_min_pd(_mm_min_pd(v0, v1), _mm_min_pd(v2, v3));
    return _mm_cvtsd_f64(_mm_min_sd(m, _mm_unpackhi_pd(m, m)));
  }
};
#else
struct Eight {
  const double* c;
  explicit Eight(const double* first) : c(first) {}
  double sum() const {
    double s = c[0];
    for (int i = 1; i < kFanout; ++i) s += c[i];
    return s;
  }
  double min() const {
    double m = c[0];
    for (int i = 1; i < kFanout; ++i) m = std::min(m, c[i]);
    return m;
  }
};
#endif

// Minimum of c[i] over the i whose bit is set in `bits` (+inf if none).
inline double min8_where_set(const double* c, unsigned bits) {
  double m[kFanout];
  for (int i = 0; i < kFanout; ++i) m[i] = ((bits >> i) & 1u) ? c[i] : kInf;
  return Eight(m).min();
}

// Recomputes node j of a level >= 1 from its eight children in `below` (left-to-right sum,
// exact min; kLeaves: `below` is the leaf level, whose minima skip the leaves never set).
template <bool kLeaves>
BHER_ALWAYS_INLINE void recompute(const double* below, double* level,
                                  const std::uint8_t* set_bits, std::int64_t j) {
  const double* c = below + (kLeaves ? kFanout * j : 2 * kFanout * j);
  const Eight children(c);
  double* out = level + 2 * kFanout * (j >> kShift) + (j & (kFanout - 1));
  out[0] = children.sum();
  double lo;
  if (!kLeaves) {
    lo = Eight(c + kFanout).min();  // the group's minima follow its sums
  } else {
    const unsigned bits = set_bits[j];
    lo = bits == 0xFFu ? children.min() : min8_where_set(c, bits);
  }
  out[kFanout] = lo;
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

// Level l is recomputed after level l-1 is final, so repeated and shared ancestors need no care
// (a node recomputed twice gets the same value twice).
template <bool kLeaves>
SumTree::Dirty SumTree::update_level(int l, View1D<std::int64_t> idx, std::int64_t K, Dirty dirty,
                                     std::uint64_t* mark, const std::uint64_t* child_mark) {
  const double* below = sum_[l - 1].get();
  double* level = sum_[l].get();
  const std::uint8_t* bits = set_bits_.data();
  const std::int64_t n = nodes_[l];
  if (dirty == Dirty::kAll || (n > kBitmapNodes && n <= K)) {
    for (std::int64_t j = 0; j < n; ++j) recompute<kLeaves>(below, level, bits, j);
    return Dirty::kAll;
  }
  const int shift = kShift * l;
  if (n > kBitmapNodes) {  // K < n: one recompute per element, repeats included
    for (std::int64_t k = 0; k < K; ++k) recompute<kLeaves>(below, level, bits, idx[k] >> shift);
    return Dirty::kList;
  }
  const std::int64_t words = (n + 63) >> 6;
  std::fill(mark, mark + words, std::uint64_t{0});
  if (dirty == Dirty::kList) {
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t j = idx[k] >> shift;
      mark[j >> 6] |= std::uint64_t{1} << (j & 63);
    }
  } else {  // the parents of the child level's marked nodes
    const std::int64_t child_words = (nodes_[l - 1] + 63) >> 6;
    for (std::int64_t w = 0; w < child_words; ++w) {
      mark[w >> 3] |= nonzero_bytes(child_mark[w]) << (8 * (w & 7));
    }
  }
  for (std::int64_t w = 0; w < words; ++w) {
    for (std::uint64_t m = mark[w]; m != 0; m &= m - 1) {
      recompute<kLeaves>(below, level, bits, (w << 6) + __builtin_ctzll(m));
    }
  }
  return Dirty::kBitmap;
}

void SumTree::update_levels(View1D<std::int64_t> idx, std::int64_t K, Dirty dirty) {
  std::uint64_t marks[2][kBitmapWords];  // dirty bitmaps of the current and the previous level
  dirty = update_level<true>(1, idx, K, dirty, marks[1], nullptr);  // leaves: never a bitmap
  for (int l = 2; l <= levels_; ++l) {
    dirty = update_level<false>(l, idx, K, dirty, marks[l & 1], marks[(l & 1) ^ 1]);
  }
}

void SumTree::rebuild_all() { update_levels({nullptr, 0}, 0, Dirty::kAll); }

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
  for (std::int64_t k = 0; k < K; ++k) {  // in order: the last write to a leaf wins
    const std::int64_t i = idx[k];
    leaf[i] = p[k] + 0.0;  // -0.0 -> +0.0
    bits[i >> kShift] |= static_cast<std::uint8_t>(1u << (i & (kFanout - 1)));
  }
  update_levels(idx, K, Dirty::kList);
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
