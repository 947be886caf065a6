"""experiment/data_generation/import_vr.py: the VR text parser, the axis map, the per-episode
alignment, the approach and index stretch, the CLI, and synthetic VR recordings -> import_vr.py ->
a PandaPickAndPlace file."""

import os
import subprocess
import sys

import numpy as np
import pytest

from baselines_her.demo import DemoError, load_episodes_for_env
from baselines_her.envs import make_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_GEN = os.path.join(ROOT, "experiment", "data_generation")
if DATA_GEN not in sys.path:
    sys.path.insert(0, DATA_GEN)

import import_vr  # noqa: E402
from import_vr import (align_xy, grasp_sample, parse_axes, read_vr_text, to_sim,  # noqa: E402
                       vr_episode)

T = 50


def vr_text(index, unity, f):
    return "".join(f"{k}\t({x:.2f}, {y:.2f}, {z:.2f})\t{v:.2f}\n"
                   for k, (x, y, z), v in zip(index, unity, f))


def test_parser_reads_the_recorder_format(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("# a comment\n0\t(0.12, 0.95, -0.04)\t0.04\n\n1\t(0.13, 0.94, -0.05)\t0.03\n"
                    "5\t(-1.00, 2.50, 3.00)\t0.00\n")
    rec = read_vr_text(str(path))
    assert rec.index.tolist() == [0, 1, 5]
    assert np.allclose(rec.pos, [[0.12, 0.95, -0.04], [0.13, 0.94, -0.05], [-1, 2.5, 3]])
    assert rec.finger.tolist() == [0.04, 0.03, 0.0]


BAD = {
    "no tabs or parens": ("0 0.1 0.2 0.3 0.04\n", r"line 1 is '0 0.1 0.2 0.3 0.04', expected "
                                                  r"<index>\\t\(<x>, <y>, <z>\)\\t<f>"),
    "two coordinates": ("0\t(0.1, 0.2)\t0.04\n", r"line 1 is .*expected <index>"),
    "not a number": ("0\t(0.1, 0.2, 0.3)\t0.04\n1\t(0.1, 1.2.3, 0.3)\t0.04\n",
                     r"line 2 is .*expected numbers"),
    "index order": ("0\t(0.1, 0.2, 0.3)\t0.04\n\n4\t(0.1, 0.2, 0.3)\t0.04\n4\t(0, 0, 0)\t0\n",
                    r"line 4: index 4 after 4; indices must be strictly increasing"),
    "nan": ("0\t(0.1, nan, 0.3)\t0.04\n", r"line 1: expected finite numbers"),
    "empty": ("# only a comment\n", r"no samples; expected lines"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_parser_errors_name_file_and_line(tmp_path, case):
    text, pattern = BAD[case]
    path = tmp_path / "rec.txt"
    path.write_text(text)
    with pytest.raises(DemoError, match=pattern) as e:
        read_vr_text(str(path))
    assert str(e.value).startswith(f"{path}: ")


def test_axis_map():
    unity = np.array([[1.0, 2.0, 3.0]])
    assert to_sim(unity, parse_axes("z,-x,y")).tolist() == [[3.0, -1.0, 2.0]]  # the default
    assert to_sim(unity, parse_axes("x, y, -z"), z_offset=0.5).tolist() == [[1.0, 2.0, -2.5]]
    for bad in ("z,-x", "z,x,x", "z,-x,w", "zz,x,y"):
        with pytest.raises(DemoError, match="--axes must name x, y and z once each"):
            parse_axes(bad)


def test_grasp_and_alignment_land_object_and_goal():
    assert grasp_sample(np.array([0.0, 0.08, 0.08, 0.01, 0.0, 0.08]), 0.02) == 3  # after open
    assert grasp_sample(np.array([0.0, 0.0]), 0.02) is None
    rng = np.random.default_rng(0)
    path = rng.uniform(-0.3, 0.3, (40, 3))
    sim_object, sim_goal = np.array([0.05, -0.1, 0.02]), np.array([-0.1, 0.08, 0.2])
    out, how = align_xy(path, 10, sim_object, sim_goal)
    assert np.allclose(out[10, :2], sim_object[:2]) and np.allclose(out[-1, :2], sim_goal[:2])
    assert np.array_equal(out[:, 2], path[:, 2])  # z is not aligned
    assert all(h.startswith("scale ") for h in how)
    # object and goal 1 cm apart in x: no scale; shifted onto the object, blended into the goal
    path[-1, 0] = path[10, 0] + 0.01
    out, how = align_xy(path, 10, sim_object, sim_goal)
    assert how[0] == "blend" and how[1].startswith("scale ")
    assert np.allclose(out[10, :2], sim_object[:2]) and np.allclose(out[-1, :2], sim_goal[:2])
    assert np.allclose(out[:11, 0] - path[:11, 0], sim_object[0] - path[10, 0])
    # no grasp: shifted so the goal lands
    out, how = align_xy(path, None, sim_object, sim_goal)
    assert how == ["shift", "shift"] and np.allclose(out[-1, :2], sim_goal[:2])
    assert np.allclose(out[:, :2] - path[:, :2], out[-1, :2] - path[-1, :2])


@pytest.fixture(scope="module")
def reach_env():
    env = make_env("PandaReach-v3")
    yield env
    env.close()


def test_approach_then_stretch_by_index(tmp_path, reach_env):
    """11 samples with an index gap, no alignment: 8 approach steps from the robot's start, then
    the recording over steps 8..50 by index value, tracked in the env."""
    index = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20])
    sim = np.stack([0.0 + 0.01 * index, -0.05 + 0.01 * index, 0.15 + 0 * index], axis=1)
    unity = np.stack([-sim[:, 1], sim[:, 2], sim[:, 0]], axis=1)  # inverse of z,-x,y
    path = tmp_path / "r.txt"
    path.write_text(vr_text(index, unity, np.zeros(11)))
    rec = read_vr_text(str(path))
    ep, rep, notes = vr_episode(reach_env, T, rec, 0, "PandaReach-v3", parse_axes("z,-x,y"),
                                align="none")
    targets, ee0 = rep["targets"], ep["o"][0, :3]
    assert targets.shape == (T + 1, 3)
    assert np.allclose(targets[0], ee0, atol=1e-6)
    assert np.allclose(targets[4], (ee0 + sim[0]) / 2, atol=1e-6)  # halfway through the approach
    assert np.allclose(targets[8], sim[0], atol=1e-6) and np.allclose(targets[50], sim[-1])
    # by index value: index 10 (halfway between 0 and 20) is at step 8 + 21
    assert np.allclose(targets[29], sim[0] + (sim[-1] - sim[0]) / 2, atol=1e-6)
    assert "stretched by index over steps 8..50" in notes
    assert np.linalg.norm(ep["o"][-1, :3] - sim[-1]) < 0.03  # the env followed (with a lag)
    _, rep2, notes2 = vr_episode(reach_env, T, rec, 0, "PandaReach-v3", parse_axes("z,-x,y"),
                                 align="none", approach_steps=0, rate_hz=20.0)
    assert "at 20 Hz: recording lasts 1.00 s < 2.00 s" in notes2[-1] and "padded" in notes2[-1]
    assert np.allclose(rep2["targets"][0], sim[0]) and np.allclose(rep2["targets"][5], sim[4])
    assert np.allclose(rep2["targets"][25:], sim[-1])  # real time: index 20 at 1 s, then held


def test_cli_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "r.txt"
    path.write_text(vr_text([0, 1], np.zeros((2, 3)), [0.04, 0.0]))
    out = tmp_path / "o.npz"
    base = [str(path), "--env", "PandaPickAndPlace-v3", "--out", str(out)]
    for flags, msg in ((["--axes", "x,y"], "error: --axes must name x, y and z"),
                       (["--approach_steps", "50"], "error: --approach_steps must be in [0, 49]"),
                       (["--rate_hz", "0"], "error: --rate_hz must be a positive number")):
        assert import_vr.main(base + flags) == 2
        err = capsys.readouterr().err
        assert err.startswith(msg) and err.count("\n") == 1 and not out.exists()
    assert import_vr.main([str(tmp_path / "none.txt"), "--env", "PandaReach-v3", "--out",
                           str(out)]) == 2
    assert "none.txt: cannot read as a VR text recording" in capsys.readouterr().err


def test_runs_as_a_script(tmp_path):
    script = os.path.join(DATA_GEN, "import_vr.py")
    r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: import_vr.py")
    for flag in ("--env", "--out", "--axes", "--align", "--approach_steps", "--rate_hz",
                 "--z_offset", "--only_success", "--seed", "--close_below"):
        assert flag in r.stdout, flag
    r = subprocess.run([sys.executable, script, str(tmp_path / "none.txt"), "--env",
                        "PandaReach-v3", "--out", str(tmp_path / "o.npz")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: ") and "cannot read as a VR text recording" in r.stderr


def test_synthetic_vr_recordings_through_import_vr(tmp_path, capsys):
    import synthetic_human as sh

    outdir = tmp_path / "vr"
    assert sh.main(["--env", "PandaPickAndPlace-v3", "--episodes", "2", "--seed", "3",
                    "--format", "vr", "--outdir", str(outdir)]) == 0
    files = sorted(str(p) for p in outdir.glob("*.txt"))
    assert [os.path.basename(f) for f in files] == ["synthetic_PandaPickAndPlace-v3_0000.txt",
                                                    "synthetic_PandaPickAndPlace-v3_0001.txt"]
    first = open(files[0]).read().splitlines()
    assert first[0].startswith("# synthetic") and "not a human recording" in first[0]
    assert "import_vr.py" in capsys.readouterr().out
    out = tmp_path / "human.npz"
    assert import_vr.main([*files, "--env", "PandaPickAndPlace-v3", "--seed", "3",
                           "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("success, kept; ") == 2 and "grasp at sample" in text
    b = load_episodes_for_env(out, "PandaPickAndPlace-v3", source="human file")
    assert b["o"].shape == (2, T + 1, 19) and b["info_is_success"][:, -1, 0].tolist() == [1, 1]
    env = make_env("PandaPickAndPlace-v3")
    try:  # the episodes are the sim's scenes of seeds 3 and 4
        for i in range(2):
            obs, _ = env.reset(seed=3 + i)
            assert np.allclose(b["g"][i, 0], obs["desired_goal"], atol=1e-6)
            assert np.allclose(b["ag"][i, 0], obs["achieved_goal"], atol=1e-6)
    finally:
        env.close()


def test_cli_default_axis_map_without_alignment(tmp_path, capsys):
    """A recording made in Unity coordinates of the sim point (0.10, 0.08, 0.12) ends there."""
    sim = np.linspace([0.04, 0.0, 0.2], [0.10, 0.08, 0.12], 12)
    unity = np.stack([-sim[:, 1], sim[:, 2], sim[:, 0]], axis=1)
    path = tmp_path / "r.txt"
    path.write_text(vr_text(range(12), unity, np.zeros(12)))
    out = tmp_path / "reach.npz"
    assert import_vr.main([str(path), "--env", "PandaReach-v3", "--align", "none",
                           "--out", str(out)]) == 0
    assert "aligned" not in capsys.readouterr().out
    b = load_episodes_for_env(out, "PandaReach-v3")
    assert np.linalg.norm(b["o"][0, -1, :3] - sim[-1]) < 0.01
