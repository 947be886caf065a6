"""Where a policy's misses are, on a panda-gym task that moves objects to goals (Push, Slide, Stack).

    python bench/misses.py policies/PandaSlide-v3.pkl OTHER.pkl [--episodes 200] [--steps 50 75 100]
    python bench/misses.py policies/PandaStack-v3.pkl --episodes 100 --steps 150 200

Each policy plays the same ``--episodes`` deterministic episodes (env seeds ``--first_seed``,
``--first_seed + 1``, ...). At the env's own last step (T: 50 for Push and Slide, 100 for Stack)
the object's final position is read against the line from its start to the goal: how far along
the line it stopped (short of the goal or past it), how far off the line, whether it left the
table (height below 0) or never moved (never 1 cm from its start by step T), its speed over the
last step (also over the successes alone: a success at T may be a puck sliding through the goal),
and the step of its first move. Success is split by the start-goal distance
(``--bins``). ``--steps`` beyond T go on stepping the same episodes past the env's time limit
with the actor unchanged and report the success at those steps: how much of the failure is the
episode ending while the object still moves.

On PandaStack-v3 (two blocks, ``object1`` below ``object2``; success when the six coordinates
together are within the threshold, 10 cm) the failures at T are split instead: each block within
half the threshold of its goal, the top block lifted off the table, success in the first 5 steps
(a start near the goals) or reached later and lost by T; with the step of the first success.

Prints a markdown table (one column per policy) and writes JSON (``--out``). Never run by CI.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from baselines_her.atomic import atomic_open  # noqa: E402
from baselines_her.envs import describe_env, make_env  # noqa: E402
from baselines_her.episode import run_episodes  # noqa: E402
from baselines_her.errors import UserError, UserErrorParser, run_cli  # noqa: E402
from baselines_her.policy_file import actor_from_state, load_policy  # noqa: E402
from baselines_her import sim_state  # noqa: E402
from progress_bar import add_flag, bar  # noqa: E402  (bench/progress_bar.py)

MOVED_M = 0.01  # the object counts as moved once it is this far from its start
START_STEPS = 5  # Stack: a success this early comes from where the reset put the blocks
MOVING_MPS = 0.05  # an object faster than this at T is still sliding
LIFTED_M = 0.03  # Stack: the top block (2 cm half-height on the table) counts as lifted above this


def frac(xs: list) -> float:
    """The fraction of true values in ``xs`` (nan when empty)."""
    return float(np.mean(xs)) if xs else float("nan")


def success_rows(steps: list, T: int) -> list:
    """Table rows of the success at T and at each step past it."""
    rows = [(f"success at step T = {T}", lambda r: f"{r['success_at'][T]:.2f}")]
    rows += [(f"success at step {t} (past the time limit)",
              lambda r, t=t: f"{r['success_at'][t]:.2f}") for t in steps if t != T]
    return rows


def play(env, actor, seed: int, steps: list) -> tuple:
    """One deterministic episode of ``max(steps)`` steps through the library's episode loop on
    ``env.unwrapped``, which has no time limit of its own (so it can go on past T): achieved goals
    ``ag[t]`` after t steps (float64), the goal, and the success after each step (bool)."""
    obs, _ = env.reset(seed=seed)
    batch = run_episodes([env.unwrapped], [obs], lambda t, o, ag, g, _obs: actor(o, g),
                         max(steps))
    return (batch["ag"][0].astype(np.float64), batch["g"][0, 0].astype(np.float64),
            batch["info_is_success"][0, :, 0].astype(bool))


def object_episode(ag, goal, success, steps: list, T: int, dt: float) -> dict:
    """The one object's state at T against the line from its start to the goal."""
    start = ag[0]
    moved = np.flatnonzero(np.linalg.norm(ag[1:T + 1, :2] - start[:2], axis=1) > MOVED_M)
    line = goal[:2] - start[:2]
    length = float(np.linalg.norm(line))
    unit = line / max(length, 1e-9)
    rel = ag[T, :2] - start[:2]
    return {"distance": length, "along_error": float(rel @ unit) - length,
            "cross_error": float(rel @ np.array([-unit[1], unit[0]])),
            "off_table": bool(ag[T, 2] < 0.0),
            "first_move": int(moved[0]) + 1 if moved.size else None,
            "speed_at_T": float(np.linalg.norm(ag[T, :2] - ag[T - 1, :2])) / dt,
            "success": {t: bool(success[t - 1]) for t in steps}}


