"""Sampling hot path: numpy reference and dispatch to the compiled kernel.

Every function here is deterministic given its inputs: callers draw indices and uniforms with a
seeded ``np.random.Generator`` and pass them in, so the numpy reference and the native kernel
(``baselines_her._native``) can be compared by exact equality.
"""
from __future__ import annotations

import numpy as np


def her_future_t_numpy(t: np.ndarray, u: np.ndarray, T: int) -> np.ndarray:
    """Baselines ``future`` goal time: ``t + 1 + floor(u * (T - t))``.

    For ``t`` in ``[0, T)`` and ``u`` in ``[0, 1)`` the result lies in ``[t + 1, T]``: a goal
    achieved strictly after the transition's own step, up to and including the final state.
    """
    t = np.asarray(t, dtype=np.int64)
    u = np.asarray(u, dtype=np.float64)
    return t + 1 + np.floor(u * (T - t).astype(np.float64)).astype(np.int64)


def sparse_distance_reward_numpy(ag: np.ndarray, g: np.ndarray, threshold: float) -> np.ndarray:
    """panda-gym / Fetch sparse reward: ``-(||ag - g|| > threshold)`` in float32, as the envs do."""
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


her_future_t = her_future_t_numpy
gather_transitions = gather_transitions_numpy
