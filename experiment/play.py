"""Evaluate a saved policy: ``python experiment/play.py policy.pkl [--n_test_rollouts N]
[--render] [--seed S] [--video out.mp4|out.gif [--video_episodes K]] [--no_progress]``.

``--video`` writes the first K episodes (default 3) as an H.264 MP4 (imageio with the
imageio-ffmpeg wheel, which ships its own ffmpeg) or an animated GIF, at the env's control rate
(panda-gym: 25 frames/s), from the env's ``rgb_array`` camera at half resolution. Frames are
collected by gymnasium's ``RenderCollection`` wrapper; rendering is slower than simulating, so
only those K episodes render. Install with ``pip install -e ".[video]"``.

Needs nothing but the policy file: it holds the env name, dims, normaliser statistics and actor
weights as plain data, and the actor runs in numpy (TensorFlow is not imported). A progress bar
on stderr counts the episodes when stderr is a terminal (``--no_progress`` turns it off).
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from baselines_her.atomic import atomic_path  # noqa: E402
from baselines_her.envs import describe_env, make_env  # noqa: E402
from baselines_her.errors import UserError, UserErrorParser, run_cli  # noqa: E402
from baselines_her.policy_file import actor_from_state, load_policy  # noqa: E402
from baselines_her.progress import progress_bar  # noqa: E402
from baselines_her.rollout import RolloutWorker  # noqa: E402

VIDEO_FORMATS = (".mp4", ".gif")


def check_video_path(path: str) -> str:
    """The format (``.mp4`` or ``.gif``) of a ``--video`` path; raises UserError otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in VIDEO_FORMATS:
        raise UserError(f"--video {path!r}: unsupported extension {ext or '(none)'!r}; "
                        f"name it *.mp4 or *.gif")
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UserError(f"--video {path!r}: directory does not exist")
    return ext


def _import_imageio(ext: str):
    try:
        import imageio.v3 as iio
        if ext == ".mp4":
            import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 with)
    except ImportError as exc:
        raise UserError(f"--video needs imageio and imageio-ffmpeg ({exc.name} is missing): "
                        f"pip install -e \".[video]\"") from None
    return iio


def write_video(frames: list, path: str, fps: float) -> None:
    """Write RGB uint8 frames as MP4 (H.264, yuv420p) or animated GIF, chosen by extension;
    the file appears only once complete."""
    ext = check_video_path(path)
    iio = _import_imageio(ext)
    with atomic_path(path) as tmp:
        if ext == ".gif":
            iio.imwrite(tmp, frames, plugin="pillow", extension=".gif",
                        duration=1000.0 / fps, loop=0)
        else:
            # macro_block_size=2: yuv420p needs even sizes only, so frames are not rescaled.
            iio.imwrite(tmp, frames, plugin="FFMPEG", extension=".mp4", fps=fps,
                        codec="libx264", macro_block_size=2)


def evaluate(policy_path: str, n_episodes: int = 10, seed: int = 0, render: bool = False,
             verbose: bool = True, video: str | None = None, video_episodes: int = 3,
             progress: bool = True) -> dict:
    """Run ``n_episodes`` deterministic episodes of the policy; return the success rate (and
    write the first ``video_episodes`` to ``video``, MP4 or GIF by extension)."""
    if video is not None:
        ext = check_video_path(video)
        _import_imageio(ext)  # fail before the episodes run
        if render:
            raise UserError("--render and --video cannot be combined (one render mode per env)")
    state = load_policy(policy_path)
    actor = actor_from_state(state)
    mode = "human" if render else ("rgb_array" if video else None)
    env = make_env(state["env_name"], render_mode=mode)
    recorder = None
    if video is not None:
        from gymnasium.wrappers import RenderCollection
        recorder = RenderCollection(env, pop_frames=True, reset_clean=True)
    dims = state["dims"]
    spec = describe_env(env, state["env_name"])
    worker = RolloutWorker([recorder or env], spec.T, dims["o"], dims["g"], dims["u"],
                           actor.max_u, np.random.default_rng(seed), [seed])
    successes, frames = [], []
    with progress_bar(n_episodes, "episodes", enabled=progress) as bar:
        for i in range(n_episodes):
            _, info = worker.generate_rollouts(actor, explore=False)
            successes.append(info["success_rate"])
            if recorder is not None and i < video_episodes:
                # One frame after the reset and after each of the T steps, at half resolution.
                frames += [np.asarray(f)[::2, ::2, :3].copy() for f in recorder.render()]
                if i + 1 == video_episodes:
                    worker.envs[0] = env  # the remaining episodes step the env without rendering
            bar.update(1)
            if verbose:
                bar.write(f"episode {i + 1}/{n_episodes}: "
                          f"{'success' if successes[-1] else 'failure'}", file=sys.stdout)
    env.close()
    result = {"env": state["env_name"], "episodes": n_episodes,
              "success_rate": float(np.mean(successes))}
    if recorder is not None:
        write_video(frames, video, 1.0 / spec.dt)
        result["video"] = video
        result["video_frames"] = len(frames)
    return result


def main(argv=None) -> int:
    ap = UserErrorParser(description="Evaluate a baselines_her policy file.")
    ap.add_argument("policy_file")
    ap.add_argument("--n_test_rollouts", type=int, default=10, help="episodes to run")
    ap.add_argument("--seed", type=int, default=0, help="seed of the episodes' goals")
    ap.add_argument("--render", action="store_true", help="show the PyBullet GUI (needs a display)")
    ap.add_argument("--video", default=None, metavar="OUT.mp4|OUT.gif",
                    help="write the first --video_episodes episodes as MP4 or animated GIF")
    ap.add_argument("--video_episodes", type=int, default=3, help="episodes in --video")
    ap.add_argument("--no_progress", action="store_true",
                    help="no progress bar (it is shown only when stderr is a terminal)")
    args = ap.parse_args(argv)
    if args.n_test_rollouts < 1:
        raise UserError("--n_test_rollouts must be >= 1")
    if args.video_episodes < 1:
        raise UserError("--video_episodes must be >= 1")
    result = evaluate(args.policy_file, args.n_test_rollouts, args.seed, args.render,
                      video=args.video, video_episodes=args.video_episodes,
                      progress=not args.no_progress)
    print(f"{result['env']}: success rate {result['success_rate']:.3f} over "
          f"{result['episodes']} episodes")
    if "video" in result:
        print(f"wrote {result['video']} ({result['video_frames']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
