"""TensorFlow, imported once, with its oneDNN import notice kept off stderr and without
matplotlib.

On Intel CPUs TensorFlow 2.21 writes an absl preamble and a oneDNN notice straight to file
descriptor 2 while it is imported; no ``TF_CPP_MIN_LOG_LEVEL`` silences them, and they would make
every run's output noisy and a user error more than the one line it promises. Turning oneDNN off
removes them but makes the update slower (docs/architecture.md), so instead the import runs with
fd 2 captured and everything it wrote except those two lines is written back. Every module that
needs TensorFlow gets it from ``import_tensorflow()``; only the first call pays for the capture.

Importing TensorFlow imports Keras, and Keras imports ``matplotlib.pyplot`` when it is installed
(for image-gallery plots this package never draws): about 0.5 s of every run's start-up on a
2-core VM (docs/performance.md). While TensorFlow is imported, matplotlib is marked as missing, so
Keras's optional import fails fast; the mark is removed afterwards, and matplotlib imports
normally later in the same process (only Keras's own plotting helpers stay without it).
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
    # None in sys.modules makes `import matplotlib...` raise ImportError (see the module doc).
    held_off = [name for name in ("matplotlib", "matplotlib.pyplot") if name not in sys.modules]
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            sys.modules.update(dict.fromkeys(held_off))
            import tensorflow
            failed = False
        finally:
            for name in held_off:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]
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
