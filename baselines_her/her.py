"""Train DDPG/TD3 + HER: ``python -m baselines_her.her --env=PandaReach-v3 [--key=value ...]``.

Every key of ``config.DEFAULT_PARAMS`` is a flag, given as ``--key=value`` or ``--key value``;
``--help`` lists them with their meaning from ``config.PARAM_HELP``. The flags reach
``config.prepare_params`` (or, with ``--resume``, ``config.prepare_resume_params``) as strings:
types and ranges are checked there. TensorFlow is imported only after the flags, the env and the
run folder have been checked, so a mistake costs a second, not a TensorFlow start.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
import warnings
from typing import Sequence

from baselines_her.errors import UserError, UserErrorParser, run_cli

PROG = "python -m baselines_her.her"
DESCRIPTION = """\
Trains on ENV and writes params.json, progress.csv, log.txt, TensorBoard events, a checkpoint
and policy_{latest,best,EPOCH}.pkl to --logdir. Per-env defaults (config.DEFAULT_ENV_PARAMS,
e.g. n_epochs) and --algo=td3 override the defaults shown; explicit flags override both."""


def _metavar(default) -> str:
    return {bool: "0|1", int: "INT", float: "FLOAT"}.get(type(default), "STR")


def _shown(default) -> str:
    return str(int(default)) if isinstance(default, bool) else repr(default)


def build_parser() -> argparse.ArgumentParser:
    """``--resume`` and one flag per key of ``DEFAULT_PARAMS``; values stay strings."""
    from baselines_her.config import DEFAULT_PARAMS, PARAM_HELP, RESUME_MUTABLE

    parser = UserErrorParser(prog=PROG, usage=f"{PROG} [--env=ENV] [--key=value ...] [--resume[=DIR]]",
                             description=DESCRIPTION,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    may_change = ", ".join(f"--{k}" for k in RESUME_MUTABLE if k != "logdir")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="DIR",
        help=f"continue the run in --logdir (or in DIR) from its last checkpoint with the "
             f"parameters in its params.json; flags given with it may only change {may_change} "
             f"(n_epochs only upwards)")
    group = parser.add_argument_group("parameters")
    for key, default in DEFAULT_PARAMS.items():
        flag = "--env" if key == "env_name" else f"--{key}"
        extra = {"nargs": "?", "const": "1"} if isinstance(default, bool) else {}
        group.add_argument(flag, dest=key, default=argparse.SUPPRESS,
                           metavar="ENV" if key == "env_name" else _metavar(default),
                           help=f"{PARAM_HELP[key]} (default {_shown(default)})", **extra)
    group.add_argument("--env_name", dest="env_name", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)
    return parser


def _unknown_argument(token: str) -> UserError:
    from baselines_her.config import DEFAULT_PARAMS
    if not token.startswith("-"):
        return UserError(f"unexpected argument {token!r}: flags are --key=value or --key value "
                         f"({PROG} --help lists them)")
    flag = token.split("=", 1)[0]
    flags = ["--resume"] + [f"--{'env' if k == 'env_name' else k}" for k in DEFAULT_PARAMS]
    close = difflib.get_close_matches(flag, flags, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UserError(f"unknown flag {flag}{hint}; {PROG} --help lists the flags")


def parse_args(argv: Sequence[str]) -> tuple[dict, bool | str]:
    """``(overrides, resume)``: the flags given, as strings, and False, True or ``--resume=DIR``."""
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise _unknown_argument(unknown[0])
    resume = namespace.resume
    overrides = {k: v for k, v in vars(namespace).items() if k != "resume"}
    return overrides, resume


def _run_dir(overrides: dict, resume: bool | str) -> str:
    """The folder of the run to resume: ``--resume=DIR`` or ``--logdir``."""
    logdir = overrides.pop("logdir", "")
    if isinstance(resume, str):
        if not resume:
            raise UserError("--resume= needs the run's folder: --resume=DIR")
        if logdir and os.path.normpath(logdir) != os.path.normpath(resume):
            raise UserError(f"--resume={resume} and --logdir={logdir} name different folders; "
                            f"give the run's folder once")
        return resume
    if not logdir:
        raise UserError("--resume needs the run's folder: --resume=DIR or --resume --logdir=DIR")
    return logdir


def _match_launch(overrides: dict, world_size: int) -> None:
    """Under mpiexec/srun the launch sets the number of ranks: record it as num_cpu."""
    given = overrides.get("num_cpu")
    if given is not None and given.strip() != str(world_size):
        raise UserError(f"--num_cpu={given} but this MPI launch has {world_size} ranks; drop "
                        f"--num_cpu under mpiexec/srun (the launcher sets the ranks)")
    overrides["num_cpu"] = str(world_size)


def _check_env_and_files(params) -> None:
    """Build the env and read the episode files once before TensorFlow starts, so that an env
    its package cannot build or a bad demo/human file costs a second, not a TensorFlow start."""
    from baselines_her.envs import describe_env, make_env
    env = make_env(params.env_name)
    resets, state_dim = params.demo_reset_prob > 0, None
    try:
        spec = describe_env(env, params.env_name)
        if resets:
            from baselines_her.sim_state import state_size
            state_dim = state_size(env)  # an env without restorable states is a user error
    finally:
        env.close()
    if not (params.demo_file or params.human_file):
        return
    from baselines_her.demo import load_episodes
    shape = (spec.T, spec.dim_o, spec.dim_g, spec.dim_u)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the run warns when it loads them
        if params.demo_file:
            load_episodes(params.demo_file, *shape, num=params.num_demo, source="--demo_file",
                          sim_states="required" if resets else "ignore",
                          sim_state_dim=state_dim)
        if params.human_file:
            load_episodes(params.human_file, *shape, source="--human_file")


def _flags(overrides: dict) -> list[str]:
    return [f"--{'env' if k == 'env_name' else k}={v}" for k, v in overrides.items()]


def _main(argv: Sequence[str] | None) -> int:
    try:
        overrides, resume = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # --help was printed
        return int(done.code or 0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from baselines_her import mpi_util
    from baselines_her.config import prepare_params, prepare_resume_params
    launched = mpi_util.launched_by_mpi()
    if launched and resume is False:
        _match_launch(overrides, mpi_util.size())
    if resume is not False:
        run_dir = _run_dir(overrides, resume)
        params = prepare_resume_params(run_dir, overrides)
        if launched and params.num_cpu != mpi_util.size():
            raise UserError(f"the run in {run_dir} has num_cpu={params.num_cpu} but this MPI "
                            f"launch has {mpi_util.size()} ranks; resume it with as many ranks")
    else:
        run_dir = None
        params = prepare_params(overrides.get("env_name"), overrides)
    _check_env_and_files(params)
    if params.num_cpu > 1 and not launched:
        relaunch = _flags(overrides) + ([f"--resume={run_dir}"] if run_dir else [])
        mpi_util.relaunch_under_mpi(params.num_cpu, "baselines_her.her", relaunch)
    from baselines_her.train import train
    if run_dir is None:
        train(params)
    else:
        train(params, logdir=run_dir, resume=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    from baselines_her import mpi_util
    return run_cli(lambda args: mpi_util.abort_on_exception(_main, args), argv)


if __name__ == "__main__":
    sys.exit(main())
