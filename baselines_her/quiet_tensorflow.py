"""TensorFlow, imported once with its oneDNN import notice kept off stderr.

On Intel CPUs TensorFlow 2.21 writes an absl preamble and a oneDNN notice straight to file
descriptor 2 while it is imported; no ``TF_CPP_MIN_LOG_LEVEL`` silences them, and they would make
every run's output noisy and a user error more than the one line it promises. Turning oneDNN off
removes them but makes the update slower (docs/architecture.md), so instead the import runs with
fd 2 captured and everything it wrote except those two lines is written back. Every module that
needs TensorFlow gets it from ``import_tensorflow()``; only the first call pays for the capture.
"""
from __future__ import annotations

import os
import sys
import tempfile

# Lines TensorFlow writes at import that carry no information for a user of this package.
_NOTICES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
)


def is_import_notice(line: str) -> bool:
    return any(notice in line for notice in _NOTICES)


def import_tensorflow():
    """The ``tensorflow`` module. The first import's stderr is replayed without the notices;
    if the import fails, everything it wrote is replayed and the error propagates."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [x for x in lines if not is_import_notice(x)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    return tensorflow
