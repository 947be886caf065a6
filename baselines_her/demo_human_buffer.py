"""Human buffers of the panda-gym DDPG+HER+human-VR system: ``convert --from-human-buffer``.

That system keeps its human demonstrations as a pickled (protocol 4) Python list, written under
panda-gym v2 (float64 arrays), in one of two layouts:

* **episode dicts**: one dict per episode with keys ``state`` (T+1 observations), ``action``
  (T actions), ``info`` (an empty list), ``achieved_goal`` and ``desired_goal`` (T+1 each),
  ``next_state`` (= ``state[1:]``) and ``next_achieved_goal`` (= ``achieved_goal[1:]``);
* **flat steps**: one dict per step with keys ``state, action, achieved_goal, desired_goal,
  next_state, next_achieved_goal`` and no episode boundaries. It is split into episodes of the
  env's T steps; within an episode ``next_state[t]`` must equal ``state[t+1]``, else the steps
  are not consecutive episodes of T steps and nothing is written.

Converting to the native file (:mod:`baselines_her.demo`):

* **dims** must fit the env: a buffer from a task variant with other dims (e.g. Push recorded
  with a free gripper: observation 19 / action 4, while PandaPush-v3 has 18 / 3) is refused.
* **actions** were stored before the env's action multiplier: the env executed
  ``action * [1, 1, 1, 0.3]`` and clipped it to [-1, 1]. They are multiplied by
  ``--action_scale`` (default ``1,1,1,0.3`` for 4-d actions, 1 for 3-d) and clipped as the env
  clipped them; the number of clipped values per component is reported.
* **stale step 0**: an episode whose ``desired_goal[0] != desired_goal[1]`` holds at index 0 of
  ``state``, ``achieved_goal`` and ``desired_goal`` the values of a reset that was discarded.
  ``--stale_step0 repair`` (default) takes ``desired_goal[0]`` and ``achieved_goal[0]`` from
  step 1 (the goal is fixed within an episode; the object has not been touched yet) and the
  task part of ``state[0]`` (everything after the robot's own observation) from step 1, keeping
  the robot part, which every reset sets to the same home pose (for envs without a panda-gym
  robot the whole ``state[0]`` comes from step 1). ``--stale_step0 drop`` drops those episodes.
  The count is reported either way.
* **is_success** is not stored (``info`` is empty): it is recomputed from the env's sparse reward
  on ``(achieved_goal[t+1], desired_goal[t])``. The buffer held successful episodes only, so the
  number that do not end in success is reported.

The file is UNPICKLED, which executes code stored in it; the reader says so first. Progress and
notes go through the ``baselines_her`` logger (:mod:`baselines_her.logger`).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from baselines_her.demo import DemoError, env_spec, open_env, save_episodes, validate_episodes
from baselines_her.demo_convert import stack, unpickle, vector
from baselines_her.logger import LOG

EPISODE_DICT_KEYS = ("state", "action", "info", "achieved_goal", "desired_goal", "next_state",
                     "next_achieved_goal")
FLAT_STEP_KEYS = ("state", "action", "achieved_goal", "desired_goal", "next_state",
                  "next_achieved_goal")
DEFAULT_ACTION_SCALE = (1.0, 1.0, 1.0, 0.3)
STALE_CHOICES = ("repair", "drop")


def parse_action_scale(text: Optional[str]) -> Optional[tuple]:
    """``--action_scale``: one number or comma-separated numbers per action component."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise DemoError(f"--action_scale must be numbers separated by commas (e.g. 1,1,1,0.3), "
                        f"got {text!r}") from None
    if not all(np.isfinite(values)):
        raise DemoError(f"--action_scale must be finite numbers, got {text!r}")
    return values


def _rows(seq, where: str) -> np.ndarray:
    if not isinstance(seq, (list, tuple, np.ndarray)) or len(seq) == 0:
        raise DemoError(f"{where}: expected a non-empty list of vectors, got "
                        f"{type(seq).__name__}")
    return stack([vector(x, where) for x in seq], where)


