"""The native demonstration / human episode file: load, validate, save.

An ``.npz`` (``np.savez_compressed``) of plain float32 arrays with the episode-batch shapes of
DESIGN.md, read with ``np.load(..., allow_pickle=False)``::

    o               (B, T+1, do)   observations, including the final one
    ag              (B, T+1, dg)   achieved goals, including the final one
    g               (B, T,   dg)   desired goal at each step
    u               (B, T,   du)   actions taken, in env units
    info_is_success (B, T,   1)    info['is_success'] after each step ((B, T) is accepted too)
    sim_state       (B, T+1, S)    optional, float64: the simulator state at every step, restorable
                                   with :func:`baselines_her.sim_state.restore` (S and the layout
                                   are in that module); ``--demo_reset_prob`` needs it

Every episode has exactly T = the env's ``max_episode_steps`` steps. :func:`load_episodes` checks a
file against the env (keys, shapes, dims, horizon, NaN/inf) and names the file, the key and what
was expected in every error; :func:`save_episodes` validates and writes atomically. ``sim_state``
is read only when the caller asks for it (``sim_states``); other extra keys in a file are
ignored. Pickled formats are never read here: ``python -m baselines_her.demo convert``
(:mod:`baselines_her.demo_convert`, :mod:`baselines_her.demo_human_buffer`) turns them into this
format. This module imports no other demo module; the command line is
:mod:`baselines_her.demo_cli`, run as ``python -m baselines_her.demo``.
"""
from __future__ import annotations

import os
import sys
import warnings
import zipfile
from typing import Optional

import numpy as np

from baselines_her.errors import UserError
from baselines_her.atomic import atomic_open
from baselines_her.replay_buffer import EPISODE_KEYS, check_episode_batch, episode_shapes

CONVERT_HINT = ("convert it with `python -m baselines_her.demo convert --from-baselines OLD.npz "
                "NEW.npz` (baselines demo files), `--from-human-buffer BUFFER.pkl NEW.npz --env "
                "ENV` (human buffers of the panda-gym DDPG+HER+human system) or "
                "`--from-pickle-episodes BUFFER.pkl NEW.npz` (pickled lists of transition lists)")
BASELINES_KEYS = ("obs", "acs", "info")
SIM_STATE_KEY = "sim_state"
SIM_STATE_MODES = ("ignore", "optional", "required")

_LABELS = {"o": "observation", "ag": "achieved-goal", "g": "goal", "u": "action",
           "info_is_success": "success-flag"}


class DemoError(UserError, ValueError):
    """A demo, human or recording file (or an import option) the user has to fix."""


def _env_desc(env_name: Optional[str]) -> str:
    return f"env {env_name}" if env_name else "the env"


def validate_episodes(arrays: dict, T: int, dim_o: int, dim_g: int, dim_u: int, where: str,
                      env_name: Optional[str] = None, sim_state_dim: Optional[int] = None) -> dict:
    """Check an episode batch against the env's horizon and dims; return it as float32 arrays
    (and ``sim_state`` as float64 when the batch has it).

    ``where`` starts every error message (e.g. ``"demo file demos.npz"``). Raises :class:`DemoError`
    on missing keys, non-numeric dtypes, wrong ndim, dims or horizon, inconsistent episode
    counts, zero episodes and NaN/inf. ``sim_state_dim``: the state size S the env expects
    (:func:`baselines_her.sim_state.state_size`); None checks everything but S.
    """
    missing = [k for k in EPISODE_KEYS if k not in arrays]
    if missing:
        raise DemoError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}; a demo "
                        f"file needs {', '.join(repr(k) for k in EPISODE_KEYS)}")
    env = _env_desc(env_name)
    shapes = episode_shapes(T, dim_o, dim_g, dim_u)
    out = {}
    for key in EPISODE_KEYS:
        a = np.asarray(arrays[key])
        steps, dim = shapes[key]
        want = f"(episodes, {steps}, {dim})"
        if a.dtype == object:
            raise DemoError(f"{where}: key {key!r} is an object array (pickled data); "
                            f"{CONVERT_HINT}")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise DemoError(f"{where}: key {key!r} has dtype {a.dtype}, expected numbers "
                            f"(float32) of shape {want}")
        if key == "info_is_success" and a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3:
            raise DemoError(f"{where}: key {key!r} has {a.ndim} dimension(s) (shape {a.shape}), "
                            f"expected 3: {want}")
        if a.shape[2] != dim:
            raise DemoError(f"{where}: key {key!r} has {_LABELS[key]} dim {a.shape[2]}, "
                            f"{env} expects {dim} (shape {a.shape}, expected {want})")
        if a.shape[1] != steps:
            extra = 1 if key in ("o", "ag") else 0
            per = f"{a.shape[1]} per episode" + (" (T+1)" if extra else "")
            raise DemoError(f"{where}: key {key!r} holds episodes of T={a.shape[1] - extra} steps "
                            f"({per}), {env} horizon is {T} (expected {want})")
        out[key] = a
    counts = {k: out[k].shape[0] for k in EPISODE_KEYS}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{k!r} has {n}" for k, n in counts.items())
        raise DemoError(f"{where}: inconsistent episode counts: {listed}")
    n = counts["o"]
    if n == 0:
        raise DemoError(f"{where}: holds 0 episodes")
    for key in EPISODE_KEYS:
        bad = ~np.isfinite(out[key])
        if bad.any():
            e, t = (int(i) for i in np.argwhere(bad)[0][:2])
            raise DemoError(f"{where}: key {key!r} contains {int(bad.sum())} NaN/inf value(s) "
                            f"(first at episode {e}, step {t}); expected finite numbers")
    batch = {k: np.ascontiguousarray(out[k], dtype=np.float32) for k in EPISODE_KEYS}
    check_episode_batch(batch, shapes, where)  # the replay buffer's own contract, as a last guard
    if SIM_STATE_KEY in arrays:
        batch[SIM_STATE_KEY] = _validate_sim_state(arrays[SIM_STATE_KEY], n, T, where, env,
                                                   sim_state_dim)
    return batch


