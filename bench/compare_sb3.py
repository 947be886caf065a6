"""Whole-process wall time, ours vs Stable-Baselines3, on the same HER work, runs alternating.

    python bench/compare_sb3.py [--pairs 2] [--steps 5000] [--sb3_python PATH] [--out FILE]

Each pair runs ours, then SB3 (A B A B ...), each as a fresh process timed from launch to exit,
so imports, env creation, training, 10 test episodes and files written are all inside the time.
The work, per run, on PandaPush-v3 (T = 50 steps per episode):

ours   ``python -m baselines_her.her --env=PandaPush-v3 --n_epochs=1 --n_test_rollouts=10
       --n_cycles=STEPS/100 --seed=S --logdir=TMP``: DDPG + HER (future, k=4), 3x256 actor and
       critic, batch 256, buffer 1e6 transitions; each cycle steps 2 envs for one episode each
       (100 env steps), then 40 updates and one target update; then 10 test episodes (10 envs,
       50 steps each) and the epoch's files: params, progress, policy pickles and the checkpoint
       (with the replay buffer, by default). ``--ours_arg`` adds flags (e.g. to A/B a setting).
SB3    DDPG + HerReplayBuffer (future, n_sampled_goal=4), MultiInputPolicy with net_arch
       [256, 256, 256], batch 256, buffer 1e6, 2 envs in a DummyVecEnv, train_freq=(50, "step")
       (50 vector steps = 100 env steps = 2 episodes) with gradient_steps=40, learning_starts=0,
       so it trains after the first 100 env steps like ours; lr 1e-3, tau 0.05, gamma 0.98,
       Gaussian action noise 0.2; then ``evaluate_policy`` for 10 episodes on one env, and
       ``model.save``. Episodes end early on success (SB3 follows the env's ``terminated``);
       env steps and gradient steps are the same count as ours.

Known differences that are part of each library's design: ours normalises observations and adds
30% random actions to its exploration; SB3 updates its target networks after every gradient step,
ours once per cycle; ours writes a resumable checkpoint (by default with the replay buffer), SB3
saves the model only.

SB3 runs in its own virtualenv, never in ours. Without ``--sb3_python`` the script creates
``bench/results/sb3-venv`` once (``python -m venv`` + pip: ``--torch`` (default torch==2.13.0),
stable-baselines3, panda-gym==3.0.7, pybullet==3.2.7). PyPI's Linux x86_64 ``torch`` is a CUDA
build that pulls several GB of nvidia-* wheels; on a machine without a local CPU wheel of
torch 2.13.0, pass ``--torch`` and ``--pip_arg`` (e.g. an index of CPU wheels), or point
``--sb3_python`` at an interpreter that already has stable-baselines3, torch and panda-gym.
``--setup_only`` creates the venv and exits. Prints a markdown table and writes JSON to ``--out``;
a progress bar over the runs goes to stderr when it is a terminal (``--no_progress`` turns it off).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from baselines_her.errors import UserError, run_cli
from progress_bar import add_flag, bar, say  # bench/progress_bar.py

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results")
ENV_ID = "PandaPush-v3"
T = 50
N_ENVS = 2
STEPS_PER_CYCLE = N_ENVS * T
UPDATES_PER_CYCLE = 40
N_TEST = 10
TARGET_RATIO = 1.5
SB3_PACKAGES = ["stable-baselines3", "panda-gym==3.0.7", "pybullet==3.2.7"]
READY_FILE = "bench-ready.json"

# Runs inside the SB3 interpreter; argv[1] is a JSON config. Prints one JSON line at the end.
SB3_RUNNER = r'''
import json, os, sys, time
t_start = time.perf_counter()
cfg = json.loads(sys.argv[1])
import gymnasium as gym
import numpy as np
import panda_gym  # noqa: F401  (registers Panda*-v3)
import torch
from stable_baselines3 import DDPG, HerReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise
t_imported = time.perf_counter()
env = make_vec_env(cfg["env"], n_envs=cfg["n_envs"], seed=cfg["seed"])
dim_u = env.action_space.shape[0]
model = DDPG(
    "MultiInputPolicy", env,
    replay_buffer_class=HerReplayBuffer,
    replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
    learning_rate=1e-3, buffer_size=1_000_000, learning_starts=0, batch_size=256,
    tau=0.05, gamma=1.0 - 1.0 / cfg["T"],
    train_freq=(cfg["T"], "step"), gradient_steps=cfg["gradient_steps"],
    action_noise=NormalActionNoise(np.zeros(dim_u), 0.2 * np.ones(dim_u)),
    policy_kwargs={"net_arch": [256, 256, 256]}, seed=cfg["seed"], device="cpu", verbose=0)
t_built = time.perf_counter()
model.learn(total_timesteps=cfg["steps"])
t_learned = time.perf_counter()
eval_env = gym.make(cfg["env"])
eval_env.reset(seed=cfg["seed"] + 1000)
successes, eval_steps = [], [0]
def on_step(local_vars, _globals):
    eval_steps[0] += 1
    if local_vars["done"]:
        successes.append(float(local_vars["info"].get("is_success", 0.0)))
evaluate_policy(model, eval_env, n_eval_episodes=cfg["n_test"], deterministic=True,
                callback=on_step)
t_tested = time.perf_counter()
model.save(os.path.join(cfg["logdir"], "model"))
t_saved = time.perf_counter()
print(json.dumps({
    "import_s": t_imported - t_start, "setup_s": t_built - t_imported,
    "learn_s": t_learned - t_built, "test_s": t_tested - t_learned, "save_s": t_saved - t_tested,
    "env_steps": int(model.num_timesteps), "gradient_steps": int(model._n_updates),
    "test_episodes": len(successes), "test_env_steps": eval_steps[0],
    "test_success": float(np.mean(successes)) if successes else float("nan"),
    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    "sb3": __import__("stable_baselines3").__version__,
}))
'''

SB3_CHECK = ("import json, stable_baselines3, torch, panda_gym, gymnasium; "
             "print(json.dumps({'sb3': stable_baselines3.__version__, 'torch': torch.__version__, "
             "'panda_gym': panda_gym.__version__, 'gymnasium': gymnasium.__version__, "
             "'cuda_build': torch.version.cuda}))")


class RunFailed(Exception):
    """A child process or the SB3 install failed: one line on stderr, exit 1."""


def machine() -> dict:
    model, cores = platform.processor() or platform.machine(), os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "CPU(s)":
                cores = int(value.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return {"cpu": model, "cores": cores, "python": platform.python_version(),
            "os": platform.platform(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            **git_state()}


def git_state() -> dict:
    """The library's commit, and whether baselines_her/ differs from it (what was measured)."""
    def git(*args):
        out = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    status = git("status", "--porcelain", "--", "baselines_her")
    return {"git_commit": git("rev-parse", "--short", "HEAD"),
            "library_modified": None if status is None else bool(status)}


