"""Demonstration and human episode files: load, validate, save, convert, import recorded motion.

**Native demo file.** An ``.npz`` (``np.savez_compressed``) of plain float32 arrays with the
episode-batch shapes of DESIGN.md, read with ``np.load(..., allow_pickle=False)``::

    o               (B, T+1, do)   observations, including the final one
    ag              (B, T+1, dg)   achieved goals, including the final one
    g               (B, T,   dg)   desired goal at each step
    u               (B, T,   du)   actions taken
    info_is_success (B, T,   1)    info['is_success'] after each step ((B, T) is accepted too)

Every episode has exactly T = the env's ``max_episode_steps`` steps. :func:`load_episodes` checks a
file against the env (keys, shapes, dims, horizon, NaN/inf) and names the file, the key and what
was expected in every error; :func:`save_episodes` validates and writes atomically. Extra keys in a
file are ignored. Pickled formats are read only by the ``convert`` command, which says that it
executes code from the file.

**Command line** (``python -m baselines_her.demo SUBCOMMAND --help`` for each)::

    python -m baselines_her.demo check demos.npz --env PandaPush-v3
    python -m baselines_her.demo convert --from-baselines data_fetch_random_100.npz demos.npz \\
        [--env FetchPickAndPlace-v4] [--T 50]
    python -m baselines_her.demo convert --from-pickle-episodes buffer.pkl human.npz \\
        [--env PandaPickAndPlace-v3] [--T 50]
    python -m baselines_her.demo import-motion rec1.csv rec2.csv --env PandaReach-v3 \\
        --out human.npz [--only_success] [--seed 0] [--close_below 0.02]

Errors exit with status 2 and a message on stderr; ``import-motion`` exits 1 when no recording is
left to write (all dropped by ``--only_success``).

``convert --from-baselines`` reads the format of baselines' ``fetch_data_generation.py``
(``np.savez_compressed(file, acs=..., obs=..., info=...)``): ``obs[e]`` is the list of the T+1
observation dicts (``observation``, ``achieved_goal``, ``desired_goal``) of episode ``e``,
``acs[e]`` its T actions and ``info[e]`` its T info dicts (``is_success``).
``convert --from-pickle-episodes`` reads a pickled list of episodes, each a list of transition
dicts with keys ``state, action, info, achieved_goal, desired_goal, next_state,
next_achieved_goal`` (``state`` may also be a goal-env observation dict). Both need every episode
to have the same number of steps (``--T N`` keeps the first N of each); actions outside the env's
bound [-max_u, max_u] (1 without ``--env``) are clipped, as the env clipped them when they ran.

**Motion CSV** (``import-motion``): one file per episode, a header row, then one row per sample
of the end-effector trajectory, in the env's world frame (the frame of panda-gym's observations;
the Panda's base is at (-0.6, 0, 0), the table top at z = 0).

=========================  ========  =========================================================
column                     unit      meaning
=========================  ========  =========================================================
``t``                      s         sample time, strictly increasing; any origin (t - t[0] used)
``x``, ``y``, ``z``        m         end-effector (gripper centre) position
``gripper`` (optional)     m         commanded finger opening: 0 closed .. 0.08 fully open;
                                     below ``--close_below`` (default 0.02) means "grasp":
                                     the fingers are driven closed with full force
``object_x/_y/_z`` (opt.)  m         initial object position, first data row only
``goal_x/_y/_z`` (opt.)    m         goal position, first data row only
=========================  ========  =========================================================

The trajectory is resampled by linear interpolation at the env's control period (panda-gym:
``sim.timestep * sim.n_substeps`` = 0.002 s x 20 = 0.04 s) for exactly T steps: a shorter
recording is padded with its last pose, a longer one is truncated (both reported). Each step is
tracked in closed loop: ``action[:3] = clip((target[t+1] - ee_position) / 0.05, -1, 1)`` (0.05 m
is panda-gym's end-effector displacement per unit action). The finger action is ``-1`` when the
commanded opening is below ``--close_below``, else ``clip((opening[t+1] - finger_width) / 0.2,
-1, 1)`` (0.2 m is panda-gym's finger-width change per unit action); without a ``gripper``
column it is 0 (the fingers keep their width; panda-gym starts them closed). Envs with a blocked
gripper (Reach, Push, Slide) ignore the column. The episode is replayed in the env (seeded
``--seed + i`` for the i-th file, then the object and goal columns applied), so the file holds the
true observations. Example::

    t,x,y,z,gripper,object_x,object_y,object_z,goal_x,goal_y,goal_z
    0.00,0.038,0.000,0.197,0.08,0.05,-0.02,0.02,0.10,0.10,0.15
    0.10,0.040,-0.002,0.180,0.08,,,,,,
    ...
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import os
import pickle
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from baselines_her.replay_buffer import EPISODE_KEYS, check_episode_batch, episode_shapes

CONVERT_HINT = ("convert it with `python -m baselines_her.demo convert --from-baselines OLD.npz "
                "NEW.npz` (baselines demo files) or `--from-pickle-episodes BUFFER.pkl NEW.npz` "
                "(pickled lists of episode dicts)")
BASELINES_KEYS = ("obs", "acs", "info")
PICKLE_EPISODE_KEYS = ("state", "action", "info", "achieved_goal", "desired_goal", "next_state",
                       "next_achieved_goal")

# panda-gym v3 constants (panda_gym/envs/robots/panda.py, Panda.set_action and
# ee_displacement_to_target_arm_angles): metres per unit action.
EE_STEP = 0.05
FINGER_STEP = 0.2
FINGER_MAX_OPENING = 0.08

_LABELS = {"o": "observation", "ag": "achieved-goal", "g": "goal", "u": "action",
           "info_is_success": "success-flag"}


# --------------------------------------------------------------------------------------------
# validation, load, save


def _env_desc(env_name: Optional[str]) -> str:
    return f"env {env_name}" if env_name else "the env"


def validate_episodes(arrays: dict, T: int, dim_o: int, dim_g: int, dim_u: int, where: str,
                      env_name: Optional[str] = None) -> dict:
    """Check an episode batch against the env's horizon and dims; return it as float32 arrays.

    ``where`` starts every error message (e.g. ``"demo file demos.npz"``). Raises ``ValueError``
    on missing keys, non-numeric dtypes, wrong ndim, dims or horizon, inconsistent episode
    counts, zero episodes and NaN/inf.
    """
    missing = [k for k in EPISODE_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}; a demo "
                         f"file needs {', '.join(repr(k) for k in EPISODE_KEYS)}")
    env = _env_desc(env_name)
    shapes = episode_shapes(T, dim_o, dim_g, dim_u)
    out = {}
    for key in EPISODE_KEYS:
        a = np.asarray(arrays[key])
        steps, dim = shapes[key]
        want = f"(episodes, {steps}, {dim})"
        if a.dtype == object:
            raise ValueError(f"{where}: key {key!r} is an object array (pickled data); "
                             f"{CONVERT_HINT}")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{where}: key {key!r} has dtype {a.dtype}, expected numbers "
                             f"(float32) of shape {want}")
        if key == "info_is_success" and a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3:
            raise ValueError(f"{where}: key {key!r} has {a.ndim} dimension(s) (shape {a.shape}), "
                             f"expected 3: {want}")
        if a.shape[2] != dim:
            raise ValueError(f"{where}: key {key!r} has {_LABELS[key]} dim {a.shape[2]}, "
                             f"{env} expects {dim} (shape {a.shape}, expected {want})")
        if a.shape[1] != steps:
            extra = 1 if key in ("o", "ag") else 0
            per = f"{a.shape[1]} per episode" + (" (T+1)" if extra else "")
            raise ValueError(f"{where}: key {key!r} holds episodes of T={a.shape[1] - extra} steps "
                             f"({per}), {env} horizon is {T} (expected {want})")
        out[key] = a
    counts = {k: out[k].shape[0] for k in EPISODE_KEYS}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{k!r} has {n}" for k, n in counts.items())
        raise ValueError(f"{where}: inconsistent episode counts: {listed}")
    n = counts["o"]
    if n == 0:
        raise ValueError(f"{where}: holds 0 episodes")
    for key in EPISODE_KEYS:
        bad = ~np.isfinite(out[key])
        if bad.any():
            e, t = (int(i) for i in np.argwhere(bad)[0][:2])
            raise ValueError(f"{where}: key {key!r} contains {int(bad.sum())} NaN/inf value(s) "
                             f"(first at episode {e}, step {t}); expected finite numbers")
    batch = {k: np.ascontiguousarray(out[k], dtype=np.float32) for k in EPISODE_KEYS}
    check_episode_batch(batch, shapes, where)  # the replay buffer's own contract, as a last guard
    return batch


def load_episodes(path, T: int, dim_o: int, dim_g: int, dim_u: int, num: Optional[int] = None,
                  source: str = "demo file", env_name: Optional[str] = None) -> dict:
    """Load a native demo file as an episode batch of float32 arrays (see the module docstring).

    ``num``: keep the first ``num`` episodes; if the file holds fewer, warn (naming the file and
    both counts) and use them all. ``source`` ("demo file", "human file") and ``env_name`` only
    word the messages. Every defect raises ``ValueError`` naming the file, the key and what was
    expected.
    """
    path = os.fspath(path)
    where = f"{source} {path}"
    if num is not None and (isinstance(num, bool) or int(num) != num or num < 1):
        raise ValueError(f"{where}: number of episodes to load must be a positive integer, "
                         f"got {num!r}")
    if not os.path.exists(path):
        raise ValueError(f"{where}: no such file")
    if not os.path.isfile(path):
        raise ValueError(f"{where}: not a file")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError:  # numpy fell through to unpickling, which allow_pickle=False refuses
        with open(path, "rb") as fh:
            head = fh.read(2)
        kind = ("it looks like a pickle; " if head[:1] == b"\x80"
                else "it is neither a zip archive nor a .npy array; ")
        raise ValueError(f"{where}: not an .npz file ({kind}pickled data is never loaded here); "
                         f"if it holds pickled episodes, {CONVERT_HINT}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{where}: not a readable .npz file ({type(e).__name__}: {e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{where}: a single .npy array of shape {np.shape(data)}, expected an "
                         f".npz with keys {', '.join(repr(k) for k in EPISODE_KEYS)}")
    with data:
        files = set(data.files)
        if set(BASELINES_KEYS) <= files and not set(EPISODE_KEYS) & files:
            raise ValueError(f"{where}: keys {sorted(files)}: this looks like a pickled/baselines "
                             f"file; convert it with `python -m baselines_her.demo convert "
                             f"--from-baselines {path} NEW.npz`")
        arrays = {}
        for key in EPISODE_KEYS:
            if key not in files:
                continue
            try:
                arrays[key] = data[key]
            except ValueError:  # "Object arrays cannot be loaded when allow_pickle=False"
                raise ValueError(f"{where}: key {key!r} is an object array: this looks like a "
                                 f"pickled/baselines file; convert it with `python -m "
                                 f"baselines_her.demo convert --from-baselines {path} NEW.npz`"
                                 ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise ValueError(f"{where}: key {key!r} cannot be read ({type(e).__name__}: "
                                 f"{e})") from None
    batch = validate_episodes(arrays, T, dim_o, dim_g, dim_u, where, env_name)
    n = batch["o"].shape[0]
    if num is not None:
        if n > num:
            batch = {k: np.ascontiguousarray(v[:num]) for k, v in batch.items()}
        elif n < num:
            warnings.warn(f"{where}: {num} episodes requested, the file holds {n}; using {n}",
                          stacklevel=2)
    return batch


def load_episodes_for_env(path, env_name: str, num: Optional[int] = None,
                          source: str = "demo file") -> dict:
    """:func:`load_episodes` with the horizon and dims of the env ``env_name``."""
    spec = _env_spec(env_name)
    return load_episodes(path, spec.T, spec.dim_o, spec.dim_g, spec.dim_u, num=num, source=source,
                         env_name=env_name)


def _batch_dims(batch: dict, where: str) -> tuple:
    missing = [k for k in EPISODE_KEYS if k not in batch]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}; expected "
                         f"{', '.join(repr(k) for k in EPISODE_KEYS)}")
    for key in ("o", "ag", "u"):
        a = np.asarray(batch[key])
        if a.ndim != 3:
            raise ValueError(f"{where}: key {key!r} has shape {a.shape}, expected 3 dimensions "
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
        raise ValueError(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **batch)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# --------------------------------------------------------------------------------------------
# environment helpers


def _make_env(env_name: str, render_mode: Optional[str] = None):
    from baselines_her.envs import make_env  # lazy: keeps `import baselines_her.demo` light
    return make_env(env_name, render_mode=render_mode)


def _env_spec(env_name: str):
    from baselines_her.envs import describe_env
    env = _make_env(env_name)
    try:
        return describe_env(env, env_name)
    finally:
        env.close()


# --------------------------------------------------------------------------------------------
# converters (pickled formats)


def _say_unpickling(src: str, fmt: str, out: Callable) -> None:
    out(f"unpickling {src} ({fmt}): this executes code stored in the file; convert only files "
        f"you trust")


def _vector(x, where: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: expected a vector of numbers, got {type(x).__name__} "
                         f"({e})") from None
    return a


def _stack(rows: list, where: str) -> np.ndarray:
    try:
        return np.stack(rows)
    except ValueError:
        sizes = sorted({r.shape[0] for r in rows})
        raise ValueError(f"{where}: vectors of different sizes {sizes}") from None


def _common_length(lengths: list, T: Optional[int], src: str, what: str) -> int:
    lo, hi = min(lengths), max(lengths)
    if T is None:
        if lo != hi:
            short = [i for i, n in enumerate(lengths) if n == lo][:5]
            raise ValueError(f"{src}: episodes must all have T steps, but they have {lo} to {hi} "
                             f"{what} (episode(s) {short} have {lo}); pass --T {lo} to keep the "
                             f"first {lo} steps of each")
        return lo
    if T < 1:
        raise ValueError(f"--T must be a positive integer, got {T}")
    if T > lo:
        short = [i for i, n in enumerate(lengths) if n < T][:5]
        raise ValueError(f"{src}: episode(s) {short} have only {lo} {what}, fewer than T={T}; "
                         f"episodes must all have at least T steps")
    return T


def _finish(batch_lists: dict, src: str, max_u: float, out: Callable) -> dict:
    batch = {k: np.asarray(v, dtype=np.float32) for k, v in batch_lists.items()}
    over = np.abs(batch["u"]) > max_u
    if over.any():
        out(f"note: {int(over.sum())} action value(s) outside [-{max_u:g}, {max_u:g}] clipped "
            f"(the env clipped them when they ran; max |u| was {np.abs(batch['u']).max():.3g})")
        batch["u"] = np.clip(batch["u"], -max_u, max_u)
    return batch


def read_baselines_demo(src: str, T: Optional[int] = None, max_u: float = 1.0,
                        out: Callable = print) -> dict:
    """Episode batch from a baselines demo file (``obs``, ``acs``, ``info`` object arrays).

    Unpickles the file (says so through ``out`` first). ``obs[e]`` holds T+1 observation dicts,
    ``acs[e]`` T actions and ``info[e]`` T info dicts with ``is_success``.
    """
    _say_unpickling(src, "baselines demo file", out)
    try:
        data = np.load(src, allow_pickle=True)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise ValueError(f"{src}: cannot read as a baselines demo .npz ({type(e).__name__}: "
                         f"{e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{src}: a single .npy array, expected an .npz with keys "
                         f"{', '.join(BASELINES_KEYS)}")
    with data:
        missing = [k for k in BASELINES_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{src}: missing key(s) {missing}; a baselines demo file has "
                             f"{list(BASELINES_KEYS)} (keys found: {sorted(data.files)})")
        obs, acs, info = (data[k] for k in BASELINES_KEYS)
    n = len(obs)
    if len(acs) != n or len(info) != n:
        raise ValueError(f"{src}: inconsistent episode counts: 'obs' has {n}, 'acs' {len(acs)}, "
                         f"'info' {len(info)}")
    if n == 0:
        raise ValueError(f"{src}: holds 0 episodes")
    episodes = []
    for e in range(n):
        ob, ac, inf = list(obs[e]), list(acs[e]), list(info[e])
        if len(ob) != len(ac) + 1:
            raise ValueError(f"{src}: episode {e} has {len(ob)} observations and {len(ac)} "
                             f"actions; expected T+1 observations for T actions")
        if len(inf) != len(ac):
            raise ValueError(f"{src}: episode {e} has {len(inf)} info dicts and {len(ac)} actions;"
                             f" expected one info dict per action")
        episodes.append((ob, ac, inf))
    T = _common_length([len(ep[1]) for ep in episodes], T, src, "actions")
    lists = {k: [] for k in EPISODE_KEYS}
    for e, (ob, ac, inf) in enumerate(episodes):
        o, ag, g = [], [], []
        for t in range(T + 1):
            d = ob[t]
            where = f"{src}: 'obs' episode {e} step {t}"
            if not isinstance(d, dict) or any(k not in d for k in
                                              ("observation", "achieved_goal", "desired_goal")):
                got = sorted(d) if isinstance(d, dict) else type(d).__name__
                raise ValueError(f"{where}: expected a dict with keys observation, achieved_goal,"
                                 f" desired_goal, got {got}")
            o.append(_vector(d["observation"], where))
            ag.append(_vector(d["achieved_goal"], where))
            if t < T:
                g.append(_vector(d["desired_goal"], where))
        succ = []
        for t in range(T):
            d = inf[t]
            if not isinstance(d, dict) or "is_success" not in d:
                got = sorted(d) if isinstance(d, dict) else type(d).__name__
                raise ValueError(f"{src}: 'info' episode {e} step {t}: expected a dict with key "
                                 f"is_success, got {got}")
            succ.append([float(d["is_success"])])
        lists["o"].append(_stack(o, f"{src}: 'obs' episode {e} observation"))
        lists["ag"].append(_stack(ag, f"{src}: 'obs' episode {e} achieved_goal"))
        lists["g"].append(_stack(g, f"{src}: 'obs' episode {e} desired_goal"))
        lists["u"].append(_stack([_vector(a, f"{src}: 'acs' episode {e} step {t}")
                                  for t, a in enumerate(ac[:T])], f"{src}: 'acs' episode {e}"))
        lists["info_is_success"].append(succ)
    for k in ("o", "ag", "g", "u"):
        lists[k] = _stack(lists[k], f"{src}: key {k!r} across episodes")
    return _finish(lists, src, max_u, out)


def read_pickle_episodes(src: str, T: Optional[int] = None, max_u: float = 1.0,
                         out: Callable = print) -> dict:
    """Episode batch from a pickled list of episodes of transition dicts (see module docstring).

    Unpickles the file (says so through ``out`` first).
    """
    _say_unpickling(src, "pickled episode list", out)
    try:
        with open(src, "rb") as fh:
            episodes = pickle.load(fh)
    except OSError as e:
        raise ValueError(f"{src}: cannot read ({e})") from None
    except Exception as e:  # anything the unpickler raises
        raise ValueError(f"{src}: not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(episodes, (list, tuple)):
        raise ValueError(f"{src}: expected a pickled list of episodes (each a list of transition "
                         f"dicts), got {type(episodes).__name__}")
    if not episodes:
        raise ValueError(f"{src}: holds 0 episodes")
    for e, ep in enumerate(episodes):
        if not isinstance(ep, (list, tuple)) or not ep:
            raise ValueError(f"{src}: episode {e} is {type(ep).__name__}"
                             f"{' (empty)' if isinstance(ep, (list, tuple)) else ''}, expected a "
                             f"non-empty list of transition dicts")
    T = _common_length([len(ep) for ep in episodes], T, src, "steps")

    def state_vec(x, where):
        if isinstance(x, dict):  # a goal-env observation dict
            if "observation" not in x:
                raise ValueError(f"{where}: state dict has keys {sorted(x)}, expected "
                                 f"'observation'")
            x = x["observation"]
        return _vector(x, where)

    lists = {k: [] for k in EPISODE_KEYS}
    mismatches = 0
    for e, ep in enumerate(episodes):
        o, ag, g, u, succ = [], [], [], [], []
        for t, tr in enumerate(ep[:T]):
            where = f"{src}: episode {e} step {t}"
            if not isinstance(tr, dict) or any(k not in tr for k in PICKLE_EPISODE_KEYS):
                got = sorted(tr) if isinstance(tr, dict) else type(tr).__name__
                raise ValueError(f"{where}: expected a transition dict with keys "
                                 f"{', '.join(PICKLE_EPISODE_KEYS)}, got {got}")
            info = tr["info"]
            if not isinstance(info, dict) or "is_success" not in info:
                raise ValueError(f"{where}: 'info' must be a dict with key is_success")
            o.append(state_vec(tr["state"], where))
            ag.append(_vector(tr["achieved_goal"], where))
            g.append(_vector(tr["desired_goal"], where))
            u.append(_vector(tr["action"], where))
            succ.append([float(info["is_success"])])
            if t > 0:
                prev = ep[t - 1]
                nxt = state_vec(prev["next_state"], where)
                if nxt.shape != o[-1].shape or not np.allclose(nxt, o[-1], atol=1e-5):
                    mismatches += 1
        o.append(state_vec(ep[T - 1]["next_state"], f"{src}: episode {e} step {T - 1}"))
        ag.append(_vector(ep[T - 1]["next_achieved_goal"], f"{src}: episode {e} step {T - 1}"))
        lists["o"].append(_stack(o, f"{src}: episode {e} 'state'"))
        lists["ag"].append(_stack(ag, f"{src}: episode {e} 'achieved_goal'"))
        lists["g"].append(_stack(g, f"{src}: episode {e} 'desired_goal'"))
        lists["u"].append(_stack(u, f"{src}: episode {e} 'action'"))
        lists["info_is_success"].append(succ)
    if mismatches:
        out(f"note: {mismatches} transition(s) whose 'state' differs from the previous "
            f"transition's 'next_state'; 'state' was used")
    for k in ("o", "ag", "g", "u"):
        lists[k] = _stack(lists[k], f"{src}: key {k!r} across episodes")
    return _finish(lists, src, max_u, out)


def convert(kind: str, src: str, dst: str, env_name: Optional[str] = None,
            T: Optional[int] = None, out: Callable = print) -> str:
    """``kind`` is ``"baselines"`` or ``"pickle-episodes"``. With ``env_name`` the result is
    checked against the env (horizon, dims) before anything is written. Returns the path."""
    if not os.path.isfile(src):
        raise ValueError(f"{src}: no such file")
    spec = _env_spec(env_name) if env_name else None
    if spec is not None and T is None:
        T = spec.T
    max_u = spec.max_u if spec is not None else 1.0
    reader = {"baselines": read_baselines_demo, "pickle-episodes": read_pickle_episodes}[kind]
    batch = reader(src, T=T, max_u=max_u, out=out)
    if spec is not None:
        batch = validate_episodes(batch, spec.T, spec.dim_o, spec.dim_g, spec.dim_u,
                                  f"converted {src}", env_name)
    path = save_episodes(dst, batch)
    n, T_ = batch["u"].shape[:2]
    rate = float(batch["info_is_success"][:, -1, 0].mean())
    out(f"converted {n} episodes of T={T_} steps (do={batch['o'].shape[2]}, "
        f"dg={batch['g'].shape[2]}, du={batch['u'].shape[2]}, final success rate {rate:.2f}) "
        f"-> {path}")
    return path


# --------------------------------------------------------------------------------------------
# import-motion

_MOTION_REQUIRED = ("t", "x", "y", "z")
_MOTION_TRIPLES = {"object": ("object_x", "object_y", "object_z"),
                   "goal": ("goal_x", "goal_y", "goal_z")}
MOTION_COLUMNS = _MOTION_REQUIRED + ("gripper",) + _MOTION_TRIPLES["object"] + \
    _MOTION_TRIPLES["goal"]


@dataclass
class Motion:
    """A recorded end-effector trajectory (one CSV file)."""
    path: str
    t: np.ndarray                  # (N,) seconds, strictly increasing
    pos: np.ndarray                # (N, 3) metres
    gripper: Optional[np.ndarray]  # (N,) metres of finger opening, or None
    object_pos: Optional[np.ndarray] = None  # (3,)
    goal: Optional[np.ndarray] = None        # (3,)


def read_motion_csv(path: str) -> Motion:
    """Parse a motion CSV (format in the module docstring); ``ValueError`` names file and line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            numbered = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{path}: cannot read as CSV ({e})") from None
    if not numbered:
        raise ValueError(f"{path}: empty file; expected a header row with columns t,x,y,z")
    lines = [n for n, _ in numbered]
    rows = [r for _, r in numbered]
    header = [c.strip().lower() for c in rows[0]]
    try:
        [float(c) for c in header]
        numeric = True
    except ValueError:
        numeric = False
    if numeric:
        raise ValueError(f"{path}: line {lines[0]} is numbers; a header row is required "
                         f"(columns {', '.join(_MOTION_REQUIRED)}[, gripper, object_x/_y/_z, "
                         f"goal_x/_y/_z])")
    unknown = [c for c in header if c not in MOTION_COLUMNS]
    if unknown:
        raise ValueError(f"{path}: unknown column(s) {unknown}; allowed: "
                         f"{', '.join(MOTION_COLUMNS)}")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate column(s) {dup}")
    missing = [c for c in _MOTION_REQUIRED if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; required: "
                         f"{', '.join(_MOTION_REQUIRED)}")
    if len(rows) < 2:
        raise ValueError(f"{path}: no data rows after the header")
    col = {c: i for i, c in enumerate(header)}

    def number(line: int, row: list, name: str, required: bool = True) -> float:
        i = col[name]
        text = row[i].strip() if i < len(row) else ""
        if not text:
            if required:
                raise ValueError(f"{path}: line {line}: column {name!r} is empty")
            return float("nan")
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"{path}: line {line}: column {name!r} is {text!r}, expected a "
                             f"number") from None
        if not np.isfinite(v):
            raise ValueError(f"{path}: line {line}: column {name!r} is {text!r}, expected a "
                             f"finite number")
        return v

    per_row = [c for c in ("t", "x", "y", "z", "gripper") if c in col]
    data = np.array([[number(n, r, c) for c in per_row] for n, r in zip(lines[1:], rows[1:])])
    t = data[:, 0]
    if np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise ValueError(f"{path}: line {lines[i + 2]}: column 't' is {t[i + 1]:g} after "
                         f"{t[i]:g}; times must be strictly increasing")
    extras = {}
    for name, cols in _MOTION_TRIPLES.items():
        present = [c for c in cols if c in col]
        if not present:
            extras[name] = None
            continue
        if len(present) != 3:
            raise ValueError(f"{path}: columns {present} given without "
                             f"{[c for c in cols if c not in col]}; give all of {list(cols)}")
        extras[name] = np.array([number(lines[1], rows[1], c) for c in cols])
    return Motion(path=path, t=t, pos=data[:, 1:4],
                  gripper=data[:, 4] if "gripper" in col else None,
                  object_pos=extras["object"], goal=extras["goal"])