def stack_episode(ag, goal, success, steps: list, T: int, dt: float) -> dict:
    """Each block's distance to its goal at T (``ag`` and the goal: bottom block xyz, then top
    block xyz), the top block's height and when success was first reached."""
    first = np.flatnonzero(success)
    return {"bottom_error": float(np.linalg.norm(ag[T, :3] - goal[:3])),
            "top_error": float(np.linalg.norm(ag[T, 3:] - goal[3:])),
            "top_height": float(ag[T, 5]),
            # the blocks can start within the threshold of their goals (it is 10 cm)
            "at_start": bool(success[:START_STEPS].any()),
            "reached_later": bool(success[START_STEPS:T].any()),
            "first_success": int(first[0]) + 1 if first.size else None,
            "success": {t: bool(success[t - 1]) for t in steps}}


def summarize_stack(episodes: list, steps: list, T: int, bins: list, threshold: float) -> dict:
    fails = [e for e in episodes if not e["success"][T]]
    firsts = [e["first_success"] for e in episodes if e["first_success"] is not None]
    return {"success_at": {t: frac([e["success"][t] for e in episodes]) for t in steps},
            # each block within half the threshold: both so puts the pair within it
            "bottom_placed": frac([e["bottom_error"] < threshold / 2 for e in fails]),
            "top_placed": frac([e["top_error"] < threshold / 2 for e in fails]),
            "top_lifted": frac([e["top_height"] > LIFTED_M for e in fails]),
            "at_start": frac([e["at_start"] for e in fails]),
            "lost": frac([e["reached_later"] for e in fails]),
            "first_success_median": float(np.median(firsts)) if firsts else float("nan")}


def table_stack(names: list, results: list, steps: list, T: int, threshold: float) -> str:
    cm = f"{threshold * 50:g} cm"
    rows = success_rows(steps, T)
    rows += [("step of the first success (median)", lambda r: f"{r['first_success_median']:g}"),
             (f"of the failures at T: bottom block within {cm} of its goal",
              lambda r: f"{r['bottom_placed']:.2f}"),
             (f"of the failures at T: top block within {cm} of its goal",
              lambda r: f"{r['top_placed']:.2f}"),
             (f"of the failures at T: top block above {LIFTED_M * 100:g} cm",
              lambda r: f"{r['top_lifted']:.2f}"),
             (f"of the failures at T: success in the first {START_STEPS} steps (a start near "
              f"the goals)", lambda r: f"{r['at_start']:.2f}"),
             (f"of the failures at T: success reached after step {START_STEPS} and lost",
              lambda r: f"{r['lost']:.2f}")]
    return markdown(names, results, rows)


def summarize(episodes: list, steps: list, T: int, bins: list, threshold: float) -> dict:
    on = [e for e in episodes if not e["off_table"]]
    moved = [e["first_move"] for e in episodes if e["first_move"] is not None]
    out = {"success_at": {t: frac([e["success"][t] for e in episodes]) for t in steps},
           "off_table": frac([e["off_table"] for e in episodes]),
           "never_moved": frac([e["first_move"] is None for e in episodes]),
           "short": frac([e["along_error"] < -threshold for e in on]),
           "past": frac([e["along_error"] > threshold for e in on]),
           "off_line": frac([abs(e["cross_error"]) > threshold for e in on]),
           "first_move_median": float(np.median(moved)) if moved else float("nan"),
           "speed_at_T_median": float(np.median([e["speed_at_T"] for e in episodes])),
           "success_by_distance": []}
    hits = [e["speed_at_T"] for e in episodes if e["success"][T]]
    out["moving_successes"] = frac([v > MOVING_MPS for v in hits])
    out["success_speed_median"] = float(np.median(hits)) if hits else float("nan")
    for lo, hi in zip(bins, bins[1:]):
        inside = [e for e in episodes if lo <= e["distance"] < hi]
        out["success_by_distance"].append(
            {"from": lo, "to": hi, "episodes": len(inside),
             "success": frac([e["success"][T] for e in inside])})
    return out