def _from_episode_dicts(data: list, src: str) -> list:
    episodes, mismatched = [], 0
    for e, ep in enumerate(data):
        where = f"{src}: episode {e}"
        if not isinstance(ep, dict) or any(k not in ep for k in EPISODE_DICT_KEYS):
            got = sorted(ep) if isinstance(ep, dict) else type(ep).__name__
            raise DemoError(f"{where}: expected a dict with keys {', '.join(EPISODE_DICT_KEYS)}, "
                            f"got {got}")
        arr = {k: _rows(ep[k], f"{where} {k!r}") for k in EPISODE_DICT_KEYS if k != "info"}
        T = len(arr["action"])
        for k in ("state", "achieved_goal", "desired_goal"):
            if len(arr[k]) != T + 1:
                raise DemoError(f"{where}: {k!r} has {len(arr[k])} entries for {T} actions; "
                                f"expected T+1 = {T + 1}")
        for k, of in (("next_state", "state"), ("next_achieved_goal", "achieved_goal")):
            if arr[k].shape != arr[of][1:].shape:
                raise DemoError(f"{where}: {k!r} has shape {arr[k].shape}, expected "
                                f"{arr[of][1:].shape} ({of}[1:])")
            mismatched += int(np.sum(~np.isclose(arr[k], arr[of][1:], atol=1e-6).all(axis=1)))
        episodes.append({"state": arr["state"], "action": arr["action"],
                         "achieved_goal": arr["achieved_goal"],
                         "desired_goal": arr["desired_goal"]})
    if mismatched:
        LOG.info(f"note: {mismatched} 'next_state'/'next_achieved_goal' entries differ from "
                 f"'state'/'achieved_goal' one step later; 'state' and 'achieved_goal' were "
                 f"used")
    return episodes