def resample_motion(motion: Motion, dt: float, T: int) -> tuple:
    """Linear interpolation of the trajectory at times ``k * dt``, k = 0..T (relative to the
    first sample); beyond the last sample the last pose is held.

    Returns ``(pos (T+1, 3), gripper (T+1,) or None, note)``; ``note`` says whether the recording
    was padded or truncated.
    """
    rel = motion.t - motion.t[0]
    times = np.arange(T + 1) * dt
    pos = np.stack([np.interp(times, rel, motion.pos[:, i]) for i in range(3)], axis=1)
    grip = None if motion.gripper is None else np.interp(times, rel, motion.gripper)
    duration, needed = float(rel[-1]), T * dt
    if duration < needed - 1e-9:
        held = int(np.sum(times > duration + 1e-9))
        note = (f"recording lasts {duration:.2f} s < {needed:.2f} s (T={T} steps of {dt:g} s): "
                f"padded, last pose held for {held} step(s)")
    elif duration > needed + 1e-9:
        note = (f"recording lasts {duration:.2f} s > {needed:.2f} s (T={T} steps of {dt:g} s): "
                f"truncated, the last {duration - needed:.2f} s are not used")
    else:
        note = f"recording lasts {duration:.2f} s = T={T} steps of {dt:g} s"
    return pos, grip, note


