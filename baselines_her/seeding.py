"""The one seeding function: every component gets its own ``np.random.Generator``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANK_SEED_STRIDE = 1_000_000


@dataclass
class Rngs:
    """Independent generators, one per component, all derived from one seed."""

    seed: int
    rollout: np.random.Generator  # exploration noise and random actions
    sampler: np.random.Generator  # replay indices and HER uniforms
    demo_reset: np.random.Generator  # which training episodes start from which demo state
    env_seeds: list  # one int seed per env, used at its first reset
    tf_seed: int


def seed_everything(seed: int, rank: int = 0, n_envs: int = 1) -> Rngs:
    """Seed TensorFlow and build per-component generators for this MPI ``rank``.

    Ranks use ``seed + 1_000_000 * rank`` so workers explore differently but reproducibly.
    """
    import keras

    rank_seed = int(seed) + RANK_SEED_STRIDE * int(rank)
    root = np.random.SeedSequence(rank_seed)
    # Spawned children depend only on their index, so adding one leaves the others unchanged.
    rollout_ss, sampler_ss, env_ss, tf_ss, demo_reset_ss = root.spawn(5)
    tf_seed = int(tf_ss.generate_state(1)[0] % (2**31 - 1))
    keras.utils.set_random_seed(tf_seed)  # TF's global seed and Keras' initialiser seeds
    env_seeds = [int(s) for s in env_ss.generate_state(n_envs + 1)]
    return Rngs(seed=rank_seed, rollout=np.random.default_rng(rollout_ss),
                sampler=np.random.default_rng(sampler_ss),
                demo_reset=np.random.default_rng(demo_reset_ss), env_seeds=env_seeds,
                tf_seed=tf_seed)
