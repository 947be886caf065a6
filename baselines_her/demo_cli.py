"""The command line of demo and human files: ``python -m baselines_her.demo SUBCOMMAND``.

::

    python -m baselines_her.demo check demos.npz --env PandaPush-v3
    python -m baselines_her.demo convert --from-baselines data_fetch_random_100.npz demos.npz \\
        [--env FetchPickAndPlace-v4] [--T 50]
    python -m baselines_her.demo convert --from-pickle-episodes buffer.pkl human.npz \\
        [--env PandaPickAndPlace-v3] [--T 50]
    python -m baselines_her.demo convert --from-human-buffer buffer.pkl human.npz \\
        --env PandaPickAndPlace-v3 [--action_scale 1,1,1,0.3] [--stale_step0 repair|drop]

User errors print one line ``error: ...`` and exit 2 (argparse's own errors exit 2 with the
usage). Formats: :mod:`baselines_her.demo` (native file), :mod:`baselines_her.demo_convert` and
:mod:`baselines_her.demo_human_buffer` (pickled formats). Messages go through the
``baselines_her`` logger (:mod:`baselines_her.logger`): printed as they are by default, silenced
with ``logging.getLogger("baselines_her").setLevel(logging.WARNING)``. Recordings (motion CSV,
VR text) are turned into native files by ``experiment/data_generation/import_motion.py`` and
``import_vr.py``, which drive panda-gym internals.
"""
from __future__ import annotations

import argparse

import numpy as np

from baselines_her.demo import load_episodes_for_env
from baselines_her.demo_convert import convert
from baselines_her.demo_human_buffer import STALE_CHOICES, convert_human_buffer, parse_action_scale
from baselines_her.errors import UserErrorParser, run_cli
from baselines_her.logger import LOG

PROG = "python -m baselines_her.demo"


def check_file(path: str, env_name: str) -> dict:
    """Load ``path`` for ``env_name`` (every check of :func:`baselines_her.demo.load_episodes`)
    and log a one-line summary; returns the batch."""
    batch = load_episodes_for_env(path, env_name, sim_states="optional")
    n, T = batch["u"].shape[:2]
    final = batch["info_is_success"][:, -1, 0]
    states = batch.get("sim_state")
    carries = (f"; simulator states (sim_state, S={states.shape[2]}): yes"
               if states is not None else "; simulator states (sim_state): no")
    LOG.info(f"{path}: {n} episodes of T={T} steps for {env_name}; final success rate "
             f"{final.mean():.2f} ({int(final.sum())}/{n}); |u| max "
             f"{np.abs(batch['u']).max():.3f}{carries}")
    return batch


def build_parser() -> argparse.ArgumentParser:
    p = UserErrorParser(prog=PROG, description="Demonstration and human files of "
                                               "baselines_her: check, convert pickled formats.")
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
    return _convert(p, args)


def main(argv=None) -> int:
    """Run the command line; user errors print ``error: ...`` and return 2."""
    return run_cli(_main, argv)
