"""Prioritized replay on the native sum tree, combined with HER.

``td`` (Schaul et al. 2016, proportional): one leaf per stored transition slot
``leaf = episode_slot * T + t``. New episodes enter at the running maximum priority; after a train
step a sampled row's leaf gets ``(|TD error| + priority_eps) ** alpha``. Importance weights
``(N * P(i)) ** -beta / max_j (N * P(j)) ** -beta = (p_i / p_min) ** -beta`` scale the critic
loss; ``beta`` anneals linearly from ``beta0`` to 1 over the run. A row is relabelled by HER as
usual (its leaf is the transition, whatever goal it was given).

``energy`` (Zhao & Tresp 2018): one leaf per episode slot with priority
``(trajectory energy + priority_eps) ** alpha``, where the trajectory energy is the sum over steps
of the clipped increase in potential + kinetic energy of the achieved goal; the time step is then
drawn uniformly. As in the paper, no importance weights.

Overwritten slots: the buffer bumps ``slot_generation`` when it rewrites an episode slot;
``update`` drops priorities computed for a slot whose generation changed since it was sampled.
"""
from __future__ import annotations

import numpy as np

from baselines_her.sampling_kernels import SumTree

GRAVITY, MASS = 9.81, 1.0


def trajectory_energy(ag: np.ndarray, dt: float, clip_energy: float) -> np.ndarray:
    """Energy of each achieved-goal trajectory ``ag (N, T+1, dg)``, dg a multiple of 3.

    Per object (3 coordinates): potential energy ``m g (z_t - z_0)`` and kinetic energy
    ``m |v_t|^2 / 2`` with ``v_t = (p_t - p_{t-1}) / dt``; the transition energy is the increase
    of their sum clipped to ``[0, clip_energy]``; the trajectory energy is the sum over steps and
    objects.
    """
    n, t1, dg = ag.shape
    if dg % 3:
        raise ValueError(f"energy prioritization needs 3-D positions in achieved_goal, got dim {dg}")
    pos = ag.reshape(n, t1, dg // 3, 3).astype(np.float64)
    potential = MASS * GRAVITY * (pos[:, 1:, :, 2] - pos[:, :1, :, 2])
    kinetic = 0.5 * MASS * np.sum(np.square(np.diff(pos, axis=1) / dt), axis=-1)
    total = potential + kinetic  # (n, T, objects)
    increase = np.clip(np.diff(total, axis=1), 0.0, clip_energy)
    return increase.sum(axis=(1, 2))


def annealed_beta(beta0: float, progress: float) -> float:
    """Importance-sampling exponent: ``beta0`` at the start, linearly to 1 at ``progress`` 1."""
    return beta0 + (1.0 - beta0) * min(max(progress, 0.0), 1.0)


class TransitionPriorities:
    """Proportional PER over transition slots of a :class:`ReplayBuffer`."""

    # Priorities change after every update, so each batch is drawn after the previous update.
    updates_priorities = True

    def __init__(self, buffer, alpha: float, priority_eps: float):
        self.buffer, self.T = buffer, buffer.T
        self.alpha, self.eps = float(alpha), float(priority_eps)
        self.tree = SumTree(buffer.capacity * buffer.T)
        self.max_priority = 1.0  # in tree units, i.e. after ** alpha

    def on_store(self, slots: np.ndarray, episodes: dict) -> None:
        leaves = (np.asarray(slots, np.int64)[:, None] * self.T + np.arange(self.T)).ravel()
        self.tree.set(leaves, np.full(len(leaves), self.max_priority))

    def sample(self, rng: np.random.Generator, n: int, beta: float):
        """``(ep_idx, t, weights, token)``; pass ``token`` back to :meth:`update`."""
        total = self.tree.total()
        targets = np.minimum(rng.random(n) * total, np.nextafter(total, 0.0))
        leaves, weights = self.tree.query_weighted(targets, beta)
        ep_idx, t = np.divmod(leaves, self.T)
        return ep_idx, t, weights, (leaves, self.buffer.slot_generation[ep_idx].copy())

    def update(self, token, td_abs: np.ndarray) -> int:
        """Set sampled leaves to ``(|td| + eps) ** alpha``; returns how many stale rows were dropped."""
        leaves, generations = token
        fresh = self.buffer.slot_generation[leaves // self.T] == generations
        priorities = np.power(np.abs(np.asarray(td_abs, np.float64)[fresh]) + self.eps, self.alpha)
        if len(priorities):
            self.tree.set(leaves[fresh], priorities)
            self.max_priority = max(self.max_priority, float(priorities.max()))
        return int((~fresh).sum())

    def state_dict(self) -> dict:
        return {"per/leaves": self.tree.get(np.arange(self.buffer.current_size * self.T)),
                "per/max_priority": np.array([self.max_priority])}

    def load_state_dict(self, state: dict) -> None:
        values = state["per/leaves"]
        self.tree.set(np.arange(len(values)), values)
        self.max_priority = float(state["per/max_priority"][0])


class EpisodeEnergyPriorities:
    """Energy-based episode prioritization; the time step within an episode is uniform."""

    updates_priorities = False  # energies are fixed at storage: batches can be drawn together

    def __init__(self, buffer, alpha: float, priority_eps: float, dt: float, clip_energy: float):
        self.buffer, self.T = buffer, buffer.T
        self.alpha, self.eps = float(alpha), float(priority_eps)
        self.dt, self.clip_energy = float(dt), float(clip_energy)
        self.tree = SumTree(buffer.capacity)

    def on_store(self, slots: np.ndarray, episodes: dict) -> None:
        energy = trajectory_energy(episodes["ag"], self.dt, self.clip_energy)
        self.tree.set(np.asarray(slots, np.int64), np.power(energy + self.eps, self.alpha))

    def sample(self, rng: np.random.Generator, n: int, beta: float):
        total = self.tree.total()
        targets = np.minimum(rng.random(n) * total, np.nextafter(total, 0.0))
        ep_idx = self.tree.query(targets)
        return ep_idx, rng.integers(0, self.T, size=n, dtype=np.int64), None, None

    def update(self, token, td_abs: np.ndarray) -> int:
        return 0  # episode energies do not change after storage

    def state_dict(self) -> dict:
        return {"per/leaves": self.tree.get(np.arange(self.buffer.current_size))}

    def load_state_dict(self, state: dict) -> None:
        values = state["per/leaves"]
        self.tree.set(np.arange(len(values)), values)


def make_priorities(kind: str, buffer, params, dt: float):
    if kind == "td":
        return TransitionPriorities(buffer, params.alpha, params.priority_eps)
    if kind == "energy":
        return EpisodeEnergyPriorities(buffer, params.alpha, params.priority_eps, dt,
                                       params.clip_energy)
    return None
