"""MPI and multi-env throughput: env steps/s and updates/s.

    python bench/scaling.py [--env PandaPush-v3] [--ranks 1 2] [--rollout_batch_sizes 1 2 4]
        [--prioritized td energy] [--epochs 2] [--n_cycles 5] [--json out.json]

Each configuration trains for ``--epochs`` short epochs in a fresh process (``--num_cpu=N`` for N
ranks) and reports the last epoch's ``perf/env_steps_per_s`` (all ranks' env steps over rank 0's
rollout time) and ``perf/updates_per_s`` (synchronous updates per second, i.e. per rank), so
tracing and start-up are excluded. Every configuration steps its envs in its ranks
(``--rollout_process=0``, as MPI runs do), so one rank and several compare like for like. Prints a
markdown table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def run(env: str, ranks: int, rollout_batch_size: int, epochs: int, n_cycles: int,
        prioritized: str = "none") -> dict:
    logdir = tempfile.mkdtemp(prefix="scaling-")
    cmd = [sys.executable, "-m", "baselines_her.her", f"--env={env}", f"--num_cpu={ranks}",
           f"--rollout_batch_size={rollout_batch_size}", f"--n_epochs={epochs}",
           f"--n_cycles={n_cycles}", "--n_test_rollouts=2", "--policy_save_interval=0",
           f"--prioritized={prioritized}", "--rollout_process=0", f"--logdir={logdir}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(os.path.join(logdir, "progress.csv"), newline="") as f:
        last = list(csv.DictReader(f))[-1]
    return {"ranks": ranks, "rollout_batch_size": rollout_batch_size, "prioritized": prioritized,
            "wall_s": wall,
            "env_steps_per_s": float(last["perf/env_steps_per_s"]),
            "updates_per_s": float(last["perf/updates_per_s"]),
            "epoch_s": float(last["time/epoch_s"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="PandaPush-v3")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rollout_batch_sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--prioritized", nargs="*", default=[], choices=["td", "energy"],
                    help="also time these prioritized-replay modes (1 rank, 2 envs)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n_cycles", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    configs = [(r, 2, "none") for r in args.ranks]
    configs += [(1, b, "none") for b in args.rollout_batch_sizes if b != 2]
    configs += [(1, 2, kind) for kind in args.prioritized]
    results = []
    for ranks, rbs, kind in configs:
        print(f"running ranks={ranks} rollout_batch_size={rbs} prioritized={kind} ...", flush=True)
        results.append(run(args.env, ranks, rbs, args.epochs, args.n_cycles, kind))
    base = next(r for r in results if r["ranks"] == 1 and r["rollout_batch_size"] == 2
                and r["prioritized"] == "none")
    print(f"\n{args.env}, last of {args.epochs} epochs x {args.n_cycles} cycles\n")
    print("| ranks | envs per rank | replay | env steps/s | vs 1 rank | updates/s per rank | "
          "epoch s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['ranks']} | {r['rollout_batch_size']} | {r['prioritized']} | "
              f"{r['env_steps_per_s']:.0f} | "
              f"{r['env_steps_per_s'] / base['env_steps_per_s']:.2f}x | {r['updates_per_s']:.0f} | "
              f"{r['epoch_s']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": args.env, "machine": platform.platform(), "cpus": os.cpu_count(),
                       "date": time.strftime("%Y-%m-%d"), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
