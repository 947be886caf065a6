"""Learning benchmark: train ENV for N seeds and report success, env steps and wall time.

    python bench/learning.py --env PandaReach-v3 --seeds 3 --epochs 5 [--algo td3]
        [--prioritized td|energy]
        [--threshold 0.9] [--json out.json] [--set key=value ...]

Each seed runs ``python -m baselines_her.her`` in a fresh process (wall time includes start-up,
as a user sees it), then the run's progress.csv is read. Prints a markdown table: one row per
seed and a summary row (env, seeds, epochs, env steps, wall time, final and best test success,
and epochs / env steps / seconds until test success first reaches the threshold).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "experiment"))
from plot import first_reach, read_run  # noqa: E402  (one progress.csv reader and threshold rule)

HEADER = ("| env | algo | seed | epochs | env steps | wall s | final success | best success | "
          "first >= {thr}: epoch / env steps / s |\n|---|---|---|---|---|---|---|---|---|")


def summarize(progress_csv: str, threshold: float, wall_s: float) -> dict:
    run = read_run(progress_csv)
    success, epoch_s = run["test/success_rate"], run["time/epoch_s"]
    reached = first_reach(run, "test/success_rate", threshold)
    # progress.csv times exclude start-up, which counts toward the time to reach the threshold.
    startup = max(wall_s - float(epoch_s.sum()), 0.0)
    t_reach = None
    if reached is not None:
        t_reach = startup + float(epoch_s[run["epoch"] <= reached[0]].sum())
    return {
        "epochs": len(success), "env_steps": int(run["total/env_steps"][-1]), "wall_s": wall_s,
        "final_success": float(success[-1]), "best_success": float(success.max()),
        "reach_epoch": None if reached is None else reached[0],
        "reach_env_steps": None if reached is None else reached[1],
        "reach_s": t_reach,
        "curve": success.tolist(),
        "curve_env_steps": run["total/env_steps"].astype(int).tolist(),
    }


def fmt_row(env, algo, seed, s, thr) -> str:
    reach = ("not reached" if s["reach_epoch"] is None else
             f"{s['reach_epoch']} / {s['reach_env_steps']} / {s['reach_s']:.0f}")
    return (f"| {env} | {algo} | {seed} | {s['epochs']} | {s['env_steps']} | {s['wall_s']:.0f} | "
            f"{s['final_success']:.2f} | {s['best_success']:.2f} | {reach} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="PandaReach-v3")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first_seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the env's n_epochs")
    ap.add_argument("--algo", default="ddpg")
    ap.add_argument("--prioritized", default="none", choices=["none", "td", "energy"])
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra --key=value options for the trainer")
    ap.add_argument("--outdir", default="bench/results")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    args = ap.parse_args()

    runs = []
    if args.prioritized != "none":
        args.set = args.set + [f"prioritized={args.prioritized}"]
    # A file path in --set (demo_file=dir/x.npz) contributes its base name only.
    tag = f"{args.env}-{args.algo}" + "".join(
        "-" + k + os.path.basename(v).removesuffix(".npz")
        for k, _, v in (kv.partition("=") for kv in args.set))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        logdir = os.path.join(args.outdir, f"{tag}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}")
        cmd = [sys.executable, "-m", "baselines_her.her", f"--env={args.env}", f"--seed={seed}",
               f"--algo={args.algo}", f"--logdir={logdir}"]
        cmd += [f"--n_epochs={args.epochs}"] if args.epochs else []
        cmd += [f"--{kv}" for kv in args.set]
        print("running:", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        s = summarize(os.path.join(logdir, "progress.csv"), args.threshold, wall)
        runs.append({"seed": seed, "logdir": logdir, **s})

    print()
    print(HEADER.format(thr=args.threshold))
    for r in runs:
        print(fmt_row(args.env, args.algo, r["seed"], r, args.threshold))
    n_reached = sum(r["reach_epoch"] is not None for r in runs)
    mean = lambda k: sum(r[k] for r in runs) / len(runs)  # noqa: E731
    print(f"\nmean over {len(runs)} seeds: final {mean('final_success'):.2f}, best "
          f"{mean('best_success'):.2f}, wall {mean('wall_s'):.0f} s; reached {args.threshold} in "
          f"{n_reached}/{len(runs)} seeds")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"env": args.env, "algo": args.algo, "set": args.set,
                       "threshold": args.threshold, "machine": platform.platform(),
                       "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "runs": runs},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