def _check_panda_ee(env, env_name: str):
    base = env.unwrapped
    robot = getattr(base, "robot", None)
    if robot is None or not hasattr(robot, "get_ee_position") or not hasattr(base, "sim"):
        raise ValueError(f"import-motion needs a panda-gym env (end-effector control), "
                         f"{env_name} is not one")
    if getattr(robot, "control_type", "ee") != "ee":
        raise ValueError(f"import-motion needs end-effector control; {env_name} uses "
                         f"control_type={robot.control_type!r} (use the id without 'Joints')")
    return base


def _apply_initial_state(base, motion: Motion, env_name: str) -> None:
    """Set the recorded object position and goal after ``reset`` (panda-gym sim API)."""
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    if motion.object_pos is not None:
        if "object" not in getattr(base.sim, "_bodies_idx", {}):
            raise ValueError(f"{motion.path}: object_x/_y/_z given but {env_name} has no body "
                             f"named 'object'")
        base.sim.set_base_pose("object", motion.object_pos, identity)
    if motion.goal is not None:
        goal = getattr(base.task, "goal", None)
        if goal is None or np.shape(goal) != (3,):
            raise ValueError(f"{motion.path}: goal_x/_y/_z given but the goal of {env_name} has "
                             f"shape {np.shape(goal)}, not (3,)")
        base.task.goal = motion.goal.astype(np.float64).copy()
        if "target" in getattr(base.sim, "_bodies_idx", {}):
            base.sim.set_base_pose("target", motion.goal, identity)


