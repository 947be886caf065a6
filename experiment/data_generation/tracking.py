"""Turning recorded end-effector paths into episodes by tracking them in a panda-gym env.

Shared by ``import_motion.py`` (motion CSV) and ``import_vr.py`` (VR text recordings). It drives
panda-gym internals (``sim``, ``robot``, ``task``, ``_get_obs``), which is why it is a
data-generation tool and not part of the library; the library owns the native file it writes
(:mod:`baselines_her.demo`). A path is T+1 end-effector targets in the env's world frame plus an
optional commanded finger opening per target. Each step is tracked in closed loop:
``action[:3] = clip((target[k+1] - ee_position) / 0.05, -1, 1)`` (0.05 m is panda-gym's
end-effector displacement per unit action). The finger action is ``-1`` when the commanded
opening is below ``close_below``, else ``clip((opening[k+1] - finger_width) / 0.2, -1, 1)``
(0.2 m is panda-gym's finger-width change per unit action); without an opening it is 0. Envs with
a blocked gripper (Reach, Push, Slide) ignore the opening. The episode holds the env's true
observations, so what is written is what the env did, not what was recorded.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional

import numpy as np

from baselines_her.demo import DemoError, env_spec, open_env, save_episodes
from baselines_her.episode import run_episodes
from baselines_her.replay_buffer import EPISODE_KEYS

# panda-gym v3 constants (panda_gym/envs/robots/panda.py, Panda.set_action and
# ee_displacement_to_target_arm_angles): metres per unit action.
EE_STEP = 0.05
FINGER_STEP = 0.2
FINGER_MAX_OPENING = 0.08
_IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    """The flags both importers take."""
    p.add_argument("--env", required=True, help="panda-gym env id (end-effector control)")
    p.add_argument("--out", required=True, help="native .npz to write")
    p.add_argument("--only_success", action="store_true",
                   help="drop recordings whose episode does not end in success")
    p.add_argument("--seed", type=int, default=0, help="reset seed of the first file (default 0)")
    p.add_argument("--close_below", type=float, default=0.02,
                   help="openings below this many metres close the fingers with full force "
                        "(default 0.02)")


def tracking_kwargs(p: argparse.ArgumentParser, args) -> dict:
    """The keyword arguments of :func:`add_tracking_options`' flags shared by both importers
    (``--seed`` checked)."""
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    return dict(only_success=args.only_success, seed=args.seed, close_below=args.close_below)


def check_panda_ee(env, env_name: str, command: str):
    """The unwrapped panda-gym env; a :class:`DemoError` when it is not one with ee control."""
    base = env.unwrapped
    robot = getattr(base, "robot", None)
    if robot is None or not hasattr(robot, "get_ee_position") or not hasattr(base, "sim"):
        raise DemoError(f"{command} needs a panda-gym env (end-effector control), {env_name} is "
                        f"not one")
    if getattr(robot, "control_type", "ee") != "ee":
        raise DemoError(f"{command} needs end-effector control; {env_name} uses "
                        f"control_type={robot.control_type!r} (use the id without 'Joints')")
    return base


def object_position(base) -> Optional[np.ndarray]:
    """The position of the body named 'object', or None when the task has none."""
    if "object" not in getattr(base.sim, "_bodies_idx", {}):
        return None
    return np.asarray(base.sim.get_base_position("object"), np.float64)


def has_fingers(env) -> bool:
    base = env.unwrapped
    return env.action_space.shape[0] == 4 and not getattr(base.robot, "block_gripper", True)


def reset_episode(env, seed: Optional[int], where: str, env_name: str,
                  object_pos: Optional[np.ndarray] = None,
                  goal: Optional[np.ndarray] = None) -> dict:
    """``reset`` through the wrappers (seeded), then place the object and the goal when given;
    returns the observation dict."""
    obs, _ = env.reset(seed=seed)
    if object_pos is None and goal is None:
        return obs
    base = env.unwrapped
    if object_pos is not None:
        if object_position(base) is None:
            raise DemoError(f"{where}: object_x/_y/_z given but {env_name} has no body named "
                            f"'object'")
        base.sim.set_base_pose("object", object_pos, _IDENTITY)
    if goal is not None:
        current = getattr(base.task, "goal", None)
        if current is None or np.shape(current) != (3,):
            raise DemoError(f"{where}: goal_x/_y/_z given but the goal of {env_name} has shape "
                            f"{np.shape(current)}, not (3,)")
        base.task.goal = np.asarray(goal, np.float64).copy()
        if "target" in getattr(base.sim, "_bodies_idx", {}):
            base.sim.set_base_pose("target", goal, _IDENTITY)
    return base._get_obs()


def track(env, obs: dict, targets: np.ndarray, opening: Optional[np.ndarray],
          close_below: float) -> tuple:
    """Track ``targets`` (T+1, 3) for T steps from the reset observation ``obs``.

    Steps ``env.unwrapped`` through :func:`baselines_her.episode.run_episodes` (success does not
    end the episode). Returns ``(episode, report)``; ``report`` has ``tracking_error`` (per step,
    metres, ee position after step k vs target k+1), ``start_offset``, ``success``,
    ``gripper_ignored`` and ``no_gripper_column``.
    """
    base = env.unwrapped
    T = len(targets) - 1
    du = env.action_space.shape[0]
    fingers = has_fingers(env)
    err = []
    start_offset = float(np.linalg.norm(targets[0] - base.robot.get_ee_position()))

    def control(t, o, ag, g, current):
        ee = np.asarray(base.robot.get_ee_position(), np.float64)
        if t > 0:  # the ee position step t-1 reached: its tracking error
            err.append(float(np.linalg.norm(ee - targets[t])))
        a = np.zeros(du, np.float32)
        a[:3] = np.clip((targets[t + 1] - ee) / EE_STEP, -1.0, 1.0)
        if fingers and opening is not None:
            if opening[t + 1] < close_below:
                a[3] = -1.0
            else:
                width = float(base.robot.get_fingers_width())
                a[3] = np.clip((opening[t + 1] - width) / FINGER_STEP, -1.0, 1.0)
        return a[None]

    batch = run_episodes([base], [obs], control, T)
    err.append(float(np.linalg.norm(np.asarray(base.robot.get_ee_position()) - targets[T])))
    episode = {k: v[0] for k, v in batch.items()}
    report = {"tracking_error": np.asarray(err), "start_offset": start_offset,
              "success": bool(episode["info_is_success"][-1, 0] > 0.5),
              "gripper_ignored": opening is not None and not fingers,
              "no_gripper_column": opening is None and fingers}
    return episode, report


def describe(report: dict, env_name: str) -> list:
    """The parts of a recording's report line that every importer prints."""
    parts = []
    if report["start_offset"] > 0.02:
        parts.append(f"starts {report['start_offset'] * 100:.1f} cm from the robot's initial "
                     f"end-effector position (the first steps move there)")
    err = report["tracking_error"]
    skip = min(5, len(err) - 1)
    parts.append(f"tracking error after step {skip}: mean {err[skip:].mean() * 100:.1f} cm, "
                 f"max {err[skip:].max() * 100:.1f} cm")
    if report["gripper_ignored"]:
        parts.append(f"finger opening ignored ({env_name} has a blocked gripper)")
    if report["no_gripper_column"]:
        parts.append("no finger opening recorded: finger action 0 (fingers keep their width)")
    return parts


