"""The command-line tools' progress bar: tqdm on stderr, shown only when stderr is a terminal
(so logs and pipes get no carriage-return noise) and when the tool's ``--no_progress`` is not
given. Used by ``experiment/play.py``, the data-generation scripts and the benchmarks."""
from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str | None, unit: str = "ep", enabled: bool = True,
                 leave: bool = False):
    """A tqdm bar on ``sys.stderr`` (looked up at call time, so a redirected stderr is used).

    ``disable=None`` is tqdm's "off when the stream is not a terminal"; ``enabled=False`` turns
    it off everywhere. ``leave`` keeps the finished bar on screen."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave,
                dynamic_ncols=True, disable=None if enabled else True)
