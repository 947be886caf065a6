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

    def sample(self, rng: np.random.Generator) -> dict:
        if self.priorities is None:
            batch = self.sampler.sample(self.buffer.arrays, self.buffer.current_size, self.rows,
                                        rng)
            batch["w"] = np.ones(self.rows, np.float32)
            return batch
        ep_idx, t, weights, token = self.priorities.sample(rng, self.rows, self.beta)
        batch = self.sampler.sample(self.buffer.arrays, self.buffer.current_size, self.rows, rng,
                                    ep_idx=ep_idx, t=t)
        batch["w"] = np.ones(self.rows, np.float32) if weights is None else weights
        batch["priority_token"] = token
        return batch


def fixed_source(name: str, episodes: dict, sampler: HerSampler, rows: int, bc: bool,
                 dims: tuple) -> EpisodeSource:
    """A source holding a fixed set of episodes (demos, human recordings)."""
    n, T = episodes["u"].shape[:2]
    buffer = ReplayBuffer(T, *dims, size_in_transitions=n * T)
    buffer.store_episode(episodes)
    return EpisodeSource(name, buffer, sampler, rows, bc)


def sample_mixed(sources: list[EpisodeSource], rng: np.random.Generator) -> dict:
    """One batch: every source's rows, in order, with ``bc`` (B,) and ``rows_<name>`` counts.

    The first source is the agent's replay buffer; its ``slot`` indices and prioritized-replay
    token are kept and cover the first ``sources[0].rows`` rows. ``w`` holds importance weights
    (ones outside prioritized replay: demo and human sources keep uniform sampling).
    """
    parts = [s.sample(rng) for s in sources if s.rows > 0]
    used = [s for s in sources if s.rows > 0]
    if len(parts) == 1:
        batch = parts[0]
        batch["bc"] = np.full(len(batch["r"]), float(used[0].bc), np.float32)
    else:
        batch = {k: np.concatenate([p[k] for p in parts]) for k in BATCH_KEYS}
        batch["bc"] = np.concatenate([np.full(s.rows, float(s.bc), np.float32) for s in used])
        batch["slot"] = parts[0]["slot"]
        if "priority_token" in parts[0]:
            batch["priority_token"] = parts[0]["priority_token"]
    for s in sources:
        batch[f"rows_{s.name}"] = s.rows
    return batch
