"""Episode sources mixed into every training batch (DESIGN.md "Batches"): one mechanism,
configured per source.

A batch of ``batch_size`` rows is the concatenation of ``replay`` rows (the agent's buffer),
``demo`` rows (``demo_batch_size``, behaviour-cloned) and ``human`` rows
(``round(human_ratio * batch_size)``, behaviour-cloned with ``human_bc``). Each source has its own
episode buffer and HER sampler; ``bc`` marks the rows that get the BC loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines_her.her_sampler import HerSampler
from baselines_her.replay_buffer import ReplayBuffer

BATCH_KEYS = ("o", "o_2", "ag", "ag_2", "g", "u", "r", "w")


@dataclass
class EpisodeSource:
    name: str
    buffer: ReplayBuffer
    sampler: HerSampler
    rows: int
    bc: bool
    priorities: object = None  # prioritized.TransitionPriorities / EpisodeEnergyPriorities
    beta: float = 1.0  # current IS exponent, set by the trainer as it anneals

    def sample(self, rng: np.random.Generator, n: int) -> dict:
        """``n`` relabelled rows with importance weights ``w`` (ones for uniform replay)."""
        if self.priorities is None:
            batch = self.sampler.sample(self.buffer.arrays, self.buffer.current_size, n, rng)
            batch["w"] = np.ones(n, np.float32)
            return batch
        ep_idx, t, weights, token = self.priorities.sample(rng, n, self.beta)
        batch = self.sampler.sample(self.buffer.arrays, self.buffer.current_size, n, rng,
                                    ep_idx=ep_idx, t=t)
        batch["w"] = np.ones(n, np.float32) if weights is None else weights
        batch["priority_token"] = token
        return batch


def fixed_source(name: str, episodes: dict, sampler: HerSampler, rows: int, bc: bool,
                 dims: tuple) -> EpisodeSource:
    """A source holding a fixed set of episodes (demos, human recordings)."""
    n, T = episodes["u"].shape[:2]
    buffer = ReplayBuffer(T, *dims, size_in_transitions=n * T)
    buffer.store_episode(episodes)
    return EpisodeSource(name, buffer, sampler, rows, bc)


def sample_mixed(sources: list[EpisodeSource], rng: np.random.Generator, k: int = 1) -> dict:
    """``k`` batches drawn together: each array is ``(k, batch_size, ...)``, every batch holding
    every source's rows in the order of ``sources``; ``bc`` (k, B) marks behaviour-cloned rows.

    ``replay_rows`` (B,) is True on the rows drawn from ``sources[0]``, the agent's replay buffer;
    ``priority_token`` (prioritized replay) covers those rows, batch after batch. ``w`` holds
    importance weights (ones outside prioritized replay). ``rows_<name>`` counts each source's rows.
    """
    used = [s for s in sources if s.rows > 0]
    parts = [s.sample(rng, k * s.rows) for s in used]
    batch = {key: np.concatenate([p[key].reshape((k, s.rows) + p[key].shape[1:])
                                  for p, s in zip(parts, used)], axis=1) for key in BATCH_KEYS}
    batch["bc"] = np.concatenate([np.full((k, s.rows), float(s.bc), np.float32) for s in used],
                                 axis=1)
    batch["replay_rows"] = np.concatenate([np.full(s.rows, s is sources[0]) for s in used])
    if used and used[0] is sources[0]:
        batch["slot"] = parts[0]["slot"].reshape(k, -1)
        if "priority_token" in parts[0]:
            batch["priority_token"] = parts[0]["priority_token"]
    for s in sources:
        batch[f"rows_{s.name}"] = s.rows
    return batch
