"""The command line of demo and human files: ``python -m baselines_her.demo SUBCOMMAND``.

::

    python -m baselines_her.demo check demos.npz --env PandaPush-v3
    python -m baselines_her.demo convert --from-baselines data_fetch_random_100.npz demos.npz \\
        [--env FetchPickAndPlace-v4] [--T 50]
    python -m baselines_her.demo convert --from-pickle-episodes buffer.pkl human.npz \\
        [--env PandaPickAndPlace-v3] [--T 50]
    python -m baselines_her.demo convert --from-human-buffer buffer.pkl human.npz \\
        --env PandaPickAndPlace-v3 [--action_scale 1,1,1,0.3] [--stale_step0 repair|drop]
    python -m baselines_her.demo import-motion rec1.csv rec2.csv --env PandaReach-v3 \\
        --out human.npz [--stretch] [--only_success] [--seed 0] [--close_below 0.02]
    python -m baselines_her.demo import-vr rec1.txt rec2.txt --env PandaPickAndPlace-v3 \\
        --out human.npz [--axes z,-x,y] [--align object-goal|none] [--approach_steps 8] \\
        [--rate_hz R] [--z_offset 0] [--only_success] [--seed 0] [--close_below 0.02]

User errors print one line ``error: ...`` and exit 2 (argparse's own errors exit 2 with the
usage); ``import-motion`` and ``import-vr`` exit 1 when no recording is left to write (all
dropped by ``--only_success``). Formats: :mod:`baselines_her.demo` (native file),
:mod:`baselines_her.demo_convert` and :mod:`baselines_her.demo_human_buffer` (pickled formats),
:mod:`baselines_her.motion_import` (motion CSV), :mod:`baselines_her.demo_vr` (VR text).
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from baselines_her.demo import load_episodes_for_env
from baselines_her.demo_convert import convert
from baselines_her.demo_human_buffer import STALE_CHOICES, convert_human_buffer, parse_action_scale
from baselines_her.demo_vr import ALIGN_CHOICES, DEFAULT_AXES, import_vr
from baselines_her.errors import UserErrorParser, run_cli
from baselines_her.motion_import import import_motion

PROG = "python -m baselines_her.demo"


def check_file(path: str, env_name: str, out: Callable = print) -> dict:
    batch = load_episodes_for_env(path, env_name, sim_states="optional")
    n, T = batch["u"].shape[:2]
    final = batch["info_is_success"][:, -1, 0]
    states = batch.get("sim_state")
    carries = (f"; simulator states (sim_state, S={states.shape[2]}): yes"
               if states is not None else "; simulator states (sim_state): no")
    out(f"{path}: {n} episodes of T={T} steps for {env_name}; final success rate "
        f"{final.mean():.2f} ({int(final.sum())}/{n}); |u| max {np.abs(batch['u']).max():.3f}"
        f"{carries}")
    return batch


def _add_tracking_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="panda-gym env id (end-effector control)")
    p.add_argument("--out", required=True, help="native .npz to write")
    p.add_argument("--only_success", action="store_true",
                   help="drop recordings whose episode does not end in success")
    p.add_argument("--seed", type=int, default=0, help="reset seed of the first file (default 0)")
    p.add_argument("--close_below", type=float, default=0.02,
                   help="openings below this many metres close the fingers with full force "
                        "(default 0.02)")


def build_parser() -> argparse.ArgumentParser:
    p = UserErrorParser(prog=PROG, description="Demonstration and human files of baselines_her: check, "
                                       "convert pickled formats, import recordings.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=UserErrorParser)
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
                     help="pickled list of episodes, each a list of transition dicts (state, "
                          "action, info with is_success, achieved_goal, desired_goal, "
                          "next_state, next_achieved_goal)")
    fmt.add_argument("--from-human-buffer", dest="kind", action="store_const",
                     const="human-buffer",
                     help="human buffer of the panda-gym DDPG+HER+human system: pickled list of "
                          "episode dicts, or the older flat list of step dicts (needs --env)")
    v.add_argument("input")
    v.add_argument("output", help="native .npz to write")
    v.add_argument("--env", default=None,
                   help="check the result against this env (horizon, dims, action bound); "
                        "required with --from-human-buffer")
    v.add_argument("--T", type=int, default=None,
                   help="keep the first T steps of each episode (default: the env's horizon "
                        "with --env, else the episodes' common length; not with "
                        "--from-human-buffer)")
    v.add_argument("--action_scale", default=None,
                   help="--from-human-buffer: multiply stored actions by these (comma-separated, "
                        "one per component, or one number) to get env units (default 1,1,1,0.3 "
                        "for 4-d actions, 1 for 3-d)")
    v.add_argument("--stale_step0", choices=STALE_CHOICES, default=None,
                   help="--from-human-buffer: episodes whose step 0 comes from a discarded reset "
                        "(desired_goal[0] != desired_goal[1]) are repaired from step 1 (default) "
                        "or dropped")

    m = sub.add_parser("import-motion", help="turn recorded end-effector trajectories (CSV) "
                                             "into episodes",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Resample recorded end-effector trajectories to the env's "
                                   "control period, track them in closed loop in the env and "
                                   "write the episodes (true observations) as a native demo file."
                                   "\n\nCSV columns (header row required): t [s, optional with "
                                   "--stretch], x, y, z [m, world frame], optional gripper [m, "
                                   "finger opening], optional object_x/_y/_z and goal_x/_y/_z "
                                   "[m, first row only].")
    m.add_argument("files", nargs="+", metavar="REC.csv")
    _add_tracking_options(m)
    m.add_argument("--stretch", action="store_true",
                   help="spread the whole recording over the T steps (by t, or by row order "
                        "without a t column) instead of playing it in real time, which pads a "
                        "short recording and cuts a long one")

    r = sub.add_parser("import-vr", help="turn VR text recordings into episodes",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Map VR hand recordings (lines '<index>\\t(<x>, <y>, <z>)\\t"
                                   "<f>', Unity coordinates, y up, opening 2*f) to the sim, align"
                                   " them per episode, spread them over the T steps and track "
                                   "them in closed loop in the env; write the episodes (true "
                                   "observations) as a native demo file.")
    r.add_argument("files", nargs="+", metavar="REC.txt")
    _add_tracking_options(r)
    r.add_argument("--axes", default=DEFAULT_AXES,
                   help=f"Unity axis of sim x, y, z, optionally signed (default {DEFAULT_AXES})")
    r.add_argument("--align", choices=ALIGN_CHOICES, default="object-goal",
                   help="shift and scale x, y per episode so the recorded object (hand at the "
                        "grasp) and goal (last sample) land on the sim's (default object-goal)")
    r.add_argument("--approach_steps", type=int, default=8,
                   help="steps spent going from the robot's start to the first sample "
                        "(default 8)")
    r.add_argument("--rate_hz", type=float, default=None,
                   help="treat the recording as sampled at this rate (real time) instead of "
                        "spreading it over the steps by index")
    r.add_argument("--z_offset", type=float, default=0.0,
                   help="metres added to the mapped height (default 0)")
    return p


def _convert(p: argparse.ArgumentParser, args) -> int:
    if args.kind == "human-buffer":
        if args.env is None:
            p.error("--from-human-buffer needs --env (dims, horizon and reward of the env)")
        if args.T is not None:
            p.error("--T is not used with --from-human-buffer (episodes have the env's horizon)")
        convert_human_buffer(args.input, args.output, args.env,
                             action_scale=parse_action_scale(args.action_scale),
                             stale=args.stale_step0 or "repair")
        return 0
    for flag, value in (("--action_scale", args.action_scale),
                        ("--stale_step0", args.stale_step0)):
        if value is not None:
            p.error(f"{flag} is only used with --from-human-buffer")
    if args.T is not None and args.T < 1:
        p.error(f"--T must be a positive integer, got {args.T}")
    convert(args.kind, args.input, args.output, env_name=args.env, T=args.T)
    return 0


def _main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.command == "check":
        check_file(args.file, args.env)
        return 0
    if args.command == "convert":
        return _convert(p, args)
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    common = dict(only_success=args.only_success, seed=args.seed, close_below=args.close_below)
    if args.command == "import-motion":
        stats = import_motion(args.files, args.env, args.out, stretch=args.stretch, **common)
    else:
        stats = import_vr(args.files, args.env, args.out, axes=args.axes, align=args.align,
                          approach_steps=args.approach_steps, rate_hz=args.rate_hz,
                          z_offset=args.z_offset, **common)
    return 0 if stats["path"] is not None else 1


def main(argv=None) -> int:
    """Run the command line; user errors print ``error: ...`` and return 2."""
    return run_cli(_main, argv)
