"""The training rollouts in a second process (--rollout_process): one cycle of policy lag and
nothing else, reproducible, resumable bit for bit (pending episodes), errors from the child,
signals, no TensorFlow there, and no process left behind."""
import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from baselines_her import checkpoint
from baselines_her.config import (RESUME_MUTABLE, ConfigError, prepare_params,
                                  prepare_resume_params)
from baselines_her.envs import describe_env, make_env
from baselines_her.errors import UserError
from baselines_her.networks import NumpyActor
from baselines_her.rollout_process import RolloutProcess, actor_arrays, actor_from_arrays
from baselines_her.seeding import seed_everything
from baselines_her.train import Trainer, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Resumed runs' envs are fresh; each episode starts with PyBullet's contact cache empty
# (contact_cache.py), so resumes reproduce exactly.
SMALL = {"n_epochs": 2, "n_cycles": 3, "n_batches": 2, "hidden": 16, "layers": 1,
         "n_test_rollouts": 1, "buffer_size": 2000, "num_threads": 1, "jit_compile": 0,
         "seed": 0, "policy_save_interval": 1}
ON, OFF = {**SMALL, "rollout_process": 1}, {**SMALL, "rollout_process": 0}


def rows_of(logdir):
    with open(os.path.join(logdir, "progress.csv"), newline="") as f:
        return list(csv.DictReader(f))


def numbers(rows):
    """Rows without wall-clock fields."""
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]


def run(params, logdir, resume=False):
    train(prepare_params("PandaReach-v3", params), logdir=str(logdir), resume=resume)
    return numbers(rows_of(logdir))


def gone(pid):
    """True once process ``pid`` has exited and been reaped (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def lag_by_hand(monkeypatch, n_cycles, until=None):
    """In one process, give every cycle but an epoch's first the actor of one cycle earlier (what
    the rollout process does), for the calls of ``Trainer._cycle`` numbered up to ``until``."""
    original = Trainer._cycle
    seen = {"calls": 0, "previous": None}

    def cycle(self, actor, epoch, prefetch=False):
        k = seen["calls"]
        lagged = k % n_cycles != 0 and (until is None or k <= until)
        use = seen["previous"] if lagged else actor
        seen["previous"], seen["calls"] = actor, k + 1
        original(self, use, epoch, prefetch)
    monkeypatch.setattr(Trainer, "_cycle", cycle)


def signal_after(monkeypatch, n):
    """SIGTERM to this process after the n-th cycle (the run stops after that cycle)."""
    original = Trainer._cycle
    calls = {"n": 0}

    def cycle(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            signal.raise_signal(signal.SIGTERM)
    monkeypatch.setattr(Trainer, "_cycle", cycle)


def record_children(monkeypatch):
    """The pids of the rollout processes that requests go to."""
    pids = []
    original = RolloutProcess.submit

    def submit(self, actor):
        original(self, actor)
        if self.pid not in pids:
            pids.append(self.pid)
    monkeypatch.setattr(RolloutProcess, "submit", submit)
    return pids


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The rows of one run with the rollout process."""
    return run(ON, tmp_path_factory.mktemp("on"))


# ---- semantics -----------------------------------------------------------------------------------
def test_actor_arrays_pickle_and_give_the_same_actions():
    rng = np.random.default_rng(0)
    weights = {"actor_dense_0/kernel": rng.normal(size=(9, 8)),
               "actor_dense_0/bias": rng.normal(size=8),
               "actor_out/kernel": rng.normal(size=(8, 3)), "actor_out/bias": rng.normal(size=3)}
    actor = NumpyActor(weights, "actor", 1, 0.7, rng.normal(size=6), rng.uniform(0.5, 2, 6),
                       rng.normal(size=3), rng.uniform(0.5, 2, 3), 5.0, 200.0)
    copy = actor_from_arrays(pickle.loads(pickle.dumps(actor_arrays(actor))))
    o, g = rng.normal(size=(4, 6)) * 3, rng.normal(size=(4, 3)) * 3
    np.testing.assert_array_equal(copy(o, g), actor(o, g))


