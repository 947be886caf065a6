"""Time the learner's update alone: ms per update for each compile mode, updates per call and
batch size, on the device TensorFlow picks (a GPU when one is visible, else the CPU).

    python bench/update_step.py [--env_dims 18,3,3] [--batch 256 2048] [--calls 5] [--out FILE]

Rows: ``jit_compile`` on (XLA) and off (graph ``tf.function``), with 1 update per call (the
prioritized-replay path, and how commit 069924f updated) and 40 per call (a default cycle in one
call). Inputs are random batches of PandaPush-v3's shapes (obs 18, goal 3, action 3), 3x256
networks, DDPG. Rounds are interleaved across rows (round r of every row before round r+1), so a
drift in the machine's speed touches every row alike; the table gives the median over rounds and
the first call (tracing and compilation) separately.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env_dims", default="18,3,3", help="obs, goal, action dims")
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 2048])
    ap.add_argument("--per_call", type=int, nargs="+", default=[1, 40])
    ap.add_argument("--calls", type=int, default=5, help="timed rounds per row")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "update_step.json"))
    args = ap.parse_args()
    import numpy as np
    from baselines_her.quiet_tensorflow import import_tensorflow
    tf = import_tensorflow()

    from baselines_her.config import prepare_params
    from baselines_her.ddpg import DDPG
    dim_o, dim_g, dim_u = (int(x) for x in args.env_dims.split(","))
    device = ", ".join(d.name for d in tf.config.list_physical_devices("GPU")) or "CPU"
    rng = np.random.default_rng(0)
    rows = []
    for batch in args.batch:
        for k in args.per_call:
            for jit in (True, False):
                agent = DDPG(dim_o, dim_g, dim_u, prepare_params(
                    "PandaPush-v3", {"jit_compile": jit, "batch_size": batch}))
                data = {"o": rng.normal(size=(k, batch, dim_o)), "g": rng.normal(size=(k, batch, dim_g)),
                        "o_2": rng.normal(size=(k, batch, dim_o)),
                        "u": rng.uniform(-1, 1, (k, batch, dim_u)), "r": -np.ones((k, batch))}
                data = {key: v.astype(np.float32) for key, v in data.items()}
                t0 = time.perf_counter()
                agent.train_batches(data)
                rows.append({"batch": batch, "per_call": k, "jit_compile": jit, "agent": agent,
                             "data": data, "first_call_s": time.perf_counter() - t0, "ms": []})
    for _ in range(args.calls):
        for row in rows:
            t0 = time.perf_counter()
            row["agent"].train_batches(row["data"])
            row["ms"].append(1e3 * (time.perf_counter() - t0) / row["per_call"])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\nDDPG update, 3x256, obs/goal/action {args.env_dims}; device {device}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; TF "
          f"{tf.__version__}; {stamp}; load {os.getloadavg()[0]:.2f}\n")
    print("| batch | updates per call | jit_compile | ms per update (median) | min | first call s |")
    print("|---|---|---|---|---|---|")
    out = []
    for row in rows:
        med, low = float(np.median(row["ms"])), float(np.min(row["ms"]))
        print(f"| {row['batch']} | {row['per_call']} | {int(row['jit_compile'])} | {med:.2f} | "
              f"{low:.2f} | {row['first_call_s']:.1f} |")
        out.append({k: row[k] for k in ("batch", "per_call", "jit_compile", "first_call_s", "ms")})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"device": device, "machine": platform.platform(), "cpus": os.cpu_count(),
                   "tensorflow": tf.__version__, "date": stamp, "rows": out}, f, indent=1)
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
