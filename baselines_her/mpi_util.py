"""The only module that touches mpi4py. Without an MPI launch everything runs in one process.

mpi4py is imported only when the process was started by an MPI launcher (``mpiexec``/``mpirun``
set ``PMI_RANK``/``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE`` or ``MPI_LOCALNRANKS``), so a plain
``python -m baselines_her.her`` never initialises MPI.
"""
from __future__ import annotations

import os

import numpy as np

_LAUNCH_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
_comm = None
_comm_checked = False


def launched_by_mpi() -> bool:
    return any(v in os.environ for v in _LAUNCH_VARS)


def comm():
    """``MPI.COMM_WORLD`` when launched under MPI, else ``None``."""
    global _comm, _comm_checked
    if not _comm_checked:
        _comm_checked = True
        if launched_by_mpi():
            from mpi4py import MPI
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

    Without this a failing rank leaves the others blocked in a collective forever.
    """
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        c = comm()
        if c is None or c.Get_size() == 1 or isinstance(exc, SystemExit) and not exc.code:
            raise
        import sys
        import traceback
        print(f"[rank {c.Get_rank()}] fatal error, aborting all {c.Get_size()} ranks:\n"
              + "".join(traceback.format_exception(exc)), file=sys.stderr, flush=True)
        c.Abort(1)


def mpiexec_path() -> str:
    """The ``mpiexec`` of the active environment (the mpich wheel installs one beside python)."""
    import shutil
    import sys
    import sysconfig
    for candidate in (os.path.join(sysconfig.get_path("scripts"), "mpiexec"),
                      os.path.join(os.path.dirname(sys.executable), "mpiexec"),
                      shutil.which("mpiexec"), shutil.which("mpirun")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("--num_cpu needs mpiexec: pip install mpich (or put an MPI on PATH)")


def relaunch_under_mpi(n: int, module: str, argv: list) -> None:
    """Replace this process by ``mpiexec -n N python -m module argv`` (``--num_cpu`` self-launch)."""
    import sys
    exe = mpiexec_path()
    os.execv(exe, [exe, "-n", str(n), sys.executable, "-m", module, *argv])
