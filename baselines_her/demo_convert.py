"""Importers of pickled demo formats, for ``python -m baselines_her.demo convert``, the writer
of baselines' demo layout (:func:`write_baselines`, for ``fetch_data_generation.py --format
baselines``), and the unpickling and vector helpers that the human-buffer importer
(:mod:`baselines_her.demo_human_buffer`) shares.

``convert --from-baselines`` reads the format of baselines' ``fetch_data_generation.py``
(``np.savez_compressed(file, acs=..., obs=..., info=...)``): ``obs[e]`` is the list of the T+1
observation dicts (``observation``, ``achieved_goal``, ``desired_goal``) of episode ``e``,
``acs[e]`` its T actions and ``info[e]`` its T info dicts (``is_success``).
``convert --from-pickle-episodes`` reads a pickled list of episodes, each a list of transition
dicts with keys ``state, action, info, achieved_goal, desired_goal, next_state,
next_achieved_goal`` (``state`` may also be a goal-env observation dict). Both need every episode
to have the same number of steps (``--T N`` keeps the first N of each); actions outside the env's
bound [-max_u, max_u] (1 without ``--env``) are clipped, as the env clipped them when they ran.

Both formats are UNPICKLED, which executes code stored in the file; every reader says so first.
Progress and notes go through the ``baselines_her`` logger (:mod:`baselines_her.logger`; INFO,
printed as they are by default). A pickled list of episode *dicts* (the human-buffer layout) is
pointed to ``--from-human-buffer``.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from baselines_her.atomic import atomic_open
from baselines_her.demo import (BASELINES_KEYS, DemoError, env_spec, save_episodes,
                                validate_episodes)
from baselines_her.logger import LOG
from baselines_her.replay_buffer import EPISODE_KEYS

OBS_KEYS = ("observation", "achieved_goal", "desired_goal")
PICKLE_EPISODE_KEYS = ("state", "action", "info", "achieved_goal", "desired_goal", "next_state",
                       "next_achieved_goal")


def say_unpickling(src: str, fmt: str) -> None:
    LOG.info(f"unpickling {src} ({fmt}): this executes code stored in the file; convert only "
             f"files you trust")


# What unpickling a damaged or foreign file raises (its classes missing, truncated, garbage).
_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
                    KeyError, TypeError, ValueError)


def unpickle(src: str, fmt: str):
    """Say that ``src`` is unpickled (through the logger), then unpickle it."""
    say_unpickling(src, fmt)
    try:
        with open(src, "rb") as fh:
            return pickle.load(fh)
    except OSError as e:
        raise DemoError(f"{src}: cannot read ({e})") from None
    except _UNPICKLE_ERRORS as e:
        raise DemoError(f"{src}: not a readable pickle ({type(e).__name__}: {e})") from None


def vector(x, where: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DemoError(f"{where}: expected a vector of numbers, got {type(x).__name__} "
                        f"({e})") from None
    return a


def stack(rows: list, where: str) -> np.ndarray:
    try:
        return np.stack(rows)
    except ValueError:
        sizes = sorted({r.shape[0] for r in rows})
        raise DemoError(f"{where}: vectors of different sizes {sizes}") from None


def _common_length(lengths: list, T: Optional[int], src: str, what: str) -> int:
    lo, hi = min(lengths), max(lengths)
    if T is None:
        if lo != hi:
            short = [i for i, n in enumerate(lengths) if n == lo][:5]
            raise DemoError(f"{src}: episodes must all have T steps, but they have {lo} to {hi} "
                            f"{what} (episode(s) {short} have {lo}); pass --T {lo} to keep the "
                            f"first {lo} steps of each")
        return lo
    if T < 1:
        raise DemoError(f"--T must be a positive integer, got {T}")
    if T > lo:
        short = [i for i, n in enumerate(lengths) if n < T][:5]
        raise DemoError(f"{src}: episode(s) {short} have only {lo} {what}, fewer than T={T}; "
                        f"episodes must all have at least T steps")
    longer = [i for i, n in enumerate(lengths) if n > T]
    if longer:
        LOG.info(f"note: {len(longer)} episode(s) with more than T={T} {what} (up to {hi}; "
                 f"episode(s) {longer[:5]}{' ...' if len(longer) > 5 else ''}) trimmed to their "
                 f"first {T}")
    return T


def _finish(batch_lists: dict, src: str, max_u: float) -> dict:
    batch = {k: np.asarray(v, dtype=np.float32) for k, v in batch_lists.items()}
    over = np.abs(batch["u"]) > max_u
    if over.any():
        LOG.info(f"note: {int(over.sum())} action value(s) outside [-{max_u:g}, {max_u:g}] "
                 f"clipped (the env clipped them when they ran; max |u| was "
                 f"{np.abs(batch['u']).max():.3g})")
        batch["u"] = np.clip(batch["u"], -max_u, max_u)
    return batch


def read_baselines_demo(src: str, T: Optional[int] = None, max_u: float = 1.0) -> dict:
    """Episode batch from a baselines demo file (``obs``, ``acs``, ``info`` object arrays).

    Unpickles the file (says so through the logger first). ``obs[e]`` holds T+1 observation
    dicts, ``acs[e]`` T actions and ``info[e]`` T info dicts with ``is_success``.
    """
    say_unpickling(src, "baselines demo file")
    try:
        data = np.load(src, allow_pickle=True)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise DemoError(f"{src}: cannot read as a baselines demo .npz ({type(e).__name__}: "
                        f"{e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DemoError(f"{src}: a single .npy array, expected an .npz with keys "
                        f"{', '.join(BASELINES_KEYS)}")
    with data:
        missing = [k for k in BASELINES_KEYS if k not in data.files]
        if missing:
            raise DemoError(f"{src}: missing key(s) {missing}; a baselines demo file has "
                            f"{list(BASELINES_KEYS)} (keys found: {sorted(data.files)})")
        obs, acs, info = (data[k] for k in BASELINES_KEYS)
    n = len(obs)
    if len(acs) != n or len(info) != n:
        raise DemoError(f"{src}: inconsistent episode counts: 'obs' has {n}, 'acs' {len(acs)}, "
                        f"'info' {len(info)}")
    if n == 0:
        raise DemoError(f"{src}: holds 0 episodes")
    episodes = []
    for e in range(n):
        ob, ac, inf = list(obs[e]), list(acs[e]), list(info[e])
        if len(ob) != len(ac) + 1:
            raise DemoError(f"{src}: episode {e} has {len(ob)} observations and {len(ac)} "
                            f"actions; expected T+1 observations for T actions")
        if len(inf) != len(ac):
            raise DemoError(f"{src}: episode {e} has {len(inf)} info dicts and {len(ac)} actions;"
                            f" expected one info dict per action")
        episodes.append((ob, ac, inf))
    T = _common_length([len(ep[1]) for ep in episodes], T, src, "actions")
    lists = {k: [] for k in EPISODE_KEYS}
    for e, (ob, ac, inf) in enumerate(episodes):
        o, ag, g = [], [], []
        for t in range(T + 1):
            d = ob[t]
            where = f"{src}: 'obs' episode {e} step {t}"
            if not isinstance(d, dict) or any(k not in d for k in OBS_KEYS):
                got = sorted(d) if isinstance(d, dict) else type(d).__name__
                raise DemoError(f"{where}: expected a dict with keys observation, achieved_goal,"
                                f" desired_goal, got {got}")
            o.append(vector(d["observation"], where))
            ag.append(vector(d["achieved_goal"], where))
            if t < T:
                g.append(vector(d["desired_goal"], where))
        succ = []
        for t in range(T):
            d = inf[t]
            if not isinstance(d, dict) or "is_success" not in d:
                got = sorted(d) if isinstance(d, dict) else type(d).__name__
                raise DemoError(f"{src}: 'info' episode {e} step {t}: expected a dict with key "
                                f"is_success, got {got}")
            succ.append([float(d["is_success"])])
        lists["o"].append(stack(o, f"{src}: 'obs' episode {e} observation"))
        lists["ag"].append(stack(ag, f"{src}: 'obs' episode {e} achieved_goal"))
        lists["g"].append(stack(g, f"{src}: 'obs' episode {e} desired_goal"))
        lists["u"].append(stack([vector(a, f"{src}: 'acs' episode {e} step {t}")
                                  for t, a in enumerate(ac[:T])], f"{src}: 'acs' episode {e}"))
        lists["info_is_success"].append(succ)
    for k in ("o", "ag", "g", "u"):
        lists[k] = stack(lists[k], f"{src}: key {k!r} across episodes")
    return _finish(lists, src, max_u)


def to_baselines_layout(episodes: Iterable[Tuple[Sequence[dict], Sequence, Sequence[dict]]],
                        time_limit: int) -> dict:
    """The arrays baselines' ``fetch_data_generation.py`` saved, from episodes as the env
    returned them.

    ``episodes`` yields ``(observations, actions, infos)`` per episode: the T+1 observation dicts
    (reset first), the T actions the env was stepped with and the T info dicts it returned.
    Returns ``{"acs", "obs", "info"}`` as numpy made them from baselines' per-episode lists:
    observation dicts with float64 copies of ``observation``, ``achieved_goal`` and
    ``desired_goal`` (the env's values), actions as lists of floats, info dicts with
    ``is_success`` as ``np.float32`` and, from step ``time_limit`` on,
    ``TimeLimit.truncated = True`` (what gym's ``TimeLimit`` added). With equal episode lengths
    ``acs`` is a float64 (N, T, du) array and ``obs``/``info`` are (N, T+1)/(N, T) object arrays;
    with unequal ones each key is an (N,) object array of lists.
    """
    acs, obs, info = [], [], []
    for observations, actions, infos in episodes:
        if len(observations) != len(actions) + 1 or len(infos) != len(actions):
            raise ValueError(f"an episode needs T+1 observations and T info dicts for T actions, "
                             f"got {len(observations)}, {len(infos)} and {len(actions)}")
        obs.append([{k: np.array(d[k], dtype=np.float64) for k in OBS_KEYS}
                    for d in observations])
        acs.append([[float(x) for x in np.asarray(a, dtype=np.float64).reshape(-1)]
                    for a in actions])
        steps = []
        for t, d in enumerate(infos):
            step = {**d, "is_success": np.float32(d["is_success"])}
            if t + 1 >= time_limit:
                step["TimeLimit.truncated"] = True
            steps.append(step)
        info.append(steps)
    if not acs:
        raise ValueError("no episodes to write")
    equal = len({len(a) for a in acs}) == 1
    return {"acs": np.array(acs) if equal else np.array(acs, dtype=object),
            "obs": np.array(obs, dtype=object), "info": np.array(info, dtype=object)}


def write_baselines(path, episodes: Iterable[Tuple[Sequence[dict], Sequence, Sequence[dict]]],
                    time_limit: int) -> str:
    """Write :func:`to_baselines_layout` of ``episodes`` as baselines did
    (``np.savez_compressed(f, acs=, obs=, info=)``), atomically; ``.npz`` is appended when
    missing. Returns the path. ``convert --from-baselines`` reads the file back."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = to_baselines_layout(episodes, time_limit)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise DemoError(f"{path}: directory {directory} does not exist")
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, acs=arrays["acs"], obs=arrays["obs"], info=arrays["info"])
    return path


def read_pickle_episodes(src: str, T: Optional[int] = None, max_u: float = 1.0) -> dict:
    """Episode batch from a pickled list of episodes of transition dicts (see module docstring).

    Unpickles the file (says so through the logger first).
    """
    episodes = unpickle(src, "pickled episode list")
    if not isinstance(episodes, (list, tuple)):
        raise DemoError(f"{src}: expected a pickled list of episodes (each a list of transition "
                        f"dicts), got {type(episodes).__name__}")
    if not episodes:
        raise DemoError(f"{src}: holds 0 episodes")
    for e, ep in enumerate(episodes):
        if isinstance(ep, dict) and "state" in ep:
            raise DemoError(f"{src}: episode {e} is a dict with keys {sorted(ep)}: this is the "
                            f"human-buffer layout; convert it with `--from-human-buffer {src} "
                            f"OUT.npz --env ENV`")
        if not isinstance(ep, (list, tuple)) or not ep:
            raise DemoError(f"{src}: episode {e} is {type(ep).__name__}"
                            f"{' (empty)' if isinstance(ep, (list, tuple)) else ''}, expected a "
                            f"non-empty list of transition dicts")
    T = _common_length([len(ep) for ep in episodes], T, src, "steps")

    def state_vec(x, where):
        if isinstance(x, dict):  # a goal-env observation dict
            if "observation" not in x:
                raise DemoError(f"{where}: state dict has keys {sorted(x)}, expected "
                                f"'observation'")
            x = x["observation"]
        return vector(x, where)

    lists = {k: [] for k in EPISODE_KEYS}
    mismatches = 0
    for e, ep in enumerate(episodes):
        o, ag, g, u, succ = [], [], [], [], []
        for t, tr in enumerate(ep[:T]):
            where = f"{src}: episode {e} step {t}"
            if not isinstance(tr, dict) or any(k not in tr for k in PICKLE_EPISODE_KEYS):
                got = sorted(tr) if isinstance(tr, dict) else type(tr).__name__
                raise DemoError(f"{where}: expected a transition dict with keys "
                                f"{', '.join(PICKLE_EPISODE_KEYS)}, got {got}")
            info = tr["info"]
            if not isinstance(info, dict) or "is_success" not in info:
                raise DemoError(f"{where}: 'info' must be a dict with key is_success")
            o.append(state_vec(tr["state"], where))
            ag.append(vector(tr["achieved_goal"], where))
            g.append(vector(tr["desired_goal"], where))
            u.append(vector(tr["action"], where))
            succ.append([float(info["is_success"])])
            if t > 0:
                prev = ep[t - 1]
                nxt = state_vec(prev["next_state"], where)
                if nxt.shape != o[-1].shape or not np.allclose(nxt, o[-1], atol=1e-5):
                    mismatches += 1
        o.append(state_vec(ep[T - 1]["next_state"], f"{src}: episode {e} step {T - 1}"))
        ag.append(vector(ep[T - 1]["next_achieved_goal"], f"{src}: episode {e} step {T - 1}"))
        lists["o"].append(stack(o, f"{src}: episode {e} 'state'"))
        lists["ag"].append(stack(ag, f"{src}: episode {e} 'achieved_goal'"))
        lists["g"].append(stack(g, f"{src}: episode {e} 'desired_goal'"))
        lists["u"].append(stack(u, f"{src}: episode {e} 'action'"))
        lists["info_is_success"].append(succ)
    if mismatches:
        LOG.info(f"note: {mismatches} transition(s) whose 'state' differs from the previous "
                 f"transition's 'next_state'; 'state' was used")
    for k in ("o", "ag", "g", "u"):
        lists[k] = stack(lists[k], f"{src}: key {k!r} across episodes")
    return _finish(lists, src, max_u)


def convert(kind: str, src: str, dst: str, env_name: Optional[str] = None,
            T: Optional[int] = None) -> str:
    """``kind`` is ``"baselines"`` or ``"pickle-episodes"``. With ``env_name`` the result is
    checked against the env (horizon, dims) before anything is written. Returns the path."""
    if not os.path.isfile(src):
        raise DemoError(f"{src}: no such file")
    spec = env_spec(env_name) if env_name else None
    if spec is not None and T is None:
        T = spec.T
    max_u = spec.max_u if spec is not None else 1.0
    reader = {"baselines": read_baselines_demo, "pickle-episodes": read_pickle_episodes}[kind]
    batch = reader(src, T=T, max_u=max_u)
    if spec is not None:
        batch = validate_episodes(batch, spec.T, spec.dim_o, spec.dim_g, spec.dim_u,
                                  f"converted {src}", env_name)
    path = save_episodes(dst, batch)
    n, T_ = batch["u"].shape[:2]
    rate = float(batch["info_is_success"][:, -1, 0].mean())
    LOG.info(f"converted {n} episodes of T={T_} steps (do={batch['o'].shape[2]}, "
             f"dg={batch['g'].shape[2]}, du={batch['u'].shape[2]}, final success rate "
             f"{rate:.2f}) -> {path}")
    return path
