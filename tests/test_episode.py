"""The shared episode loop (baselines_her.episode) on a fake goal env: exact arrays, T steps
whatever ``terminated`` says, what ``act`` sees, step-by-step use."""

import gymnasium
import numpy as np
import pytest

from baselines_her.episode import Episodes, run_episodes


class LineGoalEnv:
    """A point on a line: ``x += action``. Success (and ``terminated``) once ``x >= target``; the
    reported desired goal moves by 0.5 per step, so each step's goal is distinguishable.
    Observations are float64, as Fetch's are."""

    def __init__(self, start: float, target: float):
        self.start, self.target = start, target
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.received = []

    def _obs(self):
        return {"observation": np.array([self.x, self.n], np.float64),
                "achieved_goal": np.array([self.x], np.float64),
                "desired_goal": np.array([self.target + 0.5 * self.n], np.float64)}

    def reset(self):
        self.x, self.n = self.start, 0
        return self._obs(), {}

    def step(self, action):
        self.received.append(action.copy())
        self.x += float(action[0])
        self.n += 1
        success = self.x >= self.target
        return self._obs(), 0.0 if success else -1.0, success, False, {"is_success": success}


def test_run_episodes_exact_arrays_and_steps_after_terminated():
    envs = [LineGoalEnv(0.0, 2.0), LineGoalEnv(-1.0, 0.5)]
    seen = []

    def act(t, o, ag, g, obs):
        seen.append((t, o.copy(), ag.copy(), g.copy(), [ob["observation"].dtype for ob in obs]))
        return np.array([[1.0], [0.25 * (t + 1)]])

    T = 4
    batch = run_episodes(envs, [env.reset()[0] for env in envs], act, T)
    # env 0 reaches its target (terminated=True) at the second step and is still stepped twice
    assert [env.n for env in envs] == [T, T]
    x0, x1 = [0.0, 1.0, 2.0, 3.0, 4.0], [-1.0, -0.75, -0.25, 0.5, 1.5]
    n = [0.0, 1.0, 2.0, 3.0, 4.0]
    expected = {
        "o": np.array([np.c_[x0, n], np.c_[x1, n]]),
        "ag": np.array([x0, x1])[..., None],
        "g": np.array([[2.0, 2.5, 3.0, 3.5], [0.5, 1.0, 1.5, 2.0]])[..., None],
        "u": np.array([[1.0] * 4, [0.25, 0.5, 0.75, 1.0]])[..., None],
        "info_is_success": np.array([[0, 1, 1, 1], [0, 0, 1, 1]])[..., None],
    }
    assert sorted(batch) == sorted(expected)
    for key, want in expected.items():
        assert batch[key].dtype == np.float32, key
        np.testing.assert_array_equal(batch[key], want.astype(np.float32), err_msg=key)
    # act sees step t's stored rows, and the observations as the envs returned them (float64)
    assert [s[0] for s in seen] == list(range(T))
    for t, o, ag, g, dtypes in seen:
        np.testing.assert_array_equal(o, batch["o"][:, t])
        np.testing.assert_array_equal(ag, batch["ag"][:, t])
        np.testing.assert_array_equal(g, batch["g"][:, t])
        assert dtypes == [np.float64, np.float64]
    # each env is stepped with its float32 row of u
    for i, env in enumerate(envs):
        assert all(a.dtype == np.float32 for a in env.received)
        np.testing.assert_array_equal(np.stack(env.received), batch["u"][i])


def test_episodes_step_by_step():
    env = LineGoalEnv(0.0, 0.3)
    episodes = Episodes([env], [env.reset()[0]], T=3)
    assert episodes.t == 0 and not episodes.done
    first = episodes.batch()
    assert first["o"].shape == (1, 1, 2) and first["u"].shape == (1, 0, 1)
    episodes.step(np.array([[0.1]]))
    so_far = episodes.batch()
    assert so_far["o"].shape == (1, 2, 2) and so_far["g"].shape == (1, 1, 1)
    assert so_far["u"][0, 0, 0] == np.float32(0.1) and env.received[0][0] == np.float32(0.1)
    episodes.step(np.array([[0.5]]))
    episodes.step(np.array([[-1.0]]))
    assert episodes.done and episodes.batch()["info_is_success"][0, :, 0].tolist() == [0, 1, 0]
    with pytest.raises(RuntimeError, match="finished"):
        episodes.step(np.array([[0.0]]))
    with pytest.raises(ValueError, match="2 first observations for 1 envs"):
        Episodes([env], [env.reset()[0]] * 2, T=3)
