"""Policy files (``policy_*.pkl``): plain data only, written atomically, read without TensorFlow.

The pickle holds a dict of builtins and numpy arrays (format version, env name, dims, params,
normaliser statistics, weights by name). Loading uses a restricted unpickler that only rebuilds
numpy arrays, so opening a policy file cannot run arbitrary code.
"""
from __future__ import annotations

import pickle

from baselines_her.atomic import atomic_write_bytes
from baselines_her.errors import UserError
from baselines_her.networks import NumpyActor

SUPPORTED_FORMAT_VERSIONS = (1,)
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("builtins", "float"), ("builtins", "int"),
}


class PolicyFileError(UserError, ValueError):
    """A file that is not a readable baselines_her policy file."""


class PolicyFileNotFoundError(UserError, FileNotFoundError):
    """The policy file does not exist."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"policy files hold plain data only; refusing {module}.{name}")


def save_policy(path: str, state: dict) -> None:
    atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def load_policy(path: str) -> dict:
    """Read and check a policy file; errors name the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            state = _PlainDataUnpickler(f).load()
    except FileNotFoundError:
        raise PolicyFileNotFoundError(f"policy file not found: {path}") from None
    except IsADirectoryError:
        raise PolicyFileError(f"{path}: is a directory, not a policy file") from None
    except PermissionError:
        raise PolicyFileError(f"{path}: permission denied") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            OverflowError) as exc:  # what garbage or a truncated file makes the unpickler raise
        raise PolicyFileError(f"{path}: not a baselines_her policy file ({exc})") from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise PolicyFileError(f"{path}: not a baselines_her policy file (no format_version)")
    if state["format_version"] not in SUPPORTED_FORMAT_VERSIONS:
        raise PolicyFileError(f"{path}: policy format version {state['format_version']} is not "
                              f"supported (this version reads {SUPPORTED_FORMAT_VERSIONS})")
    for key in ("env_name", "dims", "params", "normalizer", "weights"):
        if key not in state:
            raise PolicyFileError(f"{path}: policy file lacks key {key!r}")
    return state


def actor_from_state(state: dict) -> NumpyActor:
    """The deterministic actor of a policy file, as a numpy function ``(o, g) -> u``."""
    p, n = state["params"], state["normalizer"]
    return NumpyActor(state["weights"]["actor"], "actor", p["layers"], p["max_u"], n["o_mean"],
                      n["o_std"], n["g_mean"], n["g_std"], p["norm_clip"], p["clip_obs"])