def test_one_cycle_epochs_equal_the_single_process_run(tmp_path):
    """With one cycle per epoch nothing is prefetched: the same envs, seeds, generators and
    actors as in one process, so the same numbers."""
    one_cycle = {"n_cycles": 1, "n_epochs": 3}
    assert run({**ON, **one_cycle}, tmp_path / "on") == run({**OFF, **one_cycle}, tmp_path / "off")


def test_same_seed_twice_gives_the_same_numbers(tmp_path, uninterrupted):
    assert run(ON, tmp_path) == uninterrupted


def test_rollouts_use_the_actor_of_one_cycle_earlier(tmp_path, monkeypatch, uninterrupted):
    """The run equals a one-process run that gives every cycle but an epoch's first the actor of
    the cycle before (and differs from the one-process run without that lag)."""
    assert run(OFF, tmp_path / "plain") != uninterrupted
    lag_by_hand(monkeypatch, SMALL["n_cycles"])
    assert run(OFF, tmp_path / "lagged") == uninterrupted


# ---- stop and resume -----------------------------------------------------------------------------
def stop_mid_epoch(monkeypatch, logdir, after=4):
    """Run with the rollout process and SIGTERM after ``after`` cycles (4: epoch 1, cycle 0, so
    cycle 1's rollouts are in flight)."""
    with monkeypatch.context() as m:
        signal_after(m, after)
        result = train(prepare_params("PandaReach-v3", ON), logdir=str(logdir))
    assert result.stopped_by == "SIGTERM"
    return checkpoint.latest_snapshot(os.path.join(logdir, "checkpoint"))


def test_stop_saves_the_episodes_in_flight_and_resume_reproduces_the_run(tmp_path, monkeypatch,
                                                                         uninterrupted):
    snapshot = stop_mid_epoch(monkeypatch, tmp_path)
    meta, arrays = checkpoint.read_meta(snapshot), checkpoint.read_arrays(snapshot)
    assert meta["position"] == [1, 1]
    pending = {k[len("pending/"):]: v for k, v in arrays.items() if k.startswith("pending/")}
    assert sorted(pending) == ["ag", "g", "info_is_success", "o", "u"]
    assert pending["u"].shape == (2, 50, 3) and set(meta["pending"]) >= {"success_rate"}
    stored = []
    original = Trainer._store
    with monkeypatch.context() as m:
        m.setattr(Trainer, "_store", lambda self, episodes: (stored.append(episodes),
                                                             original(self, episodes)))
        assert run(ON, tmp_path, resume=True) == uninterrupted
    for key, value in pending.items():  # the resumed run's first cycle stored them
        np.testing.assert_array_equal(stored[0][key], value)


def test_resume_without_the_process_stores_the_pending_episodes(tmp_path, monkeypatch):
    """Resumed with --rollout_process=0, the pending cycle keeps its episodes (one cycle of lag)
    and later cycles run in this process without lag."""
    stop_mid_epoch(monkeypatch, tmp_path / "run")
    resumed = run(OFF, tmp_path / "run", resume=True)
    lag_by_hand(monkeypatch, SMALL["n_cycles"], until=4)
    assert resumed == run(OFF, tmp_path / "by_hand")


