// HER kernels; contracts and costs in her_kernels.hpp. Compiled with -ffp-contract=off (see
// CMakeLists.txt): a fused multiply-add would change the float32 distance that the reward must
// reproduce bit for bit.
#include "her_kernels.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "errors.hpp"
#include "prefetch.hpp"

#ifndef BHER_PREFETCH_AHEAD
#define BHER_PREFETCH_AHEAD 16
#endif

namespace bher {
namespace {

void check_index(const char* fn, const char* name, std::int64_t k, std::int64_t v,
                 std::int64_t lo, std::int64_t hi_incl, const char* range) {
  if (v < lo || v > hi_incl) {
    fail(std::string(fn) + ": " + name + "[" + std::to_string(k) + "] = " + std::to_string(v) +
         " is out of range " + range);
  }
}

// numpy's pairwise summation of float32 (FLOAT_pairwise_sum in loops_utils.h.src), which is what
// np.add.reduce uses along a contiguous axis; the reduction's initial 0 does not change a sum of
// squares.
float pairwise_sum_f32(const float* a, std::int64_t n) {
  if (n < 8) {
    float res = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    std::int64_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum_f32(a, n2) + pairwise_sum_f32(a + n2, n - n2);
}

constexpr std::int64_t kPrefetchAhead = BHER_PREFETCH_AHEAD;

template <typename R>
BHER_ALWAYS_INLINE void prefetch_rows(const R& r, std::size_t bo, std::size_t bg, std::size_t bu) {
  prefetch_span(r.o, bo);
  prefetch_span(r.o_2, bo);
  prefetch_span(r.ag, bg);
  prefetch_span(r.ag_2, bg);
  prefetch_span(r.goal, bg);
  prefetch_span(r.u, bu);
}

}  // namespace

void her_future_t(View1D<std::int64_t> t, View1D<double> u, std::int64_t B, std::int64_t T,
                  std::int64_t* out) {
  if (T < 1) fail("her_future_t: T must be >= 1, got " + std::to_string(T));
  for (std::int64_t i = 0; i < B; ++i) {
    check_index("her_future_t", "t", i, t[i], 0, T - 1, "[0, T)");
    const double ui = u[i];
    if (!(ui >= 0.0 && ui < 1.0)) {
      fail("her_future_t: u[" + std::to_string(i) + "] = " + fmt(ui) + " is outside [0, 1)");
    }
  }
  for (std::int64_t i = 0; i < B; ++i) {
    const std::int64_t ti = t[i];
    out[i] = ti + 1 + static_cast<std::int64_t>(std::floor(u[i] * static_cast<double>(T - ti)));
  }
}

namespace {

void check_future_args(const char* fn, std::int64_t T, double future_p) {
  if (T < 1) fail(std::string(fn) + ": T must be >= 1, got " + std::to_string(T));
  if (!(future_p >= 0.0 && future_p <= 1.0)) {
    fail(std::string(fn) + ": future_p = " + fmt(future_p) + " is outside [0, 1]");
  }
}

void check_unit(const char* fn, int row, std::int64_t i, double v) {
  if (!(v >= 0.0 && v < 1.0)) {
    fail(std::string(fn) + ": u[" + std::to_string(row) + ", " + std::to_string(i) + "] = " +
         fmt(v) + " is outside [0, 1)");
  }
}

// One row of the `future` draw from its slot and two uniforms.
inline void future_row(std::int64_t slot, double u_relabel, double u_future, std::int64_t T,
                       double future_p, std::int64_t& e, std::int64_t& s, std::int64_t& goal_t) {
  e = slot / T;
  s = slot - e * T;
  goal_t = u_relabel < future_p
               ? s + 1 + static_cast<std::int64_t>(std::floor(u_future * static_cast<double>(T - s)))
               : -1;
}

}  // namespace

void her_future_indices(View1D<std::int64_t> slots, View1D<double> u_relabel,
                        View1D<double> u_future, std::int64_t B, std::int64_t T, double future_p,
                        std::int64_t* ep_idx, std::int64_t* t, std::int64_t* goal_t) {
  const char* fn = "her_future_indices";
  check_future_args(fn, T, future_p);
  for (std::int64_t i = 0; i < B; ++i) {
    if (slots[i] < 0) {
      fail(std::string(fn) + ": slots[" + std::to_string(i) + "] = " + std::to_string(slots[i]) +
           " is negative");
    }
    check_unit(fn, 0, i, u_relabel[i]);
    check_unit(fn, 1, i, u_future[i]);
  }
  for (std::int64_t i = 0; i < B; ++i) {
    future_row(slots[i], u_relabel[i], u_future[i], T, future_p, ep_idx[i], t[i], goal_t[i]);
  }
}

void her_future_sample(View1D<double> u_relabel, View1D<double> u_future, View1D<double> u_slot,
                       std::int64_t B, std::int64_t n_slots, std::int64_t T, double future_p,
                       std::int64_t* ep_idx, std::int64_t* t, std::int64_t* goal_t) {
  const char* fn = "her_future_sample";
  check_future_args(fn, T, future_p);
  if (n_slots < 1) fail(std::string(fn) + ": n_slots must be >= 1, got " + std::to_string(n_slots));
  for (std::int64_t i = 0; i < B; ++i) {
    check_unit(fn, 0, i, u_relabel[i]);
    check_unit(fn, 1, i, u_future[i]);
    check_unit(fn, 2, i, u_slot[i]);
  }
  const double n = static_cast<double>(n_slots);
  for (std::int64_t i = 0; i < B; ++i) {
    std::int64_t slot = static_cast<std::int64_t>(std::floor(u_slot[i] * n));
    // For u < 1, u * n rounds below n in round-to-nearest; the clamp guards other modes.
    if (slot > n_slots - 1) slot = n_slots - 1;
    future_row(slot, u_relabel[i], u_future[i], T, future_p, ep_idx[i], t[i], goal_t[i]);
  }
}

float numpy_l2_distance_f32(const float* a, const float* b, std::int64_t n) {
  float stack_buf[64];
  std::vector<float> heap_buf;
  float* sq = stack_buf;
  if (n > 64) {
    heap_buf.resize(static_cast<std::size_t>(n));
    sq = heap_buf.data();
  }
  for (std::int64_t k = 0; k < n; ++k) {
    const float d = a[k] - b[k];
    sq[k] = d * d;
  }
  return std::sqrt(pairwise_sum_f32(sq, n));
}

float sparse_reward(const float* ag2, const float* goal, std::int64_t n, const RewardSpec& spec) {
  const float d = numpy_l2_distance_f32(ag2, goal, n);
  bool above;
  if (spec.compare_in_double) {
    above = static_cast<double>(d) > spec.threshold;
  } else {
    // Round the threshold to float32 the way numpy casts a weak Python float; beyond the float32
    // range it saturates to +-inf.
    const double th = spec.threshold;
    constexpr double kMax = static_cast<double>(std::numeric_limits<float>::max());
    const float th32 = th > kMax    ? std::numeric_limits<float>::infinity()
                       : th < -kMax ? -std::numeric_limits<float>::infinity()
                                    : static_cast<float>(th);
    above = d > th32;
  }
  return -static_cast<float>(above);  // -1.0f or -0.0f, as numpy's negation gives
}

void gather_transitions(const EpisodeArrays& a, View1D<std::int64_t> ep_idx,
                        View1D<std::int64_t> t, View1D<std::int64_t> goal_ep,
                        View1D<std::int64_t> goal_t, std::int64_t B, const RewardSpec* reward,
                        const BatchOut& out) {
  const char* fn = "gather_transitions";
  for (std::int64_t i = 0; i < B; ++i) {
    check_index(fn, "ep_idx", i, ep_idx[i], 0, a.N - 1, "[0, N)");
    check_index(fn, "t", i, t[i], 0, a.T - 1, "[0, T)");
    const std::int64_t gt = goal_t[i];
    check_index(fn, "goal_t", i, gt, -1, a.T, "[-1, T] (-1 keeps the stored goal)");
    if (gt >= 0) check_index(fn, "goal_ep", i, goal_ep[i], 0, a.N - 1, "[0, N)");
  }
  const std::size_t bo = sizeof(float) * static_cast<std::size_t>(a.dim_o);
  const std::size_t bg = sizeof(float) * static_cast<std::size_t>(a.dim_g);
  const std::size_t bu = sizeof(float) * static_cast<std::size_t>(a.dim_u);
  struct Rows {
    const float *o, *o_2, *ag, *ag_2, *goal, *u;
  };
  auto rows = [&](std::int64_t i) {
    const std::int64_t e = ep_idx[i];
    const std::int64_t s = t[i];
    const std::int64_t gt = goal_t[i];
    return Rows{a.o.at(e, s),  a.o.at(e, s + 1),
                a.ag.at(e, s), a.ag.at(e, s + 1),
                gt >= 0 ? a.ag.at(goal_ep[i], gt) : a.g.at(e, s), a.u.at(e, s)};
  };
  // The rows are scattered over a large buffer: prefetch kPrefetchAhead rows ahead so that the
  // cache misses of several rows overlap.
  for (std::int64_t i = 0; i < B && i < kPrefetchAhead; ++i) prefetch_rows(rows(i), bo, bg, bu);
  for (std::int64_t i = 0; i < B; ++i) {
    if (i + kPrefetchAhead < B) prefetch_rows(rows(i + kPrefetchAhead), bo, bg, bu);
    const Rows src = rows(i);
    float* ag2_dst = out.ag_2 + i * a.dim_g;
    float* g_dst = out.g + i * a.dim_g;
    std::memcpy(out.o + i * a.dim_o, src.o, bo);
    std::memcpy(out.o_2 + i * a.dim_o, src.o_2, bo);
    std::memcpy(out.ag + i * a.dim_g, src.ag, bg);
    std::memcpy(ag2_dst, src.ag_2, bg);
    std::memcpy(g_dst, src.goal, bg);
    std::memcpy(out.u + i * a.dim_u, src.u, bu);
    out.slot[i] = ep_idx[i] * a.T + t[i];
    if (reward != nullptr) out.r[i] = sparse_reward(ag2_dst, g_dst, a.dim_g, *reward);
  }
}

}  // namespace bher