def replay_motion(env, motion: Motion, T: int, seed: Optional[int], env_name: str = "",
                  close_below: float = 0.02) -> tuple:
    """Track ``motion`` in closed loop for exactly T steps; returns ``(episode, report)``.

    Stepping as in ``generate_demos.run_episode`` and ``rollout.py``: ``reset`` through the
    wrappers (seeded), then T steps of ``env.unwrapped.step`` (success does not end the episode).
    ``report`` has ``note``, ``targets (T+1, 3)``, ``tracking_error`` (per step, metres, ee
    position after step k vs target k), ``start_offset`` and ``success``.
    """
    base = _check_panda_ee(env, env_name)
    dt = float(base.sim.dt)  # sim.timestep * sim.n_substeps
    targets, grip, note = resample_motion(motion, dt, T)
    obs, _ = env.reset(seed=seed)
    if motion.object_pos is not None or motion.goal is not None:
        _apply_initial_state(base, motion, env_name)
        obs = base._get_obs()
    du = env.action_space.shape[0]
    has_fingers = du == 4 and not getattr(base.robot, "block_gripper", True)
    o = [np.asarray(obs["observation"], np.float32)]
    ag = [np.asarray(obs["achieved_goal"], np.float32)]
    g, u, succ, err = [], [], [], []
    start_offset = float(np.linalg.norm(targets[0] - base.robot.get_ee_position()))
    for k in range(T):
        g.append(np.asarray(obs["desired_goal"], np.float32))
        a = np.zeros(du, np.float32)
        ee = np.asarray(base.robot.get_ee_position(), np.float64)
        a[:3] = np.clip((targets[k + 1] - ee) / EE_STEP, -1.0, 1.0)
        if has_fingers and grip is not None:
            if grip[k + 1] < close_below:
                a[3] = -1.0
            else:
                width = float(base.robot.get_fingers_width())
                a[3] = np.clip((grip[k + 1] - width) / FINGER_STEP, -1.0, 1.0)
        obs, _r, _term, _trunc, info = base.step(a)
        u.append(a)
        o.append(np.asarray(obs["observation"], np.float32))
        ag.append(np.asarray(obs["achieved_goal"], np.float32))
        succ.append([float(info.get("is_success", 0.0))])
        err.append(float(np.linalg.norm(np.asarray(base.robot.get_ee_position()) - targets[k + 1])))
    episode = {"o": np.stack(o), "ag": np.stack(ag), "g": np.stack(g), "u": np.stack(u),
               "info_is_success": np.asarray(succ, np.float32)}
    report = {"note": note, "targets": targets, "tracking_error": np.asarray(err),
              "start_offset": start_offset, "success": bool(succ[-1][0] > 0.5),
              "gripper_ignored": grip is not None and not has_fingers,
              "no_gripper_column": grip is None and has_fingers}
    return episode, report


