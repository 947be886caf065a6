"""Launch detection from the environment; two MPI ranks (mpiexec -n 2 from the mpich wheel):
synced learners, normalisers, abort on a bug and on a user error."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from baselines_her import mpi_util
from baselines_her.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")


# (environment, launched_by_mpi, launch_size)
LAUNCHES = [
    ({}, False, None),
    ({"PMI_RANK": "1", "PMI_SIZE": "4"}, True, 4),  # MPICH / Intel MPI mpiexec (Hydra)
    ({"PMI_SIZE": "2"}, True, 2),
    ({"MPI_LOCALNRANKS": "2", "MPI_LOCALRANKID": "0"}, True, None),  # Hydra, local counts only
    ({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "2"}, True, 3),  # Open MPI mpirun
    ({"OMPI_COMM_WORLD_RANK": "0"}, True, None),
    ({"PMIX_RANK": "0", "PMIX_NAMESPACE": "prterun-1"}, True, None),  # Open MPI 5 prterun
    # srun --mpi=pmix -n 4
    ({"PMIX_RANK": "3", "SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4"},
     True, 4),
    # srun --mpi=pmi2 -n 2
    ({"PMI_RANK": "0", "PMI_SIZE": "2", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "2"},
     True, 2),
    # srun -n 2 with no PMI variables at all (--mpi=none)
    ({"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2"}, True, 2),
    # sbatch --ntasks=4 batch script: one process that sees the job's task count
    ({"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_NPROCS": "4"},
     False, None),
    # plain sbatch, and srun -n 1: one task
    ({"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, False, None),
    ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_NTASKS": "1"}, False, 1),
    # mpiexec inside a 2-node Slurm job: ranks inherit the proxies' step of one task per node
    ({"PMI_RANK": "5", "PMI_SIZE": "38", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"},
     True, 38),
    ({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "many"}, False, None),
]


@pytest.mark.parametrize("environ,launched,size", LAUNCHES)
def test_launch_detection_from_environment(monkeypatch, environ, launched, size):
    for var in list(os.environ):
        if var.startswith(("PMI", "OMPI_", "PMIX_", "SLURM_", "MPI_")):
            monkeypatch.delenv(var)
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    assert mpi_util.launched_by_mpi() is launched
    assert mpi_util.launch_size() == size


def test_tasks_that_each_see_a_world_of_one_are_refused():
    srun_without_pmi = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4"}
    with pytest.raises(UserError, match="started 4 tasks but MPI sees a world of 1"):
        mpi_util._check_world(1, srun_without_pmi)
    mpi_util._check_world(4, srun_without_pmi)
    mpi_util._check_world(1, {"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"})
    mpi_util._check_world(1, {})


def mpirun(*args, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in mpi_util.LAUNCH_ENV_VARS}
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
    env = {k: v for k, v in os.environ.items() if k not in mpi_util.LAUNCH_ENV_VARS}
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


USER_ERROR_SCRIPT = """
import sys
from baselines_her import mpi_util
from baselines_her.errors import TrainingDiverged, UserError
def work():
    if mpi_util.rank() in {ranks}:
        raise {exc}("{message}")
    mpi_util.comm().Barrier()  # the healthy rank would wait here forever without the abort
mpi_util.abort_on_exception(work)
"""


@pytest.mark.parametrize("exc,message", [
    ("UserError", "--demo_file=missing.npz: no such file"),
    ("TrainingDiverged", "training diverged: TD errors became NaN or inf at epoch 3, update 7")])
@pytest.mark.parametrize("failing_ranks,suffix", [((0, 1), ""), ((1,), " (rank 1 of 2)")])
def test_user_error_on_ranks_prints_one_line_and_aborts(failing_ranks, suffix, exc, message):
    env = {k: v for k, v in os.environ.items() if k not in mpi_util.LAUNCH_ENV_VARS}
    script = USER_ERROR_SCRIPT.format(ranks=set(failing_ranks), exc=exc, message=message)
    out = subprocess.run([mpi_util.mpiexec_path(), "-n", "2", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert out.returncode != 0
    ours = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert ours == [f"error: {message}{suffix}"], out.stderr
    assert "Traceback" not in out.stderr


def test_bad_flag_under_mpiexec_is_printed_once():
    env = {k: v for k, v in os.environ.items() if k not in mpi_util.LAUNCH_ENV_VARS}
    out = subprocess.run([mpi_util.mpiexec_path(), "-n", "2", sys.executable, "-m",
                          "baselines_her.her", "--seed=abc"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert out.returncode != 0
    ours = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert ours == ["error: --seed='abc': expected int (default 0)"], out.stderr
    assert "Traceback" not in out.stderr
