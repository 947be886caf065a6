"""HER relabelling at sample time: strategies future / final / episode / random / none.

A sample is drawn in two steps. ``draw_indices`` uses a seeded ``np.random.Generator`` to pick the
transitions ``(ep_idx, t)`` and, per row, the goal source ``(goal_ep, goal_t)`` (``goal_t = -1``:
keep the stored goal). ``sampling_kernels.gather_transitions`` (native kernel, numpy fallback) then
builds the batch and, for sparse distance-threshold rewards, the rewards; other rewards are
recomputed with the env's vectorised ``compute_reward``.

``future`` follows baselines exactly: sample episode ``e`` and ``t`` in ``[0, T)`` uniformly; with
probability ``future_p = 1 - 1/(1 + replay_k)`` replace ``g`` by ``ag[e, t']`` with
``t' = t + 1 + floor(U * (T - t))``, so ``t'`` is in ``[t + 1, T]`` (the goal is achieved strictly
after the transition, the final achieved goal included; ``ag[e, t]`` itself is never used).
``final`` uses ``t' = T``; ``episode`` any ``t'`` in ``[0, T]`` of the same episode; ``random``
any achieved goal of any stored episode; ``none`` never relabels.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from baselines_her import sampling_kernels

REPLAY_STRATEGIES = ("future", "final", "episode", "random", "none")


class HerSampler:
    def __init__(self, strategy: str, replay_k: int, T: int,
                 compute_reward: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 distance_threshold: float | None = None):
        if strategy not in REPLAY_STRATEGIES:
            raise ValueError(f"replay_strategy must be one of {REPLAY_STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.T = int(T)
        self.future_p = 0.0 if strategy == "none" else 1.0 - 1.0 / (1.0 + replay_k)
        self.compute_reward = compute_reward
        self.distance_threshold = distance_threshold

    def draw_indices(self, rng: np.random.Generator, n_episodes: int, batch_size: int,
                     ep_idx: np.ndarray | None = None, t: np.ndarray | None = None):
        """Pick transitions and goal sources; ``ep_idx`` and ``t`` may be given (prioritized replay).

        Returns ``(ep_idx, t, goal_ep, goal_t)``, int64 arrays of length ``batch_size``.
        """
        T = self.T
        if self.strategy == "future":
            return self._draw_future(rng, n_episodes, batch_size, ep_idx, t)
        if ep_idx is None:
            ep_idx = rng.integers(0, n_episodes, size=batch_size, dtype=np.int64)
        ep_idx = np.asarray(ep_idx, dtype=np.int64)
        if t is None:
            t = rng.integers(0, T, size=len(ep_idx), dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        B = len(ep_idx)
        relabel = rng.random(B) < self.future_p
        u = rng.random(B)
        goal_ep = ep_idx.copy()
        if self.strategy == "final":
            goal_t = np.full(B, T, dtype=np.int64)
        elif self.strategy == "episode":
            goal_t = np.floor(u * (T + 1)).astype(np.int64)
        elif self.strategy == "random":
            goal_ep = rng.integers(0, n_episodes, size=B, dtype=np.int64)
            goal_t = np.floor(u * (T + 1)).astype(np.int64)
        else:  # none
            goal_t = np.full(B, -1, dtype=np.int64)
        goal_t = np.where(relabel, goal_t, -1)
        return ep_idx, t, goal_ep, goal_t

    def _draw_future(self, rng, n_episodes, batch_size, ep_idx, t):
        """The default strategy in one generator call and one kernel call: uniform replay draws
        a (3, B) uniform array for ``her_future_sample`` (slot, relabel coin, future offset);
        prioritized replay passes its slots to ``her_future_indices`` with a (2, B) array.
        bench/sampling.py times both against the separate numpy steps."""
        T = self.T
        if ep_idx is None:
            return self._with_goal_ep(sampling_kernels.her_future_sample(
                rng.random((3, batch_size)), n_episodes * T, T, self.future_p))
        ep_idx = np.asarray(ep_idx, dtype=np.int64)
        if t is None:
            t = rng.integers(0, T, size=len(ep_idx), dtype=np.int64)
        slots = ep_idx * T + np.asarray(t, dtype=np.int64)
        u = rng.random((2, len(slots)))  # row 0: relabel or not; row 1: which future step
        return self._with_goal_ep(sampling_kernels.her_future_indices(slots, u, T, self.future_p))

    @staticmethod
    def _with_goal_ep(drawn):
        ep_idx, t, goal_t = drawn
        return ep_idx, t, ep_idx, goal_t  # `future` goals come from the row's own episode

    def sample(self, arrays: dict, n_episodes: int, batch_size: int, rng: np.random.Generator,
               ep_idx: np.ndarray | None = None, t: np.ndarray | None = None) -> dict:
        """A relabelled batch ``{o, o_2, ag, ag_2, g, u, r, slot}`` from episode arrays."""
        if n_episodes < 1:
            raise ValueError("cannot sample from an empty buffer")
        ep_idx, t, goal_ep, goal_t = self.draw_indices(rng, n_episodes, batch_size, ep_idx, t)
        batch = sampling_kernels.gather_transitions(
            arrays["o"], arrays["ag"], arrays["g"], arrays["u"], ep_idx, t, goal_ep, goal_t,
            self.distance_threshold)
        if "r" not in batch:
            batch["r"] = self.compute_reward(batch["ag_2"], batch["g"])
        batch["relabelled"] = goal_t >= 0
        return batch