def _validate_sim_state(states, n: int, T: int, where: str, env: str,
                        dim: Optional[int]) -> np.ndarray:
    """The ``sim_state`` array as float64 (n, T+1, S), or a :class:`DemoError` naming the key."""
    key = SIM_STATE_KEY
    a = np.asarray(states)
    want = f"(episodes, {T + 1}, {dim if dim is not None else 'S'})"
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise DemoError(f"{where}: key {key!r} has dtype {a.dtype}, expected numbers (float64) "
                        f"of shape {want}")
    if a.ndim != 3:
        raise DemoError(f"{where}: key {key!r} has {a.ndim} dimension(s) (shape {a.shape}), "
                        f"expected 3: {want}")
    if a.shape[0] != n:
        raise DemoError(f"{where}: key {key!r} holds {a.shape[0]} episodes, 'o' holds {n}")
    if a.shape[1] != T + 1:
        raise DemoError(f"{where}: key {key!r} holds {a.shape[1]} states per episode, expected "
                        f"one per step and the final one: T+1 = {T + 1} (shape {want})")
    if dim is not None and a.shape[2] != dim:
        raise DemoError(f"{where}: key {key!r} has {a.shape[2]} values per state, {env} expects "
                        f"{dim} (shape {a.shape}, expected {want}); the demos were recorded in "
                        f"another env")
    bad = ~np.isfinite(a)
    if bad.any():
        e, t = (int(i) for i in np.argwhere(bad)[0][:2])
        raise DemoError(f"{where}: key {key!r} contains {int(bad.sum())} NaN/inf value(s) "
                        f"(first at episode {e}, step {t}); expected finite numbers")
    return np.ascontiguousarray(a, dtype=np.float64)