def test_ctrl_c_to_the_process_group_stops_cleanly_and_resume_reproduces(tmp_path, uninterrupted):
    """Ctrl-C reaches every process of the group: the rollout process ignores it, the run
    finishes its cycle, saves the episodes in flight and exits 0."""
    logdir = str(tmp_path / "run")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    her = [sys.executable, "-m", "baselines_her.her", f"--logdir={logdir}"]
    proc = subprocess.Popen(her + [f"--{k}={v}" for k, v in ON.items()], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    latest = os.path.join(logdir, "checkpoint", "latest")
    t0 = time.monotonic()
    while not os.path.exists(latest):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 120, "no checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGINT at epoch 1" in out
    assert "TensorFlow" not in err  # the rollout process did not import it (it would warn)
    meta = checkpoint.read_meta(checkpoint.latest_snapshot(os.path.dirname(latest)))
    assert meta["position"][0] == 1 and meta["position"][1] in (1, 2) and meta["pending"]
    done = subprocess.run(her[:3] + ["--resume", f"--logdir={logdir}"], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert numbers(rows_of(logdir)) == uninterrupted


# ---- the child -----------------------------------------------------------------------------------
def reach_process(seed=0):
    env = make_env("PandaReach-v3")
    spec = describe_env(env, "PandaReach-v3")
    env.close()
    rngs = seed_everything(seed, n_envs=2)
    worker = RolloutProcess("PandaReach-v3", 2).configure(
        spec.T, spec.dim_o, spec.dim_g, spec.dim_u, spec.max_u, rngs.rollout, rngs.env_seeds, 0.2,
        0.3)
    weights = {"a_out/kernel": np.zeros((spec.dim_o + spec.dim_g, spec.dim_u)),
               "a_out/bias": np.zeros(spec.dim_u)}
    stats = (np.zeros(spec.dim_o), np.ones(spec.dim_o), np.zeros(spec.dim_g), np.ones(spec.dim_g))
    return worker, NumpyActor(weights, "a", 0, spec.max_u, *stats, 5.0, 200.0)


def test_child_has_no_tensorflow_one_blas_thread_and_ignores_stop_signals():
    import tensorflow  # noqa: F401  (loaded here; the child must not load it)
    before = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS")}
    worker, actor = reach_process()
    try:
        episodes, _ = worker.generate_rollouts(actor)
        assert worker.tensorflow_in_child is False
        pid = worker.pid
        if sys.platform.startswith("linux"):  # a process's start environment, from /proc
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0")
                               if b"=" in item)
            for name in before:
                assert environ[name.encode()] == b"1", name
        assert {name: os.environ.get(name) for name in before} == before  # ours unchanged
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
        again, _ = worker.generate_rollouts(actor)  # still serving, generators moved on
        assert worker.pid == pid and not np.array_equal(again["g"], episodes["g"])
    finally:
        worker.close()
    assert worker.pid is None and gone(pid)


def test_child_exception_is_raised_with_its_traceback():
    worker, _ = reach_process()
    weights = {"a_out/kernel": np.zeros((5, 3)), "a_out/bias": np.zeros(3)}  # input is 9 wide
    wrong = NumpyActor(weights, "a", 0, 1.0, np.zeros(6), np.ones(6), np.zeros(3), np.ones(3),
                       5.0, 200.0)
    with pytest.raises(RuntimeError) as err:
        worker.generate_rollouts(wrong)
    message = str(err.value)
    assert message.startswith("the rollout process failed:\nTraceback (most recent call last):")
    assert "rollout.py" in message and "ValueError" in message and "matmul" in message
    assert worker.pid is None


def test_killed_child_is_an_error_naming_the_exit_code_and_nothing_is_left(tmp_path,
                                                                           monkeypatch):
    pids = record_children(monkeypatch)
    original = Trainer._store
    calls = {"n": 0}

    def store_then_kill(self, episodes):
        original(self, episodes)
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 0, cycle 1: cycle 2's rollouts are in flight
            os.kill(self.worker.pid, signal.SIGKILL)
    monkeypatch.setattr(Trainer, "_store", store_then_kill)
    with pytest.raises(RuntimeError, match=r"the rollout process \(pid \d+\) exited with code -9 "
                                           r"\(killed by SIGKILL\) without a reply"):
        train(prepare_params("PandaReach-v3", ON), logdir=str(tmp_path))
    assert len(pids) == 1 and gone(pids[0])


@pytest.mark.parametrize("ending", ["finished", "stopped", "diverged"])
def test_no_rollout_process_is_left_after_run(tmp_path, monkeypatch, ending):
    from baselines_her.ddpg import DDPG
    from baselines_her.errors import TrainingDiverged
    pids = record_children(monkeypatch)
    if ending == "stopped":
        signal_after(monkeypatch, 4)
    if ending == "diverged":  # at cycle 1's updates, with cycle 2's rollouts in flight
        original = DDPG.train_batches
        calls = {"n": 0}

        def poisoned(self, batches):
            out = original(self, batches)
            calls["n"] += 1
            if calls["n"] == 2:
                out["critic_loss"][0] = np.nan
            return out
        monkeypatch.setattr(DDPG, "train_batches", poisoned)
    trainer = Trainer(prepare_params("PandaReach-v3", ON), str(tmp_path))
    if ending == "diverged":
        with pytest.raises(TrainingDiverged):
            trainer.run()
    else:
        from baselines_her.train import StopSignals
        with StopSignals() as stop:
            result = trainer.run(stop)
        assert result.stopped_by == ("SIGTERM" if ending == "stopped" else "")
    assert len(pids) == 1 and gone(pids[0]) and trainer.worker.pid is None


# ---- configuration -------------------------------------------------------------------------------
def test_on_by_default_off_under_mpi_and_mutable_on_resume(tmp_path):
    assert prepare_params("PandaReach-v3", {}, T=50).rollout_process is True
    assert prepare_params("PandaReach-v3", {"num_cpu": "2"}, T=50).rollout_process is False
    with pytest.raises(ConfigError, match=r"^--rollout_process=1 is for one-process runs; with "
                                          r"--num_cpu=2 MPI ranks .*drop the flag$"):
        prepare_params("PandaReach-v3", {"num_cpu": "2", "rollout_process": "1"}, T=50)
    assert "rollout_process" in RESUME_MUTABLE
    saved = dict(prepare_params("PandaReach-v3", {}, T=50))
    (tmp_path / "params.json").write_text(json.dumps(saved))
    assert prepare_resume_params(str(tmp_path), {"rollout_process": "0"}).rollout_process is False
    # A run whose params.json predates the key stepped its envs in the learner's process.
    del saved["rollout_process"]
    (tmp_path / "params.json").write_text(json.dumps(saved))
    assert prepare_resume_params(str(tmp_path)).rollout_process is False
    assert prepare_resume_params(str(tmp_path), {"rollout_process": "1"}).rollout_process is True


def test_cli_refuses_the_flag_under_mpi_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "baselines_her.her", "--num_cpu=2",
                          "--rollout_process=1", f"--logdir={tmp_path}/run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "error: --rollout_process=1 is for one-process runs; with --num_cpu=2 MPI ranks the "
        "rollouts run in the ranks: drop the flag"], out.stderr[-2000:]


