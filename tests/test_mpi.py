"""Two MPI ranks (mpiexec -n 2 from the mpich wheel): synced learners, normalisers, abort."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from baselines_her import mpi_util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")


def mpirun(*args, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in mpi_util._LAUNCH_VARS}
    return subprocess.run([mpi_util.mpiexec_path(), "-n", "2", sys.executable, WORKER, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.mark.parametrize("algo", ["ddpg", "td3"])
def test_ranks_hold_identical_weights_equal_to_one_big_batch(tmp_path, algo):
    out = mpirun("weights", str(tmp_path), algo)
    assert out.returncode == 0, out.stderr[-3000:]
    w0, w1 = (np.load(tmp_path / f"weights_rank{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(w0, w1)
    if algo == "td3":
        return  # target noise is drawn per rank; the single-process comparison is for DDPG
    # Averaged gradients of two half batches == the gradient of the joint batch: a single process
    # trained on the concatenated batches from rank 0's initial weights ends at the same weights.
    from baselines_her.config import prepare_params
    from baselines_her.ddpg import DDPG
    from baselines_her.seeding import seed_everything
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from mpi_worker import batch_for
    params = prepare_params("PandaReach-v3", {"hidden": 16, "layers": 2, "num_threads": 1})
    agent = DDPG(6, 3, 3, params, tf_seed=seed_everything(0, 0).tf_seed)
    for step in range(6):
        halves = [batch_for(r, seed=step) for r in (0, 1)]
        agent.train({k: np.concatenate([h[k] for h in halves]) for k in halves[0]})
        agent.update_target_net()
    np.testing.assert_allclose(agent.flat_weights(), w0, rtol=1e-4, atol=1e-5)


def test_normalizer_stats_are_those_of_the_union(tmp_path):
    out = mpirun("normalizer", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    s0, s1 = (np.load(tmp_path / f"norm_rank{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(s0, s1)
    data = []
    for rank in (0, 1):
        rng = np.random.default_rng(rank)
        data += [rng.normal(loc=rank * 2.0, size=(50 + 30 * rank, 3)) for _ in range(3)]
    union = np.concatenate(data)
    np.testing.assert_allclose(s0[0], union.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s0[1], union.std(axis=0), rtol=1e-4)


def test_failing_rank_ends_job_quickly_with_one_traceback(tmp_path):
    t0 = time.monotonic()
    out = mpirun("crash", str(tmp_path), timeout=60)
    elapsed = time.monotonic() - t0
    assert out.returncode != 0
    assert elapsed < 30, elapsed
    assert out.stderr.count("deliberate failure on rank 1") >= 1
    assert out.stderr.count("fatal error, aborting all 2 ranks") == 1


def test_num_cpu_self_launch_trains_with_two_ranks(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in mpi_util._LAUNCH_VARS}
    cmd = [sys.executable, "-m", "baselines_her.her", "--num_cpu=2", f"--logdir={tmp_path}",
           "--n_epochs=1", "--n_cycles=1", "--n_batches=2", "--hidden=16", "--layers=1",
           "--n_test_rollouts=1", "--buffer_size=1000"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ranks=2" in out.stdout
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("checkpoint")) == [
        "checkpoint", "checkpoint-rank1"]
    import csv
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    assert rows[0]["total/env_steps"] == str(2 * 2 * 50)  # 2 ranks x 2 envs x T
