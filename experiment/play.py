"""Evaluate a saved policy: ``python experiment/play.py policy.pkl [--n_test_rollouts N]
[--render] [--seed S] [--video out.gif [--video_episodes K]]``.

``--video`` writes the first K episodes (default 3) as an animated GIF at the env's control rate
(panda-gym: 25 frames/s), from the env's ``rgb_array`` camera at half resolution (needs Pillow,
``pip install pillow``; rendering is slower than simulating, so only those K episodes render).

Needs nothing but the policy file: it holds the env name, dims, normaliser statistics and actor
weights as plain data, and the actor runs in numpy (TensorFlow is not imported).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from baselines_her.envs import describe_env, make_env  # noqa: E402
from baselines_her.policy_file import actor_from_state, load_policy  # noqa: E402
from baselines_her.rollout import RolloutWorker  # noqa: E402


class FrameRecorder:
    """Stands in for ``env.unwrapped`` in RolloutWorker and keeps a camera frame after every
    reset and step while ``active``."""

    def __init__(self, env):
        self.base = env.unwrapped
        self.frames: list = []
        self.active = True

    @property
    def unwrapped(self):
        return self

    def _grab(self) -> None:
        if self.active:
            frame = np.asarray(self.base.render())
            self.frames.append(frame[::2, ::2, :3].copy())  # half resolution, drop alpha

    def reset(self, **kwargs):
        out = self.base.reset(**kwargs)
        self._grab()
        return out

    def step(self, action):
        out = self.base.step(action)
        self._grab()
        return out


def save_gif(frames: list, path: str, fps: float) -> None:
    """Animated GIF via Pillow, written atomically."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("--video needs Pillow: pip install pillow") from None
    images = [Image.fromarray(f) for f in frames]
    tmp = path + ".tmp"
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000 / fps)), loop=0)
    os.replace(tmp, path)


def evaluate(policy_path: str, n_episodes: int = 10, seed: int = 0, render: bool = False,
             verbose: bool = True, video: str | None = None, video_episodes: int = 3) -> dict:
    """Run ``n_episodes`` deterministic episodes of the policy; return the success rate (and
    write the first ``video_episodes`` as a GIF to ``video``)."""
    if video is not None and not video.lower().endswith(".gif"):
        raise ValueError(f"--video {video!r}: only animated GIF is supported, name it *.gif")
    if video is not None and not os.path.isdir(os.path.dirname(os.path.abspath(video))):
        raise ValueError(f"--video {video!r}: directory does not exist")
    state = load_policy(policy_path)
    actor = actor_from_state(state)
    mode = "human" if render else ("rgb_array" if video else None)
    env = make_env(state["env_name"], render_mode=mode)
    recorder = FrameRecorder(env) if video else None
    dims = state["dims"]
    spec = describe_env(env, state["env_name"])
    T = spec.T
    worker = RolloutWorker([recorder or env], T, dims["o"], dims["g"], dims["u"], actor.max_u,
                           np.random.default_rng(seed), [seed])
    successes = []
    for i in range(n_episodes):
        if recorder is not None:
            recorder.active = i < video_episodes
        _, info = worker.generate_rollouts(actor, explore=False)
        successes.append(info["success_rate"])
        if verbose:
            print(f"episode {i + 1}/{n_episodes}: {'success' if successes[-1] else 'failure'}")
    env.close()
    result = {"env": state["env_name"], "episodes": n_episodes,
              "success_rate": float(np.mean(successes))}
    if recorder is not None:
        save_gif(recorder.frames, video, 1.0 / spec.dt)
        result["video"] = video
        result["video_frames"] = len(recorder.frames)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate a baselines_her policy file.")
    ap.add_argument("policy_file")
    ap.add_argument("--n_test_rollouts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true", help="show the PyBullet GUI (needs a display)")
    ap.add_argument("--video", default=None, metavar="OUT.gif",
                    help="write the first --video_episodes episodes as an animated GIF")
    ap.add_argument("--video_episodes", type=int, default=3)
    args = ap.parse_args(argv)
    if args.n_test_rollouts < 1:
        ap.error("--n_test_rollouts must be >= 1")
    if args.video_episodes < 1:
        ap.error("--video_episodes must be >= 1")
    if args.render and args.video:
        ap.error("--render and --video cannot be combined (one render mode per env)")
    try:
        result = evaluate(args.policy_file, args.n_test_rollouts, args.seed, args.render,
                          video=args.video, video_episodes=args.video_episodes)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['env']}: success rate {result['success_rate']:.3f} over "
          f"{result['episodes']} episodes")
    if "video" in result:
        print(f"wrote {result['video']} ({result['video_frames']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
