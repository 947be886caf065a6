"""Bad inputs through the real command lines (subprocesses): exit 2, exactly one stderr line that
names the flag, file or key and what was expected, no traceback, and an existing run folder left
byte for byte as it was."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_GEN = os.path.join(ROOT, "experiment", "data_generation")
HER = [sys.executable, "-m", "baselines_her.her"]
GENERATE = [sys.executable, os.path.join(DATA_GEN, "generate_demos.py")]
FETCH = [sys.executable, os.path.join(DATA_GEN, "fetch_data_generation.py")]
RECORD = [sys.executable, os.path.join(DATA_GEN, "record_human.py")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An earlier run's folder (params.json, progress.csv, log.txt, a policy file; no checkpoint),
    an empty folder and demo files: good, not an npz, wrong observation size."""
    from baselines_her.config import prepare_params
    base = tmp_path_factory.mktemp("cli")
    run = base / "run"
    run.mkdir()
    params = prepare_params("PandaReach-v3", {"seed": 0, "n_epochs": 2, "logdir": str(run)})
    (run / "params.json").write_text(params.to_json())
    (run / "progress.csv").write_text("epoch,test/success_rate\n0,0.1\n1,0.3\n")
    (run / "log.txt").write_text("epoch 0\nepoch 1\n")
    (run / "policy_latest.pkl").write_bytes(b"\x80\x04policy bytes")
    (base / "empty").mkdir()
    B, T = 2, params.T
    good = {"o": np.zeros((B, T + 1, 6)), "ag": np.zeros((B, T + 1, 3)), "g": np.zeros((B, T, 3)),
            "u": np.zeros((B, T, 3)), "info_is_success": np.zeros((B, T, 1))}
    np.savez(base / "good.npz", **{k: v.astype(np.float32) for k, v in good.items()})
    wrong = dict(good, o=np.zeros((B, T + 1, 7)))
    np.savez(base / "wrong_shape.npz", **{k: v.astype(np.float32) for k, v in wrong.items()})
    (base / "not_npz.npz").write_text("episode,step,x\n0,0,0.1\n")
    return base


