"""Runs survive kills and signals, resume the same run, and stop cleanly when they diverge.

Kills at each step of saving are simulated in-process by raising ``SimulatedKill`` (a
BaseException, so no code path of the library handles it) from the step; real ``kill -9`` and
SIGTERM go to a subprocess. Every resumed run must reproduce the uninterrupted run's numbers
(one thread), with each epoch exactly once in progress.csv.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from baselines_her import checkpoint
from baselines_her.config import ConfigError, prepare_params, prepare_resume_params
from baselines_her.ddpg import DDPG
from baselines_her.errors import TrainingDiverged, UserError
from baselines_her.logger import Logger
from baselines_her.train import Trainer, train
from test_rollout_process import signal_after  # tests/ is on sys.path under pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The rollout process is on (the default). A resumed run's envs are fresh; each episode starts
# with PyBullet's contact cache empty (contact_cache.py), so it steps as in the uninterrupted run.
TINY = {"n_epochs": 3, "n_cycles": 3, "n_batches": 3, "batch_size": 32, "hidden": 16,
        "layers": 1, "n_test_rollouts": 2, "buffer_size": 5000, "num_threads": 1, "seed": 4,
        "policy_save_interval": 1, "jit_compile": 0}  # XLA's compile time would dominate here


class SimulatedKill(BaseException):
    pass


def rows_of(logdir):
    with open(os.path.join(logdir, "progress.csv"), newline="") as f:
        return list(csv.DictReader(f))


def tensorboard_steps(logdir, tag="test/success_rate"):
    """Every step written for ``tag`` in the run's TensorBoard files, repeats included."""
    import tensorflow as tf
    folder = os.path.join(logdir, "tb")
    steps = []
    for name in sorted(os.listdir(folder)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return sorted(steps)


def numbers(rows):
    """Rows without wall-clock fields."""
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("reference"))
    train(prepare_params("PandaReach-v3", TINY), logdir=logdir)
    return numbers(rows_of(logdir))


def kill_once(monkeypatch, target, name, when):
    """Make call number ``when`` of ``target.name`` raise SimulatedKill instead of running, like
    a kill just before that step."""
    original = getattr(target, name)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == when:
            raise SimulatedKill(name)
        return original(*args, **kwargs)
    monkeypatch.setattr(target, name, wrapped)


@pytest.mark.parametrize("target,name,when", [
    # when=2: during epoch 1's save
    (checkpoint, "_write_files", 2),      # mid-save: the new snapshot is incomplete
    (checkpoint, "_rename_complete", 2),  # complete but not yet named
    (checkpoint, "_switch_latest", 2),    # complete and named, `latest` not switched
    (checkpoint, "_delete_others", 2),    # switched; the old snapshot still there
    (Trainer, "_publish_epoch", 2),       # checkpoint saved, nothing of the epoch published
    (Logger, "write_row", 2),             # policy files written, the row not yet
    (Logger, "write_tensorboard", 2),     # the row written, the TensorBoard point not yet
    (DDPG, "train_batches", 5),           # mid-update: epoch 1's second cycle, rollouts in flight
])
def test_kill_at_each_save_step_then_resume_reproduces_the_run(tmp_path, monkeypatch, reference,
                                                                target, name, when):
    logdir = str(tmp_path)
    with monkeypatch.context() as m:
        kill_once(m, target, name, when)
        with pytest.raises(SimulatedKill):
            train(prepare_params("PandaReach-v3", TINY), logdir=logdir)
    with open(os.path.join(logdir, "params.json")) as f:
        params_before = f.read()
    result = train(prepare_params("PandaReach-v3", TINY), logdir=logdir, resume=True)
    with open(os.path.join(logdir, "params.json")) as f:
        assert f.read() == params_before
    rows = rows_of(logdir)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert tensorboard_steps(logdir) == [0, 1, 2]
    assert numbers(rows) == reference
    assert result.final_test_success == float(reference[-1]["test/success_rate"])
    for epoch in range(3):
        assert os.path.exists(os.path.join(logdir, f"policy_{epoch}.pkl"))
    # One complete snapshot is left, the one `latest` names; unfinished ones are gone.
    entries = sorted(os.listdir(os.path.join(logdir, "checkpoint")))
    assert len(entries) == 2 and entries[0] == "latest" and entries[1].startswith("step-")
    assert checkpoint.latest_snapshot(os.path.join(logdir, "checkpoint")).endswith(entries[1])


