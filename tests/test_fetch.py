"""Fetch (gymnasium-robotics v4) as baselines' HER users run it: the four envs build and step,
their defaults, the command lines those users type, a short FetchReach-v4 training run through
the real CLI, and demo files (baselines' own layout converted with ``convert --from-baselines``,
and ``fetch_data_generation.py``) that the trainer loads and trains on."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from baselines_her.config import prepare_params  # noqa: E402
from baselines_her.demo import load_episodes, load_episodes_for_env  # noqa: E402
from baselines_her.demo_convert import to_baselines_layout, write_baselines  # noqa: E402
from baselines_her.envs import describe_env, make_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_GEN = os.path.join(ROOT, "experiment", "data_generation")
sys.path.insert(0, DATA_GEN)
from fetch_data_generation import FetchPickAndPlaceExpert  # noqa: E402

FETCH = {"FetchReach-v4": 10, "FetchPush-v4": 25, "FetchPickAndPlace-v4": 25,
         "FetchSlide-v4": 25}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(args, cwd, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", sorted(FETCH))
def test_fetch_v4_builds_steps_and_has_baselines_defaults(name):
    env = make_env(name)
    try:
        spec = describe_env(env, name)
        assert (spec.T, spec.dim_o, spec.dim_g, spec.dim_u) == (50, FETCH[name], 3, 4)
        assert spec.max_u == 1.0 and spec.distance_threshold == 0.05
        obs, _ = env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(spec.T):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert all(np.all(np.isfinite(v)) for v in obs.values())
            assert reward == spec.compute_reward(obs["achieved_goal"][None],
                                                 obs["desired_goal"][None])[0]
        assert truncated and not terminated
    finally:
        env.close()
    # baselines' her/experiment/config.py: DEFAULT_PARAMS, plus n_cycles=10 for FetchReach.
    p = prepare_params(name, {})
    assert p.n_cycles == (10 if name == "FetchReach-v4" else 50)
    assert (p.rollout_batch_size, p.n_batches, p.batch_size, p.buffer_size) == (2, 40, 256, 10**6)
    assert (p.layers, p.hidden, p.Q_lr, p.pi_lr, p.polyak, p.action_l2) == (3, 256, 1e-3, 1e-3,
                                                                             0.95, 1.0)
    assert (p.random_eps, p.noise_eps, p.replay_strategy, p.replay_k) == (0.3, 0.2, "future", 4)
    assert (p.algo, p.T, p.gamma) == ("ddpg", 50, 1 - 1 / 50)


def test_flag_forms_of_baselines_users():
    from baselines_her.her import parse_args

    def params(argv):
        overrides, resume = parse_args(argv)
        assert resume is False
        return prepare_params(overrides.get("env_name"), overrides)

    spaced = params(["--env=FetchReach-v4", "--n_epochs", "10", "--logdir", "test_fetchreach"])
    joined = params(["--env=FetchReach-v4", "--n_epochs=10", "--logdir=test_fetchreach"])
    split_env = params(["--env", "FetchReach-v4", "--n_epochs", "10", "--logdir",
                        "test_fetchreach"])
    assert spaced == joined == split_env
    assert (spaced.env_name, spaced.n_epochs, spaced.logdir) == ("FetchReach-v4", 10,
                                                                 "test_fetchreach")
    demos = params(["--env=FetchPickAndPlace-v4", "--n_epochs=200",
                    "--demo_file=experiment/data_generation/demonstration_FetchPickAndPlace.npz",
                    "--logdir=log"])
    assert demos.n_epochs == 200 and demos.bc_loss and demos.demo_file.endswith(".npz")
    slide = params(["--env=FetchSlide-v4", "--n_epochs=300", "--prioritized=td", "--num_cpu", "2"])
    assert (slide.n_epochs, slide.prioritized, slide.num_cpu) == (300, "td", 2)


@pytest.mark.parametrize("old, new", [("FetchReach-v1", "FetchReach-v4"),
                                      ("FetchPickAndPlace-v1", "FetchPickAndPlace-v4")])
def test_old_fetch_id_fails_with_one_line_naming_v4(tmp_path, old, new):
    # The -v1 envs need mujoco_py; it is hidden so the test means the same where it is installed.
    without_mujoco_py = ("import sys; sys.modules['mujoco_py'] = None; "
                         "from baselines_her.her import main; sys.exit(main(sys.argv[1:]))")
    out = run(["-c", without_mujoco_py, f"--env={old}", "--n_epochs", "10", "--logdir",
               "test_fetchreach"], cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert f"use '{new}', the newest version of this env" in lines[0]
    assert not (tmp_path / "test_fetchreach").exists()


def test_fetchreach_learns_through_the_cli(tmp_path):
    """Two short epochs (1,000 env steps, 400 updates) with baselines' sizes. Measured here
    (2 loaded cores): final test success 0.7, 1.0, 0.6 at seeds 0, 1, 2; random actions succeed
    in 0 of 100 episodes, zero actions in 1 of 100."""
    out = run(["-m", "baselines_her.her", "--env=FetchReach-v4", "--n_epochs", "2",
               "--n_cycles=5", "--seed", "0", "--num_threads", "1", "--jit_compile=0",
               "--logdir", "test_fetchreach"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    progress = rows(tmp_path / "test_fetchreach" / "progress.csv")
    assert [int(r["total/env_steps"]) for r in progress] == [500, 1000]
    assert [int(r["total/updates"]) for r in progress] == [200, 400]
    final = float(progress[-1]["test/success_rate"])
    assert final >= 0.4, [r["test/success_rate"] for r in progress]
    assert "final test success rate" in out.stdout + out.stderr


def fetch_episode(env, expert, seed, steps, gain):
    """One episode as baselines' fetch_data_generation.py ran it: the T+1 observation dicts, the
    actions as lists of floats (unclipped: the env clips them) and the env's info dicts.
    ``steps`` > T is the stalled episode of that script (it steps past the time limit)."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    observations = [{k: np.array(v, dtype=np.float64) for k, v in obs.items()}]
    actions, infos = [], []
    for t in range(steps):
        a = expert(obs).astype(np.float64)
        a = [float(x) for x in np.r_[gain * a[:3], a[3]]]
        obs, _, _, _, info = env.step(np.array(a))
        observations.append({k: np.array(v, dtype=np.float64) for k, v in obs.items()})
        actions.append(a)
        infos.append(info)
    return observations, actions, infos


