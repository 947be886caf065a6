// pybind11 module baselines_her._native: argument checking (dtype, shape, contiguity; with the
// GIL held), then the C++ kernels of her_kernels.hpp / sum_tree.hpp with the GIL released. Value
// ranges are checked by the kernels before they write anything. Every bad argument raises
// ValueError with a message naming the argument.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "her_kernels.hpp"
#include "sum_tree.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

template <typename T>
const char* dtype_name();
template <>
const char* dtype_name<std::int64_t>() { return "int64"; }
template <>
const char* dtype_name<double>() { return "float64"; }
template <>
const char* dtype_name<float>() { return "float32"; }

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    s += std::to_string(a.shape(d));
    if (a.ndim() == 1 || d + 1 < a.ndim()) s += a.ndim() == 1 ? "," : ", ";
  }
  return s + ")";
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] void bad(const std::string& fn, const std::string& msg) {
  throw py::value_error(fn + ": " + msg);
}

// A 1-D array of dtype T (any stride) as a view.
template <typename T>
bher::View1D<T> vec(const py::array& a, const char* fn, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a)) {
    bad(fn, std::string(name) + " must have dtype " + dtype_name<T>() + ", got " + dtype_str(a));
  }
  if (a.ndim() != 1) {
    bad(fn, std::string(name) + " must be 1-D, got shape " + shape_str(a));
  }
  return {static_cast<const char*>(a.data()), static_cast<std::ptrdiff_t>(a.strides(0))};
}

void same_len(const py::array& a, const char* na, const py::array& b, const char* nb,
              const char* fn) {
  if (a.shape(0) != b.shape(0)) {
    bad(fn, std::string(na) + " and " + nb + " must have the same length, got " +
                std::to_string(a.shape(0)) + " and " + std::to_string(b.shape(0)));
  }
}

// A 3-D float32 array (N, steps, dim) whose last axis is contiguous, as a strided field: a
// C-contiguous array or a field view of the replay buffer's interleaved record array.
bher::EpisodeField episodes(const py::array& a, const char* name) {
  const char* fn = "gather_transitions";
  if (!py::isinstance<py::array_t<float>>(a)) {
    bad(fn, std::string(name) + " must have dtype " + dtype_name<float>() + ", got " +
                dtype_str(a));
  }
  if (a.ndim() != 3) bad(fn, std::string(name) + " must be 3-D, got shape " + shape_str(a));
  constexpr py::ssize_t f = sizeof(float);
  if ((a.shape(2) > 1 && a.strides(2) != f) || a.strides(0) % f != 0 || a.strides(1) % f != 0) {
    bad(fn, std::string(name) + " must have a contiguous last axis and float-aligned strides, "
            "got strides (" + std::to_string(a.strides(0)) + ", " + std::to_string(a.strides(1)) +
            ", " + std::to_string(a.strides(2)) + ") bytes (use np.ascontiguousarray)");
  }
  return {static_cast<const float*>(a.data()), a.strides(0) / f, a.strides(1) / f};
}

void expect_shape(const py::array& a, const char* name, py::ssize_t d0, py::ssize_t d1,
                  const char* d1_name) {
  if (a.shape(0) != d0 || a.shape(1) != d1) {
    bad("gather_transitions",
        std::string(name) + " has shape " + shape_str(a) + ", expected (N=" +
            std::to_string(d0) + ", " + d1_name + "=" + std::to_string(d1) +
            ", dim) with N and T taken from u " + "(N, T, dim_u)");
  }
}