def table(names: list, results: list, steps: list, T: int, threshold: float) -> str:
    cm = f"{threshold * 100:g} cm"
    rows = success_rows(steps, T)
    rows += [("object off the table / never moved",
              lambda r: f"{r['off_table']:.2f} / {r['never_moved']:.2f}"),
             (f"on the table: short of the goal by > {cm} / past it by > {cm}",
              lambda r: f"{r['short']:.2f} / {r['past']:.2f}"),
             (f"on the table: off the start-goal line by > {cm}", lambda r: f"{r['off_line']:.2f}"),
             ("step of the first move (median)", lambda r: f"{r['first_move_median']:g}"),
             ("object speed at step T (median)", lambda r: f"{r['speed_at_T_median']:.2f} m/s"),
             (f"of the successes at T: object still moving (> {MOVING_MPS:g} m/s) / its median "
              f"speed", lambda r: f"{r['moving_successes']:.2f} / "
                                  f"{r['success_speed_median']:.2f} m/s")]
    bins = results[0]["success_by_distance"]
    label = " / ".join(f"{b['from']:g}-{b['to']:g}" for b in bins)
    rows.append((f"success for start-goal distances {label} m",
                 lambda r: " / ".join(f"{b['success']:.2f}" for b in r["success_by_distance"])))
    return markdown(names, results, rows)


def markdown(names: list, results: list, rows: list) -> str:
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(fmt(r) for r in results) + " |" for label, fmt in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = UserErrorParser(description=__doc__.split("\n\n")[0],
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policies", nargs="+", help="policy files (play.py's format) of one env")
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--first_seed", type=int, default=10_000)
    ap.add_argument("--steps", type=int, nargs="+", default=None,
                    help="steps at which to read success (default: the env's T only)")
    ap.add_argument("--bins", type=float, nargs="+", default=[0.0, 0.3, 0.45, 1.0],
                    help="start-goal distance bin edges in metres")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "misses.json"))
    add_flag(ap)
    args = ap.parse_args(argv)
    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if len(args.bins) < 2 or any(b >= c for b, c in zip(args.bins, args.bins[1:])):
        raise UserError(f"--bins must be 2 or more increasing edges, got {args.bins}")
    states = [load_policy(p) for p in args.policies]
    envs = {s["env_name"] for s in states}
    if len(envs) != 1:
        raise UserError(f"the policies are for different envs ({', '.join(sorted(envs))}); "
                        f"give policies of one env")
    env_name = envs.pop()
    env = make_env(env_name)
    spec = describe_env(env, env_name)
    # panda-gym's object tasks have a body called "object" (Stack: "object1", "object2"), whose
    # position is the achieved goal, with the table top at height 0
    bodies = sim_state.layout(env).bodies if sim_state.supported(env) else ()
    if spec.distance_threshold is None or not (
            "object" in bodies or {"object1", "object2"} <= set(bodies)):
        raise UserError(f"{env_name}: needs a panda-gym task that moves objects to goals with the "
                        f"sparse reward, such as PandaPush-v3, PandaSlide-v3 or PandaStack-v3")
    stack = "object" not in bodies
    episode_of, summarize_of, table_of = ((stack_episode, summarize_stack, table_stack) if stack
                                          else (object_episode, summarize, table))
    steps = sorted({spec.T, *(args.steps or [])})
    if steps[0] < spec.T:
        raise UserError(f"--steps must be >= the env's T ({spec.T}), got {steps[0]}")

    results = []
    with bar(len(states) * args.episodes, "episodes", "ep", enabled=not args.no_progress) as b:
        for state in states:
            actor = actor_from_state(state)
            episodes = []
            for i in range(args.episodes):
                episodes.append(episode_of(*play(env, actor, args.first_seed + i, steps),
                                           steps, spec.T, spec.dt))
                b.update(1)
            results.append(summarize_of(episodes, steps, spec.T, args.bins,
                                        spec.distance_threshold))
    env.close()
    names = [os.path.basename(p) for p in args.policies]
    if len(set(names)) < len(names):  # the same file name in several runs: name the run too
        names = [os.path.join(os.path.basename(os.path.dirname(os.path.abspath(p))), n)
                 for p, n in zip(args.policies, names)]
    print(f"{env_name}, {args.episodes} episodes (env seeds {args.first_seed}-"
          f"{args.first_seed + args.episodes - 1}), T = {spec.T}")
    print(table_of(names, results, steps, spec.T, spec.distance_threshold))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_open(args.out, "w") as f:
        json.dump({"env": env_name, "episodes": args.episodes, "first_seed": args.first_seed,
                   "steps": steps, "date": time.strftime("%Y-%m-%d"),
                   "policies": dict(zip(args.policies, results))}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
