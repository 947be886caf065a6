"""Success curves from progress.csv files -> PNG.

    python experiment/plot.py RUN_DIR [RUN_DIR ...] [--out curves.png] [--x env_steps|epoch]
        [--key test/success_rate] [--label NAME=GLOB ...] [--title TEXT]
        [--max_epochs N] [--table] [--threshold 0.9]

Each RUN_DIR is a training logdir (or a progress.csv). Runs are grouped into curves by
``--label NAME=GLOB`` (a run joins the first label whose glob matches its path; default: one curve
per run, named after its folder); a curve with several runs shows their mean and min-max band.
``--max_epochs N`` keeps the first N epochs of every run (compare runs of different lengths on
equal terms). ``--table`` prints a markdown table, one row per run and per curve: epochs, env
steps, the first epoch and env steps at which ``key`` reached ``--threshold``, the final and best
value and the mean of the last 5 epochs. The PNG needs matplotlib (``pip install -e '.[plot]'``).
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import sys

import numpy as np

X_COLUMNS = {"env_steps": "total/env_steps", "epoch": "epoch"}


def read_run(path: str) -> dict:
    csv_path = path if path.endswith(".csv") else os.path.join(path, "progress.csv")
    if not os.path.exists(csv_path):
        raise FileNotFoundError(f"no progress.csv at {csv_path}")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{csv_path} has no epochs yet")
    return {k: np.array([float(r[k]) if r.get(k, "") != "" else np.nan for r in rows])
            for k in rows[0]}


def group_runs(paths: list[str], labels: list[str]) -> dict[str, list[str]]:
    patterns = []
    for spec in labels:
        if "=" not in spec:
            raise ValueError(f"--label {spec!r}: expected NAME=GLOB")
        patterns.append(tuple(spec.split("=", 1)))
    groups: dict[str, list[str]] = {}
    for path in paths:
        name = next((n for n, glob in patterns if fnmatch.fnmatch(path, glob)), None)
        name = name or os.path.basename(os.path.normpath(path).removesuffix("progress.csv")) or path
        groups.setdefault(name, []).append(path)
    return groups


def curve(runs: list[dict], x_col: str, key: str):
    """Mean, min and max of ``key`` over runs, truncated to the shortest run."""
    n = min(len(r[key]) for r in runs)
    ys = np.stack([r[key][:n] for r in runs])
    return runs[0][x_col][:n], ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


def first_reach(run: dict, key: str, threshold: float):
    """(epoch, env steps) of the first epoch with ``key >= threshold``, or None."""
    # 1e-6: progress.csv files written with float32 rates hold 0.9 as 0.8999999762.
    hits = np.flatnonzero(run[key] >= threshold - 1e-6)
    if len(hits) == 0:
        return None
    i = int(hits[0])
    return int(run["epoch"][i]), int(run["total/env_steps"][i])


def table(data: dict, groups: dict, key: str, threshold: float) -> str:
    """Markdown table of every run and every curve's mean (see the module docstring)."""
    lines = [f"| curve | run | epochs | env steps | first >= {threshold:g}: epoch / env steps | "
             f"final | best | mean of last 5 |", "|---|---|---|---|---|---|---|---|"]
    for name, runs in data.items():
        reach = [first_reach(r, key, threshold) for r in runs]
        for path, r, hit in zip(groups[name], runs, reach):
            cell = "not reached" if hit is None else f"{hit[0]} / {hit[1]:,}"
            lines.append(f"| {name} | {os.path.basename(os.path.normpath(path))} | {len(r[key])} | "
                         f"{int(r['total/env_steps'][-1]):,} | {cell} | {r[key][-1]:.2f} | "
                         f"{np.max(r[key]):.2f} | {np.mean(r[key][-5:]):.2f} |")
        if len(runs) > 1:
            hits = [h[1] for h in reach if h is not None]
            cell = (f"{len(hits)}/{len(runs)} runs" +
                    (f", mean {np.mean(hits):,.0f} steps" if hits else ""))
            lines.append(f"| **{name}** | mean of {len(runs)} | - | - | {cell} | "
                         f"{np.mean([r[key][-1] for r in runs]):.2f} | "
                         f"{np.mean([np.max(r[key]) for r in runs]):.2f} | "
                         f"{np.mean([np.mean(r[key][-5:]) for r in runs]):.2f} |")
    return "\n".join(lines)


def load_curves(groups: dict, max_epochs: int | None) -> dict:
    """name -> list of runs (read_run), each cut to its first ``max_epochs`` epochs if given."""
    cut = slice(None) if max_epochs is None else slice(max_epochs)
    return {name: [{k: v[cut] for k, v in read_run(p).items()} for p in paths]
            for name, paths in groups.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=None, help="PNG file to write")
    ap.add_argument("--x", choices=sorted(X_COLUMNS), default="env_steps")
    ap.add_argument("--key", default="test/success_rate")
    ap.add_argument("--label", action="append", default=[], metavar="NAME=GLOB")
    ap.add_argument("--title", default="")
    ap.add_argument("--max_epochs", type=int, default=None, help="keep the first N epochs of each run")
    ap.add_argument("--table", action="store_true", help="print a markdown table of the runs")
    ap.add_argument("--threshold", type=float, default=0.9, help="for --table (default 0.9)")
    args = ap.parse_args(argv)
    if args.out is None and not args.table:
        ap.error("nothing to do: give --out FILE.png and/or --table")
    if args.max_epochs is not None and args.max_epochs < 1:
        ap.error(f"--max_epochs must be >= 1, got {args.max_epochs}")
    try:
        groups = group_runs(args.runs, args.label)
        data = load_curves(groups, args.max_epochs)
        for name, runs in data.items():
            if any(args.key not in r for r in runs):
                raise ValueError(f"curve {name!r}: column {args.key!r} missing in progress.csv")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.table:
        print(table(data, groups, args.key, args.threshold))
    if args.out is None:
        return 0
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib: pip install -e '.[plot]'", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in data.items():
        x, mean, lo, hi = curve(runs, X_COLUMNS[args.x], args.key)
        ax.plot(x, mean, label=f"{name} (n={len(runs)})")
        if len(runs) > 1:
            ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel(args.x.replace("_", " "))
    ax.set_ylabel(args.key)
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(data)} curves)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
