"""Human-data tools: experiment/data_generation/import_motion.py (motion CSV -> episodes,
resampling, closed-loop tracking, --only_success, object/goal columns, CSV errors, the script's
command line) and the keyboard recorder, headless."""

import os
import subprocess
import sys

import numpy as np
import pytest

from baselines_her.demo import load_episodes_for_env
from baselines_her.envs import make_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_GEN = os.path.join(ROOT, "experiment", "data_generation")
if DATA_GEN not in sys.path:
    sys.path.insert(0, DATA_GEN)

import import_motion  # noqa: E402
from import_motion import Motion, read_motion_csv, resample_motion  # noqa: E402

DT, T = 0.04, 50
EE0 = np.array([0.0384, 0.0, 0.1974])  # the Panda's end-effector position after reset


def write_csv(path, t, pos, gripper=None, object_pos=None, goal=None):
    cols = ["t", "x", "y", "z"] + (["gripper"] if gripper is not None else [])
    extra = {}
    if object_pos is not None:
        extra.update(zip(("object_x", "object_y", "object_z"), object_pos))
    if goal is not None:
        extra.update(zip(("goal_x", "goal_y", "goal_z"), goal))
    lines = [",".join(cols + list(extra))]
    for i in range(len(t)):
        row = [t[i], *pos[i]] + ([gripper[i]] if gripper is not None else [])
        row = [f"{v:.6f}" for v in row] + [(f"{v:.6f}" if i == 0 else "") for v in extra.values()]
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def line_path(tt, duration=2.0, end=(0.15, 0.1, 0.08)):
    s = np.clip(np.asarray(tt) / duration, 0, 1)[:, None]
    return EE0 + (np.asarray(end) - EE0) * s


def circle_path(tt, duration=2.0, r=0.08):
    a = 2 * np.pi * np.asarray(tt) / duration
    c = EE0 + np.array([-r, 0, 0])
    return c + r * np.stack([np.cos(a), np.sin(a), 0 * a], axis=1)


@pytest.fixture(scope="module")
def reach_env():
    env = make_env("PandaReach-v3")
    yield env
    env.close()


def assert_tracks(episode, report, tol=0.015, skip=3):
    ee = episode["o"][:, :3]
    targets = report["targets"]
    err = np.linalg.norm(ee[skip:] - targets[skip:], axis=1)
    assert err.max() < tol, err.max()


@pytest.mark.parametrize("shape", ["line", "circle"])
def test_import_motion_reproduces_path(tmp_path, reach_env, shape):
    fn = line_path if shape == "line" else circle_path
    tt = np.linspace(0, 2.0, 21)  # recorded at 10 Hz, replayed at 25 Hz
    path = write_csv(tmp_path / f"{shape}.csv", tt, fn(tt))
    motion = read_motion_csv(path)
    ep, rep = import_motion.replay_motion(reach_env, motion, T, seed=0, env_name="PandaReach-v3")
    assert ep["o"].shape == (T + 1, 6) and ep["u"].shape == (T, 3)
    assert np.all(np.abs(ep["u"]) <= 1)
    assert "= T=50 steps of 0.04 s" in rep["note"]
    # the resampled targets lie on the intended path (linear interpolation of 10 Hz samples)
    exact = fn(np.arange(T + 1) * DT)
    assert np.abs(rep["targets"] - exact).max() < (1e-6 if shape == "line" else 5e-3)
    assert_tracks(ep, rep)
    assert np.linalg.norm(ep["o"][-1, :3] - exact[-1]) < 0.01


def test_resampling_time_warped_and_lengths():
    # the same circle recorded with irregular timestamps (slow start, fast end) at ~150 Hz
    u = np.linspace(0, 1, 301)
    tt = 2.0 * u ** 1.8 + 5.0  # any time origin
    motion = Motion("warped.csv", tt, circle_path(tt - 5.0), gripper=np.linspace(0, .08, 301))
    pos, grip, note = resample_motion(motion, DT, T)
    times = np.arange(T + 1) * DT
    assert np.abs(pos - circle_path(times)).max() < 1e-3
    assert np.allclose(grip, np.interp(times, tt - 5.0, np.linspace(0, .08, 301)))
    # shorter recording: padded with the last pose
    short = Motion("short.csv", np.array([0.0, 1.2]), np.array([EE0, EE0 + 0.1]), None)
    pos, _, note = resample_motion(short, DT, T)
    assert "1.20 s < 2.00 s" in note and "padded, last pose held for 20 step(s)" in note
    assert np.allclose(pos[30:], EE0 + 0.1) and np.allclose(pos[15], EE0 + 0.05)
    # longer recording: truncated
    long = Motion("long.csv", np.array([0.0, 4.0]), np.array([EE0, EE0 + 0.4]), None)
    pos, _, note = resample_motion(long, DT, T)
    assert "4.00 s > 2.00 s" in note and "truncated, the last 2.00 s are not used" in note
    assert np.allclose(pos[-1], EE0 + 0.2)