def import_motion(paths: list, env_name: str, out_path: str, only_success: bool = False,
                  seed: int = 0, close_below: float = 0.02, out: Callable = print) -> dict:
    """Turn motion CSVs into a native demo file. Every CSV is parsed before the env is stepped.

    The i-th file is replayed with reset seed ``seed + i``. Returns stats ``{"files", "kept",
    "successes", "path"}`` (``path`` None when nothing was written).
    """
    if not paths:
        raise ValueError("no motion files given")
    if not 0.0 <= close_below <= FINGER_MAX_OPENING:
        raise ValueError(f"--close_below must be in [0, {FINGER_MAX_OPENING}] m, got {close_below}")
    motions = [read_motion_csv(p) for p in paths]
    from baselines_her.envs import describe_env
    env = _make_env(env_name)
    try:
        spec = describe_env(env, env_name)
        _check_panda_ee(env, env_name)
        episodes, successes = [], 0
        for i, motion in enumerate(motions):
            ep, rep = replay_motion(env, motion, spec.T, seed + i, env_name, close_below)
            successes += rep["success"]
            keep = rep["success"] or not only_success
            err = rep["tracking_error"]
            skip = min(5, len(err) - 1)
            parts = [rep["note"]]
            if rep["start_offset"] > 0.02:
                parts.append(f"starts {rep['start_offset'] * 100:.1f} cm from the robot's initial "
                             f"end-effector position (the first steps move there)")
            parts.append(f"tracking error after step {skip}: mean {err[skip:].mean() * 100:.1f} cm,"
                         f" max {err[skip:].max() * 100:.1f} cm")
            if rep["gripper_ignored"]:
                parts.append(f"'gripper' column ignored ({env_name} has a blocked gripper)")
            if rep["no_gripper_column"]:
                parts.append("no 'gripper' column: finger action 0 (fingers keep their width)")
            verdict = "success" if rep["success"] else "failure"
            verdict += ", kept" if keep else ", dropped (--only_success)"
            out(f"{motion.path}: {verdict}; " + "; ".join(parts))
            if keep:
                episodes.append(ep)
    finally:
        env.close()
    n = len(motions)
    stats = {"files": n, "kept": len(episodes), "successes": successes, "path": None}
    dropped = f", {n - len(episodes)} dropped by --only_success" if only_success else ""
    if not episodes:
        out(f"imported 0/{n} recordings ({successes} successful{dropped}); nothing written")
        return stats
    batch = {k: np.stack([ep[k] for ep in episodes]) for k in EPISODE_KEYS}
    stats["path"] = save_episodes(out_path, batch)
    out(f"imported {len(episodes)}/{n} recordings ({successes} successful{dropped}) -> "
        f"{stats['path']}")
    return stats


