"""User-facing defaults (baselines' ``DEFAULT_PARAMS`` / ``DEFAULT_ENV_PARAMS``) and ``prepare_params``.

``prepare_params`` merges, in increasing precedence: ``DEFAULT_PARAMS`` < ``DEFAULT_ENV_PARAMS[env]``
< ``DEMO_DEFAULTS`` (with ``--demo_file``) < the ``algo`` preset (``--algo=td3``) < explicit
overrides (CLI ``--key=value``), checks every key
and type, derives ``T`` and ``gamma`` from the env, and returns one frozen :class:`Params`.
Module-level dicts are never mutated.
"""
from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from baselines_her.errors import UserError
from baselines_her.her_sampler import REPLAY_STRATEGIES

DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType({
    # run
    "env_name": "PandaReach-v3",
    "n_epochs": 50,
    "seed": 0,
    "logdir": "",  # '' -> logs/<env>-<algo>-seed<seed>
    "policy_save_interval": 5,  # policy_{epoch}.pkl every K epochs; 0 disables
    "num_threads": 0,  # TF intra/inter-op threads; 0 = TensorFlow's default
    "num_cpu": 1,  # MPI workers; >1 re-launches itself under the environment's mpiexec
    "jit_compile": True,  # XLA-compile the update (several updates per compiled call)
    "save_buffer": True,  # keep the replay buffer in the checkpoint (resume refills it otherwise)
    # step the training envs in a second process during the updates (one-process runs; MPI ranks
    # already fill the cores, so prepare_params turns it off there unless the flag is given)
    "rollout_process": True,
    # networks and optimisation (baselines values)
    "max_u": 1.0,
    "layers": 3,
    "hidden": 256,
    "Q_lr": 1e-3,
    "pi_lr": 1e-3,
    "buffer_size": 1_000_000,  # in transitions
    "polyak": 0.95,
    "action_l2": 1.0,
    "clip_obs": 200.0,
    "clip_return": True,  # clip critic targets to [-1/(1-gamma), 0]
    "gamma": 0.0,  # 0 -> 1 - 1/T, as baselines
    # training loop
    "n_cycles": 50,
    "rollout_batch_size": 2,
    "n_batches": 40,
    "batch_size": 256,
    "n_test_rollouts": 10,
    # exploration
    "random_eps": 0.3,
    "noise_eps": 0.2,
    # HER
    "replay_strategy": "future",
    "replay_k": 4,
    # observation normalisation
    "norm_eps": 0.01,
    "norm_clip": 5.0,
    # TD3 pieces; DDPG is TD3 with these off
    "algo": "ddpg",
    "n_critics": 1,
    "policy_delay": 1,
    "target_noise": 0.0,  # in units of max_u
    "target_noise_clip": 0.0,  # in units of max_u
    # prioritized replay: none, td (transition TD error), energy (episode trajectory energy)
    "prioritized": "none",
    "alpha": 0.6,
    "beta0": 0.4,
    "priority_eps": 1e-6,
    "clip_energy": 0.5,  # per-step energy increase cap for --prioritized=energy
    # demonstrations (Nair et al. 2018, baselines names and values); --demo_file turns bc_loss on
    "demo_file": "",
    "bc_loss": False,
    "q_filter": False,
    "num_demo": 100,
    "demo_batch_size": 128,
    "prm_loss_weight": 0.001,
    "aux_loss_weight": 0.0078,
    "demo_her": True,  # baselines relabels demo rows with HER like replay rows
    # resets to demonstration states (Nair et al. 2018): needs the demos' simulator states
    "demo_reset_prob": 0.0,
    # human buffer: a fixed share of every batch drawn from recorded human episodes
    "human_file": "",
    "human_ratio": 0.0,
    "human_her": True,
    "human_bc": False,
    "human_norm": True,  # human episodes update the observation/goal normalisers
})

ALGO_PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "ddpg": MappingProxyType({"n_critics": 1, "policy_delay": 1, "target_noise": 0.0,
                              "target_noise_clip": 0.0}),
    "td3": MappingProxyType({"n_critics": 2, "policy_delay": 2, "target_noise": 0.2,
                             "target_noise_clip": 0.5}),
})

# The parameters that name episode files (demo and human recordings).
EPISODE_FILE_KEYS = ("demo_file", "human_file")

