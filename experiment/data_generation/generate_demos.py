"""Generate scripted expert demonstrations for the panda-gym v3 tasks.

    python experiment/data_generation/generate_demos.py --env PandaPush-v3 --episodes 100 \
        --seed 0 --out demos.npz [--only_success] [--noise 0.0]

The output is the native demo file of baselines_her: an ``.npz`` (``np.savez_compressed``) of
plain float32 arrays with the episode-batch shapes (the simulator states float64), loadable with
``allow_pickle=False``::

    o               (B, T+1, do)   observations, including the final one
    ag              (B, T+1, dg)   achieved goals, including the final one
    g               (B, T,   dg)   desired goal at each step
    u               (B, T,   du)   actions taken (after noise and clipping)
    info_is_success (B, T,   1)    info['is_success'] after each step
    sim_state       (B, T+1, S)    float64 simulator state at each step (panda-gym envs), for
                                   ``--demo_reset_prob`` (layout: ``baselines_her.sim_state``)

Every episode runs exactly T = ``env.spec.max_episode_steps`` steps: panda-gym's
``terminated=True`` on success is ignored (the unwrapped env is stepped), as in the rest of the
library. Episode ``i`` (counting discarded attempts) is reset with ``seed + i``, so a given
``--seed`` always produces the same file.

A mistake in the flags, the env id or the output path, or too few successes for
``--only_success``, prints one line ``error: ...`` and exits 2 (``baselines_her.errors.run_cli``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)



from baselines_her.demo import save_episodes  # noqa: E402  (validated, atomic write)
from baselines_her.demo_convert import write_baselines  # noqa: E402
from baselines_her.envs import quiet_native_output  # noqa: E402  (pybullet prints at env creation)
from baselines_her.episode import run_episodes  # noqa: E402
from baselines_her.errors import UserError, UserErrorParser, run_cli  # noqa: E402
from baselines_her.progress import progress_bar  # noqa: E402
from baselines_her.replay_buffer import EPISODE_KEYS  # noqa: E402
from baselines_her import sim_state  # noqa: E402


class TooFewSuccesses(UserError, RuntimeError):
    """``--only_success`` ran out of attempts before enough episodes succeeded."""


def make_panda_env(env_id: str):
    """A panda-gym env (``baselines_her.envs.make_env``: quiet, and an env that cannot be built
    is an :class:`~baselines_her.envs.EnvError`)."""
    from baselines_her.envs import make_env

    return make_env(env_id)


class ProgressBar:
    """An episode counter (tqdm) on stderr, off when stderr is not a terminal or ``enabled`` is
    False; ``update(done, extra)`` sets the count and a status text."""

    def __init__(self, total: int, label: str = "", enabled: bool = True):
        self._bar = progress_bar(max(int(total), 1), label.strip() or None, enabled=enabled,
                                 leave=True)

    def update(self, done: int, extra: str = "") -> None:
        if extra:
            self._bar.set_postfix_str(extra, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


class StepLog:
    """``env`` stepped unchanged, keeping copies of what each step was given and returned: the
    observation dicts (the reset one first), actions and info dicts, in the env's own dtypes."""

    def __init__(self, env, first_obs: dict):
        self.env, self.action_space = env, env.action_space
        self.observations = [{k: np.array(v) for k, v in first_obs.items()}]
        self.actions: list = []
        self.infos: list = []

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.actions.append(np.array(action))
        self.observations.append({k: np.array(v) for k, v in obs.items()})
        self.infos.append(dict(info))
        return obs, reward, terminated, truncated, info


def run_episode(env, policy_fn: Callable, T: int, seed: Optional[int],
                keep_steps: bool = False, sim_states: bool = False) -> Dict[str, Any]:
    """One episode of exactly ``T`` steps (:func:`baselines_her.episode.run_episodes`).
    ``env.reset`` goes through the wrappers; steps go to ``env.unwrapped`` so that neither
    ``terminated`` (success) nor the TimeLimit cuts it short. ``policy_fn`` gets the observation
    dict as the env returned it; its action is clipped to the action space. Returns the float32
    episode arrays; with ``keep_steps`` also ``"steps"``: the ``(observations, actions, infos)``
    of a :class:`StepLog`, as the env returned them; with ``sim_states`` also ``"sim_state"``:
    the (T+1, S) float64 simulator states (:func:`baselines_her.sim_state.capture`) that
    ``o[t]`` was observed in."""
    obs, _ = env.reset(seed=seed)
    if hasattr(policy_fn, "reset"):
        policy_fn.reset()
    low, high = env.action_space.low, env.action_space.high

    states = []

    def act(t, o, ag, g, current):
        if sim_states:  # act sees step t before it is taken
            states.append(sim_state.capture(env))
        action = np.asarray(policy_fn(current[0]), dtype=np.float32).reshape(-1)
        return np.clip(action, low, high).astype(np.float32)[None]

    stepped = StepLog(env.unwrapped, obs) if keep_steps else env.unwrapped
    batch = run_episodes([stepped], [obs], act, T)
    episode: Dict[str, Any] = {k: v[0] for k, v in batch.items()}
    if keep_steps:
        episode["steps"] = (stepped.observations, stepped.actions, stepped.infos)
    if sim_states:
        states.append(sim_state.capture(env))  # the state after the last step
        episode["sim_state"] = np.stack(states)
    return episode