def test_torn_progress_line_is_dropped_on_resume(tmp_path, monkeypatch, reference):
    logdir = str(tmp_path)
    with monkeypatch.context() as m:
        kill_once(m, Trainer, "_publish_epoch", when=2)
        with pytest.raises(SimulatedKill):
            train(prepare_params("PandaReach-v3", TINY), logdir=logdir)
    with open(os.path.join(logdir, "progress.csv"), "a") as f:
        f.write("1,0.5,-3")  # a row cut off by the kill, without its newline
    train(prepare_params("PandaReach-v3", TINY), logdir=logdir, resume=True)
    assert numbers(rows_of(logdir)) == reference


def test_signal_mid_epoch_saves_position_and_resume_reproduces_the_run(tmp_path, monkeypatch,
                                                                        reference):
    logdir = str(tmp_path)
    with monkeypatch.context() as m:
        signal_after(m, 4)  # epoch 1, after its first cycle
        result = train(prepare_params("PandaReach-v3", TINY), logdir=logdir)
    assert result.stopped_by == "SIGTERM"
    assert [r["epoch"] for r in rows_of(logdir)] == ["0"]
    meta = checkpoint.read_meta(checkpoint.latest_snapshot(os.path.join(logdir, "checkpoint")))
    assert meta["position"] == [1, 1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    train(prepare_params("PandaReach-v3", TINY), logdir=logdir, resume=True)
    assert numbers(rows_of(logdir)) == reference


def test_object_task_resumes_the_same_run(tmp_path, monkeypatch):
    # The cube rests on the table at every reset: without an empty contact cache at each reset
    # (contact_cache.py) the resumed run's fresh envs step differently from the first episode on.
    params = prepare_params("PandaPush-v3", {**TINY, "n_epochs": 2})
    train(params, logdir=str(tmp_path / "reference"))
    logdir = str(tmp_path / "run")
    with monkeypatch.context() as m:
        signal_after(m, 2)
        assert train(params, logdir=logdir).stopped_by == "SIGTERM"
    train(params, logdir=logdir, resume=True)
    assert numbers(rows_of(logdir)) == numbers(rows_of(str(tmp_path / "reference")))


def test_divergence_stops_the_run_and_keeps_the_last_good_files(tmp_path, monkeypatch):
    from baselines_her.ddpg import DDPG
    logdir = str(tmp_path)
    original = DDPG.train_batches
    calls = {"n": 0}

    def poisoned(self, batches):
        out = original(self, batches)
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 1, cycle 1 (3 cycles an epoch, one call a cycle)
            out["td_abs"][1, 4] = np.nan
        return out
    monkeypatch.setattr(DDPG, "train_batches", poisoned)
    with pytest.raises(TrainingDiverged, match=r"TD errors became NaN or inf at epoch 1, "
                                               r"update 13;.*checkpoint.*are kept"):
        train(prepare_params("PandaReach-v3", TINY), logdir=logdir)
    assert [r["epoch"] for r in rows_of(logdir)] == ["0"]
    meta = checkpoint.read_meta(checkpoint.latest_snapshot(os.path.join(logdir, "checkpoint")))
    assert meta["position"] == [1, 0]
    assert not os.path.exists(os.path.join(logdir, "policy_1.pkl"))


def test_save_buffer_0_resumes_with_an_empty_buffer(tmp_path, capsys):
    logdir = str(tmp_path)
    params = {**TINY, "n_epochs": 1, "save_buffer": "0"}
    train(prepare_params("PandaReach-v3", params), logdir=logdir)
    snapshot = checkpoint.latest_snapshot(os.path.join(logdir, "checkpoint"))
    assert not [k for k in checkpoint.read_arrays(snapshot) if k.startswith("buffer/")]
    result = train(prepare_params("PandaReach-v3", {**params, "n_epochs": 2}), logdir=logdir,
                   resume=True)
    assert "resuming with an empty buffer" in capsys.readouterr().out
    assert result.epochs_run == 1 and [r["epoch"] for r in rows_of(logdir)] == ["0", "1"]


def test_resume_takes_the_runs_parameters(tmp_path):
    logdir = str(tmp_path)
    train(prepare_params("PandaReach-v3", {**TINY, "n_epochs": 1, "seed": 2}), logdir=logdir)
    params = prepare_resume_params(logdir, {"n_epochs": "2"})
    assert (params.seed, params.n_cycles, params.n_epochs) == (2, 3, 2)
    with pytest.raises(ConfigError, match=r"--seed=0 differs from the run's 2"):
        prepare_resume_params(logdir, {"seed": "0"})
    with pytest.raises(ConfigError, match=r"--n_epochs=0: --resume may only extend"):
        prepare_resume_params(logdir, {"n_epochs": "0"})
    # train() checks the parameters it is given against the run's, too.
    with pytest.raises(ConfigError, match="--n_cycles=10 differs"):
        train(prepare_params("PandaReach-v3", {**TINY, "seed": 2, "n_cycles": 10}),
              logdir=logdir, resume=True)
    with pytest.raises(UserError, match="no checkpoint"):
        os.makedirs(tmp_path / "empty")
        (tmp_path / "empty" / "params.json").write_text((tmp_path / "params.json").read_text())
        train(prepare_params("PandaReach-v3", {**TINY, "seed": 2}),
              logdir=str(tmp_path / "empty"), resume=True)


def test_episode_files_are_stored_absolute_so_resume_works_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = prepare_params("PandaReach-v3", {"demo_file": "d.npz", "human_file": "h.npz",
                                              "human_ratio": "0.25"}, T=50)
    assert (params.demo_file, params.human_file) == (str(tmp_path / "d.npz"),
                                                      str(tmp_path / "h.npz"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "params.json").write_text(json.dumps({**params, "demo_file": "d.npz"}))
    monkeypatch.chdir(run)  # a relative name from a run's params.json that is not here
    with pytest.raises(ConfigError, match=r"names demo_file='d.npz' relative to the folder"):
        prepare_resume_params(str(run))
    (run / "d.npz").write_bytes(b"")
    assert prepare_resume_params(str(run)).demo_file == "d.npz"


# ---- real processes ----------------------------------------------------------------------------
def her(*args):
    return [sys.executable, "-m", "baselines_her.her", *args]


def cli_flags(logdir):
    return [f"--logdir={logdir}"] + [f"--{k}={v}" for k, v in TINY.items()]


def wait_for(path, proc, timeout=120):
    t0 = time.monotonic()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def test_sigterm_exits_0_with_how_to_resume_and_kill_9_resumes(tmp_path, reference):
    logdir = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(her(*cli_flags(logdir)), cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(os.path.join(logdir, "checkpoint", "latest"), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert f"python -m baselines_her.her --resume --logdir={logdir}" in out
    # kill -9 of the resumed run at a random instant after its first new checkpoint
    proc = subprocess.Popen(her("--resume", f"--logdir={logdir}"), cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    latest = os.path.join(logdir, "checkpoint", "latest")
    before = os.stat(latest).st_mtime_ns
    t0 = time.monotonic()
    while os.stat(latest).st_mtime_ns == before and proc.poll() is None:
        assert time.monotonic() - t0 < 120
        time.sleep(0.02)
    time.sleep(np.random.default_rng().uniform(0.0, 1.0))
    proc.kill()
    proc.communicate()
    done = subprocess.run(her("--resume", f"--logdir={logdir}"), cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(logdir, "log.txt")) as f:  # where the run stopped and resumed
        events = [line.strip() for line in f if line.startswith(("stopped", "resumed"))]
    assert numbers(rows_of(logdir)) == reference, events


def test_diverging_run_exits_with_one_line(tmp_path):
    logdir = str(tmp_path / "run")
    out = subprocess.run(her(*cli_flags(logdir), "--Q_lr=1e30", "--pi_lr=1e30"), cwd=ROOT,
                         text=True, capture_output=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 3, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: training diverged: "), lines
