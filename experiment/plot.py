"""Success curves from progress.csv files -> PNG.

    python experiment/plot.py RUN_DIR [RUN_DIR ...] --out curves.png [--x env_steps|epoch]
        [--key test/success_rate] [--label NAME=GLOB ...] [--title TEXT]

Each RUN_DIR is a training logdir (or a progress.csv). Runs are grouped into curves by
``--label NAME=GLOB`` (a run joins the first label whose glob matches its path; default: one curve
per run, named after its folder); a curve with several runs shows their mean and min-max band.
Needs matplotlib (``pip install -e '.[plot]'``).
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--x", choices=sorted(X_COLUMNS), default="env_steps")
    ap.add_argument("--key", default="test/success_rate")
    ap.add_argument("--label", action="append", default=[], metavar="NAME=GLOB")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib: pip install -e '.[plot]'", file=sys.stderr)
        return 2
    try:
        groups = group_runs(args.runs, args.label)
        data = {name: [read_run(p) for p in paths] for name, paths in groups.items()}
        for name, runs in data.items():
            if any(args.key not in r for r in runs):
                raise ValueError(f"curve {name!r}: column {args.key!r} missing in progress.csv")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
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
