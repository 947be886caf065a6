"""Capture and restore the simulator state of a panda-gym v3 env, one float64 vector per step.

Demo files carry these vectors (key ``sim_state``, see :mod:`baselines_her.demo`) so that a
training episode can start from any step of a demonstration (``--demo_reset_prob``, Nair et al.
2018). The vector of an env is, in this order::

    robot joint angles       (nj)   the robot's ``joint_indices``: Panda's 7 arm joints + 2 fingers
    robot joint velocities   (nj)
    per body, every body of the sim except the robot, in creation order (plane, table, the
    task's objects and targets):
        position (3), orientation quaternion x y z w (4), linear velocity (3),
        angular velocity (3)
    task goal                (dg)   ``task.goal``, the desired goal

so ``S = 2 nj + 13 n_bodies + dg`` (PandaReach 60, Push/Slide/PickAndPlace 73, Stack 102).
:func:`restore` writes all of it back with PyBullet's reset calls and returns the env's own
observation (``_get_obs``). Two things are not restored, so steps after a restore track the
recorded ones closely but not bit for bit: what PyBullet does not expose (its contact solver's
warm-start cache), and the one-substep lag of its link poses. After a step PyBullet reports the
end-effector pose of the joint angles before the last 2 ms substep; after a restore, that of the
restored angles. The restored observation's robot part therefore differs from the recorded one
by up to the end-effector's motion in one substep (a few mm); the objects' part, the achieved
goal and the goal are restored exactly.

Only panda-gym envs are supported (``env.unwrapped`` has a PyBullet ``sim``, a ``robot`` with
``joint_indices`` and a ``task`` with a goal); any other env raises :class:`SimStateError`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines_her.errors import UserError

BODY_FIELDS = 13  # position 3, quaternion 4, linear velocity 3, angular velocity 3


class SimStateError(UserError, ValueError):
    """An env whose state cannot be captured or restored, or a state that does not fit it."""


@dataclass(frozen=True)
class StateLayout:
    """Where each part of an env's state vector lies."""

    robot: str  # the robot's body name in the sim
    joints: tuple  # joint indices of the robot
    bodies: tuple  # names of the other bodies, in the vector's order
    dim_goal: int

    @property
    def size(self) -> int:
        return 2 * len(self.joints) + BODY_FIELDS * len(self.bodies) + self.dim_goal


def _env_name(env) -> str:
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None) or type(env.unwrapped).__name__


def _panda_parts(env):
    """``(sim, robot, task)`` of a panda-gym env (built, hence reset once and holding a goal);
    :class:`SimStateError` for any other env."""
    base = env.unwrapped
    sim, robot, task = (getattr(base, name, None) for name in ("sim", "robot", "task"))
    if (sim is None or not hasattr(sim, "physics_client") or not hasattr(sim, "_bodies_idx")
            or not hasattr(robot, "joint_indices") or not hasattr(task, "goal")):
        raise SimStateError(f"env {_env_name(env)}: demo states (sim_state, --demo_reset_prob) "
                            f"are supported for panda-gym envs only")
    return sim, robot, task


def supported(env) -> bool:
    """Whether ``env`` is an env whose state this module can capture and restore."""
    try:
        _panda_parts(env)
    except SimStateError:
        return False
    return True


def layout(env) -> StateLayout:
    """The state layout of ``env`` (a panda-gym env, wrapped or not)."""
    sim, robot, task = _panda_parts(env)
    bodies = tuple(name for name in sim._bodies_idx if name != robot.body_name)
    return StateLayout(robot.body_name, tuple(int(j) for j in robot.joint_indices), bodies,
                       int(np.size(task.goal)))


def state_size(env) -> int:
    """``S``, the length of ``env``'s state vector."""
    return layout(env).size


def capture(env) -> np.ndarray:
    """The current state of ``env`` as a float64 vector (layout in the module docstring)."""
    sim, _robot, task = _panda_parts(env)
    lay = layout(env)
    client, ids = sim.physics_client, sim._bodies_idx
    joint_states = client.getJointStates(ids[lay.robot], list(lay.joints))
    parts = [np.array([s[0] for s in joint_states]), np.array([s[1] for s in joint_states])]
    for name in lay.bodies:
        position, orientation = client.getBasePositionAndOrientation(ids[name])
        linear, angular = client.getBaseVelocity(ids[name])
        parts.append(np.concatenate([position, orientation, linear, angular]))
    parts.append(np.asarray(task.goal, np.float64).reshape(-1))
    return np.concatenate(parts).astype(np.float64)


def restore(env, state) -> dict:
    """Put ``env`` into ``state`` (from :func:`capture` on an env of the same id) and return its
    observation dict, as ``env.unwrapped._get_obs()`` reports it.

    Reset the env (through its wrappers) first: restore changes the simulator, not the wrappers'
    counters.
    """
    sim, _robot, task = _panda_parts(env)
    lay = layout(env)
    state = np.asarray(state, np.float64)
    if state.shape != (lay.size,):
        raise SimStateError(f"env {_env_name(env)}: a state has shape ({lay.size},) "
                            f"({len(lay.joints)} joints, {len(lay.bodies)} bodies, goal "
                            f"{lay.dim_goal}), got {state.shape}")
    client, ids = sim.physics_client, sim._bodies_idx
    nj = len(lay.joints)
    angles, velocities = state[:nj], state[nj:2 * nj]
    robot_id = ids[lay.robot]
    for joint, angle, velocity in zip(lay.joints, angles, velocities):
        client.resetJointState(robot_id, joint, targetValue=float(angle),
                               targetVelocity=float(velocity))
    offset = 2 * nj
    for name in lay.bodies:
        body = state[offset:offset + BODY_FIELDS]
        offset += BODY_FIELDS
        client.resetBasePositionAndOrientation(ids[name], body[0:3].tolist(), body[3:7].tolist())
        client.resetBaseVelocity(ids[name], body[7:10].tolist(), body[10:13].tolist())
    task.goal = state[offset:].copy()
    return env.unwrapped._get_obs()