// Resolves the threshold into the comparison numpy would perform against float32 distances.
bool resolve_threshold(const py::object& thr, bher::RewardSpec& spec) {
  const char* fn = "gather_transitions";
  if (thr.is_none()) return false;
  PyObject* p = thr.ptr();
  if (PyFloat_CheckExact(p) || PyLong_CheckExact(p)) {
    spec.compare_in_double = false;  // weak Python scalar: numpy compares in float32
  } else {
    py::module_ np = py::module_::import("numpy");
    py::dtype rt;
    try {
      rt = np.attr("result_type")(np.attr("float32"), thr);
    } catch (py::error_already_set&) {
      bad(fn, "distance_threshold must be a real number, got " +
                  py::repr(thr).cast<std::string>());
    }
    if (rt.equal(py::dtype::of<float>())) {
      spec.compare_in_double = false;
    } else if (rt.equal(py::dtype::of<double>())) {
      spec.compare_in_double = true;  // a strong float64 scalar: numpy compares in float64
    } else {
      bad(fn, "distance_threshold of type " + py::str(py::type::of(thr)).cast<std::string>() +
                  " makes numpy compare the distances in " + py::str(rt).cast<std::string>() +
                  "; pass a Python float");
    }
  }
  try {
    spec.threshold = thr.cast<double>();
  } catch (py::cast_error&) {
    bad(fn, "distance_threshold must be a real number, got " + py::repr(thr).cast<std::string>());
  }
  if (std::isnan(spec.threshold)) bad(fn, "distance_threshold is NaN");
  return true;
}

py::array_t<std::int64_t> her_future_t_py(const py::array& t, const py::array& u,
                                          std::int64_t T) {
  const char* fn = "her_future_t";
  auto tv = vec<std::int64_t>(t, fn, "t");
  auto uv = vec<double>(u, fn, "u");
  same_len(t, "t", u, "u", fn);
  const py::ssize_t B = t.shape(0);
  py::array_t<std::int64_t> out(B);
  std::int64_t* o = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    bher::her_future_t(tv, uv, B, T, o);
  }
  return out;
}

// The rows of a float64 (R, B) uniform array as strided views; `rows_doc` names them.
std::vector<bher::View1D<double>> uniform_rows(const py::array& u, py::ssize_t R,
                                               const py::ssize_t* B, const char* fn,
                                               const char* rows_doc) {
  if (!py::isinstance<py::array_t<double>>(u)) {
    bad(fn, "u must have dtype float64, got " + dtype_str(u));
  }
  if (u.ndim() != 2 || u.shape(0) != R || (B != nullptr && u.shape(1) != *B)) {
    const std::string cols = B == nullptr ? "B" : "B=" + std::to_string(*B);
    bad(fn, "u must have shape (" + std::to_string(R) + ", " + cols + ") (" + rows_doc +
                "), got " + shape_str(u));
  }
  const char* base = static_cast<const char*>(u.data());
  std::vector<bher::View1D<double>> rows;
  for (py::ssize_t r = 0; r < R; ++r) {
    rows.push_back({base + r * u.strides(0), static_cast<std::ptrdiff_t>(u.strides(1))});
  }
  return rows;
}

py::tuple her_future_indices_py(const py::array& slots, const py::array& u, std::int64_t T,
                                double future_p) {
  const char* fn = "her_future_indices";
  auto sv = vec<std::int64_t>(slots, fn, "slots");
  const py::ssize_t B = slots.shape(0);
  const auto r = uniform_rows(u, 2, &B, fn, "row 0: relabel coin, row 1: future offset");
  py::array_t<std::int64_t> ep(B), t(B), goal_t(B);
  std::int64_t *ep_o = ep.mutable_data(), *t_o = t.mutable_data(), *g_o = goal_t.mutable_data();
  {
    py::gil_scoped_release nogil;
    bher::her_future_indices(sv, r[0], r[1], B, T, future_p, ep_o, t_o, g_o);
  }
  return py::make_tuple(ep, t, goal_t);
}

py::tuple her_future_sample_py(const py::array& u, std::int64_t n_slots, std::int64_t T,
                               double future_p) {
  const char* fn = "her_future_sample";
  const auto r =
      uniform_rows(u, 3, nullptr, fn, "row 0: relabel coin, row 1: future offset, row 2: slot");
  const py::ssize_t B = u.shape(1);
  py::array_t<std::int64_t> ep(B), t(B), goal_t(B);
  std::int64_t *ep_o = ep.mutable_data(), *t_o = t.mutable_data(), *g_o = goal_t.mutable_data();
  {
    py::gil_scoped_release nogil;
    bher::her_future_sample(r[0], r[1], r[2], B, n_slots, T, future_p, ep_o, t_o, g_o);
  }
  return py::make_tuple(ep, t, goal_t);
}

