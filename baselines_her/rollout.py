"""Rollouts: ``rollout_batch_size`` envs stepped together, one actor forward pass per step.

The episode loop is :func:`baselines_her.episode.run_episodes`: exactly T steps, ``terminated``
(panda-gym's success) and ``truncated`` ignored. The envs are stepped with their gymnasium
wrappers, so wrappers that record or render see every step. T is the env's registered
``max_episode_steps``, so ``TimeLimit`` truncates on the last step; gymnasium's ``TimeLimit`` and
``OrderEnforcing`` accept steps after ``terminated=True``.
"""
from __future__ import annotations

import numpy as np

from baselines_her.episode import run_episodes


class RolloutWorker:
    def __init__(self, envs: list, T: int, dim_o: int, dim_g: int, dim_u: int, max_u: float,
                 rng: np.random.Generator, env_seeds: list, noise_eps: float = 0.0,
                 random_eps: float = 0.0):
        self.envs = list(envs)
        self.T, self.dims = T, (dim_o, dim_g, dim_u)
        self.max_u, self.rng = float(max_u), rng
        self.noise_eps, self.random_eps = float(noise_eps), float(random_eps)
        # panda-gym re-seeds its goal sampler from OS entropy on every reset(seed=None), so every
        # reset gets a seed drawn from the env's own generator: runs are reproducible.
        self.env_rngs = [np.random.default_rng(s) for s in env_seeds[: len(envs)]]

    def _reset(self, i: int) -> dict:
        obs, _ = self.envs[i].reset(seed=int(self.env_rngs[i].integers(2**31 - 1)))
        return obs

    def _explore(self, u: np.ndarray) -> np.ndarray:
        """Baselines' exploration: Gaussian noise, clip, then uniform random actions w.p. random_eps."""
        n, du = u.shape
        u = u + self.noise_eps * self.max_u * self.rng.standard_normal(size=u.shape)
        u = np.clip(u, -self.max_u, self.max_u)
        random_u = self.rng.uniform(-self.max_u, self.max_u, size=(n, du))
        use_random = self.rng.random(n) < self.random_eps
        return np.where(use_random[:, None], random_u, u)

    def generate_rollouts(self, policy, explore: bool) -> tuple[dict, dict]:
        """One episode per env. Returns the episode batch and stats (success_rate)."""
        first_obs = [self._reset(i) for i in range(len(self.envs))]
        dims = (np.shape(first_obs[0]["observation"])[0], np.shape(first_obs[0]["desired_goal"])[0],
                self.envs[0].action_space.shape[0])
        if dims != self.dims:
            raise ValueError(f"envs have (dim_o, dim_g, dim_u) = {dims}, the worker was built for "
                             f"{self.dims}")

        def act(t, o, ag, g, obs):
            action = policy(o, g)
            return self._explore(action) if explore else action

        batch = run_episodes(self.envs, first_obs, act, self.T)
        success = batch["info_is_success"]
        return batch, {"success_rate": float(success[:, -1, 0].mean(dtype=np.float64))}