def test_import_motion_stretch_long_and_untimed(tmp_path, reach_env, capsys):
    tt = 10.0 * np.linspace(0, 1, 21) ** 2  # 10 s, uneven: real time keeps only its first 2 s
    end = np.array([0.15, 0.1, 0.08])
    motion = read_motion_csv(write_csv(tmp_path / "long.csv", tt, line_path(tt, 10.0, end)))
    _, rep = import_motion.replay_motion(reach_env, motion, T, 0, "PandaReach-v3")
    assert "truncated, the last 8.00 s are not used" in rep["note"]
    assert np.allclose(rep["targets"][-1], line_path([2.0], 10.0, end)[0])
    ep, rep = import_motion.replay_motion(reach_env, motion, T, 0, "PandaReach-v3", stretch=True)
    assert rep["note"] == "21 samples stretched over T=50 steps (by 't'): 10.00 s played in 2.00 s"
    assert np.allclose(rep["targets"], line_path(np.linspace(0, 10.0, T + 1), 10.0, end))
    assert np.linalg.norm(ep["o"][-1, :3] - end) < 0.01
    # untimed: no t column; rows spread evenly over the steps
    rows = line_path(np.array([0.0, 0.5, 2.0]), 2.0, end)
    untimed = tmp_path / "untimed.csv"
    untimed.write_text("x,y,z\n" + "".join(",".join(f"{v:.6f}" for v in r) + "\n" for r in rows))
    out = tmp_path / "u.npz"
    argv = [str(untimed), "--env", "PandaReach-v3", "--out", str(out)]
    assert import_motion.main(argv) == 2
    assert capsys.readouterr().err == (f"error: {untimed}: no 't' column; pass --stretch to "
                                       f"spread the samples over the T steps in row order\n")
    assert import_motion.main(argv + ["--stretch"]) == 0
    assert "3 samples stretched over T=50 steps (by row order)" in capsys.readouterr().out
    _, rep = import_motion.replay_motion(reach_env, read_motion_csv(str(untimed)), T, 0,
                                         "PandaReach-v3", stretch=True)
    assert np.allclose(rep["targets"][[0, 25, 50]], rows)  # row order, not the t of the rows


def test_import_motion_cli_only_success_and_goal(tmp_path, capsys):
    tt = np.linspace(0, 2.0, 11)
    end = np.array([0.1, 0.1, 0.1])
    hit = write_csv(tmp_path / "hit.csv", tt, line_path(tt, end=end), goal=end)
    miss = write_csv(tmp_path / "miss.csv", tt, line_path(tt, end=end), goal=[-0.1, -0.1, 0.05])
    out = tmp_path / "human.npz"
    argv = [hit, miss, "--env", "PandaReach-v3", "--out", str(out), "--seed", "3"]
    assert import_motion.main(argv + ["--only_success"]) == 0
    text = capsys.readouterr().out
    assert f"{hit}: success, kept;" in text
    assert f"{miss}: failure, dropped (--only_success);" in text
    assert "tracking error after step 5: mean" in text
    assert f"imported 1/2 recordings (1 successful, 1 dropped by --only_success) -> {out}" in text
    batch = load_episodes_for_env(out, "PandaReach-v3")
    assert batch["o"].shape[0] == 1
    assert np.allclose(batch["g"][0], end, atol=1e-6)  # the goal column replaced the sampled goal
    assert batch["info_is_success"][0, -1, 0] == 1.0

    assert import_motion.main(argv) == 0  # without --only_success both are kept
    batch = load_episodes_for_env(out, "PandaReach-v3")
    assert batch["info_is_success"][:, -1, 0].tolist() == [1.0, 0.0]
    assert np.allclose(batch["g"][1], [-0.1, -0.1, 0.05], atol=1e-6)
    assert "imported 2/2 recordings (1 successful) ->" in capsys.readouterr().out

    out2 = tmp_path / "none.npz"
    assert import_motion.main([miss, "--env", "PandaReach-v3", "--out", str(out2),
                               "--only_success"]) == 1
    assert "imported 0/1 recordings (0 successful, 1 dropped by --only_success); nothing " \
           "written" in capsys.readouterr().out
    assert not out2.exists()


