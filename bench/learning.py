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
import csv
import json
import os
import platform
import subprocess
import sys
import time

HEADER = ("| env | algo | seed | epochs | env steps | wall s | final success | best success | "
          "first >= {thr}: epoch / env steps / s |\n|---|---|---|---|---|---|---|---|---|")


def read_progress(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def summarize(rows: list[dict], threshold: float, wall_s: float) -> dict:
    # progress.csv files written before 2026-11-21 hold float32 rates (0.9 as 0.8999999762).
    reached = next((r for r in rows if r["test/success_rate"] >= threshold - 1e-6), None)
    # progress.csv times exclude start-up; spread start-up over the run proportionally to epochs.
    epoch_time = sum(r["time/epoch_s"] for r in rows)
    startup = max(wall_s - epoch_time, 0.0)
    t_reach = None
    if reached is not None:
        t_reach = startup + sum(r["time/epoch_s"] for r in rows if r["epoch"] <= reached["epoch"])
    return {
        "epochs": len(rows), "env_steps": int(rows[-1]["total/env_steps"]), "wall_s": wall_s,
        "final_success": rows[-1]["test/success_rate"],
        "best_success": max(r["test/success_rate"] for r in rows),
        "reach_epoch": None if reached is None else int(reached["epoch"]),
        "reach_env_steps": None if reached is None else int(reached["total/env_steps"]),
        "reach_s": t_reach,
        "curve": [r["test/success_rate"] for r in rows],
        "curve_env_steps": [int(r["total/env_steps"]) for r in rows],
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
        "-" + k + (os.path.splitext(os.path.basename(v))[0] if os.sep in v or v.endswith(".npz")
                   else v)
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
        s = summarize(read_progress(os.path.join(logdir, "progress.csv")), args.threshold, wall)
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