def test_test_episodes_in_rounds_on_few_envs_equal_one_round_on_one_env_each():
    """n_test_rollouts episodes run in rounds on rollout_batch_size envs; each episode keeps a
    reset generator of its own, so the rounds reset exactly as one env per episode would."""
    from baselines_her.rollout import RolloutWorker
    seeds = [11, 12, 13, 14, 15]
    spec = describe_env(make_env("PandaReach-v3"), "PandaReach-v3")
    dims = (spec.dim_o, spec.dim_g, spec.dim_u)
    zero = lambda o, g: np.zeros((len(o), spec.dim_u))  # noqa: E731
    many = RolloutWorker([make_env("PandaReach-v3") for _ in seeds], spec.T, *dims, spec.max_u,
                         np.random.default_rng(0), seeds)
    few = RolloutWorker([make_env("PandaReach-v3") for _ in range(2)], spec.T, *dims, spec.max_u,
                        np.random.default_rng(0), seeds)
    for _ in range(2):  # a second test reuses the slots from the first one on
        expected, _ = many.generate_rollouts(zero, explore=False)
        rounds = [few.generate_rollouts(zero, explore=False, n_episodes=n)[0] for n in (2, 2, 1)]
        for key in ("o", "g"):
            np.testing.assert_array_equal(np.concatenate([r[key][:, 0] for r in rounds]),
                                          expected[key][:, 0])
    with pytest.raises(ValueError, match="n_episodes=3"):
        few.generate_rollouts(zero, explore=False, n_episodes=3)


