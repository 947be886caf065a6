"""Environment construction and the facts the learner needs about a goal env.

``make_env`` registers panda-gym (and gymnasium-robotics Fetch when installed), checks that the
env is a goal env, and ``describe_env`` returns an :class:`EnvSpec`: horizon, dims, action bound,
the vectorised ``compute_reward`` and, for the sparse distance-threshold reward that panda-gym and
Fetch use, the threshold the native kernel needs to compute rewards itself.

An env id that is not registered, an env this library cannot train on, or an env whose own
package fails to build it (a missing dependency, an asset its wheel lacks) raises :class:`EnvError`,
a user error. Any other exception while building an env is left alone: it may be a bug.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import sys
import traceback
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from baselines_her import sim_state
from baselines_her.errors import UserError

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


class EnvError(UserError, ValueError):
    """An env that is not registered, that this library cannot use, or that cannot be built."""


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
                with quiet_native_output():  # it prints a notice about old Adroit envs
                    import gymnasium_robotics
                gym.register_envs(gymnasium_robotics)
            except ImportError:
                pass


def check_env_id(name: str) -> None:
    """Raise :class:`EnvError` naming close matches when ``name`` is not a registered env id."""
    import gymnasium as gym
    register_envs(name)
    if name in gym.registry:
        return
    close = difflib.get_close_matches(name, list(gym.registry.keys()), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    fetch = (" Fetch envs need the 'fetch' extra: pip install -e '.[fetch]'."
             if name.startswith("Fetch") and not close else "")
    raise EnvError(f"unknown env id {name!r}.{hint}{fetch}")


def episode_length(name: str) -> int:
    """The env's registered ``max_episode_steps``: the fixed horizon T of every episode."""
    import gymnasium as gym
    check_env_id(name)
    steps = gym.spec(name).max_episode_steps
    if not steps:
        raise EnvError(f"env {name!r} has no max_episode_steps; HER needs a fixed horizon T")
    return int(steps)


def make_env(name: str, render_mode: str | None = None):
    """Build the gymnasium env ``name`` and check it is a goal env with a Box action space. A
    panda-gym env comes wrapped in :class:`~baselines_her.contact_cache.FreshContacts`, so each
    episode steps as in a fresh env."""
    import gymnasium as gym
    check_env_id(name)
    kwargs = {} if render_mode is None else {"render_mode": render_mode}
    try:
        with quiet_native_output():
            env = gym.make(name, disable_env_checker=True, **kwargs)
    except _env_package_errors() as exc:
        newer = _newest_version(name)
        if newer:
            raise EnvError(f"env {name!r} cannot be built here: use {newer!r}, the newest "
                           f"version of this env ({_failure_site(exc, name)})") from exc
        raise EnvError(f"env {name!r} cannot be built: {_failure_site(exc, name)}; its package "
                       f"cannot build this env as installed: choose another env or reinstall "
                       f"the package") from exc
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict) or any(k not in space.spaces for k in GOAL_KEYS):
        raise EnvError(f"env {name!r} is not a goal env: its observation space must be a Dict "
                       f"with keys {GOAL_KEYS}, got {space}")
    if not hasattr(env.unwrapped, "compute_reward"):
        raise EnvError(f"env {name!r} has no compute_reward(achieved_goal, desired_goal, info)")
    if not isinstance(env.action_space, gym.spaces.Box):
        raise EnvError(f"env {name!r} needs a Box action space, got {env.action_space}")
    if sim_state.supported(env):  # panda-gym (PyBullet)
        from baselines_her.contact_cache import FreshContacts
        env = FreshContacts(env)
    return env


def _newest_version(name: str) -> str | None:
    """``'FetchReach-v4'`` for ``'FetchReach-v1'``: the registered id of the same env with the
    highest version, when it is higher than ``name``'s (None otherwise)."""
    import gymnasium as gym
    spec = gym.spec(name)
    if spec.version is None:
        return None
    same = [s for s in gym.registry.values() if s.namespace == spec.namespace
            and s.name == spec.name and s.version is not None and s.version > spec.version]
    return max(same, key=lambda s: s.version).id if same else None


def _env_package_errors() -> tuple:
    """Exception types that mean the env's own package cannot build it here: a missing
    dependency, or a simulator that refuses its assets (panda-gym 3.0.7's wheel lacks the
    texture PandaFlip loads, and pybullet raises ``pybullet.error``)."""
    import gymnasium as gym
    kinds = [gym.error.DependencyNotInstalled, ModuleNotFoundError]
    for module, name in (("pybullet", "error"), ("mujoco", "FatalError")):
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            kinds.append(kind)
    return tuple(kinds)


def _failure_site(exc: BaseException, name: str) -> str:
    """``pybullet.error: Error loading texture (panda_gym/pybullet.py:451 in create_box,
    panda-gym 3.0.7)``: the exception, the innermost frame and the env's distribution."""
    kind = type(exc)
    module = kind.__module__
    text = f"{kind.__name__ if module == 'builtins' else f'{module}.{kind.__name__}'}: {exc}"
    where = []
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        path = frames[-1].filename.replace(os.sep, "/")
        path = path.rsplit("/site-packages/", 1)[-1]
        where.append(f"{path}:{frames[-1].lineno} in {frames[-1].name}")
    distribution = _distribution_of(name)
    if distribution:
        where.append(distribution)
    return text + (f" ({', '.join(where)})" if where else "")


def _distribution_of(name: str) -> str:
    """``'panda-gym 3.0.7'`` for a panda-gym id: the installed package that registers ``name``."""
    import importlib.metadata

    import gymnasium as gym
    entry_point = gym.spec(name).entry_point
    module = entry_point if isinstance(entry_point, str) else getattr(entry_point, "__module__", "")
    top = (module or "").split(":")[0].split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, [])[:1]:
        return f"{dist} {importlib.metadata.version(dist)}"
    return ""


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
        raise EnvError(f"env {name!r}: action space must be symmetric [-a, a]^n, got "
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
