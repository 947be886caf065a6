"""Two training commands as whole processes, alternating (A B A B ...), timed side by side.

    python bench/ab_runs.py --label_a this --label_b other \\
        --python_b /path/to/other/venv/bin/python --cwd_b /path/to/other/checkout \\
        [--pairs 2] [--until_success 0.9] [--args --env=PandaPush-v3 --n_epochs=2] [--out FILE]

Both sides run ``python -m baselines_her.her ARGS --seed=0 --logdir=TMP`` (A with this
interpreter in this checkout unless ``--python_a`` / ``--cwd_a`` say otherwise), so the same
command line is timed on two versions of the library or two settings (``--extra_a`` /
``--extra_b`` add flags to one side). Reports each run's wall time and the epoch times from its
progress.csv, the B / A ratios per pair and of the means, the machine and the load. Alternating
spreads the machine's speed drift over both sides; compare numbers only within one table.

``--until_success X`` times the wall time to a test success rate: each run is watched and stopped
(SIGTERM) as soon as its progress.csv has a row with
``test/success_rate >= X``; the table then reports the wall time and env steps to that row
(``--n_epochs`` in ``--args`` caps a run that never gets there).

A progress bar over the runs, with the running one's epochs from its progress.csv, goes to stderr
when it is a terminal (``--no_progress``, given before ``--args``, turns it off); the results go
to stdout and the JSON to ``--out`` (written atomically, after every run).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

from baselines_her.atomic import atomic_open
from progress_bar import add_flag, bar, say  # bench/progress_bar.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_rows(logdir: str) -> list:
    path = os.path.join(logdir, "progress.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("time/epoch_s")]


def n_epochs_of(argv: list):
    """The last ``--n_epochs`` value in a command line, or None."""
    found = None
    for i, x in enumerate(argv):
        if x.startswith("--n_epochs="):
            found = x.partition("=")[2]
        elif x == "--n_epochs" and i + 1 < len(argv):
            found = argv[i + 1]
    return found


def run_once(python: str, cwd: str, args: list, extra: list, until_success=None,
             on_rows=None) -> dict:
    """One run; ``on_rows(rows)`` (if given) sees its progress.csv rows about once a second."""
    logdir = tempfile.mkdtemp(prefix="ab_runs-")
    cmd = [python, "-m", "baselines_her.her", *args, *extra, "--seed=0", f"--logdir={logdir}"]
    t0 = time.perf_counter()
    # stderr to a file: a pipe nobody reads while polling could fill up and stall the run
    err = open(os.path.join(logdir, "stderr.txt"), "w+")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    reached = None
    while (until_success is not None or on_rows is not None) and proc.poll() is None:
        try:  # a second between looks, but no waiting on after the run ends
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        rows = read_rows(logdir)
        if on_rows is not None:
            on_rows(rows)
        if until_success is None:
            continue
        hit = [r for r in rows if float(r["test/success_rate"]) >= until_success]
        if hit:
            reached = {"wall_s": time.perf_counter() - t0, "epoch": int(hit[0]["epoch"]),
                       "env_steps": int(float(hit[0]["total/env_steps"]))}
            proc.send_signal(signal.SIGTERM)
            break
    proc.wait()
    wall = time.perf_counter() - t0
    err.seek(0)
    stderr = err.read()
    err.close()
    # a run stopped on purpose may end by the signal (code without a SIGTERM handler)
    if proc.returncode != 0 and reached is None:
        sys.exit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    rows = read_rows(logdir)
    return {"wall_s": wall, "epoch_s": [float(r["time/epoch_s"]) for r in rows],
            "train_s": [float(r["time/train_s"]) for r in rows],
            "rollout_s": [float(r["time/rollout_s"]) for r in rows],
            "success": [float(r["test/success_rate"]) for r in rows],
            "reached": reached, "logdir": logdir}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--label_a", default="A")
    ap.add_argument("--label_b", default="B")
    ap.add_argument("--python_a", default=sys.executable)
    ap.add_argument("--python_b", default=sys.executable)
    ap.add_argument("--cwd_a", default=ROOT)
    ap.add_argument("--cwd_b", default=ROOT)
    ap.add_argument("--extra_a", nargs="*", default=[])
    ap.add_argument("--extra_b", nargs="*", default=[])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--until_success", type=float, default=None,
                    help="stop each run at its first test success rate >= this; report time to it")
    add_flag(ap)
    ap.add_argument("--args", nargs=argparse.REMAINDER,
                    default=["--env=PandaPush-v3", "--n_epochs=2"])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "ab_runs.json"))
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    runs = {"a": [], "b": []}
    with bar(2 * a.pairs, "runs", "run", enabled=not a.no_progress) as progress:
        for pair in range(a.pairs):
            for side in ("a", "b"):
                python, cwd = getattr(a, f"python_{side}"), getattr(a, f"cwd_{side}")
                extra = getattr(a, f"extra_{side}")
                label = f"pair {pair} {getattr(a, f'label_{side}')}"
                total = n_epochs_of([*a.args, *extra])
                progress.set_postfix_str(label)

                def show(rows, label=label, total=total):
                    done = f"epoch {len(rows)}" + (f"/{total}" if total else "")
                    progress.set_postfix_str(f"{label}: {done}")

                r = run_once(python, cwd, a.args, extra, a.until_success,
                             None if progress.disable else show)
                runs[side].append(r)
                progress.update(1)
                say(f"{label}: wall {r['wall_s']:.1f} s, epochs "
                    f"{', '.join(f'{x:.1f}' for x in r['epoch_s'])} s; reached {r['reached']}")
                dump(a, runs, load0)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"\n{' '.join(a.args)}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {load0:.2f} -> {os.getloadavg()[0]:.2f}\n")
    print(f"| run | {a.label_a} wall s | {a.label_b} wall s | {a.label_a} last epoch s | "
          f"{a.label_b} last epoch s | last epoch {a.label_b} / {a.label_a} |\n|---|---|---|---|---|---|")
    for i, (ra, rb) in enumerate(zip(runs["a"], runs["b"])):
        print(f"| {i} | {ra['wall_s']:.1f} | {rb['wall_s']:.1f} | {ra['epoch_s'][-1]:.1f} | "
              f"{rb['epoch_s'][-1]:.1f} | {rb['epoch_s'][-1] / ra['epoch_s'][-1]:.2f} |")
    ea = mean([r["epoch_s"][-1] for r in runs["a"]])
    eb = mean([r["epoch_s"][-1] for r in runs["b"]])
    wa, wb = mean([r["wall_s"] for r in runs["a"]]), mean([r["wall_s"] for r in runs["b"]])
    print(f"\nmeans: last epoch {ea:.1f} vs {eb:.1f} s ({a.label_b} / {a.label_a} = {eb / ea:.2f}); "
          f"wall {wa:.1f} vs {wb:.1f} s ({wb / wa:.2f})")
    if a.until_success is not None:
        print(f"\n| run | side | wall s to success >= {a.until_success} | epoch | env steps |\n"
              "|---|---|---|---|---|")
        for i, (ra, rb) in enumerate(zip(runs["a"], runs["b"])):
            for label, r in ((a.label_a, ra), (a.label_b, rb)):
                got = r["reached"]
                print(f"| {i} | {label} | " + (f"{got['wall_s']:.1f} | {got['epoch']} | "
                      f"{got['env_steps']:,} |" if got else "not reached | - | - |"))
    dump(a, runs, load0)
    return 0


def dump(a, runs: dict, load0: float) -> None:
    """Write the JSON after every run, so an interrupted comparison keeps what it measured."""
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with atomic_open(a.out, "w") as f:
        json.dump({"args": a.args, "labels": [a.label_a, a.label_b], "runs": runs,
                   "extra": [a.extra_a, a.extra_b], "until_success": a.until_success,
                   "machine": platform.platform(), "cpus": os.cpu_count(),
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "load": [load0, os.getloadavg()[0]]}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
