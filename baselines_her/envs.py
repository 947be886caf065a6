"""Environment construction and the facts the learner needs about a goal env.

``make_env`` registers panda-gym (and gymnasium-robotics Fetch when installed), checks that the
env is a goal env, and ``describe_env`` returns an :class:`EnvSpec`: horizon, dims, action bound,
the vectorised ``compute_reward`` and, for the sparse distance-threshold reward that panda-gym and
Fetch use, the threshold the native kernel needs to compute rewards itself.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


@contextlib.contextmanager
def quiet_native_output():
    """Silence what C code writes straight to file descriptors 1 and 2 (pybullet prints its
    build time and connection options whenever an env is created)."""
    saved = []
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:  # no real descriptors (captured streams): nothing to silence
        pass
    try:
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def register_envs(name: str = "") -> None:
    """Import the env packages so their ids are in gymnasium's registry (idempotent).

    gymnasium-robotics (Fetch, optional) is imported only when ``name`` is not a panda-gym id,
    since its import is slow and noisy.
    """
    import gymnasium as gym
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with quiet_native_output():
            import panda_gym  # noqa: F401  (registers Panda*-v3)
        if name not in gym.registry:
            try:
                import gymnasium_robotics
                gym.register_envs(gymnasium_robotics)
            except ImportError:
                pass


def check_env_id(name: str) -> None:
    """Raise ``ValueError`` naming close matches when ``name`` is not a registered env id."""
    import gymnasium as gym
    register_envs(name)
    if name in gym.registry:
        return
    close = difflib.get_close_matches(name, list(gym.registry.keys()), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    fetch = (" Fetch envs need the 'fetch' extra: pip install -e '.[fetch]'."
             if name.startswith("Fetch") and not close else "")
    raise ValueError(f"unknown env id {name!r}.{hint}{fetch}")


def episode_length(name: str) -> int:
    """The env's registered ``max_episode_steps``: the fixed horizon T of every episode."""
    import gymnasium as gym
    check_env_id(name)
    steps = gym.spec(name).max_episode_steps
    if not steps:
        raise ValueError(f"env {name!r} has no max_episode_steps; HER needs a fixed horizon T")
    return int(steps)


def make_env(name: str, render_mode: str | None = None):
    """Build the gymnasium env ``name`` and check it is a goal env with a Box action space."""
    import gymnasium as gym
    check_env_id(name)
    kwargs = {} if render_mode is None else {"render_mode": render_mode}
    with quiet_native_output():
        env = gym.make(name, disable_env_checker=True, **kwargs)
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict) or any(k not in space.spaces for k in GOAL_KEYS):
        raise ValueError(f"env {name!r} is not a goal env: its observation space must be a Dict "
                         f"with keys {GOAL_KEYS}, got {space}")
    if not hasattr(env.unwrapped, "compute_reward"):
        raise ValueError(f"env {name!r} has no compute_reward(achieved_goal, desired_goal, info)")
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ValueError(f"env {name!r} needs a Box action space, got {env.action_space}")
    return env


@dataclass(frozen=True)
class EnvSpec:
    name: str
    T: int
    dim_o: int
    dim_g: int
    dim_u: int
    max_u: float
    compute_reward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    distance_threshold: float | None  # set when the reward is -(||ag - g|| > threshold)
    dt: float  # seconds per env step (panda-gym: sim.dt; Fetch: env.dt)


def _sparse_threshold(unwrapped) -> float | None:
    owner = getattr(unwrapped, "task", unwrapped)  # panda-gym keeps it on the task
    if getattr(owner, "reward_type", None) != "sparse":
        return None
    threshold = getattr(owner, "distance_threshold", None)
    return None if threshold is None else float(threshold)


def describe_env(env, name: str) -> EnvSpec:
    """Dims, horizon and reward facts of a goal env made by :func:`make_env`."""
    unwrapped = env.unwrapped
    spaces = env.observation_space.spaces
    high = np.asarray(env.action_space.high, dtype=np.float64)
    low = np.asarray(env.action_space.low, dtype=np.float64)
    if not np.allclose(high, -low) or not np.allclose(high, high.flat[0]):
        raise ValueError(f"env {name!r}: action space must be symmetric [-a, a]^n, got "
                         f"[{low}, {high}]")

    def compute_reward(ag: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.asarray(unwrapped.compute_reward(ag, g, {}), dtype=np.float32).reshape(-1)

    threshold = _sparse_threshold(unwrapped)
    if threshold is not None:
        # Trust the threshold only if it reproduces the env's own rewards on random pairs.
        from baselines_her.sampling_kernels import sparse_distance_reward_numpy
        rng = np.random.default_rng(0)
        dg = spaces["achieved_goal"].shape[0]
        ag = rng.normal(scale=0.1, size=(256, dg)).astype(np.float32)
        g = rng.normal(scale=0.1, size=(256, dg)).astype(np.float32)
        if not np.array_equal(compute_reward(ag, g), sparse_distance_reward_numpy(ag, g, threshold)):
            threshold = None
    return EnvSpec(name=name, T=episode_length(name), dim_o=spaces["observation"].shape[0],
                   dim_g=spaces["desired_goal"].shape[0], dim_u=env.action_space.shape[0],
                   max_u=float(high.flat[0]), compute_reward=compute_reward,
                   distance_threshold=threshold, dt=_control_period(unwrapped))


def _control_period(unwrapped) -> float:
    sim = getattr(unwrapped, "sim", None)
    for owner in (sim, unwrapped):
        dt = getattr(owner, "dt", None)
        if isinstance(dt, (int, float)) and dt > 0:
            return float(dt)
    return 0.04  # panda-gym's and Fetch's control period
