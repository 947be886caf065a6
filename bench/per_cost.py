"""Cost of prioritized replay per update: sample + train step + priority update, in ms.

    python bench/per_cost.py [--env PandaPush-v3] [--updates 300] [--json out.json]

For each replay mode (none, td, energy) a trainer with the env's defaults stores 10 exploration
episodes and then times ``--updates`` updates (after 30 warm-up updates), split into batch
sampling, the TensorFlow train step and the priority update. Whole-epoch timings on a shared
2-core VM swing by 10-30% (rollouts, which prioritization does not touch, included), so this
times the update loop directly, interleaving the modes round by round.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def build(env: str, kind: str):
    from baselines_her.config import prepare_params
    from baselines_her.train import Trainer
    trainer = Trainer(prepare_params(env, {"prioritized": kind}), tempfile.mkdtemp())
    actor = trainer.agent.numpy_actor()
    for _ in range(5):
        episodes, _ = trainer.worker.generate_rollouts(actor, explore=True)
        trainer._store(episodes)
    return trainer


def timed_updates(trainer, n: int) -> np.ndarray:
    from baselines_her.sources import sample_mixed
    out = np.zeros((n, 3))
    rows = trainer.sources[0].rows
    for i in range(n):
        t0 = time.perf_counter()
        batch = sample_mixed(trainer.sources, trainer.rngs.sampler)
        t1 = time.perf_counter()
        result = trainer.agent.train(batch)
        t2 = time.perf_counter()
        if trainer.priorities is not None:
            trainer.priorities.update(batch.get("priority_token"), result["td_abs"][:rows])
        out[i] = (t1 - t0, t2 - t1, time.perf_counter() - t2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="PandaPush-v3")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    kinds = ("none", "td", "energy")
    trainers = {k: build(args.env, k) for k in kinds}
    for trainer in trainers.values():
        timed_updates(trainer, 30)  # trace the tf.function, warm caches
    times = {k: [] for k in kinds}
    for _ in range(max(args.updates // 50, 1)):  # interleave so machine noise hits all modes
        for k in kinds:
            times[k].append(timed_updates(trainers[k], 50))
    base = np.concatenate(times["none"]).sum(axis=1).mean()
    print(f"\n{args.env}, mean ms per update over {args.updates} updates\n")
    print("| replay | sample | train step | priority update | total | vs uniform |")
    print("|---|---|---|---|---|---|")
    results = {}
    for k in kinds:
        t = np.concatenate(times[k]) * 1e3
        mean = t.mean(axis=0)
        results[k] = {"sample_ms": mean[0], "train_ms": mean[1], "update_ms": mean[2]}
        print(f"| {k} | {mean[0]:.3f} | {mean[1]:.2f} | {mean[2]:.3f} | {mean.sum():.2f} | "
              f"{(t.sum(axis=1).mean() / (base * 1e3) - 1) * 100:+.1f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": args.env, "date": time.strftime("%Y-%m-%d"), "results": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
