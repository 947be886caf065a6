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

BATCH_KEYS = ("o", "o_2", "ag", "ag_2", "g", "u", "r")


@dataclass
class EpisodeSource:
    name: str
    buffer: ReplayBuffer
    sampler: HerSampler
    rows: int
    bc: bool

    def sample(self, rng: np.random.Generator) -> dict:
        return self.sampler.sample(self.buffer.arrays, self.buffer.current_size, self.rows, rng)


def fixed_source(name: str, episodes: dict, sampler: HerSampler, rows: int, bc: bool,
                 dims: tuple) -> EpisodeSource:
    """A source holding a fixed set of episodes (demos, human recordings)."""
    n, T = episodes["u"].shape[:2]
    buffer = ReplayBuffer(T, *dims, size_in_transitions=n * T)
    buffer.store_episode(episodes)
    return EpisodeSource(name, buffer, sampler, rows, bc)


def sample_mixed(sources: list[EpisodeSource], rng: np.random.Generator) -> dict:
    """One batch: every source's rows, in order, with ``bc`` (B,) and ``rows_<name>`` counts.

    The first source is the agent's replay buffer; its ``slot`` indices are kept (for
    prioritized replay) and cover the first ``sources[0].rows`` rows.
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
    for s in sources:
        batch[f"rows_{s.name}"] = s.rows
    return batch
