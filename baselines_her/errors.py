"""The error types shared by every command line.

``UserError`` means the user can fix it (a flag, a file, an env id, a policy file, an env that
cannot load): command lines print it as one line ``error: ...`` and exit 2. ``TrainingDiverged``
(a run whose numbers became NaN or inf) is one line and exit 3. Every other exception is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A mistake in the user's input; the message names the flag, file or key and what was expected."""


class TrainingDiverged(RuntimeError):
    """A loss, TD error or weight became NaN or inf; the message says what, when, and what was kept."""


DIVERGED_EXIT = 3


class UserErrorParser(argparse.ArgumentParser):
    """argparse whose errors are one-line :class:`UserError`s (no usage block; exit 2 through
    :func:`run_cli`). Flags must be spelled out: a prefix such as ``--episode`` is not taken for
    ``--episodes``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UserError(f"{message} ({self.prog} --help lists the flags)")


def run_cli(main: Callable[[Sequence[str] | None], int | None],
            argv: Sequence[str] | None = None) -> int:
    """Run a command line's ``main``; a :class:`UserError` becomes one stderr line and exit 2."""
    try:
        return int(main(argv) or 0)
    except (UserError, TrainingDiverged) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT if isinstance(exc, UserError) else DIVERGED_EXIT