# --------------------------------------------------------------------------------------------
# command line


def check_file(path: str, env_name: str, out: Callable = print) -> dict:
    batch = load_episodes_for_env(path, env_name)
    n, T = batch["u"].shape[:2]
    final = batch["info_is_success"][:, -1, 0]
    out(f"{path}: {n} episodes of T={T} steps for {env_name}; final success rate "
        f"{final.mean():.2f} ({int(final.sum())}/{n}); |u| max {np.abs(batch['u']).max():.3f}")
    return batch


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit status (2), with the usage
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m baselines_her.demo",
                description="Demonstration files of baselines_her: check, convert pickled "
                            "formats, import recorded end-effector motion.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="validate a native demo file against an env",
                       description="Validate a native demo file against an env and summarise it.")
    c.add_argument("file")
    c.add_argument("--env", required=True, help="gymnasium env id, e.g. PandaPush-v3")

    v = sub.add_parser("convert", help="convert a pickled demo format to a native demo file",
                       description="Convert a pickled demo format to the native .npz. The input "
                                   "is UNPICKLED, which executes code stored in it: convert only "
                                   "files you trust.")
    fmt = v.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--from-baselines", dest="kind", action="store_const", const="baselines",
                     help="baselines demo .npz (object arrays obs, acs, info)")
    fmt.add_argument("--from-pickle-episodes", dest="kind", action="store_const",
                     const="pickle-episodes",
                     help="pickled list of episodes of transition dicts (state, action, info, "
                          "achieved_goal, desired_goal, next_state, next_achieved_goal)")
    v.add_argument("input")
    v.add_argument("output", help="native .npz to write")
    v.add_argument("--env", default=None,
                   help="check the result against this env (horizon, dims, action bound)")
    v.add_argument("--T", type=int, default=None,
                   help="keep the first T steps of each episode (default: the env's horizon "
                        "with --env, else the episodes' common length)")

    m = sub.add_parser("import-motion", help="turn recorded end-effector trajectories (CSV) "
                                             "into episodes",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Resample recorded end-effector trajectories to the env's "
                                   "control period, track them in closed loop in the env and "
                                   "write the episodes (true observations) as a native demo file."
                                   "\n\nCSV columns (header row required): t [s], x, y, z [m, "
                                   "world frame], optional gripper [m, finger opening], optional "
                                   "object_x/_y/_z and goal_x/_y/_z [m, first row only].")
    m.add_argument("files", nargs="+", metavar="REC.csv")
    m.add_argument("--env", required=True, help="panda-gym env id (end-effector control)")
    m.add_argument("--out", required=True, help="native .npz to write")
    m.add_argument("--only_success", action="store_true",
                   help="drop recordings whose episode does not end in success")
    m.add_argument("--seed", type=int, default=0, help="reset seed of the first file (default 0)")
    m.add_argument("--close_below", type=float, default=0.02,
                   help="openings below this many metres close the fingers with full force "
                        "(default 0.02)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        if args.command == "check":
            check_file(args.file, args.env)
        elif args.command == "convert":
            if args.T is not None and args.T < 1:
                p.error(f"--T must be a positive integer, got {args.T}")
            convert(args.kind, args.input, args.output, env_name=args.env, T=args.T)
        else:
            if args.seed < 0:
                p.error(f"--seed must be >= 0, got {args.seed}")
            stats = import_motion(args.files, args.env, args.out, only_success=args.only_success,
                                  seed=args.seed, close_below=args.close_below)
            if stats["path"] is None:
                return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