# (id, command, arguments with {d} = the fixture's folder, substrings the one line must hold)
ROWS = [
    ("unknown key", HER, ["--batchsize=3"], ["unknown flag --batchsize", "--batch_size"]),
    ("unknown key, space form", HER, ["--replay_kk", "4"], ["unknown flag --replay_kk",
                                                           "--replay_k"]),
    ("stray argument", HER, ["PandaReach-v3"], ["unexpected argument 'PandaReach-v3'",
                                                "--key=value"]),
    ("bad type", HER, ["--seed=abc"], ["--seed='abc'", "expected int"]),
    ("bad type, space form", HER, ["--Q_lr", "fast"], ["--Q_lr='fast'", "expected float"]),
    ("bad bool", HER, ["--clip_return=maybe"], ["--clip_return='maybe'", "expected bool"]),
    ("bad value", HER, ["--replay_strategy=futur"], ["--replay_strategy must be one of",
                                                     "future", "'futur'"]),
    ("out of range", HER, ["--random_eps", "1.5"], ["--random_eps must be in [0, 1]", "1.5"]),
    ("missing value", HER, ["--seed"], ["--seed", "expected one argument"]),
    ("unknown env id", HER, ["--env=PandaPushh-v3"], ["unknown env id 'PandaPushh-v3'",
                                                      "PandaPush-v3"]),
    ("env that cannot be built", HER, ["--env=PandaFlip-v3"],
     ["'PandaFlip-v3' cannot be built", "pybullet.error", "texture", "panda-gym"]),
    ("missing demo file", HER, ["--demo_file={d}/missing.npz"],
     ["--demo_file", "missing.npz", "no such file"]),
    ("non-npz demo file", HER, ["--demo_file={d}/not_npz.npz"],
     ["--demo_file", "not_npz.npz", "not an .npz file"]),
    ("wrong-shape demo file", HER, ["--demo_file={d}/wrong_shape.npz"],
     ["--demo_file", "wrong_shape.npz", "'o'", "6"]),
    ("no demos requested", HER, ["--demo_file={d}/good.npz", "--num_demo=0"],
     ["--num_demo", "0"]),
    ("missing human file", HER, ["--human_file={d}/missing.npz", "--human_ratio=0.25"],
     ["--human_file", "missing.npz", "no such file"]),
    ("folder already holds a run", HER, ["--logdir={d}/run", "--n_epochs=1"],
     ["{d}/run already holds a run", "--resume"]),
    ("--resume without a folder", HER, ["--resume"], ["--resume needs the run's folder"]),
    ("--resume on a folder without a run", HER, ["--resume={d}/empty"],
     ["{d}/empty/params.json not found"]),
    ("--resume with a differing flag", HER, ["--resume", "--logdir={d}/run", "--seed=3"],
     ["--seed=3 differs from the run's 0", "params.json"]),
    ("--resume with a differing env", HER, ["--resume={d}/run", "--env=PandaPush-v3"],
     ["--env='PandaPush-v3' differs from the run's 'PandaReach-v3'"]),
    ("--resume shortening the run", HER, ["--resume={d}/run", "--n_epochs=1"],
     ["--n_epochs=1", "may only extend", "n_epochs=2"]),
    ("--resume and --logdir disagree", HER, ["--resume={d}/run", "--logdir={d}/empty"],
     ["--resume={d}/run and --logdir={d}/empty name different folders"]),
    ("--resume of a run without checkpoint", HER, ["--resume={d}/run"],
     ["--resume: no checkpoint in {d}/run"]),
    ("demos: unknown env id", GENERATE, ["--env", "PandaPsh-v3"],
     ["unknown environment 'PandaPsh-v3'", "PandaPush-v3"]),
    ("demos: env without an expert", GENERATE, ["--env", "PandaFlip-v3"],
     ["no scripted expert for 'PandaFlip-v3'", "PandaPush-v3"]),
    ("demos: bad type", GENERATE, ["--env", "PandaReach-v3", "--episodes", "many"],
     ["argument --episodes", "invalid int value: 'many'"]),
    ("demos: bad value", GENERATE, ["--env", "PandaReach-v3", "--noise", "-1"],
     ["--noise must be a finite number >= 0", "-1"]),
    ("demos: unknown flag", GENERATE, ["--env", "PandaReach-v3", "--episode", "3"],
     ["unrecognized arguments: --episode 3"]),
    ("demos: missing output folder", GENERATE, ["--env", "PandaReach-v3", "--out",
                                                "{d}/nowhere/demos.npz"],
     ["--out", "{d}/nowhere", "does not exist"]),
    ("demos: output is a folder", GENERATE, ["--env", "PandaReach-v3", "--out", "{d}/empty"],
     ["--out '{d}/empty' is a directory"]),
    ("fetch demos: other task", FETCH, ["--env", "FetchPush-v4"],
     ["only handles FetchPickAndPlace", "'FetchPush-v4'"]),
    ("fetch demos: bad value", FETCH, ["--episodes", "0"], ["--episodes must be a positive"]),
    ("recorder: env that cannot be built", RECORD, ["--env", "PandaFlip-v3", "--out",
                                                    "{d}/human.npz"],
     ["'PandaFlip-v3' cannot be built", "pybullet.error"]),
    ("recorder: joint control", RECORD, ["--env", "PandaReachJoints-v3", "--out",
                                         "{d}/human.npz"],
     ["PandaReachJoints-v3", "end-effector control"]),
    ("recorder: existing output", RECORD, ["--out", "{d}/good.npz"],
     ["{d}/good.npz exists", "--append", "--overwrite"]),
    ("recorder: append to a non-npz file", RECORD, ["--append", "--env", "PandaReach-v3",
                                                    "--out", "{d}/not_npz.npz"],
     ["--append", "not_npz.npz", "not an .npz file"]),
    ("recorder: missing flag", RECORD, ["--env", "PandaReach-v3"],
     ["required", "--out"]),
]


def snapshot(folder) -> dict:
    """Every file under ``folder`` (relative path -> bytes) and every subfolder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        out[rel + "/"] = None
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                out[os.path.join(rel, name)] = f.read()
    return out


@pytest.mark.parametrize("command,args,expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_exit_2(files, command, args, expected):
    d = str(files)
    before = snapshot(files)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SDL_VIDEODRIVER": "dummy",
           "SDL_AUDIODRIVER": "dummy", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(command + [a.format(d=d) for a in args], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env=env)
    lines = out.stderr.splitlines()
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    for part in expected:
        assert part.format(d=d) in lines[0], (part, lines[0])
    assert snapshot(files) == before



def test_a_bug_keeps_its_traceback(tmp_path):
    """An exception that is not a user error (here one injected into training) is not turned into
    a one-line message: Python's traceback and exit 1."""
    code = ("import sys, baselines_her.train as t, baselines_her.her as her\n"
            "def bug(*args, **kwargs):\n"
            "    raise ZeroDivisionError('injected bug')\n"
            "t.train = bug\n"
            "sys.exit(her.main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, "--env=PandaReach-v3",
                           f"--logdir={tmp_path / 'run'}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "ZeroDivisionError: injected bug" in done.stderr
    assert "error: injected bug" not in done.stderr
