"""Scripted demonstrations for gymnasium-robotics FetchPickAndPlace (port of baselines'
``her/experiment/data_generation/fetch_data_generation.py``).

    python experiment/data_generation/fetch_data_generation.py [--env FetchPickAndPlace-v4] \
        --episodes 100 --seed 0 --out data_fetch_random_100.npz [--only_success] [--noise 0.0] \
        [--format native|baselines]

Same idea as the baselines script (go above the block, go down with the gripper open, close it,
carry the block to the goal and hold it there), rewritten as a stateful expert. Every episode
runs exactly T = 50 steps. ``--format native`` (the default) writes the native demo format of
baselines_her (see ``generate_demos.py``): an ``.npz`` of float32 arrays ``o (B,T+1,25)``,
``ag (B,T+1,3)``, ``g (B,T,3)``, ``u (B,T,4)``, ``info_is_success (B,T,1)``, nothing pickled.
``--format baselines`` writes the same episodes in the layout of the baselines script,
``np.savez_compressed(f, acs=, obs=, info=)`` (:func:`baselines_her.demo_convert.write_baselines`:
the env's float64 observation dicts, the actions the env was stepped with, info dicts with
``is_success`` and ``TimeLimit.truncated`` on the last step), for tools that read that layout;
``python -m baselines_her.demo convert --from-baselines`` turns it into the native file.

Needs ``pip install gymnasium-robotics "mujoco>=3.1,<3.4"`` (3.3.7 works; the 3.17 release that
``mujoco<4`` resolves to breaks the Fetch envs' joint set-up with an AssertionError).

Fetch observation (25): gripper position (3), object position (3), object position relative to
the gripper (3), finger positions (2), object rotation (3), object linear velocity (3), object
angular velocity (3), gripper linear velocity (3), finger velocities (2). Action: gripper
displacement (3, scaled by 0.05 m) and finger command (+1 opens, -1 closes).
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from generate_demos import build_parser, check_env_id, generate, validate_args  # noqa: E402

from baselines_her.envs import quiet_native_output  # noqa: E402
from baselines_her.errors import UserError, run_cli  # noqa: E402

GRIP_POS = slice(0, 3)
OBJ_POS = slice(3, 6)
FINGERS = slice(9, 11)


def _move(cur, target, gain=10.0):
    a = gain * (np.asarray(target, dtype=np.float64) - np.asarray(cur, dtype=np.float64))
    m = np.max(np.abs(a))
    return a / m if m > 1.0 else a


class FetchPickAndPlaceExpert:
    """approach (above the block, open) -> descend -> grasp -> carry to the goal and hold."""

    half = 0.025  # half the block size

    def reset(self):
        self.phase = "approach"
        self.n = 0

    def __init__(self):
        self.reset()

    def __call__(self, obs):
        return np.clip(self.expert_action(obs), -1.0, 1.0).astype(np.float32)

    def expert_action(self, obs):
        o = obs["observation"].astype(np.float64)
        grip, obj = o[GRIP_POS], o[OBJ_POS]
        width = float(np.sum(o[FINGERS]))
        goal = obs["desired_goal"].astype(np.float64)
        to_obj = obj - grip

        if self.phase == "approach":
            if np.linalg.norm(to_obj[:2]) < 0.008 and width > 0.08:
                self.phase = "descend"
            else:
                above = np.r_[obj[:2], obj[2] + 0.04]
                return np.r_[_move(grip, above), 1.0]
        if self.phase == "descend":
            if np.linalg.norm(to_obj[:2]) > 0.02:
                self.phase = "approach"
                return np.r_[_move(grip, np.r_[obj[:2], grip[2]]), 1.0]
            if abs(to_obj[2]) < 0.008:
                self.phase, self.n = "grasp", 0
            else:
                return np.r_[_move(grip, obj), 1.0]
        if self.phase == "grasp":
            self.n += 1
            if self.n >= 3 and width < 2 * self.half + 0.004:
                self.phase = "carry"
            elif self.n > 6:  # closed on nothing
                self.phase = "approach"
            return np.r_[_move(grip, obj), -1.0]
        if self.phase == "carry":
            if np.linalg.norm(to_obj) > 0.03 or width < 2 * self.half - 0.015:
                self.phase = "approach"  # dropped it
                return np.r_[0.0, 0.0, 0.5, 1.0]
            err = goal - obj
            gain = 10.0 if np.linalg.norm(err) > 0.02 else 6.0
            return np.r_[_move(grip, goal - to_obj, gain=gain), -1.0]
        return np.r_[0.0, 0.0, 0.0, -1.0]


def newest_pick_and_place_id() -> str:
    """The newest registered FetchPickAndPlace version (e.g. FetchPickAndPlace-v4)."""
    import gymnasium

    best, best_v = None, -1
    for env_id in gymnasium.registry:
        m = re.fullmatch(r"FetchPickAndPlace-v(\d+)", env_id)
        if m and int(m.group(1)) > best_v:
            best, best_v = env_id, int(m.group(1))
    if best is None:
        raise UserError("no FetchPickAndPlace env is registered (is gymnasium-robotics installed?)")
    return best


def _register():
    try:
        import gymnasium
        with quiet_native_output():  # gymnasium_robotics prints a notice about old Adroit envs
            import gymnasium_robotics
    except ImportError as e:
        raise UserError(
            f"{e}. Install the Fetch dependencies: "
            'pip install gymnasium-robotics "mujoco>=3.1,<3.4"'
        ) from None
    gymnasium.register_envs(gymnasium_robotics)


def make_fetch_env(env_id: str):
    """A Fetch env (``baselines_her.envs.make_env``: an env that cannot be built, e.g. for a
    missing dependency, is an :class:`~baselines_her.envs.EnvError`)."""
    from baselines_her.envs import make_env

    return make_env(env_id)


def _main(argv) -> int:
    p = build_parser("Scripted FetchPickAndPlace demonstrations (baselines data generation).",
                     env_required=False,
                     env_help="gymnasium env id (default: the newest FetchPickAndPlace-vN registered)")
    p.add_argument("--format", choices=("native", "baselines"), default="native",
                   help="native: the baselines_her demo file (default); baselines: baselines' "
                        "acs/obs/info layout (pickled object arrays)")
    args = p.parse_args(argv)
    _register()
    if args.env is None:
        args.env = newest_pick_and_place_id()
    err = check_env_id(args.env, extra_modules=("gymnasium_robotics",))
    if err:
        p.error(err)
    if not re.fullmatch(r"FetchPickAndPlace(Dense)?-v\d+", args.env):
        p.error(f"the scripted expert only handles FetchPickAndPlace, not {args.env!r}")
    if args.out is None:
        args.out = f"data_fetch_random_{args.episodes}.npz"
    validate_args(p, args)
    return generate(args, lambda name: FetchPickAndPlaceExpert(), make_fetch_env, fmt=args.format)


def main(argv=None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
