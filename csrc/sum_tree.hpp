// Sum tree over float64 priorities: the sampling structure behind prioritized replay.
//
// Layout. An 8-ary tree stored level by level. Level 0 holds the leaf values exactly as set
// (kept apart from every internal sum, so get() returns the stored bits); level l >= 1 holds, for
// node j, the float64 sum of level l-1 entries 8j .. 8j+7, added left to right
// (((c0 + c1) + c2) + ... + c7). Every level is padded with zeros to a multiple of 8 and starts
// on a 64-byte boundary, so the 8 children of a node are one cache line: an operation touches
// ceil(log8(capacity)) + 1 lines instead of log2(capacity). A min tree over the same nodes makes
// min() O(1): at levels l >= 1 each group of 8 sibling nodes is stored as [8 sums][8 minima]
// (128 bytes), so an update writes a node's sum and minimum in adjacent lines and a query still
// reads one line per level. "Leaf i was set" is one bit (byte j = leaves 8j .. 8j+7), so the min
// tree needs no copy of the leaves (never-set leaves count as +inf).
//
// Rounding. An update never adds a delta to a node: each ancestor is recomputed from its eight
// children. A node's value is therefore a fixed function of the current leaves (left-to-right
// sums of a depth-ceil(log8 n) tree), whatever the update history: relative error of total()
// <= ~7 * depth * 2^-53 (about 6e-15 for a million leaves), never drifting with the number of
// updates.
//
// Query. query(x) returns the smallest leaf i with x < (leaves 0..i summed), computed by
// descending the tree: at each node, scan the children left to right with a running prefix
// acc (starting at 0.0), take the first child c with x < acc + value(c) and go on with
// x - acc. A child whose value is 0 is never taken (x >= acc, so x < acc + 0 is false), hence
// neither is a zero leaf nor a padding leaf >= capacity. A node's stored sum is computed with
// the very operations of the prefix scan, so x < sum always finds a child; but x - acc can round
// up to the whole value of the child taken, and then no grandchild qualifies: the descent then
// takes the LAST child with a positive value and continues with the largest double below that
// child's value. So every answer is a leaf with a positive priority, < capacity.
//
// Thread safety: every public member takes an internal mutex; the Python bindings release the
// GIL around the loops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "view.hpp"

namespace bher {

class SumTree {
 public:
  // O(capacity) time and memory: about 10.5 bytes per leaf (the leaf double, 1/7 double each of
  // sums and minima, 1 bit); levels of 2 MiB or more ask for transparent huge pages. Throws
  // std::invalid_argument if capacity < 1 or > 2^40, std::bad_alloc if memory runs out.
  explicit SumTree(std::int64_t capacity);

  std::int64_t capacity() const { return capacity_; }

  // Writes priorities p[k] at leaves idx[k], k = 0..K-1; with duplicate indices in one call the
  // last write wins. All inputs are validated before anything is written (idx in [0, capacity),
  // p finite and >= 0; -0.0 is stored as +0.0), so a throwing call leaves the tree unchanged.
  // O(K log8 capacity): per level, K recomputes while the level has more than 4096 nodes (a
  // level with fewer nodes than K is rebuilt whole), and above that each node over the written
  // leaves is recomputed once, found through a bitmap (O(nodes / 64) to scan).
  void set(View1D<std::int64_t> idx, View1D<double> p, std::int64_t K);

  // out[k] = leaf value at idx[k], bit for bit as set (0.0 for leaves never set). O(K).
  void get(View1D<std::int64_t> idx, std::int64_t K, double* out) const;

  // Sum of all leaves, O(1). 0.0 for a fresh tree.
  double total() const;

  // Minimum over the leaves that have been set at least once (a leaf set to 0 counts), +inf when
  // none has been set. O(1).
  double min() const;

  // out[k] = smallest leaf i with x[k] < sum(leaves 0..i) (see "Query" above). Requires
  // total() > 0 and finite, and every x[k] in [0, total()) (NaN rejected); throws
  // std::invalid_argument otherwise, before writing out. O(K log8 capacity); the batch descends
  // the tree level by level so that the K lookups overlap their memory accesses.
  void query(View1D<double> x, std::int64_t K, std::int64_t* out) const;

  // query() plus importance-sampling weights for prioritized replay:
  // w[k] = (N * P(i_k))^-beta / max_j (N * P(j))^-beta = (p_{i_k} / min())^-beta, as float32
  // (the N and the total cancel; min() is over the leaves set, i.e. the stored transitions).
  // Requires beta finite and >= 0 and min() > 0. O(K log8 capacity).
  void query_weighted(View1D<double> x, std::int64_t K, double beta, std::int64_t* out_idx,
                      float* out_w) const;

  // Bulk state access for pickling / checkpoints. O(capacity).
  void export_state(double* values, std::uint8_t* is_set) const;
  void import_state(const double* values, const std::uint8_t* is_set);  // validates, rebuilds

 private:
  struct FreeDeleter {
    void operator()(double* p) const;
  };
  using Buffer = std::unique_ptr<double[], FreeDeleter>;

  static Buffer alloc(std::int64_t n, double fill);
  void rebuild_all();
  // The 8 child sums of node j at level l >= 1 (followed by their 8 minima when l >= 2).
  const double* children(int l, std::int64_t j) const {
    return sum_[l - 1].get() + (l == 1 ? 8 * j : 16 * j);
  }
  // Which nodes of a level need recomputing after leaves changed: node idx[k] >> 3l for each k,
  // repeats included (kList), the bits set in a bitmap (kBitmap), or every node (kAll).
  enum class Dirty { kList, kBitmap, kAll };
  // Recomputes the dirty nodes of level l (kLeaves: l == 1) given how level l-1's are described
  // (`dirty`, `child_mark`: level l-1's bitmap), and returns the description of level l's, which
  // are level l+1's children (`mark` receives level l's bitmap when the level is small enough).
  // O(K) for a list, O(nodes) for a whole level, O(nodes / 64 + dirty nodes) for a bitmap.
  template <bool kLeaves>
  Dirty update_level(int l, View1D<std::int64_t> idx, std::int64_t K, Dirty dirty,
                     std::uint64_t* mark, const std::uint64_t* child_mark);
  void update_levels(View1D<std::int64_t> idx, std::int64_t K, Dirty dirty);  // levels 1..top
  void query_locked(View1D<double> x, std::int64_t K, std::int64_t* out) const;
  void check_query_preconditions(View1D<double> x, std::int64_t K) const;

  std::int64_t capacity_;
  int levels_;                             // number of sum levels above the leaves (>= 1)
  std::vector<std::int64_t> nodes_;        // nodes_[l]: unpadded entry count at level l
  std::vector<std::int64_t> padded_;       // padded_[l]: allocated entries at level l
  std::vector<Buffer> sum_;                // sum_[0] = leaf values; sum_[l]: groups [8 sums][8 mins]
  std::vector<std::uint8_t> set_bits_;     // bit b of byte j: leaf 8j + b was set
  mutable std::mutex mutex_;
};

}  // namespace bher
