"""The benchmarks' progress bar: ``baselines_her.progress``, the one every tool shows (tqdm on
stderr, shown only when stderr is a terminal and ``--no_progress`` is not given).

Lines for stdout go through :func:`say`, which writes exactly what ``print(line, flush=True)``
writes, but clears a shown bar first and redraws it after, so tables and result lines are never
split by it. :func:`run_child` runs a child process the same way: with its output passed through
:func:`say` while a bar is shown, untouched (inherited) otherwise.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import threading

# ``bar(total, desc, unit, enabled)``: the benchmarks' name for the one progress bar.
from baselines_her.progress import progress_bar as bar  # noqa: F401


def add_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress bar (it is shown only when stderr is a terminal)")


def say(line: str = "", file=None) -> None:
    """``print(line, file=file, flush=True)`` (stdout by default) around any shown bar."""
    from tqdm import tqdm

    file = sys.stdout if file is None else file
    tqdm.write(line, file=file)
    file.flush()


def run_child(cmd: list, shown: bool, **kwargs) -> None:
    """``subprocess.run(cmd, check=True, **kwargs)``; when a bar is ``shown``, the child's stdout
    and stderr lines go to ours through :func:`say`, so its output does not land on the bar."""
    if not shown:
        subprocess.run(cmd, check=True, **kwargs)
        return
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)

    def relay(src, dst):
        for raw in iter(src.readline, b""):
            say(raw.decode(errors="replace").rstrip("\r\n"), file=dst)
        src.close()

    err = threading.Thread(target=relay, args=(proc.stderr, sys.stderr), daemon=True)
    err.start()
    relay(proc.stdout, sys.stdout)
    err.join()
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
