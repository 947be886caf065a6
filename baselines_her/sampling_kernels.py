"""Sampling hot path: numpy reference and dispatch to the compiled kernel.

Every function here is deterministic given its inputs: callers draw indices and uniforms with a
seeded ``np.random.Generator`` and pass them in, so the numpy reference and the native kernel
(``baselines_her._native``, built from csrc/) can be compared by exact equality.

Public names: ``her_future_t``, ``her_future_indices``, ``her_future_sample``,
``gather_transitions`` and ``SumTree`` are
the native versions when the extension imports (``NATIVE_AVAILABLE``), else the ``*_numpy`` /
``SumTreeNumpy`` references, with a single RuntimeWarning at import. The native versions take
exactly the dtypes documented (int64 indices, float64 uniforms/priorities/targets, float32
episode arrays with a contiguous last axis) and raise ValueError on anything else or out of range.
"""
from __future__ import annotations

import importlib
import operator
import warnings

import numpy as np

__all__ = [
    "NATIVE_AVAILABLE",
    "SumTree",
    "SumTreeNumpy",
    "gather_transitions",
    "gather_transitions_numpy",
    "her_future_t",
    "her_future_indices",
    "her_future_indices_numpy",
    "her_future_sample",
    "her_future_sample_numpy",
    "her_future_t_numpy",
    "sparse_distance_reward_numpy",
]


def her_future_t_numpy(t: np.ndarray, u: np.ndarray, T: int) -> np.ndarray:
    """Baselines ``future`` goal time: ``t + 1 + floor(u * (T - t))``.

    For ``t`` in ``[0, T)`` and ``u`` in ``[0, 1)`` the result lies in ``[t + 1, T]``: a goal
    achieved strictly after the transition's own step, up to and including the final state.
    """
    t = np.asarray(t, dtype=np.int64)
    u = np.asarray(u, dtype=np.float64)
    return t + 1 + np.floor(u * (T - t).astype(np.float64)).astype(np.int64)


def her_future_indices_numpy(slots: np.ndarray, u: np.ndarray, T: int, future_p: float):
    """Fused ``future`` draw from caller-drawn slots and uniforms ``u`` of shape ``(2, B)``.

    ``ep_idx, t = divmod(slots, T)`` (a slot is the flat transition index ``ep * T + t``);
    ``goal_t = her_future_t(t, u[1], T)`` where ``u[0] < future_p`` (relabel with probability
    ``future_p``), else ``-1`` (keep the stored goal). The goal episode is ``ep_idx``. Uniform
    replay passes slots drawn in ``[0, n_episodes * T)``, prioritized replay the sum tree's answers.
    Returns ``(ep_idx, t, goal_t)``, int64.
    """
    slots = np.asarray(slots, dtype=np.int64)
    u = np.asarray(u, dtype=np.float64)
    ep_idx, t = slots // T, slots % T
    goal_t = np.where(u[0] < future_p, her_future_t_numpy(t, u[1], T), -1)
    return ep_idx, t, goal_t


def her_future_sample_numpy(u: np.ndarray, n_slots: int, T: int, future_p: float):
    """Uniform-replay ``future`` draw from one uniform array ``u`` of shape ``(3, B)``.

    ``slots = min(floor(u[2] * n_slots), n_slots - 1)`` (uniform over ``[0, n_slots)`` up to
    float64 granularity), then ``her_future_indices_numpy(slots, u[:2], T, future_p)``. One
    ``rng.random((3, B))`` call replaces ``rng.integers`` + ``rng.random((2, B))``.
    Returns ``(ep_idx, t, goal_t)``, int64.
    """
    u = np.asarray(u, dtype=np.float64)
    slots = np.minimum(np.floor(u[2] * float(n_slots)).astype(np.int64), n_slots - 1)
    return her_future_indices_numpy(slots, u[:2], T, future_p)


