"""Evaluate a saved policy: ``python experiment/play.py policy.pkl [--n_test_rollouts N]
[--render] [--seed S]``.

Needs nothing but the policy file: it holds the env name, dims, normaliser statistics and actor
weights as plain data, and the actor runs in numpy (TensorFlow is not imported).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from baselines_her.envs import make_env  # noqa: E402
from baselines_her.policy_file import actor_from_state, load_policy  # noqa: E402
from baselines_her.rollout import RolloutWorker  # noqa: E402


def evaluate(policy_path: str, n_episodes: int = 10, seed: int = 0, render: bool = False,
             verbose: bool = True) -> dict:
    """Run ``n_episodes`` deterministic episodes of the policy; return the success rate."""
    state = load_policy(policy_path)
    actor = actor_from_state(state)
    env = make_env(state["env_name"], render_mode="human" if render else None)
    dims = state["dims"]
    T = env.spec.max_episode_steps
    worker = RolloutWorker([env], T, dims["o"], dims["g"], dims["u"], actor.max_u,
                           np.random.default_rng(seed), [seed])
    successes = []
    for i in range(n_episodes):
        _, info = worker.generate_rollouts(actor, explore=False)
        successes.append(info["success_rate"])
        if verbose:
            print(f"episode {i + 1}/{n_episodes}: {'success' if successes[-1] else 'failure'}")
    env.close()
    return {"env": state["env_name"], "episodes": n_episodes,
            "success_rate": float(np.mean(successes))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate a baselines_her policy file.")
    ap.add_argument("policy_file")
    ap.add_argument("--n_test_rollouts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true", help="show the PyBullet GUI (needs a display)")
    args = ap.parse_args(argv)
    if args.n_test_rollouts < 1:
        ap.error("--n_test_rollouts must be >= 1")
    try:
        result = evaluate(args.policy_file, args.n_test_rollouts, args.seed, args.render)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['env']}: success rate {result['success_rate']:.3f} over "
          f"{result['episodes']} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
