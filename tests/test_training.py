"""End-to-end: learning smoke test, reproducibility, policy files, play.py, resume."""
import csv
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from baselines_her.config import prepare_params
from baselines_her.errors import UserError
from baselines_her.policy_file import actor_from_state, load_policy
from baselines_her.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"n_epochs": 2, "n_cycles": 2, "n_batches": 3, "batch_size": 32, "hidden": 32,
        "layers": 2, "n_test_rollouts": 2, "rollout_batch_size": 2, "buffer_size": 5000,
        "num_threads": 1, "policy_save_interval": 1}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_reach_learns_within_a_minute(tmp_path):
    """PandaReach-v3: random success is ~0.05-0.1; a few hundred updates give a clear policy."""
    params = prepare_params("PandaReach-v3", {"n_epochs": 3, "n_cycles": 5, "seed": 1,
                                              "n_test_rollouts": 10, "num_threads": 1})
    result = train(params, logdir=str(tmp_path))
    assert result.best_test_success >= 0.5, result
    assert result.env_steps == 3 * 5 * 2 * 50


def test_outputs_and_play_round_trip(tmp_path):
    params = prepare_params("PandaReach-v3", TINY)
    train(params, logdir=str(tmp_path))
    names = set(os.listdir(tmp_path))
    for expected in ("params.json", "progress.csv", "log.txt", "tb", "policy_latest.pkl",
                     "policy_best.pkl", "policy_0.pkl", "policy_1.pkl", "checkpoint"):
        assert expected in names, names
    rows = read_csv(tmp_path / "progress.csv")
    assert len(rows) == 2
    for key in ("epoch", "test/success_rate", "test/mean_Q", "train/success_rate", "stats_o/mean",
                "stats_o/std", "stats_g/mean", "stats_g/std", "loss/critic", "loss/actor",
                "perf/env_steps_per_s", "time/epoch_s"):
        assert key in rows[0]
    assert os.listdir(tmp_path / "tb")

    state = load_policy(str(tmp_path / "policy_latest.pkl"))
    assert state["env_name"] == "PandaReach-v3" and state["dims"] == {"o": 6, "g": 3, "u": 3}
    # The numpy actor from the file equals the Keras actor it was saved from.
    from baselines_her.ddpg import DDPG
    from baselines_her.networks import set_model_weights
    agent = DDPG(6, 3, 3, params)
    set_model_weights(agent.actor, state["weights"]["actor"])
    n = state["normalizer"]
    agent.o_norm.mean, agent.o_norm.std = n["o_mean"], n["o_std"]
    agent.g_norm.mean, agent.g_norm.std = n["g_mean"], n["g_std"]
    rng = np.random.default_rng(0)
    o, g = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    tf_action = agent.max_u * agent.actor(agent.obs_input(o, g)).numpy()
    np.testing.assert_allclose(actor_from_state(state)(o, g), tf_action, atol=1e-5)

    out = subprocess.run([sys.executable, os.path.join(ROOT, "experiment", "play.py"),
                          str(tmp_path / "policy_best.pkl"), "--n_test_rollouts", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "PandaReach-v3: success rate" in out.stdout and "over 2 episodes" in out.stdout

    # --video: the first episode only, one frame after reset and after each of the T steps.
    pytest.importorskip("PIL")
    sys.path.insert(0, os.path.join(ROOT, "experiment"))
    import play
    from PIL import Image
    gif = tmp_path / "reach.gif"
    result = play.evaluate(str(tmp_path / "policy_best.pkl"), n_episodes=2, video=str(gif),
                           video_episodes=1, verbose=False)
    assert result["video_frames"] == 51
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.size == (360, 240) and im.n_frames > 1
    with pytest.raises(UserError, match="unsupported extension"):
        play.evaluate(str(tmp_path / "policy_best.pkl"), video=str(tmp_path / "x.avi"))


def test_same_seed_same_numbers(tmp_path):
    """Two CLI runs with one seed on one thread write identical numbers (timings aside)."""
    timing = ("time/", "perf/")
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cmd = [sys.executable, "-m", "baselines_her.her", f"--logdir={tmp_path / name}",
               f"--seed={seed}"] + [f"--{k}={v}" for k, v in TINY.items()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300, cwd=ROOT)
        rows = read_csv(tmp_path / name / "progress.csv")
        runs.append([{k: v for k, v in r.items() if not k.startswith(timing)} for r in rows])
    assert runs[0] == runs[1]
    assert runs[0][0]["loss/critic"] != runs[2][0]["loss/critic"]


def test_resume_continues_and_matches_uninterrupted(tmp_path):
    full = prepare_params("PandaReach-v3", {**TINY, "n_epochs": 3, "seed": 5})
    train(full, logdir=str(tmp_path / "full"))
    train(prepare_params("PandaReach-v3", {**TINY, "n_epochs": 2, "seed": 5}),
          logdir=str(tmp_path / "part"))
    result = train(full, logdir=str(tmp_path / "part"), resume=True)
    assert result.epochs_run == 1
    rows = read_csv(tmp_path / "part" / "progress.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    # Networks, optimisers, buffer, normalisers and RNG states resume exactly: the resumed
    # epoch has the uninterrupted run's numbers.
    full_rows = read_csv(tmp_path / "full" / "progress.csv")
    for key in ("loss/critic", "loss/actor", "test/mean_Q", "stats_o/mean", "total/updates"):
        assert rows[2][key] == full_rows[2][key], key


def test_policy_file_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"format_version": 1, "x": Evil()}))
    with pytest.raises(ValueError, match="plain data only; refusing"):
        load_policy(str(path))


def test_tensorflow_builds_clash_needs_both_distributions():
    from importlib import metadata

    from baselines_her.train import tensorflow_builds_clash

    def only(*names):
        def distribution(name):
            if name not in names:
                raise metadata.PackageNotFoundError(name)
            return object()
        return distribution
    assert tensorflow_builds_clash(only("tensorflow-cpu", "tensorflow"))
    assert not tensorflow_builds_clash(only("tensorflow-cpu"))
    assert not tensorflow_builds_clash(only("tensorflow"))
    assert not tensorflow_builds_clash(only())
