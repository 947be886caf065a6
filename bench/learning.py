"""Learning benchmark: train ENV for N seeds and report success, env steps and wall time.

    python bench/learning.py --env PandaReach-v3 --seeds 3 --epochs 5 [--algo td3]
        [--prioritized td|energy]
        [--threshold 0.9] [--json out.json] [--set key=value ...] [--ship policies/]
    python bench/learning.py --all [--only PandaPush-v3 ...] [--ship policies/]

``--all`` runs the panda-gym v3 table (TASKS: every task's command in docs/results.md: the
defaults, with scripted demos where the task's command uses them: 100 for PickAndPlace, 3,000
for Slide (behaviour cloning only) and 3,000 for Stack, with demo resets), one JSON per run and a
markdown table in --outdir.
``--ship DIR`` evaluates each run's ``policy_best.pkl`` with ``play.py`` (100 episodes, seed 0)
and writes its actor and normalisers to ``DIR/<EnvId>.pkl`` (the critics are left out: play.py
needs only the actor); ``--ship_policy FILE`` does the same for one policy file of a finished run.

Each seed runs ``python -m baselines_her.her`` in a fresh process (wall time includes start-up,
as a user sees it), then the run's progress.csv is read. Prints a markdown table: one row per
seed and a summary row (env, seeds, epochs, env steps, wall time, final and best test success,
and epochs / env steps / seconds until test success first reaches the threshold).

A progress bar over the runs goes to stderr when it is a terminal (``--no_progress`` turns it
off); while it is shown, the runs' own output is passed through above it. The JSON files (each
run's result.json, ``--json``) and the markdown table are written atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiment"))
from baselines_her.atomic import atomic_open  # noqa: E402
from baselines_her.errors import UserError, UserErrorParser, run_cli  # noqa: E402
from plot import first_reach, read_run  # noqa: E402  (one progress.csv reader and threshold rule)
from progress_bar import add_flag, bar, run_child, say  # noqa: E402  (bench/progress_bar.py)

# The panda-gym v3 results table (docs/results.md): env id, seeds, scripted demos made for it
# (0: none), flags beyond --demo_file.
TASKS = (("PandaReach-v3", 3, 0, ()), ("PandaPush-v3", 1, 0, ()),
         ("PandaPickAndPlace-v3", 1, 100, ()),
         ("PandaSlide-v3", 1, 3000, ("num_demo=3000", "demo_reset_prob=0.5", "q_filter=0",
                                     "prm_loss_weight=0", "demo_her=0", "batch_size=512",
                                     "demo_batch_size=384", "n_epochs=32",
                                     "n_test_rollouts=20")),
         ("PandaStack-v3", 1, 3000, ("num_demo=3000", "demo_reset_prob=0.5")))

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


def demo_file(env: str, outdir: str, episodes: int, shown: bool = False) -> str:
    """``episodes`` successful scripted demos for ``env`` (made once, seed 1000); ``shown``: a
    progress bar is on screen (run_child)."""
    path = os.path.join(outdir, "demos", f"{env}-{episodes}.npz")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        script = os.path.join(ROOT, "experiment", "data_generation", "generate_demos.py")
        run_child([sys.executable, script, "--env", env, "--episodes", str(episodes),
                   "--only_success", "--seed", "1000", "--out", path], shown)
    return path


def ship(policy: str, shipdir: str) -> dict:
    """play.py's 100-episode success (seed 0) of a policy file; its actor and normalisers to
    ``shipdir/<EnvId>.pkl``."""
    import play
    from baselines_her.policy_file import load_policy, save_policy
    result = play.evaluate(policy, n_episodes=100, seed=0, verbose=False, progress=False)
    state = load_policy(policy)
    env = state["env_name"]
    state["weights"] = {"actor": state["weights"]["actor"]}
    os.makedirs(shipdir, exist_ok=True)
    save_policy(os.path.join(shipdir, f"{env}.pkl"), state)
    return {"play_success_100_seed0": result["success_rate"], "shipped": f"{shipdir}/{env}.pkl"}


def run_seeds(args, env: str, seeds: int, extra: list, progress=None) -> list:
    """``seeds`` runs of ``env``; ``progress`` (a tqdm bar, or None) counts them."""
    runs = []
    shown = progress is not None and not progress.disable
    # A file path in --set (demo_file=dir/x.npz) contributes its base name only.
    tag = f"{env}-{args.algo}" + "".join(
        "-" + k + os.path.basename(v).removesuffix(".npz")
        for k, _, v in (kv.partition("=") for kv in extra))
    for seed in range(args.first_seed, args.first_seed + seeds):
        logdir = os.path.join(args.outdir, f"{tag}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}")
        cmd = [sys.executable, "-m", "baselines_her.her", f"--env={env}", f"--seed={seed}",
               f"--logdir={logdir}"]
        cmd += [f"--algo={args.algo}"] if args.algo else []
        cmd += [f"--n_epochs={args.epochs}"] if args.epochs else []
        cmd += [f"--{kv}" for kv in extra]
        say("running: " + " ".join(cmd))
        if progress is not None:
            progress.set_postfix_str(f"{env} seed {seed}")
        t0 = time.perf_counter()
        run_child(cmd, shown)
        wall = time.perf_counter() - t0
        s = summarize(os.path.join(logdir, "progress.csv"), args.threshold, wall)
        run = {"env": env, "seed": seed, "logdir": logdir, "command": " ".join(cmd[1:]), **s}
        if args.ship and seed == args.first_seed:
            run.update(ship(os.path.join(logdir, "policy_best.pkl"), args.ship))
        with atomic_open(os.path.join(logdir, "result.json"), "w") as f:
            json.dump(run, f, indent=1)
        runs.append(run)
        if progress is not None:
            progress.update(1)
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = UserErrorParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="PandaReach-v3")
    ap.add_argument("--all", action="store_true", help="run the TASKS table")
    ap.add_argument("--only", nargs="*", default=None, help="with --all: these env ids only")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first_seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the env's n_epochs")
    ap.add_argument("--algo", default="", help="default: the env's (and demo file's) default")
    ap.add_argument("--prioritized", default="none", choices=["none", "td", "energy"])
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra --key=value options for the trainer")
    ap.add_argument("--outdir", default="bench/results")
    ap.add_argument("--json", default=None, help="write results to this JSON file")
    ap.add_argument("--ship", default=None, metavar="DIR",
                    help="evaluate policy_best.pkl (100 episodes, seed 0), write DIR/<env>.pkl")
    ap.add_argument("--ship_policy", default=None, metavar="FILE",
                    help="with --ship: ship this policy file of an existing run instead of training")
    add_flag(ap)
    args = ap.parse_args(argv)
    names = [task[0] for task in TASKS]
    unknown = [env for env in args.only or () if env not in names]
    if unknown:
        raise UserError(f"--only {' '.join(unknown)}: not in the table; its envs are "
                        f"{', '.join(names)}")
    if args.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {args.seeds}")
    if args.ship_policy:
        shipped = ship(args.ship_policy, args.ship or "policies")
        print(f"{args.ship_policy}: play.py 100 episodes, seed 0: "
              f"{shipped['play_success_100_seed0']:.2f} -> {shipped['shipped']}")
        return 0
    if args.prioritized != "none":
        args.set = args.set + [f"prioritized={args.prioritized}"]

    runs = []
    tasks = [t for t in TASKS if not args.only or t[0] in args.only]
    total = sum(task[1] for task in tasks) if args.all else args.seeds
    with bar(total, "runs", "run", enabled=not args.no_progress) as progress:
        if args.all:
            for env, seeds, demos, flags in tasks:
                extra = list(args.set)
                if demos:
                    path = demo_file(env, args.outdir, demos, not progress.disable)
                    extra += [f"demo_file={path}", *flags]
                runs += run_seeds(args, env, seeds, extra, progress)
        else:
            runs = run_seeds(args, args.env, args.seeds, args.set, progress)

    table = [HEADER.format(thr=args.threshold)]
    table += [fmt_row(r["env"], args.algo or "default", r["seed"], r, args.threshold)
              for r in runs]
    print("\n" + "\n".join(table))
    n_reached = sum(r["reach_epoch"] is not None for r in runs)
    mean = lambda k: sum(r[k] for r in runs) / len(runs)  # noqa: E731
    print(f"\nmean over {len(runs)} runs: final {mean('final_success'):.2f}, best "
          f"{mean('best_success'):.2f}, wall {mean('wall_s'):.0f} s; reached {args.threshold} in "
          f"{n_reached}/{len(runs)} runs")
    for r in runs:
        if "play_success_100_seed0" in r:
            print(f"{r['env']}: play.py 100 episodes, seed 0: {r['play_success_100_seed0']:.2f} "
                  f"-> {r['shipped']}")
    out = args.json or (os.path.join(args.outdir, "learning_table.json") if args.all else None)
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with atomic_open(out, "w") as f:
            json.dump({"set": args.set, "threshold": args.threshold,
                       "machine": platform.platform(), "cpus": os.cpu_count(),
                       "date": time.strftime("%Y-%m-%d"), "runs": runs}, f, indent=1)
        with atomic_open(os.path.splitext(out)[0] + ".md", "w") as f:
            f.write("\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run_cli(main))  # a bad flag or policy file: one line, exit 2
    except subprocess.CalledProcessError as exc:  # the run printed its own error above
        print(f"error: exit {exc.returncode} from: {' '.join(map(str, exc.cmd))}", file=sys.stderr)
        sys.exit(exc.returncode if exc.returncode > 0 else 1)