# What --demo_file switches on unless a flag says otherwise: behaviour cloning with the Q-filter
# (Nair et al. 2018), TD3 and less exploration noise. Measured on PandaPickAndPlace-v3 with 100
# scripted demos (docs/results.md): baselines' DDPG with random_eps 0.3 / noise_eps 0.2 stays below
# 0.75 there, since almost no exploring episode succeeds and the critic sees few successes.
DEMO_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "bc_loss": True, "q_filter": True, "algo": "td3", "random_eps": 0.1, "noise_eps": 0.1})

PRIORITIZED = ("none", "td", "energy")


def _panda_env_params() -> dict:
    # Budgets per task (epochs of n_cycles x rollout_batch_size episodes). Reach needs few updates,
    # so its epochs are short to give a fine-grained curve and a quick default run.
    per_task = {
        "Reach": {"n_epochs": 10, "n_cycles": 10},
        "Push": {"n_epochs": 100},
        "Slide": {"n_epochs": 200},
        "PickAndPlace": {"n_epochs": 150},
        "Stack": {"n_epochs": 300},
        "Flip": {"n_epochs": 200},
    }
    out = {}
    for task, overrides in per_task.items():
        for control in ("", "Joints"):
            for reward in ("", "Dense"):
                out[f"Panda{task}{control}{reward}-v3"] = MappingProxyType(dict(overrides))
    return out


def _fetch_env_params() -> dict:
    per_task = {"Reach": {"n_epochs": 10, "n_cycles": 10}, "Push": {"n_epochs": 100},
                "Slide": {"n_epochs": 200}, "PickAndPlace": {"n_epochs": 150}}
    return {f"Fetch{task}-v4": MappingProxyType(dict(o)) for task, o in per_task.items()}


DEFAULT_ENV_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {**_panda_env_params(), **_fetch_env_params()})


class ConfigError(UserError, ValueError):
    """A bad key, value or combination in the configuration."""


