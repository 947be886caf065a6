"""Stepping goal envs through episodes of exactly T steps into episode-batch arrays.

The one episode loop of the library: the rollout worker, the scripted demo generators, the path
tracking of the recording importers (experiment/data_generation/import_motion.py, import_vr.py),
the keyboard recorder and bench/misses.py all step through it. Every episode runs exactly T steps:
``terminated`` (panda-gym's success) and ``truncated`` are ignored, since goals are relabelled
later and success is not terminal (DESIGN.md "Episodes"). What is stepped is what the caller
passes: the rollout worker passes the wrapped envs (so recording wrappers see every step), the
demo tools pass ``env.unwrapped`` (no ``TimeLimit`` in the way).

Arrays, float32, for n envs: ``o (n,T+1,do)``, ``ag (n,T+1,dg)``, ``g (n,T,dg)``,
``u (n,T,du)``, ``info_is_success (n,T,1)``. ``g[:, t]`` is the desired goal of the observation
that the action ``u[:, t]`` was chosen from; ``info_is_success[:, t]`` is ``info['is_success']``
after that step.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

class Episodes:
    """n episodes stepped together one step at a time, from their reset observations.

    For callers that drive the loop themselves (the keyboard recorder takes one step per frame);
    :func:`run_episodes` is the loop for everyone else. ``t`` is the number of steps taken,
    ``obs`` the n current observation dicts as the envs returned them.
    """

    def __init__(self, envs: Sequence, first_obs: Sequence[dict], T: int):
        self.envs = list(envs)
        if len(first_obs) != len(self.envs):
            raise ValueError(f"{len(first_obs)} first observations for {len(self.envs)} envs")
        n, self.T, self.t = len(self.envs), int(T), 0
        self.obs = list(first_obs)
        dim_o = np.shape(first_obs[0]["observation"])[0]
        dim_g = np.shape(first_obs[0]["desired_goal"])[0]
        dim_u = self.envs[0].action_space.shape[0]
        self.o = np.empty((n, self.T + 1, dim_o), np.float32)
        self.ag = np.empty((n, self.T + 1, dim_g), np.float32)
        self.g = np.empty((n, self.T, dim_g), np.float32)
        self.u = np.empty((n, self.T, dim_u), np.float32)
        self.info_is_success = np.empty((n, self.T, 1), np.float32)
        for i, obs in enumerate(first_obs):
            self.o[i, 0], self.ag[i, 0] = obs["observation"], obs["achieved_goal"]
            if self.T > 0:
                self.g[i, 0] = obs["desired_goal"]

    @property
    def done(self) -> bool:
        return self.t >= self.T

    def step(self, actions) -> None:
        """Store ``actions`` (n, du) as ``u[:, t]`` and step env i with row i of the stored
        (float32) actions, in env order."""
        if self.done:
            raise RuntimeError(f"the episodes are finished ({self.T} steps)")
        t = self.t
        self.u[:, t] = actions
        for i, env in enumerate(self.envs):
            obs, _reward, _terminated, _truncated, info = env.step(self.u[i, t])
            self.obs[i] = obs
            self.o[i, t + 1], self.ag[i, t + 1] = obs["observation"], obs["achieved_goal"]
            if t + 1 < self.T:
                self.g[i, t + 1] = obs["desired_goal"]
            self.info_is_success[i, t, 0] = float(info.get("is_success", 0.0))
        self.t = t + 1

    def batch(self) -> dict:
        """The arrays of the steps taken so far (views): all of them once :attr:`done`."""
        t = self.t
        return {"o": self.o[:, : t + 1], "ag": self.ag[:, : t + 1], "g": self.g[:, :t],
                "u": self.u[:, :t], "info_is_success": self.info_is_success[:, :t]}


def run_episodes(envs: Sequence, first_obs: Sequence[dict], act: Callable, T: int) -> dict:
    """Step ``envs`` from their reset observations ``first_obs`` for exactly T steps; returns the
    episode batch (dict of float32 arrays, see the module docstring).

    ``act(t, o, ag, g, obs)`` returns the actions (n, du) for step t: ``o``, ``ag``, ``g`` are
    the stored float32 rows (n, d) at step t, ``obs`` the n observation dicts as the envs
    returned them (a policy written for the env's own dtypes reads those).
    """
    episodes = Episodes(envs, first_obs, T)
    while not episodes.done:
        t = episodes.t
        episodes.step(act(t, episodes.o[:, t], episodes.ag[:, t], episodes.g[:, t],
                          episodes.obs))
    return episodes.batch()
