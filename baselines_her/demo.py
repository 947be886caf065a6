"""Demonstration and human episode files: the native format (load, validate, save) and the
command line that checks, converts and imports them.

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

The pickled formats that ``convert`` reads are described in :mod:`baselines_her.demo_convert`, the
motion CSV of ``import-motion`` in :mod:`baselines_her.motion_import`.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import warnings
import zipfile
from typing import Callable, Optional

import numpy as np

from baselines_her.replay_buffer import EPISODE_KEYS, check_episode_batch, episode_shapes

CONVERT_HINT = ("convert it with `python -m baselines_her.demo convert --from-baselines OLD.npz "
                "NEW.npz` (baselines demo files) or `--from-pickle-episodes BUFFER.pkl NEW.npz` "
                "(pickled lists of episode dicts)")
BASELINES_KEYS = ("obs", "acs", "info")

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
            from baselines_her.demo_convert import convert
            convert(args.kind, args.input, args.output, env_name=args.env, T=args.T)
        else:
            if args.seed < 0:
                p.error(f"--seed must be >= 0, got {args.seed}")
            from baselines_her.motion_import import import_motion
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