class Params(Mapping):
    """Frozen, validated hyperparameters. Read as attributes (``params.batch_size``) or keys."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"Params has no key {key!r}") from None

    def __setattr__(self, key, value):
        raise AttributeError("Params are frozen; build a new one with prepare_params")

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Params({dict(self._values)!r})"

    def __reduce__(self):
        return (Params, (dict(self._values),))

    def to_json(self) -> str:
        return json.dumps(dict(self._values), indent=2, sort_keys=True)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``value`` (a CLI string or a Python value) to the type of ``default``."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value) if isinstance(value, str) else value
            if float(number) != int(number):
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError, OverflowError):
        pass
    raise ConfigError(f"--{key}={value!r}: expected {kind.__name__} (default {default!r})")


def _check_known(keys, source: str) -> None:
    unknown = sorted(set(keys) - set(DEFAULT_PARAMS))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, DEFAULT_PARAMS.keys(), n=3)
            hints.append(f"{key!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise ConfigError(f"unknown key(s) in {source}: {', '.join(hints)}. Valid keys: "
                          f"{', '.join(sorted(DEFAULT_PARAMS))}")


def _validate(p: dict) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    for key in ("n_epochs", "n_cycles", "rollout_batch_size", "batch_size", "layers", "hidden",
                "buffer_size", "n_critics", "policy_delay", "num_cpu"):
        need(p[key] >= 1, f"--{key} must be >= 1, got {p[key]}")
    for key in ("n_batches", "n_test_rollouts", "policy_save_interval", "num_threads", "replay_k",
                "seed", "num_demo", "demo_batch_size"):
        need(p[key] >= 0, f"--{key} must be >= 0, got {p[key]}")
    for key in ("random_eps", "polyak"):
        need(0.0 <= p[key] <= 1.0, f"--{key} must be in [0, 1], got {p[key]}")
    for key in ("Q_lr", "pi_lr", "max_u", "norm_eps", "norm_clip", "clip_obs"):
        need(p[key] > 0, f"--{key} must be > 0, got {p[key]}")
    for key in ("noise_eps", "action_l2", "target_noise", "target_noise_clip", "prm_loss_weight",
                "aux_loss_weight"):
        need(p[key] >= 0, f"--{key} must be >= 0, got {p[key]}")
    need(0.0 < p["gamma"] < 1.0, f"--gamma must be in (0, 1), got {p['gamma']}")
    need(p["replay_strategy"] in REPLAY_STRATEGIES,
         f"--replay_strategy must be one of {', '.join(REPLAY_STRATEGIES)}, got "
         f"{p['replay_strategy']!r}")
    need(p["prioritized"] in PRIORITIZED,
         f"--prioritized must be one of {', '.join(PRIORITIZED)}, got {p['prioritized']!r}")
    need(0.0 <= p["beta0"] <= 1.0, f"--beta0 must be in [0, 1], got {p['beta0']}")
    for key in ("alpha", "priority_eps", "clip_energy"):
        need(p[key] > 0, f"--{key} must be > 0, got {p[key]}")
    need(p["algo"] in ALGO_PRESETS,
         f"--algo must be one of {', '.join(ALGO_PRESETS)}, got {p['algo']!r}")
    need(0.0 <= p["human_ratio"] < 1.0, f"--human_ratio must be in [0, 1), got {p['human_ratio']}")
    need(not p["human_ratio"] or p["human_file"],
         f"--human_ratio={p['human_ratio']} needs --human_file=FILE.npz")
    need(not p["human_file"] or p["human_ratio"] > 0,
         "--human_file needs --human_ratio > 0 (the share of each batch drawn from it)")
    need(not p["q_filter"] or p["bc_loss"], "--q_filter=1 needs --bc_loss=1")
    need(not p["demo_file"] or p["num_demo"] >= 1,
         f"--num_demo must be >= 1 with --demo_file, got {p['num_demo']}")
    need(0.0 <= p["demo_reset_prob"] <= 1.0,
         f"--demo_reset_prob must be in [0, 1], got {p['demo_reset_prob']}")
    need(not p["demo_reset_prob"] or p["demo_file"],
         f"--demo_reset_prob={p['demo_reset_prob']} needs --demo_file=FILE.npz whose demos carry "
         f"simulator states (key 'sim_state', written by generate_demos.py)")
    need(not p["bc_loss"] or p["demo_file"] or (p["human_file"] and p["human_bc"]),
         "--bc_loss=1 needs --demo_file (or --human_file with --human_bc=1)")
    replay_rows = batch_rows(p)["replay"]
    need(replay_rows >= 1, f"--batch_size={p['batch_size']} leaves {replay_rows} replay rows after "
         f"demo ({p['demo_batch_size'] if p['demo_file'] else 0}) and human rows; raise it")
    need(not (p["rollout_process"] and p["num_cpu"] > 1),
         f"--rollout_process=1 is for one-process runs; with --num_cpu={p['num_cpu']} MPI ranks "
         f"the rollouts run in the ranks: drop the flag")
    need(p["buffer_size"] >= p["T"],
         f"--buffer_size ({p['buffer_size']}) must hold at least one episode of T={p['T']} steps")


def batch_rows(p: Mapping[str, Any]) -> dict:
    """Rows of each batch drawn from each source: replay, demo, human (DESIGN.md "Batches")."""
    demo = p["demo_batch_size"] if p["demo_file"] else 0
    human = int(round(p["human_ratio"] * p["batch_size"])) if p["human_file"] else 0
    return {"replay": p["batch_size"] - demo - human, "demo": demo, "human": human}


def prepare_params(env_name: str | None = None, overrides: Mapping[str, Any] | None = None,
                   T: int | None = None) -> Params:
    """Merge defaults, env defaults, the demo defaults (with ``demo_file``), algo preset and
    overrides into frozen, validated Params.

    ``T`` (episode length) is read from the env's registration unless given.
    """
    overrides = dict(overrides or {})
    _check_known(overrides, "overrides")
    env_name = env_name or overrides.get("env_name") or DEFAULT_PARAMS["env_name"]
    merged = dict(DEFAULT_PARAMS)
    merged.update(DEFAULT_ENV_PARAMS.get(env_name, {}))
    if overrides.get("demo_file"):
        merged.update(DEMO_DEFAULTS)
        if "bc_loss" in overrides and "q_filter" not in overrides:
            merged["q_filter"] = _coerce("bc_loss", overrides["bc_loss"], False)
    algo = _coerce("algo", overrides.get("algo", merged["algo"]), "")
    if algo in ALGO_PRESETS:
        merged.update(ALGO_PRESETS[algo])
    for key, value in overrides.items():
        merged[key] = _coerce(key, value, DEFAULT_PARAMS[key])
    merged["env_name"] = env_name
    for key in EPISODE_FILE_KEYS:  # absolute in params.json, so --resume works from any folder
        if merged[key]:
            merged[key] = os.path.abspath(merged[key])
    if "rollout_process" not in overrides and merged["num_cpu"] > 1:
        merged["rollout_process"] = False
    if merged["human_bc"] and "bc_loss" not in overrides:
        merged["bc_loss"] = True  # human rows are behaviour-cloned only with BC on
    if T is None:
        from baselines_her.envs import episode_length
        T = episode_length(env_name)
    merged["T"] = int(T)
    if merged["gamma"] == 0.0:
        merged["gamma"] = 1.0 - 1.0 / merged["T"]
    _validate(merged)
    return Params(merged)


# Flags that may differ from a run's params.json on --resume: they change how the run is watched,
# saved and executed, not the algorithm (n_epochs may only grow). num_threads and jit_compile
# change floating-point rounding, and jit_compile TD3's noise draws, so a run resumed with other
# values of these is not bit-identical to an uninterrupted one; nor is one resumed with another
# rollout_process, which decides whether rollouts use the actor of one cycle earlier.
RESUME_MUTABLE = ("n_epochs", "policy_save_interval", "num_threads", "logdir", "jit_compile",
                  "save_buffer", "rollout_process")


def prepare_resume_params(logdir: str, overrides: Mapping[str, Any] | None = None) -> Params:
    """The parameters of the run in ``logdir`` (its ``params.json``), for ``--resume``.

    ``overrides`` may extend ``n_epochs`` and change the keys in :data:`RESUME_MUTABLE`; any other
    key must equal the run's value, else :class:`ConfigError` names the flag and both values.
    """
    path = os.path.join(logdir, "params.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--resume: {path} not found; --logdir must name the folder of an "
                          f"earlier run (it holds params.json and checkpoint/)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume: cannot read {path} ({exc})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"--resume: {path} is not a JSON object of parameters")
    derived = ("T",)
    _check_known([k for k in saved if k not in derived], path)
    overrides = dict(overrides or {})
    _check_known(overrides, "overrides")
    merged = {**DEFAULT_PARAMS, **saved}  # keys added to DEFAULT_PARAMS after the run started
    if "rollout_process" not in saved:
        merged["rollout_process"] = False  # such a run stepped its envs in the learner's process
    for key, value in overrides.items():
        value = _coerce(key, value, DEFAULT_PARAMS[key])
        if key == "n_epochs" and value < saved.get("n_epochs", value):
            raise ConfigError(f"--n_epochs={value}: --resume may only extend a run; it was started "
                              f"with n_epochs={saved['n_epochs']} ({path})")
        if key in RESUME_MUTABLE:
            merged[key] = value
        elif value != merged[key]:
            raise ConfigError(f"--{'env' if key == 'env_name' else key}={value!r} differs from the "
                              f"run's {merged[key]!r} ({path}); --resume continues that run: drop "
                              f"the flag, or start a new run in another --logdir")
    merged["logdir"] = logdir
    for key in EPISODE_FILE_KEYS:
        name = merged[key]
        if name and not os.path.isabs(name) and not os.path.exists(name):
            raise ConfigError(f"--resume: {path} names {key}={name!r} relative to the folder the "
                              f"run was started from; resume from that folder")
    _validate(merged)
    return Params(merged)


def parse_cli_overrides(argv: list[str]) -> dict[str, str]:
    """``['--key=value', '--key2', 'value2']`` -> ``{'key': 'value', 'key2': 'value2'}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"expected --key=value, got {arg!r}")
        body = arg[2:]
        if "=" in body:
            key, value = body.split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            key, value = body, argv[i + 1]
            i += 1
        else:
            raise ConfigError(f"{arg} needs a value: {arg}=VALUE")
        key = key.replace("-", "_")
        out["env_name" if key == "env" else key] = value
        i += 1
    return out


