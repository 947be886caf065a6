"""Rollouts: ``rollout_batch_size`` envs stepped together, one actor forward pass per step.

Every episode runs exactly T steps: panda-gym's ``terminated=True`` on success is ignored, since
goals are relabelled later and success is not terminal (DESIGN.md), and so is ``truncated``. The
envs are stepped with their gymnasium wrappers, so wrappers that record or render see every step.
T is the env's registered ``max_episode_steps``, so ``TimeLimit`` truncates on the last step;
gymnasium's ``TimeLimit`` and ``OrderEnforcing`` accept steps after ``terminated=True``.
"""
from __future__ import annotations

import numpy as np


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
        """One episode per env. Returns the episode batch and stats (success_rate, final obs)."""
        n, T = len(self.envs), self.T
        dim_o, dim_g, dim_u = self.dims
        o = np.empty((n, T + 1, dim_o), np.float32)
        ag = np.empty((n, T + 1, dim_g), np.float32)
        g = np.empty((n, T, dim_g), np.float32)
        u = np.empty((n, T, dim_u), np.float32)
        success = np.empty((n, T, 1), np.float32)
        for i in range(n):
            obs = self._reset(i)
            o[i, 0], ag[i, 0] = obs["observation"], obs["achieved_goal"]
            g[i, 0] = obs["desired_goal"]
        for t in range(T):
            goal = g[:, t]
            action = policy(o[:, t], goal)
            if explore:
                action = self._explore(action)
            u[:, t] = action
            for i, env in enumerate(self.envs):
                obs, _, _, _, info = env.step(u[i, t])
                o[i, t + 1], ag[i, t + 1] = obs["observation"], obs["achieved_goal"]
                if t + 1 < T:
                    g[i, t + 1] = obs["desired_goal"]
                success[i, t, 0] = float(info.get("is_success", 0.0))
        batch = {"o": o, "ag": ag, "g": g, "u": u, "info_is_success": success}
        return batch, {"success_rate": float(success[:, -1, 0].mean(dtype=np.float64))}
