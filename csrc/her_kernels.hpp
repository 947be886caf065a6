// HER sampling kernels: the `future` goal time and the fused transition gather with the sparse
// distance reward. Pure C++ (no Python); the bindings check dtypes, shapes and contiguity and
// these functions check value ranges, throwing std::invalid_argument (-> ValueError) before any
// output is written. Deterministic: callers pass the random indices and uniforms in.
#pragma once

#include <cstdint>

#include "view.hpp"

namespace bher {

// out[i] = t[i] + 1 + floor(u[i] * double(T - t[i])), i = 0..B-1 (baselines `future`): with t in
// [0, T) and u in [0, 1) the result lies in [t + 1, T]. Same float64 operations as
// sampling_kernels.her_future_t_numpy, hence bit-identical. Requires T >= 1, t[i] in [0, T),
// u[i] in [0, 1) (NaN rejected). O(B).
void her_future_t(View1D<std::int64_t> t, View1D<double> u, std::int64_t B, std::int64_t T,
                  std::int64_t* out);

// Fused `future` index draw for a batch, from caller-drawn slots and uniforms (one call instead of
// several numpy ones): for i = 0..B-1,
//   ep_idx[i] = slots[i] / T, t[i] = slots[i] % T (slot = flat transition index ep * T + t),
//   goal_t[i] = t + 1 + floor(u_future[i] * double(T - t)) if u_relabel[i] < future_p, else -1.
// The goal episode is ep_idx itself. Uniform replay passes slots drawn in [0, n_episodes * T);
// prioritized replay passes the sum tree's answers. Same operations as
// sampling_kernels.her_future_indices_numpy. Requires T >= 1, slots >= 0, u_relabel and u_future
// in [0, 1), future_p in [0, 1]. O(B).
void her_future_indices(View1D<std::int64_t> slots, View1D<double> u_relabel,
                        View1D<double> u_future, std::int64_t B, std::int64_t T, double future_p,
                        std::int64_t* ep_idx, std::int64_t* t, std::int64_t* goal_t);

// One episode-major float32 field viewed as (N, steps, dim): element [e, s, k] is at
// data[e * ep_stride + s * step_stride + k] (strides in floats; the last axis is contiguous).
// Separate C-contiguous arrays and field views of one interleaved per-step record array (the
// replay buffer's layout, where o, ag, g and u of a step share cache lines) are both covered.
struct EpisodeField {
  const float* data;
  std::int64_t ep_stride, step_stride;

  const float* at(std::int64_t e, std::int64_t s) const {
    return data + e * ep_stride + s * step_stride;
  }
};

// The uniform-replay draw in one call from caller-drawn uniforms u of shape (3, B): for each i,
//   slot[i] = min(floor(u_slot[i] * double(n_slots)), n_slots - 1)   (uniform over [0, n_slots)
//   up to float64 granularity: relative bias <= n_slots * 2^-53), then exactly
//   her_future_indices on those slots. Replaces an rng.integers call (its fixed cost is ~8 us)
// by a third row of one rng.random call. Same operations as
// sampling_kernels.her_future_sample_numpy. Requires n_slots >= 1, T >= 1, all u in [0, 1),
// future_p in [0, 1]. O(B).
void her_future_sample(View1D<double> u_relabel, View1D<double> u_future, View1D<double> u_slot,
                       std::int64_t B, std::int64_t n_slots, std::int64_t T, double future_p,
                       std::int64_t* ep_idx, std::int64_t* t, std::int64_t* goal_t);

// Episode-major replay storage: o (N, T+1, dim_o), ag (N, T+1, dim_g), g (N, T, dim_g),
// u (N, T, dim_u).
struct EpisodeArrays {
  EpisodeField o, ag, g, u;
  std::int64_t N, T, dim_o, dim_g, dim_u;
};

// The sparse reward r = -(||ag_2 - g|| > threshold) of panda-gym 3.0.7 and Fetch, reproduced bit
// for bit from what numpy computes in `-np.array(np.linalg.norm(ag - g, axis=-1) > thr,
// dtype=np.float32)` on float32 inputs: diff = ag_2 - g and diff * diff in float32, the sum over
// the goal dimension in float32 in numpy's pairwise order (sequential below 8 terms, 8
// accumulators up to 128, halving above), sqrt in float32. The comparison follows NumPy 2
// promotion (NEP 50): a Python float threshold is weak, so it is rounded to float32 and compared
// in float32 (a distance equal to float32(0.05) is NOT above the threshold 0.05); a float64 numpy
// scalar is strong and the comparison runs in float64 (compare_in_double). The result is -1.0f or
// -0.0f (numpy negates a float32 zero). panda-gym 3.0.7 applies no rounding to the distance.
struct RewardSpec {
  double threshold;        // finite
  bool compare_in_double;  // false: compare float32(d) > float32(threshold)
};

// Float32 distance ||a - b|| exactly as np.linalg.norm(a - b, axis=-1) computes it. O(n).
float numpy_l2_distance_f32(const float* a, const float* b, std::int64_t n);

// Sparse reward of one (ag_2, g) pair under `spec` (see RewardSpec). O(n).
float sparse_reward(const float* ag2, const float* goal, std::int64_t n, const RewardSpec& spec);

// Output rows, C-contiguous, B rows each: o, o_2 (B, dim_o); ag, ag_2, g (B, dim_g); u (B, dim_u);
// slot (B,); r (B,) or nullptr when no reward is wanted.
struct BatchOut {
  float *o, *o_2, *ag, *ag_2, *g, *u;
  std::int64_t* slot;
  float* r;
};

// One fused pass over the batch. Row i is transition (e, s) = (ep_idx[i], t[i]):
//   o = o[e, s], o_2 = o[e, s+1], ag = ag[e, s], ag_2 = ag[e, s+1], u = u[e, s],
//   g = ag[goal_ep[i], goal_t[i]] if goal_t[i] >= 0 (HER relabel) else g[e, s],
//   slot = e * T + s, r = sparse_reward(ag_2, g) when `reward` is not null.
// Identical to sampling_kernels.gather_transitions_numpy on valid input. Requires ep_idx in
// [0, N), t in [0, T), goal_t in [-1, T] and goal_ep in [0, N) where goal_t >= 0; all ranges are
// checked before anything is written. O(B * (dim_o + dim_g + dim_u)).
void gather_transitions(const EpisodeArrays& a, View1D<std::int64_t> ep_idx,
                        View1D<std::int64_t> t, View1D<std::int64_t> goal_ep,
                        View1D<std::int64_t> goal_t, std::int64_t B, const RewardSpec* reward,
                        const BatchOut& out);

}  // namespace bher