def load_episodes(path, T: int, dim_o: int, dim_g: int, dim_u: int, num: Optional[int] = None,
                  source: str = "demo file", env_name: Optional[str] = None,
                  sim_states: str = "ignore", sim_state_dim: Optional[int] = None) -> dict:
    """Load a native demo file as an episode batch of float32 arrays (see the module docstring).

    ``num``: keep the first ``num`` episodes; if the file holds fewer, warn (naming the file and
    both counts) and use them all. ``source`` ("demo file", "human file") and ``env_name`` only
    word the messages. ``sim_states``: ``"ignore"`` leaves the ``sim_state`` key unread,
    ``"optional"`` adds it to the batch when the file has it, ``"required"`` also refuses a file
    without it; ``sim_state_dim`` is the S the env expects. Every defect raises
    :class:`DemoError` naming the file, the key and what was expected.
    """
    path = os.fspath(path)
    where = f"{source} {path}"
    if sim_states not in SIM_STATE_MODES:
        raise ValueError(f"sim_states must be one of {SIM_STATE_MODES}, got {sim_states!r}")
    if num is not None and (isinstance(num, bool) or int(num) != num or num < 1):
        raise DemoError(f"{where}: number of episodes to load must be a positive integer, "
                        f"got {num!r}")
    if not os.path.exists(path):
        raise DemoError(f"{where}: no such file")
    if not os.path.isfile(path):
        raise DemoError(f"{where}: not a file")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError:  # numpy fell through to unpickling, which allow_pickle=False refuses
        with open(path, "rb") as fh:
            head = fh.read(2)
        kind = ("it looks like a pickle; " if head[:1] == b"\x80"
                else "it is neither a zip archive nor a .npy array; ")
        raise DemoError(f"{where}: not an .npz file ({kind}pickled data is never loaded here); "
                        f"if it holds pickled episodes, {CONVERT_HINT}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DemoError(f"{where}: not a readable .npz file ({type(e).__name__}: {e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DemoError(f"{where}: a single .npy array of shape {np.shape(data)}, expected an "
                        f".npz with keys {', '.join(repr(k) for k in EPISODE_KEYS)}")
    with data:
        files = set(data.files)
        if set(BASELINES_KEYS) <= files and not set(EPISODE_KEYS) & files:
            raise DemoError(f"{where}: keys {sorted(files)}: this looks like a pickled/baselines "
                            f"file; convert it with `python -m baselines_her.demo convert "
                            f"--from-baselines {path} NEW.npz`")
        if sim_states == "required" and SIM_STATE_KEY not in files:
            raise DemoError(f"{where}: no key {SIM_STATE_KEY!r} (the simulator state at every "
                            f"step, needed to start episodes from demo states); record the demos "
                            f"with experiment/data_generation/generate_demos.py, which writes it "
                            f"for panda-gym envs")
        keys = EPISODE_KEYS + ((SIM_STATE_KEY,) if sim_states != "ignore" else ())
        arrays = {}
        for key in keys:
            if key not in files:
                continue
            try:
                arrays[key] = data[key]
            except ValueError:  # "Object arrays cannot be loaded when allow_pickle=False"
                raise DemoError(f"{where}: key {key!r} is an object array: this looks like a "
                                f"pickled/baselines file; convert it with `python -m "
                                f"baselines_her.demo convert --from-baselines {path} NEW.npz`"
                               ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise DemoError(f"{where}: key {key!r} cannot be read ({type(e).__name__}: "
                                f"{e})") from None
    batch = validate_episodes(arrays, T, dim_o, dim_g, dim_u, where, env_name, sim_state_dim)
    n = batch["o"].shape[0]
    if num is not None:
        if n > num:
            batch = {k: np.ascontiguousarray(v[:num]) for k, v in batch.items()}
        elif n < num:
            warnings.warn(f"{where}: {num} episodes requested, the file holds {n}; using {n}",
                          stacklevel=2)
    return batch


def load_episodes_for_env(path, env_name: str, num: Optional[int] = None,
                          source: str = "demo file", sim_states: str = "ignore") -> dict:
    """:func:`load_episodes` with the horizon and dims of the env ``env_name`` (and its state
    size S when ``sim_states`` is not ``"ignore"`` and the env is a panda-gym one)."""
    env = open_env(env_name)
    try:
        spec = env_spec(env_name, env)
        state_dim = None
        if sim_states != "ignore":
            from baselines_her import sim_state
            state_dim = sim_state.state_size(env) if sim_state.supported(env) else None
    finally:
        env.close()
    return load_episodes(path, spec.T, spec.dim_o, spec.dim_g, spec.dim_u, num=num, source=source,
                         env_name=env_name, sim_states=sim_states, sim_state_dim=state_dim)


def _batch_dims(batch: dict, where: str) -> tuple:
    missing = [k for k in EPISODE_KEYS if k not in batch]
    if missing:
        raise DemoError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}; expected "
                        f"{', '.join(repr(k) for k in EPISODE_KEYS)}")
    for key in ("o", "ag", "u"):
        a = np.asarray(batch[key])
        if a.ndim != 3:
            raise DemoError(f"{where}: key {key!r} has shape {a.shape}, expected 3 dimensions "
                            f"(episodes, steps, dim)")
    return (np.shape(batch["u"])[1], np.shape(batch["o"])[2], np.shape(batch["ag"])[2],
            np.shape(batch["u"])[2])


def save_episodes(path, batch: dict) -> str:
    """Validate ``batch`` and write it as a native demo file; returns the path written.

    ``.npz`` is appended when missing. The file is written to a temporary file in the same
    directory and renamed over ``path`` (``os.replace``), so a reader never sees half a file.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    where = f"episodes for {path}"
    T, dim_o, dim_g, dim_u = _batch_dims(batch, where)
    batch = validate_episodes(batch, T, dim_o, dim_g, dim_u, where)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise DemoError(f"{path}: directory {directory} does not exist")
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, **batch)
    return path


def open_env(env_name: str, render_mode: Optional[str] = None):
    """``baselines_her.envs.make_env`` (an id it cannot use is an ``EnvError``, a user error)."""
    from baselines_her.envs import make_env  # lazy: keeps `import baselines_her.demo` light
    return make_env(env_name, render_mode=render_mode)


def env_spec(env_name: str, env=None):
    """The :class:`baselines_her.envs.EnvSpec` (horizon, dims, reward) of the env ``env_name``;
    ``env``: an open instance of it to describe (else one is made and closed)."""
    from baselines_her.envs import describe_env
    if env is not None:
        return describe_env(env, env_name)
    env = open_env(env_name)
    try:
        return describe_env(env, env_name)
    finally:
        env.close()


if __name__ == "__main__":  # `python -m baselines_her.demo`: the command line lives in demo_cli
    from baselines_her.demo_cli import main
    sys.exit(main())