def sparse_distance_reward_numpy(ag: np.ndarray, g: np.ndarray, threshold: float) -> np.ndarray:
    """panda-gym / Fetch sparse reward: ``-(||ag - g|| > threshold)`` in float32, as the envs do.

    With float32 ``ag``/``g`` and a Python-float threshold, NumPy 2 (NEP 50) rounds the threshold
    to float32 and compares in float32; a numpy float64 threshold makes it compare in float64.
    Successes are ``-0.0`` (numpy negates a float32 zero).
    """
    d = np.linalg.norm(ag - g, axis=-1)
    return -np.array(d > threshold, dtype=np.float32)


def gather_transitions_numpy(
    o: np.ndarray,
    ag: np.ndarray,
    g: np.ndarray,
    u: np.ndarray,
    ep_idx: np.ndarray,
    t: np.ndarray,
    goal_ep: np.ndarray,
    goal_t: np.ndarray,
    distance_threshold: float | None = None,
) -> dict:
    """Build a training batch from episode-major arrays in one pass.

    ``o (N,T+1,do)``, ``ag (N,T+1,dg)``, ``g (N,T,dg)``, ``u (N,T,du)``; row ``i`` is the
    transition ``(ep_idx[i], t[i])``. Its goal is ``ag[goal_ep[i], goal_t[i]]`` when
    ``goal_t[i] >= 0`` (HER relabel) and the stored ``g[ep_idx[i], t[i]]`` when ``goal_t[i] < 0``.
    With ``distance_threshold`` the sparse reward of ``(ag_2, g)`` is included as ``r (B,)``.
    ``slot`` is the transition's flat index ``ep_idx * T + t``.
    """
    ep_idx = np.asarray(ep_idx, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    goal_ep = np.asarray(goal_ep, dtype=np.int64)
    goal_t = np.asarray(goal_t, dtype=np.int64)
    T = u.shape[1]
    relabel = goal_t >= 0
    goals = g[ep_idx, t].copy()
    goals[relabel] = ag[goal_ep[relabel], goal_t[relabel]]
    batch = {
        "o": o[ep_idx, t],
        "o_2": o[ep_idx, t + 1],
        "ag": ag[ep_idx, t],
        "ag_2": ag[ep_idx, t + 1],
        "g": goals,
        "u": u[ep_idx, t],
        "slot": ep_idx * T + t,
    }
    if distance_threshold is not None:
        batch["r"] = sparse_distance_reward_numpy(batch["ag_2"], goals, distance_threshold)
    return batch




def _fmt(v) -> str:
    """Shortest ``%g`` text that reads back as ``v`` (the native kernel's error-message format)."""
    v = float(v)
    for digits in range(6, 18):
        text = f"{v:.{digits}g}"
        if float(text) == v or v != v:
            return text
    return repr(v)


def _vec(x, dtype, name: str, fn: str) -> np.ndarray:
    """``x`` as a 1-D array of exactly ``dtype`` (ValueError otherwise), as the native kernel."""
    a = np.asarray(x)
    if a.dtype != dtype:
        raise ValueError(f"{fn}: {name} must have dtype {np.dtype(dtype).name}, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {a.shape}")
    return a


class SumTreeNumpy:
    """Pure-numpy reference of ``baselines_her._native.SumTree`` (same interface and results).

    Float64 priorities over leaves ``0 .. capacity-1`` (any capacity >= 1) in an 8-ary tree kept
    level by level: level 0 holds the leaf values exactly as set; node ``j`` of level ``l >= 1``
    is the left-to-right sum of level ``l-1`` entries ``8j .. 8j+7`` (levels zero-padded to a
    multiple of 8), recomputed from its children on every update, never adjusted by deltas. A
    parallel min tree (unset leaves = +inf) gives ``min()``. The float64 operations are the native
    ones in the same order, so ``query`` answers are identical bit for bit; ``query_weighted``
    weights may differ by float32 rounding of ``pow``. See csrc/sum_tree.hpp for the contract.
    """

    _FANOUT = 8

    def __init__(self, capacity: int) -> None:
        capacity = operator.index(capacity)
        if capacity < 1:
            raise ValueError(f"SumTree: capacity must be >= 1, got {capacity}")
        nodes = [capacity]
        while len(nodes) == 1 or nodes[-1] > 1:
            nodes.append(-(-nodes[-1] // self._FANOUT))
        self._capacity = capacity
        self._nodes = nodes
        padded = [-(-n // self._FANOUT) * self._FANOUT for n in nodes]
        self._sum = [np.zeros(n) for n in padded]
        self._min = [np.full(n, np.inf) for n in padded]

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return self._capacity

    def _recompute(self, level: int, j) -> None:
        c = self._sum[level - 1].reshape(-1, self._FANOUT)[j]
        s = c[:, 0].copy()
        for i in range(1, self._FANOUT):
            s += c[:, i]
        self._sum[level][j] = s
        self._min[level][j] = self._min[level - 1].reshape(-1, self._FANOUT)[j].min(axis=1)

    def set(self, indices, priorities) -> None:
        """Write ``priorities[k]`` at leaf ``indices[k]``; last write wins. O(K log8 capacity)."""
        fn = "SumTree.set"
        idx = _vec(indices, np.int64, "indices", fn)
        p = np.asarray(priorities)
        if p.dtype == np.float32:
            p = p.astype(np.float64)
        p = _vec(p, np.float64, "priorities", fn)
        if len(idx) != len(p):
            raise ValueError(
                f"{fn}: indices and priorities must have the same length, got {len(idx)} and {len(p)}"
            )
        bad = np.flatnonzero((idx < 0) | (idx >= self._capacity))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"{fn}: indices[{k}] = {idx[k]} is out of range [0, capacity={self._capacity})"
            )
        bad = np.flatnonzero(~(np.isfinite(p) & (p >= 0)))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"{fn}: priorities[{k}] = {_fmt(p[k])} is invalid (priorities must be finite and >= 0)"
            )
        K = len(idx)
        if K == 0:
            return
        leaves, first_in_reversed = np.unique(idx[::-1], return_index=True)
        values = p[K - 1 - first_in_reversed] + 0.0  # last write wins; -0.0 -> +0.0
        self._sum[0][leaves] = values
        self._min[0][leaves] = values
        for level in range(1, len(self._nodes)):
            if self._nodes[level] <= K:
                j = np.arange(self._nodes[level])
            else:
                j = np.unique(leaves >> (3 * level))
            self._recompute(level, j)

    def get(self, indices) -> np.ndarray:
        """Leaf values exactly as set (0.0 for leaves never set). O(K)."""
        idx = _vec(indices, np.int64, "indices", "SumTree.get")
        bad = np.flatnonzero((idx < 0) | (idx >= self._capacity))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"SumTree.get: indices[{k}] = {idx[k]} is out of range [0, capacity={self._capacity})"
            )
        return self._sum[0][idx].copy()

    def total(self) -> float:
        """Sum of all priorities. O(1)."""
        return float(self._sum[-1][0])

    def min(self) -> float:
        """Minimum over the leaves ever set (a leaf set to 0 counts); inf when none. O(1)."""
        return float(self._min[-1][0])

    def _check_targets(self, x: np.ndarray, fn: str) -> None:
        tot = self._sum[-1][0]
        if not tot > 0:
            raise ValueError(
                f"{fn}: total() is 0 (every priority is zero or none was set); nothing to sample"
            )
        if not np.isfinite(tot):
            raise ValueError(f"{fn}: total() overflowed to {_fmt(tot)}")
        bad = np.flatnonzero(~((x >= 0) & (x < tot)))
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{fn}: targets[{k}] = {_fmt(x[k])} is outside [0, total()={_fmt(tot)})")

    def _descend(self, x: np.ndarray) -> np.ndarray:
        K = len(x)
        node = np.zeros(K, dtype=np.int64)
        rest = x.astype(np.float64, copy=True)
        rows = np.arange(K)
        for level in range(len(self._nodes) - 1, 0, -1):
            c = self._sum[level - 1].reshape(-1, self._FANOUT)[node]
            acc = np.zeros(K)
            chosen = np.full(K, -1, dtype=np.int64)
            new_rest = np.zeros(K)
            for i in range(self._FANOUT):
                nxt = acc + c[:, i]
                hit = (chosen < 0) & (rest < nxt)
                chosen[hit] = i
                new_rest[hit] = rest[hit] - acc[hit]
                acc = nxt
            miss = chosen < 0
            if miss.any():  # rounding fallback: the last child with a positive value
                last = self._FANOUT - 1 - np.argmax(c[miss][:, ::-1] > 0, axis=1)
                chosen[miss] = last
                new_rest[miss] = np.nextafter(c[rows[miss], last], 0.0)
            node = node * self._FANOUT + chosen
            rest = new_rest
        return node

    def query(self, targets) -> np.ndarray:
        """Smallest leaf ``i`` with ``target < sum(leaves 0..i)`` per target in [0, total())."""
        x = _vec(targets, np.float64, "targets", "SumTree.query")
        self._check_targets(x, "SumTree.query")
        return self._descend(x)

    def query_weighted(self, targets, beta: float):
        """``query`` plus PER weights ``(p_i / min())**-beta`` (float32), i.e. normalised IS weights."""
        fn = "SumTree.query_weighted"
        x = _vec(targets, np.float64, "targets", fn)
        beta = float(beta)
        if not (np.isfinite(beta) and beta >= 0):
            raise ValueError(f"{fn}: beta = {_fmt(beta)} must be finite and >= 0")
        self._check_targets(x, fn)
        lo = self._min[-1][0]
        if not lo > 0:
            raise ValueError(
                f"{fn}: min() is 0 (a leaf was set to priority 0), so the importance-sampling "
                "weights are undefined"
            )
        idx = self._descend(x)
        return idx, np.power(self._sum[0][idx] / lo, -beta).astype(np.float32)  # native: exp(-b log)

    def __getstate__(self):
        n = self._capacity
        return (n, self._sum[0][:n].copy(), self._min[0][:n] != np.inf)

    def __setstate__(self, state) -> None:
        capacity, values, is_set = state
        self.__init__(capacity)
        values = np.asarray(values, dtype=np.float64)
        is_set = np.asarray(is_set, dtype=bool)
        if values.shape != (capacity,) or is_set.shape != (capacity,):
            raise ValueError(
                f"SumTree state: values and is_set must be 1-D arrays of length capacity={capacity}"
            )
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)) | (~is_set & (values != 0)))
        if bad.size:
            raise ValueError(f"SumTree state: leaf {int(bad[0])} has value {_fmt(values[bad[0]])}")
        self._sum[0][:capacity] = values + 0.0
        self._min[0][:capacity] = np.where(is_set, values + 0.0, np.inf)
        for level in range(1, len(self._nodes)):
            self._recompute(level, np.arange(self._nodes[level]))


# Dispatch: the compiled kernel when it was built, else the numpy reference with one warning.
try:
    _native = importlib.import_module("baselines_her._native")
except ImportError as _exc:  # not built (e.g. a source checkout without `pip install -e .`)
    _native = None
    NATIVE_AVAILABLE = False
    warnings.warn(
        f"baselines_her._native is missing ({_exc}); the sampling kernel uses the slower numpy "
        "reference path. Build the extension with `pip install -e .`.",
        RuntimeWarning,
        stacklevel=2,
    )
    her_future_t = her_future_t_numpy
    her_future_indices = her_future_indices_numpy
    her_future_sample = her_future_sample_numpy
    gather_transitions = gather_transitions_numpy
    SumTree = SumTreeNumpy
else:
    NATIVE_AVAILABLE = True
    her_future_t = _native.her_future_t
    her_future_indices = _native.her_future_indices
    her_future_sample = _native.her_future_sample
    gather_transitions = _native.gather_transitions
    SumTree = _native.SumTree