def record_episodes(
    env,
    policy_fn: Callable,
    n: int,
    rng: Optional[np.random.Generator] = None,
    only_success: bool = False,
    *,
    seed: Optional[int] = None,
    T: Optional[int] = None,
    noise: float = 0.0,
    max_attempts: Optional[int] = None,
    progress: bool = False,
    label: str = "",
    steps: Optional[List[tuple]] = None,
    sim_states: bool = False,
) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Record ``n`` episodes of ``policy_fn`` in ``env`` as one episode batch.

    ``policy_fn(obs_dict) -> action``; if it has a ``reset()`` method it is called at the start of
    each episode. ``rng`` draws the Gaussian action noise (std ``noise``, in action units, before
    clipping) and, when ``seed`` is None, the per-episode reset seeds. Attempt ``i`` is reset with
    ``seed + i``. With ``only_success`` failed episodes (``info_is_success`` at the last step is
    0) are dropped and attempts continue up to ``max_attempts`` (default ``10 * n``); hitting the
    cap raises :class:`TooFewSuccesses`. When ``steps`` is a list, the kept episodes'
    ``(observations, actions, infos)`` as the env returned them (:class:`StepLog`) are appended
    to it, in the order of the batch. With ``sim_states`` the batch also holds ``sim_state``
    (n, T+1, S), float64 (a panda-gym env: :mod:`baselines_her.sim_state`).

    Returns ``(batch, stats)``: ``batch`` is the dict of float32 arrays ``o (n,T+1,do)``,
    ``ag (n,T+1,dg)``, ``g (n,T,dg)``, ``u (n,T,du)``, ``info_is_success (n,T,1)``; ``stats`` has
    ``attempts``, ``successes`` and ``kept``.
    """
    if n <= 0:
        raise ValueError(f"number of episodes must be positive, got {n}")
    if T is None:
        T = getattr(env.spec, "max_episode_steps", None) if env.spec is not None else None
        if T is None:
            raise ValueError("env.spec.max_episode_steps is not set: pass T explicitly")
    if rng is None:
        rng = np.random.default_rng(seed)
    if seed is None:
        seed = int(rng.integers(0, 2**31 - 1))
    if max_attempts is None:
        max_attempts = 10 * n if only_success else n
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    def act(obs):
        a = np.asarray(policy_fn(obs), dtype=np.float64)
        if noise > 0:
            a = a + rng.normal(0.0, noise, size=a.shape)
        return a

    if hasattr(policy_fn, "reset"):
        act.reset = policy_fn.reset  # type: ignore[attr-defined]

    episodes = []
    attempts = successes = 0
    bar = ProgressBar(n, label=label) if progress else None
    while len(episodes) < n:
        if attempts >= max_attempts:
            if bar is not None:
                bar.close()
            raise TooFewSuccesses(
                f"only {len(episodes)}/{n} successful episodes after {attempts} attempts "
                f"(cap {max_attempts}); the expert's success rate is too low for --only_success: "
                f"raise --max_attempts_factor or drop --only_success; nothing written"
            )
        ep = run_episode(env, act, T, seed + attempts, keep_steps=steps is not None,
                         sim_states=sim_states)
        attempts += 1
        ok = bool(ep["info_is_success"][-1, 0] > 0.5)
        successes += ok
        if ok or not only_success:
            episodes.append(ep)
            if steps is not None:
                steps.append(ep["steps"])
        if bar is not None:
            bar.update(len(episodes), f"success {successes}/{attempts}")
    if bar is not None:
        bar.close()
    batch = {k: np.stack([ep[k] for ep in episodes]).astype(np.float32) for k in EPISODE_KEYS}
    if sim_states:
        batch["sim_state"] = np.stack([ep["sim_state"] for ep in episodes])
    return batch, {"attempts": attempts, "successes": successes, "kept": len(episodes)}


def check_env_id(env_id: str, extra_modules=()) -> Optional[str]:
    """None if ``env_id`` is a registered gymnasium id, else an error message with the closest
    registered ids (panda-gym and ``extra_modules`` are imported/registered first)."""
    import gymnasium

    for mod in ("panda_gym",) + tuple(extra_modules):
        try:
            with quiet_native_output():
                m = __import__(mod)
            if mod == "gymnasium_robotics":
                gymnasium.register_envs(m)
        except ImportError:
            pass
    if env_id in gymnasium.registry:
        return None
    close = difflib.get_close_matches(env_id, list(gymnasium.registry.keys()), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown environment {env_id!r}.{hint}"


def build_parser(description: str, env_required: bool = True,
                 env_help: str = "gymnasium env id") -> argparse.ArgumentParser:
    """The command line shared by the demo generators."""
    p = UserErrorParser(description=description)
    p.add_argument("--env", default=None, required=env_required, help=env_help)
    p.add_argument("--episodes", type=int, default=100, help="number of episodes to write (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    p.add_argument("--out", default=None, help="output .npz file (default demos_<env>_<episodes>.npz)")
    p.add_argument("--only_success", action="store_true", help="keep only successful episodes")
    p.add_argument("--noise", type=float, default=0.0, help="std of Gaussian action noise (default 0)")
    p.add_argument("--max_attempts_factor", type=int, default=10,
                   help="with --only_success, give up after this many times --episodes attempts")
    p.add_argument("--no_progress", action="store_true",
                   help="no progress bar (it is shown only when stderr is a terminal)")
    return p


def validate_args(p: argparse.ArgumentParser, args) -> None:
    if args.episodes <= 0:
        p.error(f"--episodes must be a positive integer, got {args.episodes}")
    if not np.isfinite(args.noise) or args.noise < 0:
        p.error(f"--noise must be a finite number >= 0, got {args.noise}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.max_attempts_factor < 1:
        p.error(f"--max_attempts_factor must be >= 1, got {args.max_attempts_factor}")
    if args.out is None:
        args.out = f"demos_{args.env}_{args.episodes}.npz"
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        p.error(f"--out: directory {out_dir!r} does not exist")
    if os.path.isdir(args.out):
        p.error(f"--out {args.out!r} is a directory; expected a .npz file name")


def generate(args, make_policy: Callable, make_env: Callable, fmt: str = "native") -> int:
    """Shared main body of the demo-generation CLIs. ``fmt`` is ``"native"`` (the file format
    above) or ``"baselines"``: the same episodes in baselines' layout
    (:func:`baselines_her.demo_convert.write_baselines`), from the env's own float64 values."""
    if fmt not in ("native", "baselines"):
        raise ValueError(f"fmt must be 'native' or 'baselines', got {fmt!r}")
    env = make_env(args.env)
    policy = make_policy(args.env)
    rng = np.random.default_rng(args.seed)
    steps: Optional[List[tuple]] = [] if fmt == "baselines" else None
    # The native file carries simulator states wherever they can be restored (panda-gym).
    with_states = fmt == "native" and sim_state.supported(env)
    try:
        batch, stats = record_episodes(
            env, policy, args.episodes, rng, args.only_success, seed=args.seed,
            noise=args.noise, max_attempts=args.max_attempts_factor * args.episodes,
            progress=not args.no_progress, label=f"{args.env} ", steps=steps,
            sim_states=with_states,
        )
    finally:
        env.close()
    if steps is None:
        path = save_episodes(args.out, batch)
    else:
        # Every episode ran exactly T = max_episode_steps steps, the limit of gym's TimeLimit.
        path = write_baselines(args.out, steps, time_limit=batch["u"].shape[1])
    rate = stats["successes"] / stats["attempts"]
    kept = f", kept {stats['kept']}" if args.only_success else ""
    print(f"expert success rate: {rate:.2f} ({stats['successes']}/{stats['attempts']} episodes{kept}) -> {path}")
    return 0


def require_expert_env(p: argparse.ArgumentParser, env_id: str) -> None:
    """``p.error`` unless ``env_id`` is a registered env with a scripted expert."""
    from panda_experts import make_expert, supported_env_ids

    err = check_env_id(env_id)
    if err:
        p.error(err)
    if make_expert(env_id) is None:
        p.error(f"no scripted expert for {env_id!r}; supported: {', '.join(supported_env_ids())}")


def _main(argv) -> int:
    from panda_experts import make_expert, supported_env_ids

    p = build_parser("Scripted expert demonstrations for panda-gym v3 tasks.",
                     env_help="panda-gym env id, one of: " + ", ".join(supported_env_ids()))
    args = p.parse_args(argv)
    require_expert_env(p, args.env)
    validate_args(p, args)
    return generate(args, make_expert, make_panda_env)


def main(argv=None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
