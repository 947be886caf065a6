"""Train DDPG/TD3 + HER: ``python -m baselines_her.her --env=PandaReach-v3 [--key=value ...]``.

Every key of ``config.DEFAULT_PARAMS`` can be set with ``--key=value``; ``--help`` lists them.
"""
from __future__ import annotations

import os
import sys

USAGE = """usage: python -m baselines_her.her [--env=ENV] [--n_epochs=N] [--seed=S] [--logdir=DIR]
                                 [--policy_save_interval=K] [--algo=ddpg|td3] [--resume]
                                 [--key=value ...]

Trains on ENV (default PandaReach-v3) and writes params.json, progress.csv, log.txt,
TensorBoard events and policy_{latest,best,EPOCH}.pkl to DIR.
--resume continues the run in --logdir=DIR from its last checkpoint.

keys and defaults (per-env defaults in config.DEFAULT_ENV_PARAMS override these):
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        from baselines_her.config import DEFAULT_PARAMS
        print(USAGE + "\n".join(f"  --{k}={v!r}" for k, v in DEFAULT_PARAMS.items()))
        return 0
    resume = False
    for flag in ("--resume", "--resume=1", "--resume=true"):
        if flag in argv:
            argv.remove(flag)
            resume = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from baselines_her.config import ConfigError, parse_cli_overrides, prepare_params
    try:
        overrides = parse_cli_overrides(argv)
        params = prepare_params(overrides.get("env_name"), overrides)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from baselines_her import mpi_util
    if params.num_cpu > 1 and not mpi_util.launched_by_mpi():
        rest = [f"--{k}={v}" for k, v in overrides.items() if k != "num_cpu"]
        rest += ["--resume"] if resume else []
        mpi_util.relaunch_under_mpi(params.num_cpu, "baselines_her.her", rest)
    from baselines_her.train import train
    try:
        mpi_util.abort_on_exception(train, params, resume=resume)
    except (FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
