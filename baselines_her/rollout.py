"""Rollouts: ``rollout_batch_size`` envs stepped together, one actor forward pass per step.

The episode loop is :func:`baselines_her.episode.run_episodes`: exactly T steps, ``terminated``
(panda-gym's success) and ``truncated`` ignored. The envs are stepped with their gymnasium
wrappers, so wrappers that record or render see every step. T is the env's registered
``max_episode_steps``, so ``TimeLimit`` truncates on the last step; gymnasium's ``TimeLimit`` and
``OrderEnforcing`` accept steps after ``terminated=True``.

With :class:`DemoResets` (``--demo_reset_prob``, training rollouts only) some episodes start from
a demonstration state instead of the reset state: the env is reset as usual (so its wrappers and
its reset-seed generator advance as always), then the simulator is put into the demo state.
"""
from __future__ import annotations

import time

import numpy as np

from baselines_her import sim_state
from baselines_her.episode import run_episodes


class DemoResets:
    """Resets to demonstration states (Nair et al. 2018): each episode, with probability
    ``prob``, starts from step t of demo episode e, e uniform over the demos and t uniform over
    ``[0, T-1]`` (so at least one demo step lies ahead), with that demo's goal; it then runs the
    usual T steps.

    ``states``: ``(episodes, T+1, S)`` simulator states (a demo file's ``sim_state``). ``rng``:
    the run's ``demo_reset`` generator; every call of :meth:`apply` draws three arrays of n
    numbers from it, so the stream does not depend on what was drawn.
    """

    def __init__(self, states: np.ndarray, prob: float, rng: np.random.Generator):
        self.states = np.asarray(states, np.float64)
        if self.states.ndim != 3 or self.states.shape[0] < 1 or self.states.shape[1] < 2:
            raise ValueError(f"demo states must be (episodes >= 1, T+1 >= 2, S), got "
                             f"{self.states.shape}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob, self.rng = float(prob), rng
        self.T = self.states.shape[1] - 1
        self.last_starts: list = []  # (episode, step) or None per env of the last apply

    def apply(self, envs: list, first_obs: list) -> list:
        """The first observations of the episodes about to run in ``envs`` (just reset, giving
        ``first_obs``): those drawn to start from a demo state are restored to it."""
        n = len(envs)
        from_demo = self.rng.random(n) < self.prob
        episodes = self.rng.integers(self.states.shape[0], size=n)
        steps = self.rng.integers(self.T, size=n)
        out, self.last_starts = list(first_obs), []
        for i in range(n):
            if from_demo[i]:
                e, t = int(episodes[i]), int(steps[i])
                out[i] = sim_state.restore(envs[i], self.states[e, t])
                self.last_starts.append((e, t))
            else:
                self.last_starts.append(None)
        return out


class RolloutWorker:
    def __init__(self, envs: list, T: int, dim_o: int, dim_g: int, dim_u: int, max_u: float,
                 rng: np.random.Generator, env_seeds: list, noise_eps: float = 0.0,
                 random_eps: float = 0.0, demo_resets: DemoResets | None = None):
        self.envs = list(envs)
        self.demo_resets = demo_resets
        self.T, self.dims = T, (dim_o, dim_g, dim_u)
        self.max_u, self.rng = float(max_u), rng
        self.noise_eps, self.random_eps = float(noise_eps), float(random_eps)
        # panda-gym re-seeds its goal sampler from OS entropy on every reset(seed=None), so every
        # reset gets a seed drawn from a generator of its own: runs are reproducible. There is
        # one generator per episode slot; with more seeds than envs (the test episodes, run in
        # rounds on a few envs), successive calls take the next slots in turn.
        if len(env_seeds) < len(self.envs):
            raise ValueError(f"{len(env_seeds)} env seeds for {len(self.envs)} envs")
        self.env_rngs = [np.random.default_rng(s) for s in env_seeds]
        self._next_slot = 0

    def _reset(self, i: int, slot: int) -> dict:
        obs, _ = self.envs[i].reset(seed=int(self.env_rngs[slot].integers(2**31 - 1)))
        return obs

    def _explore(self, u: np.ndarray) -> np.ndarray:
        """Baselines' exploration: Gaussian noise, clip, then uniform random actions w.p. random_eps."""
        n, du = u.shape
        u = u + self.noise_eps * self.max_u * self.rng.standard_normal(size=u.shape)
        u = np.clip(u, -self.max_u, self.max_u)
        random_u = self.rng.uniform(-self.max_u, self.max_u, size=(n, du))
        use_random = self.rng.random(n) < self.random_eps
        return np.where(use_random[:, None], random_u, u)

    def generate_rollouts(self, policy, explore: bool,
                          n_episodes: int | None = None) -> tuple[dict, dict]:
        """One episode on each of the first ``n_episodes`` envs (default: all), reset from the
        next episode slots. Returns the episode batch and stats: ``success_rate`` and
        ``rollout_s``, the seconds the rollouts took."""
        t0 = time.perf_counter()
        n = len(self.envs) if n_episodes is None else int(n_episodes)
        if not 1 <= n <= len(self.envs):
            raise ValueError(f"n_episodes={n_episodes}: this worker has {len(self.envs)} envs")
        envs, slots = self.envs[:n], len(self.env_rngs)
        first_obs = [self._reset(i, (self._next_slot + i) % slots) for i in range(n)]
        self._next_slot = (self._next_slot + n) % slots
        if self.demo_resets is not None:
            first_obs = self.demo_resets.apply(envs, first_obs)
        dims = (np.shape(first_obs[0]["observation"])[0], np.shape(first_obs[0]["desired_goal"])[0],
                self.envs[0].action_space.shape[0])
        if dims != self.dims:
            raise ValueError(f"envs have (dim_o, dim_g, dim_u) = {dims}, the worker was built for "
                             f"{self.dims}")

        def act(t, o, ag, g, obs):
            action = policy(o, g)
            return self._explore(action) if explore else action

        batch = run_episodes(envs, first_obs, act, self.T)
        success = batch["info_is_success"]
        return batch, {"success_rate": float(success[:, -1, 0].mean(dtype=np.float64)),
                       "rollout_s": time.perf_counter() - t0}