def sb3_versions(python: str) -> dict:
    proc = subprocess.run([python, "-c", SB3_CHECK], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunFailed(f"{python} cannot import stable_baselines3, torch and panda_gym: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_sb3_venv(venv: str, torch_spec: str, pip_args: list[str]) -> tuple[str, dict]:
    """The SB3 python in ``venv``, created and installed on first use; returns (python, info)."""
    python = os.path.join(venv, "bin", "python")
    ready = os.path.join(venv, READY_FILE)
    if os.path.exists(ready):
        with open(ready) as f:
            return python, json.load(f)
    log_path = os.path.join(RESULTS, "sb3-venv-install.log")
    os.makedirs(RESULTS, exist_ok=True)
    packages = [torch_spec, *SB3_PACKAGES]
    print(f"creating {venv} and installing {' '.join(packages)} (log: {log_path})", flush=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        for cmd in ([sys.executable, "-m", "venv", "--clear", venv],
                    [python, "-m", "pip", "install", "--upgrade", "pip"],
                    [python, "-m", "pip", "install", *pip_args, *packages]):
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise RunFailed(f"SB3 install failed at: {' '.join(cmd)} (see {log_path})")
    info = {"install_s": round(time.perf_counter() - t0, 1), "packages": packages,
            "pip_args": pip_args, "venv_mb": round(dir_size(venv) / 1e6, 1),
            **sb3_versions(python)}
    with open(ready, "w") as f:
        json.dump(info, f)
    print(f"SB3 venv ready in {info['install_s']} s ({info['venv_mb']} MB): "
          f"stable-baselines3 {info['sb3']}, torch {info['torch']}", flush=True)
    return python, info


def dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            fp = os.path.join(root, name)
            if not os.path.islink(fp):
                total += os.path.getsize(fp)
    return total


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def last_progress_row(logdir: str) -> dict:
    path = os.path.join(logdir, "progress.csv")
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else {}


def as_float(row: dict, key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def run_ours(args, logdir: str, log_path: str) -> dict:
    cmd = [args.ours_python, "-m", "baselines_her.her", f"--env={ENV_ID}", "--n_epochs=1",
           f"--n_test_rollouts={N_TEST}", f"--n_cycles={args.steps // STEPS_PER_CYCLE}",
           f"--seed={args.seed}", f"--logdir={logdir}", *args.ours_arg]
    wall = timed(cmd, log_path, "ours")
    row = last_progress_row(logdir)
    return {"side": "ours", "wall_s": wall, "cmd": cmd,
            "env_steps": as_float(row, "total/env_steps"),
            "updates": as_float(row, "total/updates"),
            "test_success": as_float(row, "test/success_rate"),
            "in_process": {k: as_float(row, f"time/{k}") for k in
                           ("rollout_s", "train_s", "test_s", "epoch_s")}}


def run_sb3(args, logdir: str, log_path: str) -> dict:
    cfg = {"env": ENV_ID, "n_envs": N_ENVS, "T": T, "steps": args.steps, "seed": args.seed,
           "gradient_steps": UPDATES_PER_CYCLE, "n_test": N_TEST, "logdir": logdir}
    cmd = [args.sb3_python, "-c", SB3_RUNNER, json.dumps(cfg)]
    wall = timed(cmd, log_path, "SB3")
    with open(log_path) as f:
        lines = [ln for ln in f.read().splitlines() if ln.startswith("{")]
    out = json.loads(lines[-1]) if lines else {}
    return {"side": "sb3", "wall_s": wall, "cmd": cmd[:2] + ["<runner>", cmd[3]],
            "env_steps": out.get("env_steps"), "updates": out.get("gradient_steps"),
            "test_success": out.get("test_success"), "in_process": out}


def timed(cmd: list[str], log_path: str, label: str) -> float:
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=REPO, env=child_env(), stdout=log,
                            stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
    if rc != 0:
        raise RunFailed(f"the {label} run exited {rc} (output in {log_path})")
    return wall


def fmt(x, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=int, default=2, help="ours/SB3 pairs, run alternating")
    ap.add_argument("--steps", type=int, default=5000,
                    help=f"training env steps per run, a multiple of {STEPS_PER_CYCLE}; "
                         f"updates = steps / {STEPS_PER_CYCLE} x {UPDATES_PER_CYCLE}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sb3_python", default=None,
                    help="an existing python with stable-baselines3, torch and panda-gym")
    ap.add_argument("--venv", default=os.path.join(RESULTS, "sb3-venv"),
                    help="where to create the SB3 virtualenv when --sb3_python is not given")
    ap.add_argument("--torch", default="torch==2.13.0", help="pip requirement for torch")
    ap.add_argument("--pip_arg", action="append", default=[],
                    help="extra argument for the SB3 pip install (repeatable)")
    ap.add_argument("--ours_python", default=sys.executable,
                    help="python with baselines_her installed (default: this one)")
    ap.add_argument("--ours_arg", action="append", default=[],
                    help="extra flag for ours, e.g. --ours_arg=--jit_compile=0 (repeatable)")
    ap.add_argument("--setup_only", action="store_true", help="create the SB3 venv and exit")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/compare_sb3-"
                                                "<date>.json)")
    add_flag(ap)
    args = ap.parse_args(argv)

    if args.pairs < 1:
        raise UserError(f"--pairs must be >= 1, got {args.pairs}")
    if args.steps < STEPS_PER_CYCLE or args.steps % STEPS_PER_CYCLE:
        raise UserError(f"--steps must be a positive multiple of {STEPS_PER_CYCLE} "
                       f"({N_ENVS} envs x {T} steps), got {args.steps}")
    if not (os.path.isfile(args.ours_python) and os.access(args.ours_python, os.X_OK)):
        raise UserError(f"--ours_python {args.ours_python} is not an executable file")
    if args.sb3_python is not None:
        if not (os.path.isfile(args.sb3_python) and os.access(args.sb3_python, os.X_OK)):
            raise UserError(f"--sb3_python {args.sb3_python} is not an executable file")
        try:
            sb3_info = {"venv": None, **sb3_versions(args.sb3_python)}
        except RunFailed as exc:
            raise UserError(str(exc)) from None
    else:
        args.sb3_python, sb3_info = ensure_sb3_venv(args.venv, args.torch, args.pip_arg)
        sb3_info = {"venv": args.venv, **sb3_info}
    if args.setup_only:
        return 0

    now = datetime.datetime.now(datetime.timezone.utc)
    out_path = args.out or os.path.join(
        RESULTS, f"compare_sb3-{now.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(RESULTS, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    work = tempfile.mkdtemp(prefix="compare_sb3-")
    runs = []
    try:
        with bar(2 * args.pairs, "runs", "run", enabled=not args.no_progress) as progress:
            for pair in range(args.pairs):
                for side, fn in (("ours", run_ours), ("sb3", run_sb3)):
                    logdir = os.path.join(work, f"{side}-{pair}")  # ours creates its own
                    if side == "sb3":
                        os.makedirs(logdir)
                    log_path = os.path.join(RESULTS, f"compare_sb3-{side}-{pair}.log")
                    progress.set_postfix_str(f"pair {pair} {side}")
                    r = fn(args, logdir, log_path)
                    r["pair"] = pair
                    runs.append(r)
                    progress.update(1)
                    say(f"pair {pair} {side}: {r['wall_s']:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours = [r["wall_s"] for r in runs if r["side"] == "ours"]
    sb3 = [r["wall_s"] for r in runs if r["side"] == "sb3"]
    per_pair = [s / o for o, s in zip(ours, sb3)]
    ratio_of_means = (sum(sb3) / len(sb3)) / (sum(ours) / len(ours))
    m = {**machine(), "load_avg_at_start": load_at_start}
    result = {
        "benchmark": "compare_sb3", "date_utc": now.strftime("%Y-%m-%d %H:%M"), "machine": m,
        "env": ENV_ID, "steps": args.steps,
        "updates": args.steps // STEPS_PER_CYCLE * UPDATES_PER_CYCLE, "test_episodes": N_TEST,
        "pairs": args.pairs, "seed": args.seed, "ours_args": args.ours_arg, "sb3": sb3_info,
        "runs": runs,
        "ratio_sb3_over_ours_per_pair": per_pair, "ratio_of_means": ratio_of_means,
        "target_ratio": TARGET_RATIO, "meets_target": min(per_pair) >= TARGET_RATIO,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)

    print(f"\n{ENV_ID}, {args.steps} env steps + {result['updates']} updates + {N_TEST} test "
          f"episodes per run, whole processes, ours/SB3 alternating; {m['cpu']}, {m['cores']} "
          f"cores, {result['date_utc']} UTC, load average {load_at_start[0]} at start, "
          f"{m['load_avg_1_5_15'][0]} at end; SB3 {sb3_info.get('sb3')}, torch "
          f"{sb3_info.get('torch')}; ours at {m['git_commit']}"
          f"{' + uncommitted changes' if m['library_modified'] else ''}\n")
    print("| pair | side | wall s | env steps | updates | test success |")
    print("|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['pair']} | {r['side']} | {r['wall_s']:.1f} | {fmt(r['env_steps'])} | "
              f"{fmt(r['updates'])} | {fmt(r['test_success'], '.2f')} |")
    print(f"\nSB3 / ours wall time: per pair {', '.join(f'{x:.2f}' for x in per_pair)}; "
          f"ratio of means {ratio_of_means:.2f} (target >= {TARGET_RATIO}: "
          f"{'met' if result['meets_target'] else 'not met'})")
    print(f"JSON: {out_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run_cli(main))  # a bad flag: one line, exit 2
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
