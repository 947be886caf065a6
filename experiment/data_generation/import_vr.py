"""VR text recordings to episodes: a native demo / human file.

    python experiment/data_generation/import_vr.py rec1.txt rec2.txt --env PandaPickAndPlace-v3 \
        --out human.npz [--axes z,-x,y] [--align object-goal|none] [--approach_steps 8] \
        [--rate_hz R] [--z_offset 0] [--only_success] [--seed 0] [--close_below 0.02]

User errors print one line ``error: ...`` and exit 2; the exit status is 1 when no recording is
left to write (all dropped by ``--only_success``). The user guide is docs/human_data.md.

**VR text recording**: the hand recordings of the panda-gym DDPG+HER+human-VR system, one file per
episode, one sample per line, no timestamps::

    <index>\\t(<x>, <y>, <z>)\\t<f>
    0\\t(0.12, 0.95, -0.04)\\t0.04

``index`` counts the samples (strictly increasing), ``x, y, z`` is the hand position in Unity
coordinates (metres, y up), ``f`` the finger value: the commanded finger opening is ``2 * f``
metres. Blank lines and lines starting with ``#`` are skipped.

**To the sim**, per file (each step an option, defaults as that system did it):

1. ``--axes z,-x,y``: sim (x, y, z) = (Unity z, -Unity x, Unity y); ``--z_offset`` is added to
   the sim height.
2. ``--align object-goal``: x and y are shifted and scaled per episode so that the recorded object
   lands on the sim's object and the recorded goal on the sim's goal (after the env's reset with
   seed ``--seed + i``). The recorded goal is the last sample; the recorded object is the hand at
   the grasp, the first sample whose opening is below ``--close_below`` after an open one. Along
   an axis where object and goal lie less than 5 cm apart in the recording a scale would blow
   up the noise, so that axis is shifted instead: by the object's offset up to the grasp, then
   blended linearly (by sample) into the goal's offset at the last sample ("blend" in the
   report). Without a grasp (or without an object in the env) both axes are shifted so the goal
   lands. ``--align none`` keeps the mapped coordinates.
3. ``--approach_steps 8``: the first steps go in a straight line from the robot's start to the
   first sample.
4. The remaining T - approach steps cover the whole recording by sample index (it is not real
   time). ``--rate_hz R`` treats it as sampled at R Hz instead: resampled at the env's control
   period, a shorter recording padded with its last sample, a longer one truncated.

The path is then tracked in the env (``tracking.py``), so the file holds the env's true
observations.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from import_motion import Motion, check_close_below, resample_motion  # noqa: E402
from tracking import (add_tracking_options, import_recordings, object_position,  # noqa: E402
                      reset_episode, spread, track, tracking_kwargs, with_approach)

from baselines_her.demo import DemoError  # noqa: E402
from baselines_her.errors import UserErrorParser, run_cli  # noqa: E402

PROG = "import_vr.py"

DEFAULT_AXES = "z,-x,y"
ALIGN_CHOICES = ("object-goal", "none")
MIN_SPAN = 0.05  # metres: below this, an axis is shifted only
_NUM = r"([-+0-9.eE]+|nan|inf)"
_LINE = re.compile(r"^\s*(\d+)\s+\(\s*" + _NUM + r"\s*,\s*" + _NUM + r"\s*,\s*" + _NUM +
                   r"\s*\)\s+" + _NUM + r"\s*$", re.IGNORECASE)
_FORMAT = "<index>\\t(<x>, <y>, <z>)\\t<f>"


@dataclass
class VRRecording:
    path: str
    index: np.ndarray   # (N,) strictly increasing sample numbers
    pos: np.ndarray     # (N, 3) Unity coordinates, metres, y up
    finger: np.ndarray  # (N,) finger value f (opening 2 f)


def read_vr_text(path: str) -> VRRecording:
    """Parse a VR text recording; :class:`DemoError` names the file, the line and the format."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DemoError(f"{path}: cannot read as a VR text recording ({e})") from None
    rows = []
    for n, line in enumerate(text, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise DemoError(f"{path}: line {n} is {line.strip()[:60]!r}, expected {_FORMAT}")
        try:
            values = [float(v) for v in m.groups()]
        except ValueError:
            raise DemoError(f"{path}: line {n} is {line.strip()[:60]!r}, expected numbers in "
                            f"{_FORMAT}") from None
        if not np.all(np.isfinite(values)):
            raise DemoError(f"{path}: line {n}: expected finite numbers, got {line.strip()!r}")
        rows.append((n, values))
    if not rows:
        raise DemoError(f"{path}: no samples; expected lines {_FORMAT}")
    data = np.array([v for _, v in rows])
    steps = np.diff(data[:, 0])
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise DemoError(f"{path}: line {rows[i + 1][0]}: index {data[i + 1, 0]:g} after "
                        f"{data[i, 0]:g}; indices must be strictly increasing")
    return VRRecording(path, data[:, 0], data[:, 1:4], data[:, 4])


def parse_axes(text: str) -> tuple:
    """``--axes``: three of ``x, y, z`` (each once, optionally signed) naming the Unity axis of
    sim x, y, z. Returns ``(columns, signs)``."""
    items = [s.strip().lower() for s in text.split(",")]
    if len(items) != 3 or any(re.fullmatch(r"[+-]?[xyz]", s) is None for s in items) or \
            len({s[-1] for s in items}) != 3:
        raise DemoError(f"--axes must name x, y and z once each, optionally signed, e.g. "
                        f"{DEFAULT_AXES}; got {text!r}")
    return (np.array(["xyz".index(s[-1]) for s in items]),
            np.array([-1.0 if s.startswith("-") else 1.0 for s in items]))


def to_sim(pos: np.ndarray, axes: tuple, z_offset: float = 0.0) -> np.ndarray:
    columns, signs = axes
    out = pos[:, columns] * signs
    out[:, 2] += z_offset
    return out


def grasp_sample(opening: np.ndarray, close_below: float) -> Optional[int]:
    """The first sample whose opening is below ``close_below`` after an open one, or None."""
    opened = np.maximum.accumulate(opening >= close_below)
    hits = np.flatnonzero((opening < close_below) & opened)
    return int(hits[0]) if len(hits) else None


def align_xy(path: np.ndarray, grasp: Optional[int], sim_object: Optional[np.ndarray],
             sim_goal: np.ndarray) -> tuple:
    """Move x and y of ``path`` so that sample ``grasp`` lands on ``sim_object`` and the last
    sample on ``sim_goal`` (module docstring, step 2); returns ``(aligned path, how)`` with
    ``how`` per axis: the scale, or ``"blend"``, or ``"shift"`` (goal only)."""
    out, how = path.copy(), []
    goal_rec = path[-1]
    n = len(path)
    for j in range(2):
        if grasp is None or sim_object is None:
            out[:, j] += sim_goal[j] - goal_rec[j]
            how.append("shift")
            continue
        span = goal_rec[j] - path[grasp, j]
        if abs(span) >= MIN_SPAN:
            scale = (sim_goal[j] - sim_object[j]) / span
            out[:, j] = sim_object[j] + scale * (path[:, j] - path[grasp, j])
            how.append(f"scale {scale:.2f}")
            continue
        at_object, at_goal = sim_object[j] - path[grasp, j], sim_goal[j] - goal_rec[j]
        w = np.clip((np.arange(n) - grasp) / max(n - 1 - grasp, 1), 0.0, 1.0)
        out[:, j] += at_object + w * (at_goal - at_object)
        how.append("blend")
    return out, how


def vr_episode(env, T: int, rec: VRRecording, seed: int, env_name: str, axes: tuple,
               align: str = "object-goal", approach_steps: int = 8,
               rate_hz: Optional[float] = None, z_offset: float = 0.0,
               close_below: float = 0.02) -> tuple:
    """Reset, map, align and time one recording and track it; ``(episode, report, notes)``."""
    if not 0 <= approach_steps < T:
        raise DemoError(f"--approach_steps must be in [0, {T - 1}] for T={T}, got "
                        f"{approach_steps}")
    base = env.unwrapped
    obs = reset_episode(env, seed, rec.path, env_name)
    path, opening = to_sim(rec.pos, axes, z_offset), 2.0 * rec.finger
    notes = [f"{len(path)} samples"]
    if align == "object-goal":
        goal = np.asarray(obs["desired_goal"], np.float64)
        if goal.shape != (3,):
            raise DemoError(f"--align object-goal needs a 3-d goal; {env_name} has a goal of "
                            f"shape {goal.shape}: use --align none")
        k = grasp_sample(opening, close_below)
        sim_object = object_position(base)
        path, how = align_xy(path, k, sim_object, goal)
        what = (f"grasp at sample {k} -> object, last sample -> goal" if k is not None and
                sim_object is not None else "last sample -> goal")
        notes.append(f"aligned ({what}; x {how[0]}, y {how[1]})")
    steps = T - approach_steps
    if rate_hz is None:
        body, grip = spread(path, steps, rec.index), spread(opening[:, None], steps, rec.index)
        notes.append(f"stretched by index over steps {approach_steps}..{T}")
    else:
        t = (rec.index - rec.index[0]) / rate_hz
        body, g1, note = resample_motion(Motion(rec.path, t, path, opening), float(base.sim.dt),
                                         steps)
        grip = g1[:, None]
        notes.append(f"at {rate_hz:g} Hz: {note}")
    targets = with_approach(body, approach_steps, base.robot.get_ee_position())
    grip = with_approach(grip, approach_steps)[:, 0]
    episode, report = track(env, obs, targets, grip, close_below)
    report["targets"] = targets
    return episode, report, notes


def import_vr(paths: list, env_name: str, out_path: str, axes: str = DEFAULT_AXES,
              align: str = "object-goal", approach_steps: int = 8,
              rate_hz: Optional[float] = None, z_offset: float = 0.0, close_below: float = 0.02,
              seed: int = 0, only_success: bool = False, out: Callable = print) -> dict:
    """Turn VR text recordings into a native demo file (module docstring). Every file is parsed
    before the env is stepped; the i-th is replayed after a reset with seed ``seed + i``.
    Returns stats as :func:`tracking.import_recordings`."""
    if not paths:
        raise DemoError("no VR recordings given")
    if align not in ALIGN_CHOICES:
        raise DemoError(f"--align must be one of {', '.join(ALIGN_CHOICES)}, got {align!r}")
    if rate_hz is not None and not (np.isfinite(rate_hz) and rate_hz > 0):
        raise DemoError(f"--rate_hz must be a positive number, got {rate_hz}")
    if not np.isfinite(z_offset):
        raise DemoError(f"--z_offset must be a finite number, got {z_offset}")
    check_close_below(close_below)
    mapping = parse_axes(axes)
    recordings = [read_vr_text(p) for p in paths]

    def episode(env, spec, i, rec):
        ep, rep, notes = vr_episode(env, spec.T, rec, seed + i, env_name, mapping, align,
                                    approach_steps, rate_hz, z_offset, close_below)
        return rec.path, ep, rep, notes

    return import_recordings(recordings, env_name, out_path, episode, PROG, only_success, out)


def build_parser() -> argparse.ArgumentParser:
    p = UserErrorParser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Map VR hand recordings (lines '<index>\\t(<x>, <y>, <z>)\\t"
                                    "<f>', Unity coordinates, y up, opening 2*f) to the sim, "
                                    "align them per episode, spread them over the T steps and "
                                    "track them in closed loop in the env; write the episodes "
                                    "(true observations) as a native demo file.")
    p.add_argument("files", nargs="+", metavar="REC.txt")
    add_tracking_options(p)
    p.add_argument("--axes", default=DEFAULT_AXES,
                   help=f"Unity axis of sim x, y, z, optionally signed (default {DEFAULT_AXES})")
    p.add_argument("--align", choices=ALIGN_CHOICES, default="object-goal",
                   help="shift and scale x, y per episode so the recorded object (hand at the "
                        "grasp) and goal (last sample) land on the sim's (default object-goal)")
    p.add_argument("--approach_steps", type=int, default=8,
                   help="steps spent going from the robot's start to the first sample "
                        "(default 8)")
    p.add_argument("--rate_hz", type=float, default=None,
                   help="treat the recording as sampled at this rate (real time) instead of "
                        "spreading it over the steps by index")
    p.add_argument("--z_offset", type=float, default=0.0,
                   help="metres added to the mapped height (default 0)")
    return p


def _main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    stats = import_vr(args.files, args.env, args.out, axes=args.axes, align=args.align,
                      approach_steps=args.approach_steps, rate_hz=args.rate_hz,
                      z_offset=args.z_offset, **tracking_kwargs(p, args))
    return 0 if stats["path"] is not None else 1


def main(argv=None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