py::dict gather_py(const py::array& o, const py::array& ag, const py::array& g,
                   const py::array& u, const py::array& ep_idx, const py::array& t,
                   const py::array& goal_ep, const py::array& goal_t,
                   const py::object& distance_threshold) {
  const char* fn = "gather_transitions";
  bher::EpisodeArrays a{};
  a.u = episodes(u, "u");
  a.o = episodes(o, "o");
  a.ag = episodes(ag, "ag");
  a.g = episodes(g, "g");
  a.N = u.shape(0);
  a.T = u.shape(1);
  a.dim_u = u.shape(2);
  expect_shape(o, "o", a.N, a.T + 1, "T+1");
  expect_shape(ag, "ag", a.N, a.T + 1, "T+1");
  expect_shape(g, "g", a.N, a.T, "T");
  a.dim_o = o.shape(2);
  a.dim_g = ag.shape(2);
  if (g.shape(2) != a.dim_g) {
    bad(fn, "g has shape " + shape_str(g) + " but ag has shape " + shape_str(ag) +
                ": their last (goal) dimensions differ");
  }
  auto ev = vec<std::int64_t>(ep_idx, fn, "ep_idx");
  auto tv = vec<std::int64_t>(t, fn, "t");
  auto gev = vec<std::int64_t>(goal_ep, fn, "goal_ep");
  auto gtv = vec<std::int64_t>(goal_t, fn, "goal_t");
  same_len(ep_idx, "ep_idx", t, "t", fn);
  same_len(ep_idx, "ep_idx", goal_ep, "goal_ep", fn);
  same_len(ep_idx, "ep_idx", goal_t, "goal_t", fn);
  bher::RewardSpec spec{};
  const bool with_reward = resolve_threshold(distance_threshold, spec);

  const py::ssize_t B = ep_idx.shape(0);
  py::array_t<float> o_out({B, static_cast<py::ssize_t>(a.dim_o)});
  py::array_t<float> o2_out({B, static_cast<py::ssize_t>(a.dim_o)});
  py::array_t<float> ag_out({B, static_cast<py::ssize_t>(a.dim_g)});
  py::array_t<float> ag2_out({B, static_cast<py::ssize_t>(a.dim_g)});
  py::array_t<float> g_out({B, static_cast<py::ssize_t>(a.dim_g)});
  py::array_t<float> u_out({B, static_cast<py::ssize_t>(a.dim_u)});
  py::array_t<std::int64_t> slot_out(B);
  py::array_t<float> r_out(with_reward ? B : 0);
  bher::BatchOut out{o_out.mutable_data(),   o2_out.mutable_data(), ag_out.mutable_data(),
                     ag2_out.mutable_data(), g_out.mutable_data(),  u_out.mutable_data(),
                     slot_out.mutable_data(), with_reward ? r_out.mutable_data() : nullptr};
  {
    py::gil_scoped_release nogil;
    bher::gather_transitions(a, ev, tv, gev, gtv, B, with_reward ? &spec : nullptr, out);
  }
  py::dict batch;
  batch["o"] = o_out;
  batch["o_2"] = o2_out;
  batch["ag"] = ag_out;
  batch["ag_2"] = ag2_out;
  batch["g"] = g_out;
  batch["u"] = u_out;
  batch["slot"] = slot_out;
  if (with_reward) batch["r"] = r_out;
  return batch;
}

// Priorities may come as float32 (e.g. |TD error| from the learner): converted exactly.
py::array priorities_f64(const py::array& p) {
  if (py::isinstance<py::array_t<float>>(p)) return p.attr("astype")(py::dtype::of<double>());
  return p;
}

