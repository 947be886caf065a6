"""Running mean / std of observations and goals, summed over MPI ranks, with clipping."""
from __future__ import annotations

import numpy as np

from baselines_her import mpi_util


class Normalizer:
    """``normalize(x) = clip((clip(x, ±clip_obs) - mean) / std, ±clip)``, ``std >= eps``.

    ``update`` accumulates local sums; ``recompute_stats`` all-reduces the new local sums across
    ranks (so every rank ends with the statistics of the union of all ranks' data) and refreshes
    ``mean``/``std``. Sums are float64 so long runs do not lose precision.
    """

    def __init__(self, size: int, eps: float = 1e-2, clip: float = 5.0, clip_obs: float = 200.0):
        self.size, self.eps, self.clip, self.clip_obs = int(size), float(eps), float(clip), float(clip_obs)
        self.sum = np.zeros(self.size)
        self.sumsq = np.zeros(self.size)
        self.count = 0.0
        self._local = np.zeros(2 * self.size + 1)
        self.mean = np.zeros(self.size, dtype=np.float32)
        self.std = np.ones(self.size, dtype=np.float32)

    def update(self, x: np.ndarray) -> None:
        x = np.clip(np.asarray(x, dtype=np.float64).reshape(-1, self.size), -self.clip_obs,
                    self.clip_obs)
        self._local[: self.size] += x.sum(axis=0)
        self._local[self.size: 2 * self.size] += np.square(x).sum(axis=0)
        self._local[-1] += x.shape[0]

    def recompute_stats(self) -> None:
        total = mpi_util.allreduce_sum(self._local)
        self._local[:] = 0.0
        self.sum += total[: self.size]
        self.sumsq += total[self.size: 2 * self.size]
        self.count += total[-1]
        if self.count > 0:
            mean = self.sum / self.count
            var = np.maximum(self.eps ** 2, self.sumsq / self.count - np.square(mean))
            self.mean = mean.astype(np.float32)
            self.std = np.sqrt(var).astype(np.float32)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(x, -self.clip_obs, self.clip_obs)
        return np.clip((x - self.mean) / self.std, -self.clip, self.clip).astype(np.float32)

    def state_dict(self, prefix: str) -> dict:
        return {f"{prefix}/sum": self.sum, f"{prefix}/sumsq": self.sumsq,
                f"{prefix}/count": np.array([self.count])}

    def load_state_dict(self, state: dict, prefix: str) -> None:
        self.sum = np.array(state[f"{prefix}/sum"], dtype=np.float64)
        self.sumsq = np.array(state[f"{prefix}/sumsq"], dtype=np.float64)
        self.count = float(state[f"{prefix}/count"][0])
        self._local[:] = 0.0
        self.recompute_stats()