def test_trainer_starts_the_child_before_tensorflow_and_its_own_envs(tmp_path, monkeypatch):
    """The child is started first, so its imports and env building overlap TensorFlow's start
    and this process's envs; with n_test_rollouts=5 and rollout_batch_size=2, this process
    builds 2 envs (both used for tests)."""
    import baselines_her.envs as envs_module
    import baselines_her.train as train_module
    events = []
    real_make, real_start = envs_module.make_env, RolloutProcess.start
    real_configure = train_module.configure_tensorflow
    monkeypatch.setattr(envs_module, "make_env",
                        lambda *a, **k: events.append("env") or real_make(*a, **k))
    monkeypatch.setattr(RolloutProcess, "start",
                        lambda self: events.append("start") or real_start(self))
    monkeypatch.setattr(train_module, "configure_tensorflow",
                        lambda *a: events.append("tensorflow") or real_configure(*a))
    trainer = Trainer(prepare_params("PandaReach-v3", {**ON, "n_test_rollouts": 5}),
                      str(tmp_path))
    try:
        assert events == ["start", "tensorflow", "env", "env"], events
        assert trainer.worker.pid is not None and len(trainer.evaluator.envs) == 2
        assert len(trainer.evaluator.env_rngs) == 5
        success, _ = trainer._test(trainer.agent.numpy_actor())
        assert success in {k / 5 for k in range(6)}
        episodes, _ = trainer.worker.generate_rollouts(trainer.agent.numpy_actor())
        assert episodes["u"].shape == (2, trainer.spec.T, trainer.spec.dim_u)
    finally:
        trainer.worker.close()


def test_a_trainer_that_fails_to_build_ends_its_early_child(tmp_path, monkeypatch):
    pids, real_start = [], RolloutProcess.start
    monkeypatch.setattr(RolloutProcess, "start",
                        lambda self: real_start(self) or pids.append(self.pid))
    params = prepare_params("PandaReach-v3", {**ON, "demo_file": str(tmp_path / "missing.npz")})
    with pytest.raises(UserError, match="missing.npz"):
        Trainer(params, str(tmp_path / "run"))
    assert len(pids) == 1 and gone(pids[0])


def test_requests_need_the_setup_and_the_setup_is_given_once():
    worker = RolloutProcess("PandaReach-v3", 2)
    with pytest.raises(RuntimeError, match="configure"):
        worker.submit(None)
    assert worker.pid is None  # nothing was started for the refused request
    worker.configure(50, 6, 3, 3, 1.0, np.random.default_rng(0), [1, 2])
    with pytest.raises(RuntimeError, match="already configured"):
        worker.configure(50, 6, 3, 3, 1.0, np.random.default_rng(0), [1, 2])


def test_child_refuses_a_request_before_its_setup_with_its_traceback():
    import multiprocessing

    from baselines_her.rollout_process import _serve
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(child, "PandaReach-v3", 1))
    process.start()
    try:
        child.close()
        assert parent.poll(60) and parent.recv()[0] == "ready"
        parent.send(("actor", None))
        assert parent.poll(60)
        kind, message = parent.recv()
        assert kind == "error" and "expected the setup message first, got 'actor'" in message
        process.join(30)
        assert process.exitcode == 0  # the child ended after reporting
    finally:
        if process.exitcode is None:
            process.kill()
            process.join()


@pytest.mark.parametrize("params", [ON, OFF], ids=["process", "no_process"])
def test_stop_after_an_epochs_last_cycle_resumes_with_every_row_equal(tmp_path, monkeypatch,
                                                                       params):
    """Stopped after the last cycle of epoch 0, the resumed run writes epoch 0's row with no
    cycle run in between: its prioritized-replay IS exponent is the one the last cycle used."""
    per = {**params, "prioritized": "td"}
    expected = run(per, tmp_path / "whole")
    with monkeypatch.context() as m:
        signal_after(m, SMALL["n_cycles"])
        run(per, tmp_path / "run")
    assert json.load(open(checkpoint.latest_snapshot(
        checkpoint.checkpoint_dir(str(tmp_path / "run"), 0)) + "/meta.json"))["position"] == [0, 3]
    assert run(per, tmp_path / "run", resume=True) == expected
    assert float(expected[0]["per/beta"]) < 1.0