# One line per key of DEFAULT_PARAMS: the --help of python -m baselines_her.her is built from it.
PARAM_HELP: Mapping[str, str] = MappingProxyType({
    "env_name": "gymnasium goal env id (panda-gym v3, or Fetch with the 'fetch' extra)",
    "n_epochs": "epochs to train; each is n_cycles cycles, then test rollouts, log and save",
    "seed": "seed of every RNG (envs, exploration, sampling, TensorFlow); MPI rank r uses "
            "seed + 1000000 * r",
    "logdir": "run folder for params.json, progress.csv, TensorBoard, checkpoint, policies "
              "('' = logs/<env>-<algo>-seed<seed>-<time>)",
    "policy_save_interval": "also keep policy_<epoch>.pkl every K epochs (0 = never)",
    "num_threads": "TensorFlow intra- and inter-op threads (0 = TensorFlow's choice; 1 = "
                   "deterministic ops)",
    "num_cpu": "MPI ranks; > 1 relaunches this command under the environment's mpiexec",
    "jit_compile": "XLA-compile the update step",
    "save_buffer": "store the replay buffer in each checkpoint (0 saves disk; a resumed run "
                   "then starts with an empty buffer)",
    "rollout_process": "step the training envs in a second process while the learner trains; "
                       "rollouts then use the actor of one cycle earlier (off under MPI)",
    "max_u": "action bound used by the actor (capped at the env's own bound)",
    "layers": "hidden layers of the actor and of each critic",
    "hidden": "units per hidden layer",
    "Q_lr": "critic learning rate (Adam)",
    "pi_lr": "actor learning rate (Adam)",
    "buffer_size": "replay buffer capacity in transitions",
    "polyak": "target networks: target = polyak * target + (1 - polyak) * online",
    "action_l2": "weight of the actor's penalty on mean (action / max_u)^2",
    "clip_obs": "clip observations and goals to [-clip_obs, clip_obs] before normalising",
    "clip_return": "clip critic targets to [-1/(1-gamma), 0]",
    "gamma": "discount factor (0 = 1 - 1/T, T the env's episode length)",
    "n_cycles": "cycles per epoch; a cycle is one batch of rollouts, then n_batches updates",
    "rollout_batch_size": "parallel envs per rank; each cycle collects one episode from each",
    "n_batches": "updates per cycle",
    "batch_size": "rows per update, all sources together (replay, demo, human)",
    "n_test_rollouts": "deterministic test episodes per epoch (test/success_rate)",
    "random_eps": "probability of a uniformly random action while collecting",
    "noise_eps": "std of the Gaussian action noise while collecting, in units of max_u",
    "replay_strategy": "HER goal relabelling: future, final, episode, random or none",
    "replay_k": "relabelled to real goals ratio: a row is relabelled with probability "
                "1 - 1/(1 + replay_k)",
    "norm_eps": "minimum std of the observation and goal normalisers",
    "norm_clip": "clip normalised observations and goals to [-norm_clip, norm_clip]",
    "algo": "ddpg or td3 (td3 presets n_critics, policy_delay, target_noise, "
            "target_noise_clip)",
    "n_critics": "critics; the target takes the minimum over them (2 = TD3's clipped double Q)",
    "policy_delay": "actor and target updates every K critic updates",
    "target_noise": "std of the target-policy smoothing noise, in units of max_u",
    "target_noise_clip": "clip of the target-policy smoothing noise, in units of max_u",
    "prioritized": "prioritized replay: none, td (|TD error| per transition) or energy "
                   "(trajectory energy per episode)",
    "alpha": "priority exponent: P(i) is proportional to (priority + priority_eps)^alpha",
    "beta0": "importance-weight exponent at the start; it anneals linearly to 1",
    "priority_eps": "added to every priority so that no row has probability 0",
    "clip_energy": "per-step energy increase cap of --prioritized=energy",
    "demo_file": "native .npz demo file: its episodes form a demo buffer (switches on "
                 "config.DEMO_DEFAULTS: BC + Q-filter, TD3, random_eps/noise_eps 0.1)",
    "bc_loss": "behaviour-cloning loss on the demo rows of each batch",
    "q_filter": "clone a demo action only where Q(s, a_demo) > Q(s, pi(s)) (needs bc_loss)",
    "num_demo": "episodes taken from --demo_file (its first num_demo)",
    "demo_batch_size": "rows of each batch drawn from the demo buffer",
    "prm_loss_weight": "weight of the RL actor loss when bc_loss is on",
    "aux_loss_weight": "weight of the behaviour-cloning loss when bc_loss is on",
    "demo_her": "relabel the demo rows with HER as well (off: demo rows keep the goals the "
                "demonstrator was given, so BC clones each action for the goal it was taken "
                "for)",
    "demo_reset_prob": "probability that a training episode starts from a random step of a "
                       "random demo (its goal too) instead of a reset; needs a --demo_file with "
                       "simulator states (panda-gym)",
    "human_file": "native .npz file of recorded human episodes, a fixed share of each batch",
    "human_ratio": "share of each batch drawn from --human_file, in [0, 1)",
    "human_her": "relabel the human rows with HER as well",
    "human_bc": "behaviour-cloning loss on the human rows (turns bc_loss on)",
    "human_norm": "human episodes update the observation and goal normalisers",
})