void tree_set(bher::SumTree& tree, const py::array& indices, const py::array& priorities) {
  const char* fn = "SumTree.set";
  py::array p = priorities_f64(priorities);
  auto iv = vec<std::int64_t>(indices, fn, "indices");
  auto pv = vec<double>(p, fn, "priorities");
  same_len(indices, "indices", p, "priorities", fn);
  const py::ssize_t K = indices.shape(0);
  py::gil_scoped_release nogil;
  tree.set(iv, pv, K);
}

py::array_t<double> tree_get(const bher::SumTree& tree, const py::array& indices) {
  auto iv = vec<std::int64_t>(indices, "SumTree.get", "indices");
  const py::ssize_t K = indices.shape(0);
  py::array_t<double> out(K);
  double* o = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    tree.get(iv, K, o);
  }
  return out;
}

py::array_t<std::int64_t> tree_query(const bher::SumTree& tree, const py::array& targets) {
  auto xv = vec<double>(targets, "SumTree.query", "targets");
  const py::ssize_t K = targets.shape(0);
  py::array_t<std::int64_t> out(K);
  std::int64_t* o = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    tree.query(xv, K, o);
  }
  return out;
}

py::tuple tree_query_weighted(const bher::SumTree& tree, const py::array& targets, double beta) {
  auto xv = vec<double>(targets, "SumTree.query_weighted", "targets");
  const py::ssize_t K = targets.shape(0);
  py::array_t<std::int64_t> idx(K);
  py::array_t<float> w(K);
  std::int64_t* io = idx.mutable_data();
  float* wo = w.mutable_data();
  {
    py::gil_scoped_release nogil;
    tree.query_weighted(xv, K, beta, io, wo);
  }
  return py::make_tuple(idx, w);
}

py::tuple tree_getstate(const bher::SumTree& tree) {
  const py::ssize_t n = tree.capacity();
  py::array_t<double> values(n);
  py::array_t<std::uint8_t> is_set(n);
  tree.export_state(values.mutable_data(), is_set.mutable_data());
  return py::make_tuple(tree.capacity(), values, is_set.attr("astype")("bool"));
}

