"""Recorded end-effector motion (CSV) to episodes: a native demo / human file.

    python experiment/data_generation/import_motion.py rec1.csv rec2.csv --env PandaReach-v3 \
        --out human.npz [--stretch] [--only_success] [--seed 0] [--close_below 0.02]

User errors print one line ``error: ...`` and exit 2; the exit status is 1 when no recording is
left to write (all dropped by ``--only_success``).

**Motion CSV**: one file per episode, a header row, then one row per sample of the end-effector
trajectory, in the env's world frame (the frame of panda-gym's observations; the Panda's base is
at (-0.6, 0, 0), the table top at z = 0).

=========================  ========  =========================================================
column                     unit      meaning
=========================  ========  =========================================================
``t`` (optional)           s         sample time, strictly increasing; any origin (t - t[0]
                                     used); without it the samples are untimed (``--stretch``)
``x``, ``y``, ``z``        m         end-effector (gripper centre) position
``gripper`` (optional)     m         commanded finger opening: 0 closed .. 0.08 fully open;
                                     below ``--close_below`` (default 0.02) means "grasp":
                                     the fingers are driven closed with full force
``object_x/_y/_z`` (opt.)  m         initial object position, first data row only
``goal_x/_y/_z`` (opt.)    m         goal position, first data row only
=========================  ========  =========================================================

**Timing.** By default the trajectory is resampled by linear interpolation at the env's control
period (panda-gym: ``sim.timestep * sim.n_substeps`` = 0.002 s x 20 = 0.04 s) for exactly T
steps: a shorter recording is padded with its last pose, a longer one is truncated (both
reported). With ``--stretch`` the whole recording is spread over the T steps instead (by ``t``
when present, else by row order), so nothing is cut: for untimed recordings and for recordings
longer than T steps. Each step is then tracked in closed loop in the env (``tracking.py``: gains,
finger rule, blocked grippers). The episode is replayed in the env (seeded ``--seed + i`` for the
i-th file, then the object and goal columns applied), so the file holds the true observations.
Example::

    t,x,y,z,gripper,object_x,object_y,object_z,goal_x,goal_y,goal_z
    0.00,0.038,0.000,0.197,0.08,0.05,-0.02,0.02,0.10,0.10,0.15
    0.10,0.040,-0.002,0.180,0.08,,,,,,
    ...
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from tracking import (FINGER_MAX_OPENING, add_tracking_options, import_recordings,  # noqa: E402
                      reset_episode, spread, track, tracking_kwargs)

from baselines_her.demo import DemoError  # noqa: E402
from baselines_her.errors import UserErrorParser, run_cli  # noqa: E402

PROG = "import_motion.py"
_MOTION_REQUIRED = ("x", "y", "z")
_MOTION_TRIPLES = {"object": ("object_x", "object_y", "object_z"),
                   "goal": ("goal_x", "goal_y", "goal_z")}
MOTION_COLUMNS = ("t",) + _MOTION_REQUIRED + ("gripper",) + _MOTION_TRIPLES["object"] + \
    _MOTION_TRIPLES["goal"]


@dataclass
class Motion:
    """A recorded end-effector trajectory (one CSV file)."""
    path: str
    t: Optional[np.ndarray]        # (N,) seconds, strictly increasing; None: untimed
    pos: np.ndarray                # (N, 3) metres
    gripper: Optional[np.ndarray]  # (N,) metres of finger opening, or None
    object_pos: Optional[np.ndarray] = None  # (3,)
    goal: Optional[np.ndarray] = None        # (3,)


def read_motion_csv(path: str) -> Motion:
    """Parse a motion CSV (format in the module docstring); :class:`DemoError` names file, line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            numbered = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DemoError(f"{path}: cannot read as CSV ({e})") from None
    if not numbered:
        raise DemoError(f"{path}: empty file; expected a header row with columns t,x,y,z")
    lines = [n for n, _ in numbered]
    rows = [r for _, r in numbered]
    header = [c.strip().lower() for c in rows[0]]
    try:
        [float(c) for c in header]
        numeric = True
    except ValueError:
        numeric = False
    if numeric:
        raise DemoError(f"{path}: line {lines[0]} is numbers; a header row is required "
                        f"(columns t, x, y, z[, gripper, object_x/_y/_z, "
                        f"goal_x/_y/_z])")
    unknown = [c for c in header if c not in MOTION_COLUMNS]
    if unknown:
        raise DemoError(f"{path}: unknown column(s) {unknown}; allowed: "
                        f"{', '.join(MOTION_COLUMNS)}")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise DemoError(f"{path}: duplicate column(s) {dup}")
    missing = [c for c in _MOTION_REQUIRED if c not in header]
    if missing:
        raise DemoError(f"{path}: missing column(s) {missing}; required: "
                        f"{', '.join(_MOTION_REQUIRED)}")
    if len(rows) < 2:
        raise DemoError(f"{path}: no data rows after the header")
    col = {c: i for i, c in enumerate(header)}

    def number(line: int, row: list, name: str, required: bool = True) -> float:
        i = col[name]
        text = row[i].strip() if i < len(row) else ""
        if not text:
            if required:
                raise DemoError(f"{path}: line {line}: column {name!r} is empty")
            return float("nan")
        try:
            v = float(text)
        except ValueError:
            raise DemoError(f"{path}: line {line}: column {name!r} is {text!r}, expected a "
                            f"number") from None
        if not np.isfinite(v):
            raise DemoError(f"{path}: line {line}: column {name!r} is {text!r}, expected a "
                            f"finite number")
        return v

    per_row = [c for c in ("t", "x", "y", "z", "gripper") if c in col]
    data = np.array([[number(n, r, c) for c in per_row] for n, r in zip(lines[1:], rows[1:])])
    values = {c: data[:, i] for i, c in enumerate(per_row)}
    t = values.get("t")
    if t is not None and np.any(np.diff(t) <= 0):
        i = int(np.argmax(np.diff(t) <= 0))
        raise DemoError(f"{path}: line {lines[i + 2]}: column 't' is {t[i + 1]:g} after "
                        f"{t[i]:g}; times must be strictly increasing")
    extras = {}
    for name, cols in _MOTION_TRIPLES.items():
        present = [c for c in cols if c in col]
        if not present:
            extras[name] = None
            continue
        if len(present) != 3:
            raise DemoError(f"{path}: columns {present} given without "
                            f"{[c for c in cols if c not in col]}; give all of {list(cols)}")
        extras[name] = np.array([number(lines[1], rows[1], c) for c in cols])
    return Motion(path=path, t=t, pos=np.stack([values[c] for c in ("x", "y", "z")], axis=1),
                  gripper=values.get("gripper"),
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


def motion_targets(motion: Motion, dt: float, T: int, stretch: bool) -> tuple:
    """``(targets (T+1, 3), opening (T+1,) or None, note)`` of ``motion`` for T steps of ``dt``:
    resampled in real time, or with ``stretch`` spread over the T steps (module docstring)."""
    if not stretch:
        if motion.t is None:
            raise DemoError(f"{motion.path}: no 't' column; pass --stretch to spread the samples "
                            f"over the T steps in row order")
        return resample_motion(motion, dt, T)
    targets = spread(motion.pos, T, motion.t)
    opening = None if motion.gripper is None else spread(motion.gripper[:, None], T, motion.t)[:, 0]
    how = "by 't'" if motion.t is not None else "by row order"
    note = f"{len(motion.pos)} samples stretched over T={T} steps ({how})"
    if motion.t is not None:
        note += f": {motion.t[-1] - motion.t[0]:.2f} s played in {T * dt:.2f} s"
    return targets, opening, note


def replay_motion(env, motion: Motion, T: int, seed: Optional[int], env_name: str = "",
                  close_below: float = 0.02, stretch: bool = False) -> tuple:
    """Reset (seeded, then the recorded object and goal), time the motion and track it for T
    steps; returns ``(episode, report)`` (:func:`tracking.track`, plus ``note`` and
    ``targets``)."""
    targets, opening, note = motion_targets(motion, float(env.unwrapped.sim.dt), T, stretch)
    obs = reset_episode(env, seed, motion.path, env_name, motion.object_pos, motion.goal)
    episode, report = track(env, obs, targets, opening, close_below)
    report.update(note=note, targets=targets)
    return episode, report


def check_close_below(close_below: float) -> None:
    if not 0.0 <= close_below <= FINGER_MAX_OPENING:
        raise DemoError(f"--close_below must be in [0, {FINGER_MAX_OPENING}] m, got "
                        f"{close_below}")


def import_motion(paths: list, env_name: str, out_path: str, only_success: bool = False,
                  seed: int = 0, close_below: float = 0.02, stretch: bool = False,
                  out: Callable = print) -> dict:
    """Turn motion CSVs into a native demo file. Every CSV is parsed before the env is stepped.

    The i-th file is replayed with reset seed ``seed + i``. Returns stats ``{"files", "kept",
    "successes", "path"}`` (``path`` None when nothing was written).
    """
    if not paths:
        raise DemoError("no motion files given")
    check_close_below(close_below)
    motions = [read_motion_csv(p) for p in paths]

    def episode(env, spec, i, motion):
        ep, rep = replay_motion(env, motion, spec.T, seed + i, env_name, close_below, stretch)
        return motion.path, ep, rep, [rep["note"]]

    return import_recordings(motions, env_name, out_path, episode, PROG, only_success, out)


def build_parser() -> argparse.ArgumentParser:
    p = UserErrorParser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Resample recorded end-effector trajectories to the env's "
                                    "control period, track them in closed loop in the env and "
                                    "write the episodes (true observations) as a native demo "
                                    "file.\n\nCSV columns (header row required): t [s, optional "
                                    "with --stretch], x, y, z [m, world frame], optional gripper "
                                    "[m, finger opening], optional object_x/_y/_z and "
                                    "goal_x/_y/_z [m, first row only].")
    p.add_argument("files", nargs="+", metavar="REC.csv")
    add_tracking_options(p)
    p.add_argument("--stretch", action="store_true",
                   help="spread the whole recording over the T steps (by t, or by row order "
                        "without a t column) instead of playing it in real time, which pads a "
                        "short recording and cuts a long one")
    return p


def _main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    stats = import_motion(args.files, args.env, args.out, stretch=args.stretch,
                          **tracking_kwargs(p, args))
    return 0 if stats["path"] is not None else 1


def main(argv=None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