def import_recordings(items: list, env_name: str, out_path: str, episode_fn: Callable,
                      command: str, only_success: bool = False, out: Callable = print) -> dict:
    """Track every parsed recording in ``items`` in one env and write the kept episodes.

    ``episode_fn(env, spec, i, item)`` returns ``(name, episode, report, notes)`` for the i-th
    item (``notes``: extra report-line parts). Returns stats ``{"files", "kept", "successes",
    "path"}`` (``path`` None when nothing was written: all dropped by ``only_success``).
    """
    env = open_env(env_name)
    episodes, successes = [], 0
    try:
        spec = env_spec(env_name, env)
        check_panda_ee(env, env_name, command)
        for i, item in enumerate(items):
            name, ep, rep, notes = episode_fn(env, spec, i, item)
            successes += rep["success"]
            keep = rep["success"] or not only_success
            verdict = "success" if rep["success"] else "failure"
            verdict += ", kept" if keep else ", dropped (--only_success)"
            out(f"{name}: {verdict}; " + "; ".join(notes + describe(rep, env_name)))
            if keep:
                episodes.append(ep)
    finally:
        env.close()
    n = len(items)
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


def spread(values: np.ndarray, steps: int, positions: Optional[np.ndarray] = None) -> np.ndarray:
    """Spread recorded samples ``values`` (N, d) over ``steps`` steps: (steps+1, d).

    Sample ``i`` is placed at ``positions[i]`` (strictly increasing: times or sample indices;
    default ``0..N-1``), the first at step 0 and the last at step ``steps``, linearly
    interpolated in between: nothing of the recording is cut and no real-time rate is assumed.
    """
    values = np.asarray(values, np.float64)
    pos = (np.arange(len(values), dtype=np.float64) if positions is None
           else np.asarray(positions, np.float64))
    at = pos[0] + (pos[-1] - pos[0]) * np.arange(steps + 1) / steps
    return np.stack([np.interp(at, pos, values[:, j]) for j in range(values.shape[1])], axis=1)


def with_approach(body: np.ndarray, approach_steps: int,
                  start: Optional[np.ndarray] = None) -> np.ndarray:
    """Prepend ``approach_steps`` rows going in a straight line from ``start`` to ``body[0]``
    (``body[0]`` held when ``start`` is None): step ``approach_steps`` reaches ``body[0]``."""
    first = body[0] if start is None else np.asarray(start, np.float64)
    frac = (np.arange(approach_steps) / max(approach_steps, 1))[:, None]
    return np.concatenate([first + (body[0] - first) * frac, body], axis=0)
