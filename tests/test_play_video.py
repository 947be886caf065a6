"""experiment/play.py: MP4 and GIF video through wrapped envs, progress-free output, CLI errors;
RolloutWorker steps the wrapped env for exactly T steps."""
import os
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from baselines_her.envs import describe_env, make_env
from baselines_her.rollout import RolloutWorker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiment"))
import play  # noqa: E402

ENV = "PandaReach-v3"


def write_policy(path, hidden=8, seed=0):
    """A policy file with random actor weights (no training, no TensorFlow)."""
    rng = np.random.default_rng(seed)
    do, dg, du = 6, 3, 3
    weights = {"actor_dense_0/kernel": rng.normal(size=(do + dg, hidden)) * 0.3,
               "actor_dense_0/bias": np.zeros(hidden),
               "actor_out/kernel": rng.normal(size=(hidden, du)) * 0.3,
               "actor_out/bias": np.zeros(du)}
    state = {"format_version": 1, "env_name": ENV, "dims": {"o": do, "g": dg, "u": du},
             "params": {"layers": 1, "max_u": 1.0, "norm_clip": 5.0, "clip_obs": 200.0},
             "normalizer": {"o_mean": np.zeros(do), "o_std": np.ones(do),
                            "g_mean": np.zeros(dg), "g_std": np.ones(dg)},
             "weights": {"actor": weights}}
    path.write_bytes(pickle.dumps(state))
    return str(path)


class CountSteps(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.steps, self.truncations = 0, 0

    def step(self, action):
        out = self.env.step(action)
        self.steps += 1
        self.truncations += bool(out[3])
        return out


def test_rollout_steps_wrapped_env_exactly_T_steps():
    env = make_env(ENV)
    spec = describe_env(env, ENV)
    counter = CountSteps(env)
    worker = RolloutWorker([counter], spec.T, spec.dim_o, spec.dim_g, spec.dim_u, spec.max_u,
                           np.random.default_rng(0), [0], noise_eps=0.2, random_eps=0.3)
    for episode in range(2):
        batch, _ = worker.generate_rollouts(lambda o, g: np.zeros((len(o), spec.dim_u)), True)
        assert batch["u"].shape[1] == spec.T
    # T is the registered horizon: TimeLimit truncates on the last step of each episode only.
    assert counter.steps == 2 * spec.T and counter.truncations == 2
    env.close()


def test_mp4_frame_count(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    pytest.importorskip("imageio_ffmpeg")
    policy = write_policy(tmp_path / "p.pkl")
    out = tmp_path / "reach.mp4"
    result = play.evaluate(policy, n_episodes=2, video=str(out), video_episodes=1, verbose=False)
    # One frame after the reset and after each of the T = 50 steps, for the first episode only.
    assert result["video_frames"] == 51
    frames = iio.imread(out, plugin="FFMPEG", index=None)
    assert frames.shape == (51, 240, 360, 3)
    assert frames.std() > 0  # a picture, not a blank
    assert sorted(os.listdir(tmp_path)) == ["p.pkl", "reach.mp4"]


def run_play(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiment", "play.py"), *args],
                          capture_output=True, text=True, timeout=180)


def test_cli_output_and_user_errors(tmp_path):
    policy = write_policy(tmp_path / "p.pkl")
    out = run_play(policy, "--n_test_rollouts", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith(f"{ENV}: success rate ")
    assert "episode 2/2:" in out.stdout
    assert out.stderr == ""  # no progress bar when stderr is not a terminal
    gif = tmp_path / "reach.gif"
    out = run_play(policy, "--n_test_rollouts", "1", "--video", str(gif), "--video_episodes", "3")
    assert out.returncode == 0, out.stderr
    assert f"wrote {gif} (51 frames)" in out.stdout
    iio = pytest.importorskip("imageio.v3")
    assert iio.improps(gif, plugin="pillow", index=None).shape[1:3] == (240, 360)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    for args, message in [
        ((str(tmp_path / "missing.pkl"),), "policy file not found"),
        ((str(tmp_path / "junk.pkl"),), "not a baselines_her policy file"),
        ((policy, "--video", str(tmp_path / "x.avi")), "unsupported extension '.avi'"),
        ((policy, "--video", str(tmp_path / "no" / "x.mp4")), "directory does not exist"),
        ((policy, "--n_test_rollouts", "0"), "--n_test_rollouts must be >= 1"),
        ((policy, "--bogus"), "unrecognized arguments: --bogus"),
    ]:
        res = run_play(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("error: ") and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