def test_import_motion_object_and_gripper(tmp_path):
    env = make_env("PandaPickAndPlace-v3")
    try:
        tt = np.linspace(0, 2.0, 21)
        grip = np.where(tt < 1.0, 0.08, 0.0)  # open, then a grasp command
        obj = np.array([0.05, -0.04, 0.02])
        path = write_csv(tmp_path / "pp.csv", tt, line_path(tt, end=(0.05, -0.04, 0.1)), grip,
                         object_pos=obj)
        ep, rep = import_motion.replay_motion(env, read_motion_csv(path), T, seed=0,
                                              env_name="PandaPickAndPlace-v3")
        assert np.allclose(ep["ag"][0], obj, atol=1e-6)  # object set after reset
        assert np.allclose(ep["o"][0, 7:10], obj, atol=1e-6)
        width = ep["o"][:, 6]  # finger opening
        assert width[20] > 0.07  # opened
        assert np.all(ep["u"][26:, 3] == -1.0)  # grasp command: full closing force
        assert width[-1] < 0.01
        assert_tracks(ep, rep)
    finally:
        env.close()


def test_import_motion_object_needs_object_body(tmp_path, reach_env):
    tt = np.linspace(0, 2.0, 5)
    path = write_csv(tmp_path / "r.csv", tt, line_path(tt), object_pos=[0, 0, 0.02])
    with pytest.raises(ValueError, match=r"r\.csv: object_x/_y/_z given but PandaReach-v3 has no "
                                         r"body named 'object'"):
        import_motion.replay_motion(reach_env, read_motion_csv(path), T, 0, "PandaReach-v3")


