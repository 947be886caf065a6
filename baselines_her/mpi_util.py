"""The only module that touches mpi4py. Without an MPI launch everything runs in one process.

mpi4py is imported only when the process was started as one rank of a launch (see
:func:`launched_by_mpi`), so a plain ``python -m baselines_her.her`` never initialises MPI.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

import numpy as np

from baselines_her.errors import DIVERGED_EXIT, USER_ERROR_EXIT, TrainingDiverged, UserError

# Set in every rank by the launchers: MPICH/Intel MPI's Hydra mpiexec and Slurm's PMI-2 plugin
# (PMI_RANK, PMI_SIZE; Hydra also MPI_LOCALNRANKS), Open MPI's mpirun (OMPI_COMM_WORLD_*), PMIx
# servers such as Open MPI 5's prterun and `srun --mpi=pmix` (PMIX_RANK).
MPI_LAUNCH_VARS = ("PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_SIZE",
                   "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
# Slurm sets these in every task; a batch script (`sbatch`, even with --ntasks=N) and
# `srun -n 1` are one process, so only a step of more than one task counts as a launch.
SLURM_TASK_VARS = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS")
LAUNCH_ENV_VARS = MPI_LAUNCH_VARS + SLURM_TASK_VARS
# A rank other than 0 waits this long before printing a user error, so that an error every rank
# hits (a bad flag) is printed once, by rank 0, whose abort ends the others first.
USER_ERROR_GRACE_S = 2.0
# A rank sleeps this long between printing its error and aborting: the launcher forwards a rank's
# stderr through a pipe, and an abort that ends the job first loses the line on a busy machine.
ABORT_FLUSH_S = 0.5

_comm = None
_comm_checked = False


def _count(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def launched_by_mpi(environ: Mapping[str, str] | None = None) -> bool:
    """True when this process is one rank started by mpiexec/mpirun or by a multi-task ``srun``."""
    env = os.environ if environ is None else environ
    if any(v in env for v in MPI_LAUNCH_VARS):
        return True
    steps = _count(env.get("SLURM_STEP_NUM_TASKS"))
    return "SLURM_PROCID" in env and steps is not None and steps > 1


def launch_size(environ: Mapping[str, str] | None = None) -> int | None:
    """The number of ranks the launcher started, when its variables say (else ``None``).

    MPI launchers' own counts come first: mpiexec inside a Slurm job starts its per-node proxies
    with srun, so ranks also inherit a Slurm step of one task per node.
    """
    env = os.environ if environ is None else environ
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if var in env:
            return _count(env[var])
    if "SLURM_PROCID" in env:
        return _count(env.get("SLURM_STEP_NUM_TASKS"))
    return None


def _check_world(world_size: int, environ: Mapping[str, str] | None = None) -> None:
    """Refuse N launched tasks that each see an MPI world of one: N independent rank-0 runs."""
    expected = launch_size(environ)
    if expected is not None and expected > 1 and world_size == 1:
        raise UserError(f"the launcher started {expected} tasks but MPI sees a world of 1 in each "
                        f"(they would be {expected} independent runs with one seed); under Slurm "
                        f"use srun --mpi=pmix (or pmi2) with an MPI built for it, or mpiexec")


def comm():
    """``MPI.COMM_WORLD`` when launched under MPI, else ``None``."""
    global _comm, _comm_checked
    if not _comm_checked:
        _comm_checked = True
        if launched_by_mpi():
            from mpi4py import MPI
            _check_world(MPI.COMM_WORLD.Get_size())
            _comm = MPI.COMM_WORLD
    return _comm


def rank() -> int:
    c = comm()
    return 0 if c is None else c.Get_rank()


def size() -> int:
    c = comm()
    return 1 if c is None else c.Get_size()


def allreduce_sum(x: np.ndarray) -> np.ndarray:
    """Element-wise sum of ``x`` over all ranks (a copy of ``x`` in one process)."""
    x = np.ascontiguousarray(x)
    c = comm()
    if c is None or c.Get_size() == 1:
        return x.copy()
    from mpi4py import MPI
    out = np.empty_like(x)
    c.Allreduce(x, out, op=MPI.SUM)
    return out


def allreduce_mean(x: np.ndarray) -> np.ndarray:
    return allreduce_sum(x) / size()


def broadcast(x: np.ndarray, root: int = 0) -> np.ndarray:
    """Rank ``root``'s copy of ``x`` on every rank."""
    x = np.ascontiguousarray(x)
    c = comm()
    if c is None or c.Get_size() == 1:
        return x
    c.Bcast(x, root=root)
    return x


def broadcast_object(obj, root: int = 0):
    """Rank ``root``'s value of a small picklable object on every rank."""
    c = comm()
    return obj if c is None or c.Get_size() == 1 else c.bcast(obj, root=root)


def check_in_sync(name: str, x: np.ndarray) -> None:
    """Raise ``RuntimeError`` unless every rank holds exactly the same bytes in ``x``."""
    c = comm()
    if c is None or c.Get_size() == 1:
        return
    import zlib
    digests = c.allgather(zlib.crc32(np.ascontiguousarray(x).tobytes()))
    if len(set(digests)) != 1:
        raise RuntimeError(f"MPI ranks out of sync: {name} differs across ranks "
                           f"(crc32 per rank: {digests})")


def abort_on_exception(fn, *args, **kwargs):
    """Run ``fn``; on an exception in a multi-rank job print it once and abort every rank.

    Without this a failing rank leaves the others blocked in a collective forever. A
    :class:`UserError` or :class:`TrainingDiverged` is printed as one line ``error: ...`` without
    a traceback and aborts with its exit status (2 or 3); anything else prints its traceback.
    """
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        c = comm()
        if c is None or c.Get_size() == 1 or isinstance(exc, SystemExit) and not exc.code:
            raise
        r, n = c.Get_rank(), c.Get_size()
        if isinstance(exc, (UserError, TrainingDiverged)):
            if r != 0:
                time.sleep(USER_ERROR_GRACE_S)
            where = "" if r == 0 else f" (rank {r} of {n})"
            print(f"error: {exc}{where}", file=sys.stderr, flush=True)
            _abort(c, USER_ERROR_EXIT if isinstance(exc, UserError) else DIVERGED_EXIT)
        import traceback
        print(f"[rank {r}] fatal error, aborting all {n} ranks:\n"
              + "".join(traceback.format_exception(exc)), file=sys.stderr, flush=True)
        _abort(c, 1)


def _abort(c, code: int) -> None:
    time.sleep(ABORT_FLUSH_S)
    c.Abort(code)
    os._exit(code)  # MPICH's MPI_Abort can return before the launcher ends this rank


def mpiexec_path() -> str:
    """The ``mpiexec`` of the active environment (the mpich wheel installs one beside python)."""
    import shutil
    import sysconfig
    for candidate in (os.path.join(sysconfig.get_path("scripts"), "mpiexec"),
                      os.path.join(os.path.dirname(sys.executable), "mpiexec"),
                      shutil.which("mpiexec"), shutil.which("mpirun")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise UserError("--num_cpu needs mpiexec: pip install mpich (or put an MPI on PATH)")


def relaunch_under_mpi(n: int, module: str, argv: list) -> None:
    """Replace this process by ``mpiexec -n N python -m module argv`` (``--num_cpu`` self-launch)."""
    exe = mpiexec_path()
    os.execv(exe, [exe, "-n", str(n), sys.executable, "-m", module, *argv])
