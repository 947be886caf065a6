"""Resets to demonstration states (--demo_reset_prob): capture/restore of panda-gym simulator
states, the demo file's `sim_state` key, its recording by generate_demos.py, training episodes
that start from demo states, the generator's checkpoint, and the flag's user errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

from baselines_her import checkpoint, sim_state
from baselines_her.config import ConfigError, prepare_params
from baselines_her.demo import DemoError, load_episodes, load_episodes_for_env, save_episodes
from baselines_her.envs import make_env
from baselines_her.rollout import DemoResets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_GEN = os.path.join(ROOT, "experiment", "data_generation")
if DATA_GEN not in sys.path:
    sys.path.insert(0, DATA_GEN)

import generate_demos  # noqa: E402
from panda_experts import make_expert  # noqa: E402

# Measured on 5 expert episodes each of PandaStack-v3 and PandaPickAndPlace-v3, every 4th step
# restored into an env reset with another seed. The robot part of the observation differs from
# the recorded one by the end-effector's motion in one 2 ms physics substep (PyBullet reports the
# link pose before the last substep): at most 5.3e-3 in any entry (m or m/s). The objects' part,
# the achieved goal and the goal match exactly. Stepping the recorded actions from there (the
# restored state starts with PyBullet's contact cache empty, where the recorded step had it warm):
# end-effector position within 5.7e-3 m over three steps; object positions (achieved goal)
# median 1.6e-5 / 4.5e-4 m, mean 7.4e-4 / 1.8e-3 m (Stack / PickAndPlace) after three steps, up
# to 1e-2 m at contact events (grasp, release); the single PickAndPlace episode below has a
# median and mean of 2.4e-3 m.
ROBOT_ATOL = 1e-2
EXACT_ATOL = 1e-6
TRACK_EE_ATOL = 1e-2
TRACK_AG_MEAN = 5e-3
TRACK_AG_MEDIAN = 4e-3
TRACK_STEPS = 3


def record(env_id, n, seed=0):
    """``n`` expert episodes of ``env_id`` with their simulator states."""
    env = make_env(env_id)
    try:
        batch, _ = generate_demos.record_episodes(env, make_expert(env_id), n,
                                                  np.random.default_rng(seed), seed=seed,
                                                  sim_states=True)
    finally:
        env.close()
    return batch


@pytest.fixture(scope="module")
def pick_demos(tmp_path_factory):
    """Three PandaPickAndPlace-v3 expert episodes with states, as a demo file."""
    path = tmp_path_factory.mktemp("demos") / "pick.npz"
    return save_episodes(path, record("PandaPickAndPlace-v3", 3))


@pytest.mark.parametrize("env_id", ["PandaStack-v3", "PandaPickAndPlace-v3"])
def test_restore_reproduces_recorded_observation_and_tracks_recorded_actions(env_id):
    batch = {k: v[0] for k, v in record(env_id, 1).items()}
    states, T = batch["sim_state"], batch["u"].shape[0]
    env = make_env(env_id)
    robot_dim = env.unwrapped.robot.get_obs().shape[0]
    assert states.shape == (T + 1, sim_state.state_size(env)) and states.dtype == np.float64
    ee_err, ag_err = [], []
    try:
        for t in range(0, T - TRACK_STEPS + 1, 4):
            env.reset(seed=1000 + t)  # another start than the demo's
            obs = sim_state.restore(env, states[t])
            own = env.unwrapped._get_obs()
            for key in ("observation", "achieved_goal", "desired_goal"):
                np.testing.assert_array_equal(obs[key], own[key])
            np.testing.assert_array_equal(obs["desired_goal"], batch["g"][0])
            np.testing.assert_allclose(obs["achieved_goal"], batch["ag"][t], rtol=0,
                                       atol=EXACT_ATOL)
            np.testing.assert_allclose(obs["observation"][robot_dim:], batch["o"][t, robot_dim:],
                                       rtol=0, atol=EXACT_ATOL)
            np.testing.assert_allclose(obs["observation"][:robot_dim], batch["o"][t, :robot_dim],
                                       rtol=0, atol=ROBOT_ATOL)
            for k in range(TRACK_STEPS):
                obs, *_ = env.unwrapped.step(batch["u"][t + k])
            ee_err.append(np.abs(obs["observation"][:3] - batch["o"][t + TRACK_STEPS, :3]).max())
            ag_err.append(np.abs(obs["achieved_goal"] - batch["ag"][t + TRACK_STEPS]).max())
    finally:
        env.close()
    assert max(ee_err) < TRACK_EE_ATOL, ee_err
    assert np.mean(ag_err) < TRACK_AG_MEAN and np.median(ag_err) < TRACK_AG_MEDIAN, ag_err


def test_restore_refuses_other_envs_and_wrong_sizes():
    env = make_env("PandaReach-v3")
    try:
        state = sim_state.capture(env)
        with pytest.raises(sim_state.SimStateError, match=r"shape \(60,\).*got \(59,\)"):
            sim_state.restore(env, state[:-1])
    finally:
        env.close()
    fetch = make_env("FetchReach-v4")
    try:
        assert not sim_state.supported(fetch)
        with pytest.raises(sim_state.SimStateError, match="FetchReach-v4.*panda-gym envs only"):
            sim_state.capture(fetch)
    finally:
        fetch.close()


def test_generate_demos_writes_states(tmp_path, capsys):
    out = tmp_path / "demos.npz"
    assert generate_demos.main(["--env", "PandaPickAndPlace-v3", "--episodes", "2", "--seed",
                                "4", "--out", str(out), "--no_progress"]) == 0
    batch = load_episodes_for_env(out, "PandaPickAndPlace-v3", sim_states="required")
    states = batch["sim_state"]
    assert states.shape == (2, 51, 73) and states.dtype == np.float64
    env = make_env("PandaPickAndPlace-v3")
    try:
        for e, t in ((0, 0), (1, 50), (1, 17)):  # first, final and a middle state
            obs = sim_state.restore(env, states[e, t])
            np.testing.assert_allclose(obs["achieved_goal"], batch["ag"][e, t], rtol=0,
                                       atol=EXACT_ATOL)
            np.testing.assert_allclose(obs["observation"][7:], batch["o"][e, t, 7:], rtol=0,
                                       atol=EXACT_ATOL)
            np.testing.assert_array_equal(obs["desired_goal"], batch["g"][e, 0])
    finally:
        env.close()


def test_demo_file_key_is_validated_and_optional(tmp_path):
    batch = record("PandaReach-v3", 2)
    T, S = 50, 60
    path = save_episodes(tmp_path / "with.npz", batch)
    shape = (T, 6, 3, 3)
    loaded = load_episodes(path, *shape, sim_states="required", sim_state_dim=S)
    np.testing.assert_array_equal(loaded["sim_state"], batch["sim_state"])
    assert loaded["sim_state"].dtype == np.float64
    assert "sim_state" not in load_episodes(path, *shape)  # read only when asked for
    old = save_episodes(tmp_path / "old.npz", {k: v for k, v in batch.items() if k != "sim_state"})
    assert "sim_state" not in load_episodes(old, *shape, sim_states="optional")
    with pytest.raises(DemoError, match=r"old\.npz: no key 'sim_state'"):
        load_episodes(old, *shape, sim_states="required", source="--demo_file")
    bad = {
        "ndim": (batch["sim_state"][:, :, 0], r"'sim_state' has 2 dimension\(s\)"),
        "episodes": (batch["sim_state"][:1], r"'sim_state' holds 1 episodes, 'o' holds 2"),
        "steps": (batch["sim_state"][:, :T], rf"'sim_state' holds {T} states per episode.*{T + 1}"),
        "dim": (batch["sim_state"][:, :, :-1], rf"'sim_state' has {S - 1} values per state.*{S}"),
        "nan": (np.where(np.arange(S) == 5, np.nan, batch["sim_state"]),
                r"'sim_state' contains 102 NaN/inf value\(s\) \(first at episode 0, step 0\)"),
    }
    for name, (states, message) in bad.items():
        file = tmp_path / f"{name}.npz"
        np.savez(file, **{**batch, "sim_state": states})
        with pytest.raises(DemoError, match=rf"{name}\.npz: key {message}"):
            load_episodes(file, *shape, sim_states="optional", sim_state_dim=S)


def test_demo_reset_draws_follow_the_seeded_generator(monkeypatch):
    from baselines_her.seeding import seed_everything
    monkeypatch.setattr(sim_state, "restore", lambda env, state: {"state": state})
    states = np.zeros((4, 11, 3))

    def picks(seed):
        resets = DemoResets(states, 0.5, seed_everything(seed).demo_reset)
        out = []
        for _ in range(50):
            resets.apply([None] * 6, [{}] * 6)
            out += resets.last_starts
        return out

    first, again, other = picks(7), picks(7), picks(8)
    assert first == again and first != other
    chosen = [p for p in first if p is not None]
    assert 0.4 < len(chosen) / len(first) < 0.6
    # every demo episode and every step in [0, T-1] = [0, 9] is drawn, and nothing else
    assert {e for e, _ in chosen} == set(range(4)) and {t for _, t in chosen} == set(range(10))


# ---- training ----------------------------------------------------------------------------------
TINY = {"n_epochs": 1, "n_cycles": 2, "n_batches": 2, "batch_size": 32, "demo_batch_size": 8,
        "hidden": 16, "layers": 1, "n_test_rollouts": 1, "buffer_size": 2000, "num_threads": 1,
        "jit_compile": 0, "seed": 2, "num_demo": 3}


@pytest.fixture(scope="module", params=[1.0, 0.0], ids=["prob1", "prob0"])
def trained(request, pick_demos, tmp_path_factory):
    """A one-epoch PandaPickAndPlace-v3 run (2 cycles of 2 episodes) with the demo file."""
    from baselines_her.train import Trainer
    params = prepare_params("PandaPickAndPlace-v3", {**TINY, "demo_file": pick_demos,
                                                     "demo_reset_prob": request.param})
    trainer = Trainer(params, str(tmp_path_factory.mktemp("run")))
    trainer.run()
    return request.param, trainer


def ordinary_resets(trainer, n_cycles):
    """The first observations the training envs give without demo resets: each env reset with
    the seeds its own generator draws, in storage order (cycle by cycle, env by env)."""
    from baselines_her.seeding import seed_everything
    rngs = seed_everything(trainer.params.seed, n_envs=2 + 1)
    env_rngs = [np.random.default_rng(s) for s in rngs.env_seeds[:2]]
    env = make_env("PandaPickAndPlace-v3")
    try:
        return [env.reset(seed=int(env_rngs[i].integers(2**31 - 1)))[0]
                for _ in range(n_cycles) for i in range(2)]
    finally:
        env.close()


def test_training_episodes_start_from_demo_states(trained, pick_demos):
    prob, trainer = trained
    demos = load_episodes(pick_demos, 50, 19, 3, 4)
    stored = {k: v[: trainer.buffer.current_size] for k, v in trainer.buffer.arrays.items()}
    assert stored["o"].shape[0] == 4
    resets = ordinary_resets(trainer, 2)
    if prob == 0.0:
        assert trainer.worker.demo_resets is None
        for i, obs in enumerate(resets):
            np.testing.assert_array_equal(stored["o"][i, 0], obs["observation"])
            np.testing.assert_array_equal(stored["g"][i, 0], obs["desired_goal"])
        return
    starts = []
    for i in range(4):
        assert not np.array_equal(stored["o"][i, 0], resets[i]["observation"])
        # the demo step whose objects' state and goal the episode started from
        match = [(e, t) for e in range(3) for t in range(50)
                 if np.allclose(stored["o"][i, 0, 7:], demos["o"][e, t, 7:], rtol=0,
                                atol=EXACT_ATOL)
                 and np.array_equal(stored["g"][i, 0], demos["g"][e, 0])]
        assert match, f"stored episode {i} starts from no demo state"
        e, t = match[0]
        np.testing.assert_allclose(stored["o"][i, 0, :7], demos["o"][e, t, :7], rtol=0,
                                   atol=ROBOT_ATOL)
        np.testing.assert_allclose(stored["ag"][i, 0], demos["ag"][e, t], rtol=0, atol=EXACT_ATOL)
        np.testing.assert_array_equal(stored["g"][i], np.repeat(demos["g"][e, :1], 50, axis=0))
        starts.append((e, t))
    assert starts[2:] == trainer.worker.demo_resets.last_starts  # the last cycle's draws


def test_checkpoint_holds_the_demo_reset_generator(trained):
    prob, trainer = trained
    if prob == 0.0:
        assert "demo_reset" not in checkpoint.read_meta(
            checkpoint.latest_snapshot(trainer.checkpoint_dir))["rng"]
        return
    rng = trainer.worker.demo_resets.rng
    after_save = rng.random(8)  # the checkpoint was saved at the end of the epoch
    checkpoint.restore(trainer, checkpoint.latest_snapshot(trainer.checkpoint_dir))
    np.testing.assert_array_equal(rng.random(8), after_save)


# ---- user errors ---------------------------------------------------------------------------------
def test_config_checks_range_and_demo_file():
    with pytest.raises(ConfigError, match=r"--demo_reset_prob must be in \[0, 1\], got 1.5"):
        prepare_params("PandaReach-v3", {"demo_reset_prob": "1.5", "demo_file": "d.npz"}, T=50)
    with pytest.raises(ConfigError, match=r"--demo_reset_prob=0.5 needs --demo_file"):
        prepare_params("PandaReach-v3", {"demo_reset_prob": "0.5"}, T=50)
    assert prepare_params("PandaReach-v3", {}, T=50).demo_reset_prob == 0.0


def test_help_lists_the_flag():
    from baselines_her.her import build_parser
    assert "--demo_reset_prob" in build_parser().format_help()


@pytest.fixture(scope="module")
def bad_files(pick_demos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    with np.load(pick_demos) as data:
        batch = {k: data[k] for k in data.files}
    np.savez(folder / "old.npz", **{k: v for k, v in batch.items() if k != "sim_state"})
    np.savez(folder / "short.npz", **{**batch, "sim_state": batch["sim_state"][:, :, :-1]})
    return folder


CLI_ROWS = [
    ("out of range", ["--demo_file={pick}", "--demo_reset_prob=1.5"],
     ["--demo_reset_prob must be in [0, 1]", "1.5"]),
    ("no demo file", ["--demo_reset_prob=0.5"], ["--demo_reset_prob=0.5 needs --demo_file"]),
    ("file without states", ["--demo_file={bad}/old.npz", "--demo_reset_prob=0.5"],
     ["--demo_file {bad}/old.npz", "no key 'sim_state'"]),
    ("states of another size", ["--demo_file={bad}/short.npz", "--demo_reset_prob=0.5"],
     ["--demo_file {bad}/short.npz", "key 'sim_state' has 72 values per state", "expects 73"]),
    ("Fetch env", ["--env=FetchPickAndPlace-v4", "--demo_file={pick}", "--demo_reset_prob=0.5"],
     ["FetchPickAndPlace-v4", "panda-gym envs only"]),
]


@pytest.mark.parametrize("args,expected", [r[1:] for r in CLI_ROWS], ids=[r[0] for r in CLI_ROWS])
def test_cli_errors_are_one_line(pick_demos, bad_files, tmp_path, args, expected):
    fill = {"pick": pick_demos, "bad": str(bad_files)}
    if not any(a.startswith("--env") for a in args):
        args = ["--env=PandaPickAndPlace-v3"] + args
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "baselines_her.her", f"--logdir={tmp_path}/run"]
                         + [a.format(**fill) for a in args], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env=env)
    lines = out.stderr.splitlines()
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    for part in expected:
        assert part.format(**fill) in lines[0], (part, lines[0])
    assert not os.path.exists(tmp_path / "run")
