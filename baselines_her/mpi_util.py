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
