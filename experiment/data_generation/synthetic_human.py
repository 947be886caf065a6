"""Synthetic "human" recordings: noisy, time-warped scripted-expert trajectories, written as
motion CSVs (``import_motion.py``) or as VR text recordings (``import_vr.py``).

    python experiment/data_generation/synthetic_human.py --env PandaPush-v3 --episodes 100 \
        --seed 0 --outdir motions/ [--noise_m 0.003] [--drift_m 0.005] [--warp 0.3] [--rate_hz 30]
    python experiment/data_generation/import_motion.py motions/*.csv --env PandaPush-v3 \
        --seed 0 --out human_push.npz

    python experiment/data_generation/synthetic_human.py --env PandaPickAndPlace-v3 \
        --episodes 100 --seed 0 --format vr --outdir vr/ [--vr_shift_m 0.05] [--vr_scale 0.1]
    python experiment/data_generation/import_vr.py vr/*.txt --env PandaPickAndPlace-v3 \
        --seed 0 --out human_pp.npz

A stand-in for a person with a motion tracker, for benchmarks and tests when no recorded human
data is at hand; results made with it must be labelled synthetic. For episode ``i`` the scripted
expert (panda_experts.py) runs in the env reset with ``seed + i`` and the end-effector position
(and finger opening, for envs with a free gripper) is recorded every control step. The recording
is then made human-like:

* **time warp**: each step's duration is ``dt * exp(warp * s_k)`` with ``s_k`` a smoothed
  standard-normal sequence (the person speeds up and slows down; total duration varies too);
* **tracker rate**: the warped path is resampled by linear interpolation at ``--rate_hz``
  (default 30 Hz, not the env's 25 Hz control rate);
* **noise**: white Gaussian noise (``--noise_m``) plus a slowly varying offset (``--drift_m``)
  on every position sample.

Each CSV (format: ``import_motion.py``) carries the episode's initial object position and goal,
so ``import_motion.py --seed`` need not match. Each file is named ``<env>_<i>.csv``; the closing
line gives the expert's own success rate on the raw episodes.

``--format vr`` writes the VR text format of ``import_vr.py`` instead (for the whole
human-VR-buffer path: recordings -> ``import_vr.py`` -> human file): sample index (no time), hand
position in Unity coordinates (the inverse of import_vr.py's default axis map, sim (x, y, z) =
(Unity z, -Unity x, Unity y)) and finger value f = opening / 2, two decimals, as the VR recorder
wrote them. Each episode's x and y are first moved into a "VR scene" frame of its own (scaled by
1 + ``--vr_scale`` * N(0,1) and shifted by ``--vr_shift_m`` * N(0,1) per axis), which
import_vr.py's per-episode alignment has to undo. The files are named
``synthetic_<env>_<i>.txt`` and start with a ``# synthetic`` comment line: they are not human
recordings. They hold no object or goal, so ``import_vr.py --seed`` must be this ``--seed`` for
the recorded scene to match the sim's.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from generate_demos import (ProgressBar, make_panda_env,  # noqa: E402
                            require_expert_env, run_episode)
from panda_experts import EE_POS, FINGERS, make_expert, supported_env_ids  # noqa: E402

from baselines_her.atomic import atomic_write_bytes  # noqa: E402
from baselines_her.errors import UserErrorParser, run_cli  # noqa: E402


def smooth_normal(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """``n`` samples of white noise smoothed by a moving average of ``width``, rescaled to unit
    standard deviation (a slowly varying signal)."""
    raw = rng.standard_normal(n + width - 1)
    s = np.convolve(raw, np.ones(width) / width, mode="valid")
    return s / max(float(s.std()), 1e-12) if n > 1 else s


def record_expert_path(env, expert, T: int, seed: int) -> dict:
    """Run the expert for T steps (``generate_demos.run_episode``); return the end-effector path
    (T+1, 3), the finger command (T+1,) or None, the initial object position or None, the goal
    and the final success."""
    base = env.unwrapped
    ep = run_episode(env, expert, T, seed)
    has_fingers = not getattr(base.robot, "block_gripper", True)
    has_object = "object" in getattr(base.sim, "_bodies_idx", {})
    o = ep["o"].astype(np.float64)
    grip = None
    if has_fingers:
        # The expert squeezes (action -1) to hold; record a closed command as 0 opening.
        grip = o[:, FINGERS].copy()
        grip[1:][ep["u"][:, 3] < 0] = 0.0
    return {"pos": o[:, EE_POS], "gripper": grip,
            # With one object, panda-gym's achieved goal is the object's position.
            "object_pos": ep["ag"][0].astype(np.float64) if has_object else None,
            "goal": ep["g"][0].astype(np.float64),
            "success": bool(ep["info_is_success"][-1, 0] > 0.5)}


def humanize(path: dict, dt: float, rng: np.random.Generator, noise_m: float, drift_m: float,
             warp: float, rate_hz: float) -> dict:
    """Time-warp, resample at ``rate_hz`` and add noise (see the module docstring)."""
    n = len(path["pos"])
    durations = dt * np.exp(warp * smooth_normal(rng, n - 1, width=8))
    t_warped = np.concatenate([[0.0], np.cumsum(durations)])
    t_out = np.arange(0.0, t_warped[-1] + 1e-9, 1.0 / rate_hz)
    pos = np.stack([np.interp(t_out, t_warped, path["pos"][:, j]) for j in range(3)], axis=1)
    m = len(t_out)
    drift = np.stack([smooth_normal(rng, m, width=max(m // 4, 1)) for _ in range(3)], axis=1)
    pos = pos + noise_m * rng.standard_normal(pos.shape) + drift_m * drift
    out = {"t": t_out, "pos": pos, "gripper": None}
    if path["gripper"] is not None:
        # Step-wise hold (not interpolation) keeps "closed" commands at exactly 0.
        idx = np.searchsorted(t_warped, t_out, side="right") - 1
        out["gripper"] = path["gripper"][np.clip(idx, 0, n - 1)]
    return out


def write_motion_csv(fname: str, motion: dict, object_pos: Optional[np.ndarray],
                     goal: Optional[np.ndarray]) -> None:
    cols = ["t", "x", "y", "z"]
    if motion["gripper"] is not None:
        cols.append("gripper")
    first_extra = []
    if object_pos is not None:
        cols += ["object_x", "object_y", "object_z"]
        first_extra += list(object_pos)
    if goal is not None:
        cols += ["goal_x", "goal_y", "goal_z"]
        first_extra += list(goal)
    lines = [",".join(cols)]
    for k, t in enumerate(motion["t"]):
        row = [t, *motion["pos"][k]]
        if motion["gripper"] is not None:
            row.append(motion["gripper"][k])
        cells = [f"{v:.6f}" for v in row]
        cells += [f"{v:.6f}" for v in first_extra] if k == 0 else [""] * len(first_extra)
        lines.append(",".join(cells))
    atomic_write_bytes(fname, ("\n".join(lines) + "\n").encode())


# sim (x, y, z) = (Unity z, -Unity x, Unity y), so Unity (x, y, z) = (-sim y, sim z, sim x)
def sim_to_unity(pos: np.ndarray) -> np.ndarray:
    return np.stack([-pos[:, 1], pos[:, 2], pos[:, 0]], axis=1)


def write_vr_text(fname: str, motion: dict, rng: np.random.Generator, shift_m: float,
                  scale: float, env_name: str) -> None:
    """One VR text recording of ``motion`` (module docstring): index, Unity position, f."""
    pos = motion["pos"].copy()
    centre = pos[0, :2]
    pos[:, :2] = centre + (pos[:, :2] - centre) * (1.0 + scale * rng.standard_normal(2)) \
        + shift_m * rng.standard_normal(2)
    unity = sim_to_unity(pos)
    opening = motion["gripper"] if motion["gripper"] is not None else np.zeros(len(pos))
    lines = [f"# synthetic: scripted expert for {env_name}, made human-like by "
             f"synthetic_human.py; not a human recording"]
    lines += [f"{k}\t({x:.2f}, {y:.2f}, {z:.2f})\t{f / 2:.2f}"
              for k, ((x, y, z), f) in enumerate(zip(unity, opening))]
    atomic_write_bytes(fname, ("\n".join(lines) + "\n").encode())


def _main(argv) -> int:
    p = UserErrorParser(description=__doc__.split("\n\n")[0],
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True,
                   help="panda-gym env id, one of: " + ", ".join(supported_env_ids()))
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i; the "
                   "noise generator is seeded with seed")
    p.add_argument("--outdir", required=True, help="directory for the recordings (created)")
    p.add_argument("--noise_m", type=float, default=0.003, help="white position noise std [m]")
    p.add_argument("--drift_m", type=float, default=0.005, help="slow position offset std [m]")
    p.add_argument("--warp", type=float, default=0.3, help="log-speed variation std")
    p.add_argument("--rate_hz", type=float, default=30.0, help="tracker sample rate [Hz]")
    p.add_argument("--format", choices=("csv", "vr"), default="csv",
                   help="csv: motion CSVs for import_motion.py; vr: VR text recordings for "
                        "import_vr.py")
    p.add_argument("--vr_shift_m", type=float, default=0.05,
                   help="--format vr: std of the per-episode scene shift of x and y [m]")
    p.add_argument("--vr_scale", type=float, default=0.1,
                   help="--format vr: std of the per-episode scene scale of x and y around 1")
    args = p.parse_args(argv)
    require_expert_env(p, args.env)
    if args.episodes <= 0:
        p.error(f"--episodes must be a positive integer, got {args.episodes}")
    for name in ("noise_m", "drift_m", "warp", "vr_shift_m", "vr_scale"):
        if not np.isfinite(getattr(args, name)) or getattr(args, name) < 0:
            p.error(f"--{name} must be a finite number >= 0, got {getattr(args, name)}")
    if not np.isfinite(args.rate_hz) or args.rate_hz <= 0:
        p.error(f"--rate_hz must be a positive number, got {args.rate_hz}")
    os.makedirs(args.outdir, exist_ok=True)

    env = make_panda_env(args.env)
    expert = make_expert(args.env)
    rng = np.random.default_rng(args.seed)
    T = env.spec.max_episode_steps
    dt = float(env.unwrapped.sim.dt)
    bar = ProgressBar(args.episodes, label=f"{args.env} ")
    successes = 0
    try:
        for i in range(args.episodes):
            path = record_expert_path(env, expert, T, args.seed + i)
            successes += path["success"]
            motion = humanize(path, dt, rng, args.noise_m, args.drift_m, args.warp, args.rate_hz)
            if args.format == "vr":
                write_vr_text(os.path.join(args.outdir, f"synthetic_{args.env}_{i:04d}.txt"),
                              motion, rng, args.vr_shift_m, args.vr_scale, args.env)
            else:
                write_motion_csv(os.path.join(args.outdir, f"{args.env}_{i:04d}.csv"), motion,
                                 path["object_pos"], path["goal"])
            bar.update(i + 1, f"expert success {successes}/{i + 1}")
    finally:
        bar.close()
        env.close()
    what, ext, script = (("VR text recordings", "txt", "import_vr.py") if args.format == "vr"
                         else ("motion CSVs", "csv", "import_motion.py"))
    print(f"wrote {args.episodes} synthetic {what} to {args.outdir} (expert success on the raw "
          f"episodes {successes / args.episodes:.2f}); next: python "
          f"{os.path.relpath(os.path.join(_HERE, script))} "
          f"{os.path.join(args.outdir, '*.' + ext)} --env {args.env} --seed {args.seed} "
          f"--out human.npz")
    return 0


def main(argv=None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