std::unique_ptr<bher::SumTree> tree_from_state(const py::tuple& state) {
  const char* fn = "SumTree state";
  if (state.size() != 3) bad(fn, "expected (capacity, values, is_set)");
  const auto cap = state[0].cast<std::int64_t>();
  auto tree = std::make_unique<bher::SumTree>(cap);
  auto values = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(state[1]);
  auto is_set =
      py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(state[2]);
  if (!values || !is_set || values.ndim() != 1 || is_set.ndim() != 1 ||
      values.shape(0) != cap || is_set.shape(0) != cap) {
    bad(fn, "values and is_set must be 1-D arrays of length capacity=" + std::to_string(cap));
  }
  tree->import_state(values.data(), is_set.data());
  return tree;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() =
      "Compiled sampling kernel of baselines_her (C++17, csrc/). Deterministic given its "
      "inputs; validates dtypes, shapes and ranges (ValueError); releases the GIL in its loops. "
      "Numpy references: baselines_her.sampling_kernels.*_numpy and SumTreeNumpy.";

  m.def("her_future_t", &her_future_t_py, "t"_a, "u"_a, "T"_a,
        "her_future_t(t: int64[B], u: float64[B], T: int) -> int64[B]\n\n"
        "Baselines `future` goal time t + 1 + floor(u * (T - t)), in [t + 1, T]. Requires "
        "T >= 1, t in [0, T), u in [0, 1). O(B).");

  m.def("her_future_indices", &her_future_indices_py, "slots"_a, "u"_a, "T"_a, "future_p"_a,
        "her_future_indices(slots: int64[B], u: float64[2, B], T: int, future_p: float)"
        " -> (ep_idx, t, goal_t)\n\n"
        "Fused `future` draw: ep_idx, t = divmod(slots, T); goal_t = her_future_t(t, u[1], T) "
        "where u[0] < future_p, else -1 (goal episode = ep_idx). O(B).");

  m.def("her_future_sample", &her_future_sample_py, "u"_a, "n_slots"_a, "T"_a, "future_p"_a,
        "her_future_sample(u: float64[3, B], n_slots: int, T: int, future_p: float)"
        " -> (ep_idx, t, goal_t)\n\n"
        "Uniform-replay `future` draw from one (3, B) uniform array: slot = min(floor(u[2] * "
        "n_slots), n_slots - 1), then her_future_indices(slot, u[:2], T, future_p). O(B).");

  m.def("gather_transitions", &gather_py, "o"_a, "ag"_a, "g"_a, "u"_a, "ep_idx"_a, "t"_a,
        "goal_ep"_a, "goal_t"_a, "distance_threshold"_a = py::none(),
        "gather_transitions(o, ag, g, u, ep_idx, t, goal_ep, goal_t, distance_threshold=None)"
        " -> dict\n\n"
        "Fused batch gather, identical to sampling_kernels.gather_transitions_numpy: keys o, "
        "o_2, ag, ag_2, g, u (float32, (B, dim)), slot (int64 (B,)) and, with a threshold, r "
        "(float32 (B,)) = the panda-gym/Fetch sparse reward, bit for bit. o (N,T+1,do), "
        "ag (N,T+1,dg), g (N,T,dg), u (N,T,du): float32 with a contiguous last axis "
        "(C-contiguous arrays or field views of one interleaved record array). ep_idx, t, "
        "goal_ep, goal_t: int64 (B,); goal_t = -1 keeps the stored goal. O(B * row size).");

  py::class_<bher::SumTree>(m, "SumTree",
                            "Float64 sum tree (8-ary, one cache line per node) with a min tree. "
                            "Any capacity >= 1. O(log8 capacity) per element; see "
                            "csrc/sum_tree.hpp.")
      .def(py::init<std::int64_t>(), "capacity"_a)
      .def_property_readonly("capacity", &bher::SumTree::capacity)
      .def("__len__", &bher::SumTree::capacity)
      .def("set", &tree_set, "indices"_a, "priorities"_a,
           "set(indices: int64[K], priorities: float64[K] (float32 accepted)) -> None\n\n"
           "Last write wins for duplicate indices. ValueError (tree unchanged) on an index out "
           "of [0, capacity) or a NaN, infinite or negative priority. O(K log8 capacity).")
      .def("get", &tree_get, "indices"_a,
           "get(indices: int64[K]) -> float64[K]: the leaf values exactly as set. O(K).")
      .def("total", &bher::SumTree::total, "Sum of all priorities. O(1).")
      .def("min", &bher::SumTree::min,
           "Minimum over leaves ever set (a leaf set to 0 counts); inf if none. O(1).")
      .def("query", &tree_query, "targets"_a,
           "query(targets: float64[K]) -> int64[K]\n\n"
           "For each target in [0, total()), the smallest leaf i with target < sum(leaves "
           "0..i); never a zero-priority leaf. ValueError if total() == 0 or a target is out "
           "of range or NaN. O(K log8 capacity).")
      .def("query_weighted", &tree_query_weighted, "targets"_a, "beta"_a,
           "query_weighted(targets: float64[K], beta: float) -> (int64[K], float32[K])\n\n"
           "query() plus PER importance weights (N P(i))^-beta / max_j (N P(j))^-beta = "
           "(p_i / min())^-beta. ValueError if min() == 0 or beta < 0.")
      .def(py::pickle(&tree_getstate, [](const py::tuple& s) { return tree_from_state(s); }));

  py::dict info;
#ifdef BHER_BUILD_TYPE
  info["build_type"] = BHER_BUILD_TYPE;
#endif
#ifdef __VERSION__
  info["compiler"] = __VERSION__;
#endif
#ifdef NDEBUG
  info["ndebug"] = true;
#else
  info["ndebug"] = false;
#endif
  m.attr("BUILD_INFO") = info;
}