BAD_CSV = {
    "no header": ("0,0.1,0.2,0.3\n1,0.1,0.2,0.3\n", r"line 1 is numbers; a header row is required"),
    "missing column": ("t,x,y\n0,1,2\n", r"missing column\(s\) \['z'\]"),
    "unknown column": ("t,x,y,z,grip\n0,1,2,3,4\n", r"unknown column\(s\) \['grip'\]"),
    "not a number": ("t,x,y,z\n0,1,2,3\n0.1,1,abc,3\n",
                     r"line 3: column 'y' is 'abc', expected a number"),
    "time order": ("t,x,y,z\n0,1,2,3\n\n0.2,1,2,3\n0.2,1,2,3\n",  # (blank line counted)
                   r"line 5: column 't' is 0.2 after 0.2; times must be strictly increasing"),
    "partial triple": ("t,x,y,z,goal_x,goal_y\n0,1,2,3,4,5\n",
                       r"columns \['goal_x', 'goal_y'\] given without \['goal_z'\]"),
    "no rows": ("t,x,y,z\n", r"no data rows after the header"),
    "nan": ("t,x,y,z\n0,1,nan,3\n", r"line 2: column 'y' is 'nan', expected a finite number"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_motion_csv_errors(tmp_path, case):
    text, pattern = BAD_CSV[case]
    path = tmp_path / "rec.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern) as e:
        read_motion_csv(str(path))
    assert str(e.value).startswith(f"{path}: ")


def test_import_motion_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,x,y\n0,1,2\n")
    out = tmp_path / "o.npz"
    assert import_motion.main([str(bad), "--env", "PandaReach-v3", "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err and not out.exists()
    good = write_csv(tmp_path / "g.csv", np.array([0.0, 2.0]), np.array([EE0, EE0]))
    assert import_motion.main([good, "--env", "PandaReachJoints-v3", "--out", str(out)]) == 2
    assert "needs end-effector control" in capsys.readouterr().err
    assert import_motion.main([good, "--env", "PandaReach-v9", "--out", str(out)]) == 2
    assert "unknown env id 'PandaReach-v9'" in capsys.readouterr().err
    assert import_motion.main([good, "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: the following arguments are required: --env")
    assert import_motion.main([good, "--env", "PandaReach-v3", "--out", str(out), "--seed",
                               "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: --seed must be >= 0, got -1")


def test_import_motion_runs_as_a_script(tmp_path):
    script = os.path.join(DATA_GEN, "import_motion.py")
    r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: import_motion.py")
    for flag in ("--env", "--out", "--stretch", "--only_success", "--seed", "--close_below"):
        assert flag in r.stdout, flag
    bad = tmp_path / "bad.csv"
    bad.write_text("t,x,y\n0,1,2\n")
    r = subprocess.run([sys.executable, script, str(bad), "--env", "PandaReach-v3", "--out",
                        str(tmp_path / "o.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == f"error: {bad}: missing column(s) ['z']; required: " \
                                             f"x, y, z\n"


# ---------------------------------------------------------------------------------------------
# keyboard recorder (headless)


@pytest.fixture(scope="module")
def rh():
    pytest.importorskip("pygame")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import record_human
    return record_human


@pytest.fixture(scope="module")
def pick_env(rh):
    env = make_env("PandaPickAndPlace-v3", render_mode="rgb_array")
    env.unwrapped.render_width, env.unwrapped.render_height = 64, 48
    yield env
    env.close()


def _ee(rec):
    return np.asarray(rec.ep["o"][-1][:3])


def test_recorder_keys_move_in_pressed_direction(rh, pick_env):
    rec = rh.Recorder(pick_env, seed=0)
    assert not rec.step() and rec.t == 0  # waits for the first key
    for key, axis in [("right", np.r_[rec.right, 0]), ("up", np.r_[rec.forward, 0]),
                      ("left", -np.r_[rec.right, 0]), ("w", np.array([0, 0, 1.0])),
                      ("s", np.array([0, 0, -1.0]))]:
        start = _ee(rec)
        rec.handle_key(key, True)
        for _ in range(4):
            assert rec.step()
        rec.handle_key(key, False)
        move = _ee(rec) - start
        assert move @ axis > 0.04, (key, move)  # ~4 steps x 2.5 cm along the key's direction
        assert np.linalg.norm(move - (move @ axis) * axis) < 0.02, (key, move)
    assert rec.t == 20
    # screen directions for panda-gym's default camera (yaw 45): right = (+x, +y) / sqrt 2
    assert np.allclose(rec.right, [np.sqrt(.5), np.sqrt(.5)])
    assert np.allclose(rec.forward, [-np.sqrt(.5), np.sqrt(.5)])


def test_recorder_gripper_save_discard(rh, pick_env, tmp_path):
    from baselines_her.demo import save_episodes
    out = tmp_path / "human.npz"
    rec = rh.Recorder(pick_env, seed=5, episodes=2, on_save=lambda b: save_episodes(out, b))
    rec.handle_key("space")  # starts the episode, closes the gripper
    assert rec.started and not rec.gripper_open and rec.action()[3] == -1.0
    rec.step()
    rec.handle_key("return")  # not finished: nothing saved
    assert rec.n_saved == 0 and "not finished (1/50 steps)" in rec.message
    rec.handle_key("backspace")  # discard: a new episode with the next seed
    assert rec.t == 0 and rec.attempt == 2 and rec.discarded == 1 and rec.gripper_open
    rec.handle_key("right")
    while rec.step():
        pass
    assert rec.done and rec.t == 50 and not rec.step()  # waits for save/discard
    assert "ENTER saves, BACKSPACE discards" in rec.message
    rec.handle_key("return")
    assert rec.n_saved == 1 and out.exists()
    batch = load_episodes_for_env(out, "PandaPickAndPlace-v3", source="human file")
    assert batch["o"].shape == (1, 51, 19) and np.all(batch["u"][:, :, 3] == 1.0)
    assert rec.t == 0 and not rec.quit and not rec.held  # next episode, keys released
    rec.handle_key("down")
    while rec.step():
        pass
    rec.handle_key("return")
    assert rec.quit and rec.n_saved == 2  # --episodes 2 reached
    batch = load_episodes_for_env(out, "PandaPickAndPlace-v3", source="human file")
    assert batch["o"].shape[0] == 2
    assert not np.allclose(batch["g"][0, 0], batch["g"][1, 0])  # different reset seeds
    assert "saved 2/2" in rec.status_lines()[0]


def test_recorder_pygame_window_headless(rh, pick_env):
    import pygame
    rec = rh.Recorder(pick_env, seed=1)
    view = rh.PygameView((64, 48))
    try:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RIGHT))
        start = np.asarray(rec.ep["o"][0][:3])
        assert rh.run(rec, view.events, view.draw, max_frames=5) == 5
        assert rec.t == 5 and (_ee(rec) - start)[:2] @ rec.right > 0.05
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=pygame.K_RIGHT))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        assert rh.run(rec, view.events, view.draw, max_frames=5) == 0 and rec.quit
    finally:
        view.close()


def test_record_human_main_headless(rh, tmp_path, monkeypatch, capsys):
    """The CLI end to end with a scripted event source: move, finish, save, quit."""
    script = [[("up", True)]] + [[]] * 49 + [[("up", False), ("return", True)], [("escape", True)]]
    frames = iter(script)
    monkeypatch.setattr(rh.PygameView, "events", lambda self: next(frames, [("escape", True)]))
    monkeypatch.setattr(rh, "RENDER_SIZE", (64, 48))
    out = tmp_path / "human.npz"
    assert rh.main(["--env", "PandaPush-v3", "--out", str(out), "--fps", "1000"]) == 0
    assert "saved 1 new episode(s), 1 in" in capsys.readouterr().out
    batch = load_episodes_for_env(out, "PandaPush-v3", source="human file")
    assert batch["u"].shape == (1, 50, 3)
    # refuses to overwrite without --append / --overwrite
    assert rh.main(["--env", "PandaPush-v3", "--out", str(out)]) == 2
    assert "pass --append" in capsys.readouterr().err
    frames = iter([[("left", True)]] + [[]] * 49 + [[("return", True)]])
    assert rh.main(["--env", "PandaPush-v3", "--out", str(out), "--fps", "1000", "--append",
                    "--episodes", "1", "--seed", "7"]) == 0  # quits by itself after 1 save
    assert "saved 1 new episode(s), 2 in" in capsys.readouterr().out
    both = load_episodes_for_env(out, "PandaPush-v3", source="human file")
    assert np.array_equal(both["u"][0], batch["u"][0]) and both["u"].shape[0] == 2


# --- synthetic "human" motions (experiment/data_generation/synthetic_human.py) ---------------

def test_humanize_warps_time_resamples_and_keeps_grip_commands():
    import synthetic_human as sh

    n = T + 1
    pos = np.stack([np.linspace(0.0, 0.2, n), np.zeros(n), np.full(n, 0.1)], axis=1)
    grip = np.where(np.arange(n) < 20, 0.08, 0.0)  # open, then a closed command (exactly 0)
    path = {"pos": pos, "gripper": grip}
    rng = np.random.default_rng(0)
    m = sh.humanize(path, DT, rng, noise_m=0.0, drift_m=0.0, warp=0.3, rate_hz=30.0)
    assert np.allclose(np.diff(m["t"]), 1 / 30)  # tracker rate, not the control rate
    assert abs(m["t"][-1] - T * DT) > 1e-3  # the total duration is warped too
    # no noise: every sample lies on the straight path, in order (time warp is monotone)
    assert np.allclose(m["pos"][:, 1:], [0.0, 0.1])
    assert np.all(np.diff(m["pos"][:, 0]) >= 0)
    assert set(np.unique(m["gripper"])) == {0.0, 0.08}
    noisy = sh.humanize(path, DT, np.random.default_rng(0), 0.003, 0.005, 0.3, 30.0)
    err = noisy["pos"] - m["pos"]
    assert 0.003 < err.std() < 0.01  # white (3 mm) plus drift (5 mm) per axis


def test_synthetic_human_cli_then_import_motion(tmp_path, capsys):
    import synthetic_human as sh

    out = tmp_path / "csv"
    assert sh.main(["--env", "PandaPush-v3", "--episodes", "2", "--seed", "3",
                    "--outdir", str(out)]) == 0
    files = sorted(str(p) for p in out.glob("*.csv"))
    assert [os.path.basename(f) for f in files] == ["PandaPush-v3_0000.csv",
                                                    "PandaPush-v3_0001.csv"]
    m = read_motion_csv(files[0])
    assert m.object_pos is not None and m.goal is not None and m.gripper is None
    assert "expert success on the raw episodes" in capsys.readouterr().out
    stats = import_motion.import_motion(files, "PandaPush-v3", str(tmp_path / "h.npz"),
                                        out=lambda s: None)
    batch = load_episodes_for_env(stats["path"], "PandaPush-v3")
    # the replayed episode starts from the recorded object position and goal
    assert np.allclose(batch["o"][0, 0, 6:9], m.object_pos, atol=1e-5)
    assert np.allclose(batch["g"][0, 0], m.goal, atol=1e-6)


def test_synthetic_human_cli_rejects_bad_flags(tmp_path, capsys):
    import synthetic_human as sh

    for argv, msg in ((["--env", "PandaPush-v3", "--noise_m", "-1"], "--noise_m must be a finite"),
                      (["--env", "PandaPushJoints-v3"], "no scripted expert for"),
                      (["--env", "PandaPush-v3", "--format", "mp3"], "--format: invalid choice")):
        assert sh.main(argv + ["--outdir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