def write_baselines_fetch_file(path, episodes, extra_keys=False):
    """The file baselines' script wrote (``demo_convert.write_baselines``: info dicts with
    np.float32 is_success and TimeLimit.truncated from step T on); ``extra_keys`` adds the
    ep_rets, rews and done keys of forks of that script."""
    if not extra_keys:
        write_baselines(path, episodes, time_limit=50)
        return

    def objects(items):  # what numpy made of per-episode lists of unequal lengths
        a = np.empty(len(items), dtype=object)
        for i, x in enumerate(items):
            a[i] = x
        return a

    arrays = to_baselines_layout(episodes, time_limit=50)
    arrays["ep_rets"] = np.array([-float(len(e[1])) for e in episodes])
    arrays["rews"] = objects([[-1.0] * len(e[1]) for e in episodes])
    arrays["done"] = objects([[False] * (len(e[1]) - 1) + [True] for e in episodes])
    np.savez_compressed(path, **arrays)


def test_baselines_layout_fetch_demo_converts_replays_and_trains(tmp_path):
    name = "FetchPickAndPlace-v4"
    env = make_env(name)
    expert = FetchPickAndPlaceExpert()
    seeds = (0, 1, 2)
    try:
        # gain 2 on the displacement: values beyond [-1, 1], as baselines' gain 6 made them.
        episodes = [fetch_episode(env, expert, seed, steps, gain=2.0)
                    for seed, steps in zip(seeds, (50, 52, 50))]
    finally:
        env.close()
    assert [len(e[1]) for e in episodes] == [50, 52, 50]
    plain, extra = tmp_path / "data_fetch_random_3.npz", tmp_path / "with_rets.npz"
    write_baselines_fetch_file(plain, episodes)
    write_baselines_fetch_file(extra, episodes, extra_keys=True)

    converted = {}
    for src in (plain, extra):
        dst = tmp_path / f"native_{src.name}"
        out = run(["-m", "baselines_her.demo", "convert", "--from-baselines", str(src), str(dst),
                   "--env", name], cwd=tmp_path, timeout=120)
        assert out.returncode == 0, out.stderr
        assert ("note: 1 episode(s) with more than T=50 actions (up to 52; episode(s) [1]) "
                "trimmed to their first 50") in out.stdout
        assert "action value(s) outside [-1, 1] clipped" in out.stdout
        assert "converted 3 episodes of T=50 steps (do=25, dg=3, du=4" in out.stdout
        converted[src.name] = load_episodes(dst, 50, 25, 3, 4)
    a, b = converted.values()
    assert all(np.array_equal(a[k], b[k]) for k in a)

    # The converted file holds the first T steps of each episode: the same numbers...
    for e, (obs, acs, infos) in enumerate(episodes):
        np.testing.assert_allclose(a["o"][e], [d["observation"] for d in obs[:51]], atol=1e-6)
        np.testing.assert_allclose(a["ag"][e], [d["achieved_goal"] for d in obs[:51]], atol=1e-6)
        np.testing.assert_allclose(a["g"][e], [d["desired_goal"] for d in obs[:50]], atol=1e-6)
        np.testing.assert_allclose(a["u"][e], np.clip(acs[:50], -1, 1), atol=1e-6)
        assert np.array_equal(a["info_is_success"][e, :, 0], [i["is_success"] for i in infos[:50]])
    assert np.abs(a["u"]).max() == 1.0
    # ...and replaying its actions from the same reset reproduces its observations.
    env = make_env(name)
    try:
        for e, seed in enumerate(seeds):
            obs, _ = env.reset(seed=seed)
            for t in range(50):
                obs, _, _, _, info = env.step(a["u"][e, t])
            np.testing.assert_allclose(obs["observation"], a["o"][e, 50], atol=1e-4)
            assert float(info["is_success"]) == a["info_is_success"][e, 49, 0]
    finally:
        env.close()

    # Without --env the lengths differ and nothing says which T to keep: refused in one line.
    out = run(["-m", "baselines_her.demo", "convert", "--from-baselines", str(plain),
               str(tmp_path / "x.npz")], cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and not (tmp_path / "x.npz").exists()
    assert out.stderr.strip().splitlines() == [
        f"error: {plain}: episodes must all have T steps, but they have 50 to 52 actions "
        f"(episode(s) [0, 2] have 50); pass --T 50 to keep the first 50 steps of each"]

    # One tiny epoch with the converted file as --demo_file.
    out = run(["-m", "baselines_her.her", f"--env={name}", "--demo_file",
               str(tmp_path / f"native_{plain.name}"), "--num_demo=3", "--n_epochs=1",
               "--n_cycles=1", "--n_batches=3", "--batch_size=32", "--demo_batch_size=8",
               "--hidden=16", "--layers=1", "--n_test_rollouts=1", "--buffer_size=5000",
               "--num_threads=1", "--jit_compile=0", "--logdir=run"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = rows(tmp_path / "run" / "progress.csv")
    assert int(row["batch/demo_rows"]) == 8 and int(row["batch/replay_rows"]) == 24
    assert float(row["loss/bc"]) > 0 and int(row["total/env_steps"]) == 100


def test_fetch_data_generation_file_is_what_the_trainer_loads(tmp_path):
    out_file = tmp_path / "data_fetch_random_2.npz"
    out = run([os.path.join(DATA_GEN, "fetch_data_generation.py"), "--episodes", "2", "--seed",
               "0", "--out", str(out_file)], cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"expert success rate: 1.00 (2/2 episodes) -> {out_file}"
    batch = load_episodes_for_env(out_file, "FetchPickAndPlace-v4", num=2)
    assert batch["u"].shape == (2, 50, 4) and batch["o"].shape == (2, 51, 25)
    assert batch["info_is_success"][:, -1, 0].tolist() == [1.0, 1.0]
    check = run(["-m", "baselines_her.demo", "check", str(out_file), "--env",
                 "FetchPickAndPlace-v4"], cwd=tmp_path, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "2 episodes of T=50 steps for FetchPickAndPlace-v4; final success rate 1.00" in \
        check.stdout


def test_fetch_data_generation_baselines_format_converts_to_the_native_file(tmp_path):
    """--format baselines writes baselines' layout from the env's own float64 values, and
    converting it gives exactly the native file of the same seed: both are float32 casts of the
    same float64 observations, the same float32 actions and the same success flags."""
    name, script = "FetchPickAndPlace-v4", os.path.join(DATA_GEN, "fetch_data_generation.py")
    native, old = tmp_path / "native_3.npz", tmp_path / "data_fetch_random_3.npz"
    for path, fmt in ((native, []), (old, ["--format", "baselines"])):
        out = run([script, "--episodes", "3", "--seed", "0", "--out", str(path), *fmt],
                  cwd=tmp_path, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"expert success rate: 1.00 (3/3 episodes) -> {path}"

    # baselines' layout: what np.savez_compressed made of its per-episode lists.
    with np.load(old, allow_pickle=True) as f:
        assert sorted(f.files) == ["acs", "info", "obs"]
        acs, obs, info = f["acs"], f["obs"], f["info"]
    assert acs.dtype == np.float64 and acs.shape == (3, 50, 4)
    assert obs.dtype == object and obs.shape == (3, 51)
    assert info.dtype == object and info.shape == (3, 50)
    for d in obs.flat:
        assert type(d) is dict and list(d) == ["observation", "achieved_goal", "desired_goal"]
        assert [(v.dtype, v.shape) for v in d.values()] == [
            (np.float64, (25,)), (np.float64, (3,)), (np.float64, (3,))]
    for row in info:
        for t, d in enumerate(row):
            assert type(d) is dict and type(d["is_success"]) is np.float32
            last = {"TimeLimit.truncated": True} if t == 49 else {}
            assert d == {"is_success": d["is_success"], **last}

    # The observations are the env's float64 values: replaying the stored (float32) actions
    # from the same resets (seed + episode) returns them bit for bit.
    env = make_env(name)
    try:
        for e in range(3):
            o, _ = env.reset(seed=e)
            for t in range(51):
                for k in o:
                    assert np.array_equal(obs[e, t][k], o[k]), (e, t, k)
                if t < 50:
                    o, _, _, _, i = env.unwrapped.step(acs[e, t].astype(np.float32))
                    assert i["is_success"] == info[e, t]["is_success"]
    finally:
        env.close()

    conv = tmp_path / "converted.npz"
    out = run(["-m", "baselines_her.demo", "convert", "--from-baselines", str(old), str(conv),
               "--env", name], cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    a, b = load_episodes(conv, 50, 25, 3, 4), load_episodes(native, 50, 25, 3, 4)
    assert sorted(a) == sorted(b)
    for k in b:
        assert a[k].dtype == b[k].dtype == np.float32 and np.array_equal(a[k], b[k]), k