def _from_flat_steps(data: list, src: str, T: int, env_name: str) -> list:
    n = len(data)
    if n % T:
        raise DemoError(f"{src}: flat layout with {n} steps, not a multiple of T={T} (the horizon "
                        f"of {env_name}); it is split into episodes of T steps")
    arr = {k: [] for k in FLAT_STEP_KEYS}
    for i, step in enumerate(data):
        if not isinstance(step, dict) or any(k not in step for k in FLAT_STEP_KEYS):
            got = sorted(step) if isinstance(step, dict) else type(step).__name__
            raise DemoError(f"{src}: step {i}: expected a dict with keys "
                            f"{', '.join(FLAT_STEP_KEYS)}, got {got}")
        for k in FLAT_STEP_KEYS:
            arr[k].append(vector(step[k], f"{src}: step {i} {k!r}"))
    arr = {k: stack(v, f"{src}: {k!r}") for k, v in arr.items()}
    episodes = []
    for e in range(n // T):
        s = slice(e * T, (e + 1) * T)
        state, nxt = arr["state"][s], arr["next_state"][s]
        if state.shape != nxt.shape:
            raise DemoError(f"{src}: 'state' and 'next_state' have sizes {state.shape[1]} and "
                            f"{nxt.shape[1]}")
        broken = ~np.isclose(nxt[:-1], state[1:], atol=1e-6).all(axis=1)
        if broken.any():
            t = int(np.argmax(broken))
            raise DemoError(f"{src}: flat layout split into episodes of T={T}: step {e * T + t} "
                            f"(episode {e}, t={t}) has a 'next_state' that is not the 'state' of "
                            f"step {e * T + t + 1}; the steps are not consecutive episodes of "
                            f"{T} steps")
        episodes.append({"state": np.concatenate([state, nxt[-1:]]),
                         "action": arr["action"][s],
                         "achieved_goal": np.concatenate([arr["achieved_goal"][s],
                                                          arr["next_achieved_goal"][s][-1:]]),
                         "desired_goal": np.concatenate([arr["desired_goal"][s],
                                                         arr["desired_goal"][s][-1:]])})
    return episodes


def _check_fit(episodes: list, src: str, spec, env_name: str) -> None:
    ep = episodes[0]
    have = (ep["state"].shape[1], ep["action"].shape[1], ep["desired_goal"].shape[1])
    want = (spec.dim_o, spec.dim_u, spec.dim_g)
    if have != want:
        hint = ""
        if have[0] == want[0] + 1 and have[1] == want[1] + 1:
            hint = ("; a buffer recorded with a free gripper has one more observation and action "
                    "dim than an env with a blocked one")
        raise DemoError(f"{src}: the buffer has observation {have[0]} / action {have[1]} / goal "
                        f"{have[2]}, {env_name} has observation {want[0]} / action {want[1]} / "
                        f"goal {want[2]}: they do not fit{hint}")
    for e, ep in enumerate(episodes):
        if len(ep["action"]) != spec.T:
            raise DemoError(f"{src}: episode {e} has {len(ep['action'])} steps, the horizon of "
                            f"{env_name} is T={spec.T}")
        shapes = (ep["state"].shape[1], ep["action"].shape[1], ep["desired_goal"].shape[1],
                  ep["achieved_goal"].shape[1])
        if shapes != want + (spec.dim_g,):
            raise DemoError(f"{src}: episode {e} has observation / action / goal / achieved goal "
                            f"dims {shapes}, episode 0 has {want + (spec.dim_g,)}")


def fix_stale_step0(episodes: list, stale: str, robot_dims: int) -> list:
    """Repair or drop episodes whose step 0 is stale (module docstring); report the count."""
    stale_idx = [e for e, ep in enumerate(episodes)
                 if not np.allclose(ep["desired_goal"][0], ep["desired_goal"][1], atol=1e-6)]
    if not stale_idx:
        return episodes
    first = ", ".join(map(str, stale_idx[:5])) + (", ..." if len(stale_idx) > 5 else "")
    said = (f"{len(stale_idx)}/{len(episodes)} episode(s) have a stale step 0 (desired_goal[0] "
            f"!= desired_goal[1]: index 0 comes from a discarded reset; episodes {first})")
    if stale == "drop":
        LOG.info(f"note: {said}: dropped (--stale_step0 drop)")
        dropped = set(stale_idx)
        return [ep for e, ep in enumerate(episodes) if e not in dropped]
    for e in stale_idx:
        ep = episodes[e]
        ep["desired_goal"][0] = ep["desired_goal"][1]
        ep["achieved_goal"][0] = ep["achieved_goal"][1]
        ep["state"][0, robot_dims:] = ep["state"][1, robot_dims:]
    part = (f"observation dims {robot_dims}.. (after the robot's {robot_dims})" if robot_dims
            else "the whole observation")
    LOG.info(f"note: {said}: repaired from step 1 (desired_goal, achieved_goal and {part} at "
             f"index 0 taken from index 1; --stale_step0 drop drops them instead)")
    return episodes


def scale_actions(u: np.ndarray, scale: Optional[Sequence[float]], max_u: float) -> np.ndarray:
    """Stored actions (B, T, du) to env units: times ``scale``, clipped to [-max_u, max_u]."""
    du = u.shape[2]
    if scale is None:
        scale = DEFAULT_ACTION_SCALE if du == 4 else (1.0,) * du
    elif len(scale) == 1:
        scale = tuple(scale) * du
    if len(scale) != du:
        raise DemoError(f"--action_scale has {len(scale)} values, the actions have {du} "
                        f"components; give {du} numbers or one")
    u = u * np.asarray(scale, np.float64)
    over = np.abs(u) > max_u
    names = ("x", "y", "z", "gripper") if du == 4 else tuple(f"u{i}" for i in range(du))
    per = ", ".join(f"{names[i]} {int(over[..., i].sum())}" for i in range(du))
    listed = ",".join(f"{v:g}" for v in scale)
    if over.any():
        LOG.info(f"note: actions scaled by {listed}; {int(over.sum())} value(s) outside "
                 f"[-{max_u:g}, {max_u:g}] clipped, as the env clipped them ({per}; max |u| "
                 f"{np.abs(u).max():.3g})")
    else:
        LOG.info(f"note: actions scaled by {listed}; none outside [-{max_u:g}, {max_u:g}]")
    return np.clip(u, -max_u, max_u)


def read_human_buffer(src: str, spec, env_name: str, action_scale: Optional[Sequence] = None,
                      stale: str = "repair", robot_dims: int = 0) -> dict:
    """Episode batch (float64, native keys) from a human buffer, checked against ``spec``."""
    if stale not in STALE_CHOICES:
        raise DemoError(f"--stale_step0 must be one of {', '.join(STALE_CHOICES)}, got {stale!r}")
    if spec.distance_threshold is None:
        raise DemoError(f"--env {env_name}: is_success is recomputed from the env's sparse "
                        f"reward, and {env_name} has none; use its sparse variant")
    data = unpickle(src, "human buffer")
    if not isinstance(data, (list, tuple)) or not data:
        raise DemoError(f"{src}: expected a non-empty pickled list of episode dicts or of step "
                        f"dicts, got {type(data).__name__}"
                        f"{' (empty)' if isinstance(data, (list, tuple)) else ''}")
    head = data[0]
    if not isinstance(head, dict) or "state" not in head:
        raise DemoError(f"{src}: item 0 is {type(head).__name__}"
                        f"{' with keys ' + str(sorted(head)) if isinstance(head, dict) else ''};"
                        f" expected episode dicts ({', '.join(EPISODE_DICT_KEYS)}) or step dicts "
                        f"({', '.join(FLAT_STEP_KEYS)})")
    if np.ndim(np.asarray(head["state"], dtype=object)) >= 2 or "info" in head:
        episodes = _from_episode_dicts(data, src)
        layout = f"{len(episodes)} episode dicts"
    else:
        episodes = _from_flat_steps(data, src, spec.T, env_name)
        layout = f"flat layout, {len(data)} steps split into {len(episodes)} episodes of T={spec.T}"
    LOG.info(f"{src}: {layout}")
    _check_fit(episodes, src, spec, env_name)
    episodes = fix_stale_step0(episodes, stale, robot_dims)
    if not episodes:
        raise DemoError(f"{src}: no episode left after --stale_step0 drop")
    ag = np.stack([ep["achieved_goal"] for ep in episodes])
    g = np.stack([ep["desired_goal"][:-1] for ep in episodes])
    u = scale_actions(np.stack([ep["action"] for ep in episodes]), action_scale, spec.max_u)
    n, T = u.shape[:2]
    reward = spec.compute_reward(ag[:, 1:].reshape(n * T, -1).astype(np.float32),
                                 g.reshape(n * T, -1).astype(np.float32))
    success = (reward.reshape(n, T, 1) == 0).astype(np.float32)
    ok = int(success[:, -1, 0].sum())
    warn = "" if ok == n else (f"; {n - ok} do not: a human buffer holds successful episodes, "
                               f"check --env and --action_scale")
    LOG.info(f"is_success recomputed with the reward of {env_name}: {ok}/{n} episodes end in "
             f"success{warn}")
    return {"o": np.stack([ep["state"] for ep in episodes]), "ag": ag, "g": g, "u": u,
            "info_is_success": success}


def convert_human_buffer(src: str, dst: str, env_name: str,
                         action_scale: Optional[Sequence] = None, stale: str = "repair") -> str:
    """Read a human buffer, check it against ``env_name`` and write the native file."""
    if not os.path.isfile(src):
        raise DemoError(f"{src}: no such file")
    env = open_env(env_name)
    try:
        spec = env_spec(env_name, env)
        robot = getattr(env.unwrapped, "robot", None)
        robot_dims = len(robot.get_obs()) if robot is not None and hasattr(robot, "get_obs") \
            else 0
    finally:
        env.close()
    batch = read_human_buffer(src, spec, env_name, action_scale, stale, robot_dims)
    batch = validate_episodes(batch, spec.T, spec.dim_o, spec.dim_g, spec.dim_u,
                              f"converted {src}", env_name)
    path = save_episodes(dst, batch)
    n = batch["u"].shape[0]
    LOG.info(f"converted {n} episodes of T={spec.T} steps for {env_name} -> {path}")
    return path
