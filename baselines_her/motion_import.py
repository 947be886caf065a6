"""Recorded end-effector motion to episodes, for ``python -m baselines_her.demo import-motion``.

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

import csv
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from baselines_her.demo import save_episodes
from baselines_her.replay_buffer import EPISODE_KEYS

# panda-gym v3 constants (panda_gym/envs/robots/panda.py, Panda.set_action and
# ee_displacement_to_target_arm_angles): metres per unit action.
EE_STEP = 0.05
FINGER_STEP = 0.2
FINGER_MAX_OPENING = 0.08

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
    from baselines_her.envs import describe_env, make_env  # lazy, as in demo.py
    env = make_env(env_name)
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
