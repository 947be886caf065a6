"""Atomic file writes: a reader sees the old file or the whole new one, never half a file.

Everything is written to a temporary file in the target's directory, flushed to disk and renamed
over the target with ``os.replace`` (atomic on POSIX and Windows within one file system). On any
error the temporary file is removed and the target is left as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


def _temp_beside(path: str) -> tuple[int, str]:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: directory {directory} does not exist")
    # The name ends like the target, so libraries that pick a format by extension still can.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the permissions open() would give, not mkstemp's 0600
    return fd, tmp


def _fsync_file(name: str) -> None:
    with open(name, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path`` for a writer that takes a file name; on a
    clean exit the file is synced and renamed over ``path``."""
    path = os.fspath(path)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """``open`` for writing whose result appears at ``path`` only when the block exits cleanly.
    ``mode`` is ``"wb"`` or ``"w"``; ``kwargs`` go to :func:`open` (e.g. ``encoding``)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
