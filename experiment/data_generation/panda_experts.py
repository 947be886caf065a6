"""Scripted experts for the panda-gym v3 manipulation tasks (end-effector control).

Each expert is a small stateful object: call ``reset()`` at the start of an episode, then
``expert_action(obs_dict)`` (or simply ``expert(obs_dict)``) once per step. The experts are pure
numpy and only read the goal-env observation dict (``observation``, ``achieved_goal``,
``desired_goal``); they never touch the simulator.

Observation layouts (panda-gym 3.0.7, ``control_type="ee"``)::

    robot part   ee position (3), ee velocity (3) [, fingers width (1) if the gripper is free]
    task part    per object: position (3), euler rotation (3), velocity (3), angular velocity (3)

    PandaReach          6 = robot(6)
    PandaPush/Slide    18 = robot(6)  + object(12)
    PandaPickAndPlace  19 = robot(7)  + object(12)
    PandaStack         31 = robot(7)  + object1(12) + object2(12)

Actions are in [-1, 1]: ``action[:3]`` moves the end-effector target by ``0.05 * action[:3]``
metres per step (the arm follows with some lag), ``action[3]`` (gripper tasks only) changes the
target finger opening by ``0.2 * action[3]`` (+1 opens, -1 closes/squeezes). One env step is
0.04 s of simulated time.

Success rates over 100 episodes (``generate_demos.py --episodes 100 --seed 0``, success = the
last step's ``info['is_success']``): Reach 1.00, Push 0.98, PickAndPlace 1.00, Stack 0.99,
Slide 0.44 (a strike whose outcome is limited by the bouncy puck/finger contact).

``make_expert(env_id)`` returns a fresh expert for ``Panda{Reach,Push,Slide,PickAndPlace,Stack}
[Dense]-v3``; the ``...Joints`` variants (joint control) have none.
"""

from __future__ import annotations

import abc
import re
from typing import Callable, Dict, Optional

import numpy as np

__all__ = [
    "ReachExpert",
    "PushExpert",
    "SlideExpert",
    "PickAndPlaceExpert",
    "StackExpert",
    "EXPERTS",
    "make_expert",
    "supported_env_ids",
]

STEP_SCALE = 0.05  # metres of ee-target displacement per unit of action per step
DT = 0.04  # seconds of simulated time per env step (20 substeps of 1/500 s)

# observation slices
EE_POS = slice(0, 3)
EE_VEL = slice(3, 6)
FINGERS = 6  # index of the fingers width when the gripper is free


def _obj_slices(offset: int):
    """Position / velocity slices of the object block starting at ``offset``."""
    return slice(offset, offset + 3), slice(offset + 6, offset + 9)


def _move(cur: np.ndarray, target: np.ndarray, gain: float = 20.0, vmax: float = 1.0) -> np.ndarray:
    """Proportional step toward ``target``, scaled (not clipped per axis) so that its largest
    component is at most ``vmax``: the direction of motion is kept."""
    a = gain * (np.asarray(target, dtype=np.float64) - np.asarray(cur, dtype=np.float64))
    m = np.max(np.abs(a))
    if m > vmax:
        a *= vmax / m
    return a


def _unit(v: np.ndarray) -> np.ndarray:
    """``v / |v|``; +x for a (near) zero vector."""
    n = np.linalg.norm(v)
    if n > 1e-9:
        return v / n
    e = np.zeros_like(v, dtype=np.float64)
    e[0] = 1.0
    return e


class _Expert(abc.ABC):
    """Base class: ``reset()`` starts an episode; ``expert_action(obs)`` returns the action."""

    action_dim = 3

    def reset(self) -> None:
        pass

    @abc.abstractmethod
    def expert_action(self, obs: Dict[str, np.ndarray]) -> np.ndarray:
        """The action for this observation (each task's expert defines it)."""

    def __call__(self, obs: Dict[str, np.ndarray]) -> np.ndarray:
        a = np.clip(np.asarray(self.expert_action(obs), dtype=np.float64), -1.0, 1.0)
        return a.astype(np.float32)


# --------------------------------------------------------------------------------------- Reach
class ReachExpert(_Expert):
    """Proportional control of the end-effector toward the goal."""

    def expert_action(self, obs):
        ee = obs["observation"][EE_POS]
        return _move(ee, obs["desired_goal"])


# ---------------------------------------------------------------------------------------- Push
class PushExpert(_Expert):
    """Approach the cube from behind (relative to the cube->goal direction) at a safe height,
    lower the closed fingers to the cube's mid-height, then push it along the line to the goal,
    slowing down near the goal and stopping early enough for the cube's own sliding to end on
    the goal. Off the pushing line it realigns (low if behind the cube, else over it)."""

    OBJ_POS, OBJ_VEL = _obj_slices(6)
    half = 0.02  # half the cube size
    z_push = 0.018  # ee height while pushing (cube centre is 0.02)
    z_travel = 0.08  # ee height when moving over the cube
    r_contact = 0.032  # ee distance behind the cube centre while pushing
    r_approach = 0.05  # where to lower the fingers, behind the cube
    decel = 1.5  # m/s^2, measured sliding deceleration of the cube on the table
    done_tol = 0.025  # stop pushing when the cube will come to rest this close to the goal
    resume_tol = 0.04  # ... and only start again if it would rest farther than this

    def reset(self):
        self.pushing = False
        self.holding = False

    def expert_action(self, obs):
        o = obs["observation"]
        ee = o[EE_POS].astype(np.float64)
        obj = o[self.OBJ_POS].astype(np.float64)
        obj_v = o[self.OBJ_VEL].astype(np.float64)
        goal = obs["desired_goal"].astype(np.float64)
        d = goal[:2] - obj[:2]
        dist = np.linalg.norm(d)
        u = _unit(d)
        v_along = float(obj_v[:2] @ u)
        slide = max(v_along, 0.0) ** 2 / (2.0 * self.decel)
        remaining = dist - slide
        rel = ee[:2] - obj[:2]
        along = float(rel @ u)  # negative: ee is behind the cube
        lateral = float(np.linalg.norm(rel - along * u))
        low = ee[2] < self.z_push + 0.015

        if remaining < (self.resume_tol if self.holding else self.done_tol):
            # the cube will stop on the goal: stay still (just damp the arm)
            self.pushing, self.holding = False, True
            return np.r_[-0.3 * o[EE_VEL][:2] * (DT / STEP_SCALE), 0.0]

        self.holding = False
        if low and along < -(self.half + 0.005):
            # behind the cube, at pushing height: push along the cube->goal line, correcting the
            # lateral error fast; if it is too large, stop advancing (back off a little) first
            lat_vec = rel - along * u
            self.pushing = lateral < (0.02 if self.pushing else 0.01)
            if self.pushing:
                along_t = -self.r_contact + min(0.05, 0.6 * remaining + 0.006)
                in_contact = -along < self.r_contact + 0.01
                vmax = float(np.clip(4.0 * remaining, 0.15, 0.5)) if in_contact else 0.3
            else:
                along_t = min(along, -(self.r_contact + 0.016))
                vmax = 0.6
                if -along < self.r_contact + 0.012:
                    lat_vec = lat_vec * 0.0  # back off first, sideways motion would drag the cube
            a_xy = 10.0 * (along_t - along) * u - 25.0 * lat_vec
            a = np.r_[a_xy, 10.0 * (self.z_push - ee[2])]
            m = np.max(np.abs(a))
            return a * (vmax / m) if m > vmax else a
        self.pushing = False

        approach = obj[:2] - u * self.r_approach
        xy_err = np.linalg.norm(ee[:2] - approach)
        if xy_err < 0.012 or (along < -(self.half + 0.02) and lateral < 0.015):
            # above the approach point (or behind the cube, on the line): lower the fingers
            return _move(ee, np.r_[approach, self.z_push])
        if ee[2] < self.z_travel - 0.02 and np.linalg.norm(rel) < 0.065:
            # too low next to (or in front of) the cube: rise first; if touching it, move
            # away horizontally first (lifting while pressed against it flicks the cube)
            if low and np.linalg.norm(rel) < 0.045:
                return np.r_[0.5 * _unit(rel), 0.1]
            return _move(ee, np.r_[ee[:2], self.z_travel])
        return _move(ee, np.r_[approach, self.z_travel])


# --------------------------------------------------------------------------------------- Slide
class SlideExpert(_Expert):
    """Strike the puck so that it slides onto the goal.

    The closed fingers are a flat-faced block: hit with the face, the puck leaves along +x
    whatever the hitting direction, so for an angled shot the puck is hit with a corner of the
    fingers, placed so that the corner -> puck-centre line is the puck -> goal line. The expert
    lines the fingers up behind the puck at table height, drives the corner along that line to a
    first touch at ~0.65x the needed speed, then follows the puck topping up its speed with gentle
    touches, and pulls back once the puck has the speed that brings it onto the goal by the end
    of the episode (sliding-friction model measured in the sim). The goal is out of the arm's
    reach, so there is no correcting afterwards; the contact is bouncy and the speed the puck
    gets is noisy, which limits the success rate (about 0.4-0.5, see the README)."""

    OBJ_POS, OBJ_VEL = _obj_slices(6)
    radius = 0.03  # puck radius (+ contact margin)
    hx, hy = 0.006, 0.021  # effective corners of the closed fingers' footprint (fitted)
    face_angle = np.radians(2.5)  # below this, hit with the flat face (straight +x shot)
    z_hit = 0.014
    z_travel = 0.07
    gap = 0.07  # run-up distance before contact
    decel0, decel1 = 0.19, 0.06  # sliding deceleration of the puck: decel0 + decel1 * speed
    ee_speed_per_action = 0.88  # m/s of steady ee speed per unit of action (measured)
    creep = 0.1  # slowest ee speed (m/s) for the first touch
    close_speed = 0.06  # largest closing speed on the moving puck
    first_frac = 0.65  # ee speed of the first touch, as a fraction of the needed puck speed
    max_ramp = 0.1  # largest action increase per step during the strike
    release_frac = 0.98

    def __init__(self, max_episode_steps: int = 50):
        self.T = max_episode_steps
        self.reset()

    def reset(self):
        self.phase = "approach"
        self.t = 0
        self.n = 0
        self.plan = None
        self.a_u = 0.0

    # --- puck sliding model
    def _travel(self, v: float, t_max: float) -> float:
        """Distance slid from speed ``v`` within ``t_max`` seconds (or until it stops)."""
        x, dt = 0.0, 0.01
        for _ in range(int(t_max / dt)):
            if v <= 0:
                break
            x += v * dt
            v -= (self.decel0 + self.decel1 * v) * dt
        return x

    def _needed_speed(self, dist: float, t_rem: float) -> float:
        lo, hi = 0.0, 2.0
        for _ in range(30):  # bisection: travel() is increasing in v
            mid = 0.5 * (lo + hi)
            if self._travel(mid, t_rem) < dist:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def _make_plan(self, obj, goal):
        d = goal[:2] - obj[:2]
        theta = float(np.arctan2(d[1], d[0]))
        if abs(theta) < self.face_angle:
            u, corner = np.array([1.0, 0.0]), np.array([self.hx, 0.0])
        else:
            u, corner = _unit(d), np.array([self.hx, np.sign(theta) * self.hy])
        # the corner travels on the line obj + s*u (s < 0); the ee is offset from it by -corner
        self.plan = {"u": u, "corner": corner, "obj0": obj[:2].copy()}

    def expert_action(self, obs):
        self.t += 1
        o = obs["observation"]
        ee = o[EE_POS].astype(np.float64)
        ee_v = o[EE_VEL].astype(np.float64)
        obj = o[self.OBJ_POS].astype(np.float64)
        obj_v = o[self.OBJ_VEL].astype(np.float64)
        goal = obs["desired_goal"].astype(np.float64)

        if self.phase in ("approach", "align") and (
            self.plan is None or np.linalg.norm(obj[:2] - self.plan["obj0"]) > 0.003
        ):
            self._make_plan(obj, goal)
        u, corner = self.plan["u"], self.plan["corner"]
        line0 = obj[:2] - corner  # ee position when the corner is at the puck centre
        start = line0 - u * (self.radius + self.gap)

        if self.phase == "approach":
            xy_err = np.linalg.norm(ee[:2] - start)
            if xy_err < 0.004 and ee[2] < self.z_hit + 0.006:
                self.phase, self.n = "align", 0
            elif xy_err < 0.012:
                return _move(ee, np.r_[start, self.z_hit])
            else:
                near = np.linalg.norm(ee[:2] - obj[:2]) < 0.09
                z = self.z_travel if near else max(self.z_hit, min(ee[2], self.z_travel))
                if near and ee[2] < self.z_travel - 0.03:
                    return _move(ee, np.r_[ee[:2], self.z_travel])
                return _move(ee, np.r_[start, z])

        if self.phase == "align":
            self.n += 1
            still = np.linalg.norm(ee_v) < 0.02
            if (np.linalg.norm(ee[:2] - start) < 0.0015 and still) or self.n > 6:
                self.phase = "strike"
            else:
                return _move(ee, np.r_[start, self.z_hit], gain=25.0)

        if self.phase == "strike":
            # touch the puck at a moderate speed, then top its speed up with gentle touches
            # (hard impacts are bouncy, the puck speed they give is unpredictable) until it
            # has the speed that brings it onto the goal at the end of the episode
            t_rem = max(self.T - self.t, 1) * DT
            dist = float(np.linalg.norm(goal[:2] - obj[:2]))
            v_need = self._needed_speed(dist, t_rem)
            v_obj = float(obj_v[:2] @ u)
            if v_obj >= self.release_frac * v_need and v_obj > 0.03:
                self.phase, self.n = "release", 0
            else:
                rel = ee[:2] - line0
                lat = rel - (rel @ u) * u
                if v_obj < 0.02:
                    # run-up at constant speed: the first touch gives the puck roughly
                    # 1-1.3x the ee speed; aim it below v_need and top up afterwards
                    v_cmd = float(np.clip(self.first_frac * v_need, self.creep, 0.35))
                else:
                    # the contact is bouncy (each touch kicks the puck ahead at ~2-3x the
                    # closing speed): follow the puck and close in on it slowly, so that each
                    # touch adds a little speed, until it has the needed speed
                    v_cmd = v_obj + float(np.clip((v_need - v_obj) / 2.5, 0.02, self.close_speed))
                # steady ee speed per unit action is ~0.88 m/s; rate-limit the changes
                a_new = float(np.clip(v_cmd / self.ee_speed_per_action, 0.0, 1.0))
                self.a_u = float(np.clip(a_new, self.a_u - 0.2, self.a_u + self.max_ramp))
                a_xy = self.a_u * u - 25.0 * lat
                return np.r_[a_xy, 10.0 * (self.z_hit - ee[2])]

        if self.phase == "release":
            self.n += 1
            if self.n <= 3:  # pull back hard so the fingers leave the puck
                return np.r_[-u, 0.0]
            return np.r_[0.0, 0.0, 10.0 * (self.z_travel - ee[2])]
        return np.zeros(3)


# ------------------------------------------------------------------------------- grasping skill
class _PickPlace:
    """Pick one cube and bring it to a target; optionally put it down and let go.

    ``obj_off`` is the offset of the cube's block in ``observation``. The skill is a phase
    machine: approach (above the cube, gripper open) -> descend -> grasp -> carry, either
    straight to the target (``direct``) or, with ``safe_height``, lift -> transfer -> lower;
    then with ``place``: release -> retreat -> done. Losing the cube sends it back to
    approach."""

    half = 0.02
    z_safe = 0.11  # cube-centre height when carrying over the other cube (Stack)

    def __init__(self, obj_off: int, place: bool, safe_height: bool):
        self.OBJ_POS, self.OBJ_VEL = _obj_slices(obj_off)
        self.place = place  # put down and release at the target (Stack), or hold (PickAndPlace)
        self.safe_height = safe_height  # carry high, then go down vertically
        self.phase = "approach"
        self.n = 0
        self.stuck = 0
        self.last_z = np.inf

    def done(self) -> bool:
        return self.phase == "done"

    def act(self, o: np.ndarray, target: np.ndarray) -> np.ndarray:
        ee = o[EE_POS].astype(np.float64)
        width = float(o[FINGERS])
        obj = o[self.OBJ_POS].astype(np.float64)
        to_obj = obj - ee

        if self.phase == "approach":
            xy_err = np.linalg.norm(to_obj[:2])
            above = obj[2] + (0.05 if self.safe_height else 0.03)
            if xy_err < 0.01 and width > 0.06:
                self.phase = "descend"
            else:
                z = max(above, ee[2]) if (self.safe_height and xy_err > 0.03) else above
                if self.safe_height and xy_err > 0.03 and ee[2] < obj[2] + 0.04:
                    z = obj[2] + 0.06
                    if ee[2] < z - 0.01:  # rise first before moving sideways
                        return np.r_[_move(ee, np.r_[ee[:2], z]), 1.0]
                return np.r_[_move(ee, np.r_[obj[:2], z]), 1.0]

        if self.phase == "descend":
            if np.linalg.norm(to_obj[:2]) > 0.02:
                self.phase = "approach"
                return np.r_[_move(ee, np.r_[obj[:2], ee[2]]), 1.0]
            if abs(to_obj[2]) < 0.008:
                self.phase, self.n = "grasp", 0
            else:
                # a finger resting on something (another cube) stops the descent
                self.stuck = self.stuck + 1 if ee[2] > self.last_z - 0.002 else 0
                self.last_z = ee[2]
                if self.stuck >= 4:
                    self.phase, self.stuck = "blocked", 0
                else:
                    return np.r_[_move(ee, obj), 1.0]

        if self.phase == "blocked":  # go back up; the caller re-plans (or we retry)
            if ee[2] > obj[2] + 0.06:
                self.phase = "approach"
            else:
                return np.r_[0.0, 0.0, 1.0, 1.0]

        if self.phase == "grasp":
            self.n += 1
            if self.n >= 3 or width < 2 * self.half + 0.002:
                if width < 2 * self.half - 0.01:  # closed on nothing: try again
                    self.phase = "approach"
                    return np.r_[_move(ee, np.r_[obj[:2], obj[2] + 0.03]), 1.0]
                if self.n >= 2:
                    self.phase = "carry"
            return np.r_[_move(ee, obj), -1.0]

        if self.phase in ("carry", "lift", "transfer", "lower"):
            if np.linalg.norm(to_obj) > 0.03 or width < 2 * self.half - 0.01:
                self.phase = "approach"  # dropped it
                return np.r_[_move(ee, np.r_[obj[:2], obj[2] + 0.04]), 1.0]
            off = ee - obj  # keep the grasp offset while moving the cube
            err = target - obj
            xy_err = float(np.linalg.norm(err[:2]))
            if self.phase == "carry":  # decide how to get there
                if not self.safe_height:
                    self.phase = "direct"
                elif xy_err < 0.02:
                    self.phase = "lower"
                else:
                    self.phase = "lift"
            if self.phase == "lift":  # straight up to the safe height
                if obj[2] > self.z_safe - 0.015:
                    self.phase = "transfer"
                else:
                    return np.r_[_move(ee, np.r_[obj[:2], self.z_safe] + off), -1.0]
            if self.phase == "transfer":  # across at the safe height
                if xy_err < 0.008:
                    self.phase = "lower"
                else:
                    return np.r_[_move(ee, np.r_[target[:2], self.z_safe] + off), -1.0]
            if self.phase == "lower":  # down onto the target, correcting xy on the way
                if xy_err > 0.03:
                    self.phase = "transfer"
                    return np.r_[_move(ee, np.r_[target[:2], self.z_safe] + off), -1.0]
                if self.place and np.linalg.norm(err) < 0.006:
                    self.phase, self.n = "release", 0
                else:
                    step = np.r_[target[:2], max(target[2], obj[2] - 0.05)]  # at most 5 cm a step
                    return np.r_[_move(ee, step + off, gain=12.0), -1.0]

        if self.phase == "direct":
            if np.linalg.norm(to_obj) > 0.03 or width < 2 * self.half - 0.01:
                self.phase = "approach"  # dropped it
                return np.r_[_move(ee, np.r_[obj[:2], obj[2] + 0.04]), 1.0]
            off = ee - obj
            err = target - obj
            if self.place and np.linalg.norm(err) < 0.006:
                self.phase, self.n = "release", 0
            else:
                gain = 10.0 if np.linalg.norm(err) > 0.02 else 6.0
                return np.r_[_move(ee, target + off, gain=gain), -1.0]

        if self.phase == "release":
            self.n += 1
            if width > 2 * self.half + 0.02 or self.n > 4:
                self.phase, self.n = "retreat", 0
            return np.r_[0.0, 0.0, 0.0, 1.0]

        if self.phase == "retreat":
            self.n += 1
            if ee[2] > obj[2] + 0.05 or self.n > 6:
                self.phase = "done"
            return np.r_[0.0, 0.0, 1.0, 1.0]

        return np.r_[0.0, 0.0, 0.0, 1.0]


class _Nudge:
    """Push a cube along x (closed fingers) until it is at least ``clear`` from another cube in
    x: two cubes side by side along y are too close to grasp either (the open fingers, which
    move along y, land on the neighbour)."""

    def __init__(self, obj_off: int, other_off: int, direction: float, clear: float = 0.05):
        self.OBJ, _ = _obj_slices(obj_off)
        self.OTHER, _ = _obj_slices(other_off)
        self.s = float(direction)  # +1 or -1: push along +x or -x
        self.clear = clear
        self.phase = "approach"
        self.n = 0

    def done(self) -> bool:
        return self.phase == "done"

    def act(self, o: np.ndarray) -> np.ndarray:
        ee = o[EE_POS].astype(np.float64)
        c = o[self.OBJ].astype(np.float64)
        other = o[self.OTHER].astype(np.float64)
        ux = np.array([self.s, 0.0])
        behind = np.r_[c[:2] - ux * 0.045, 0.02]
        self.n += 1
        if self.phase in ("approach", "push") and (
            abs(c[0] - other[0]) >= self.clear or self.n > 45
        ):
            self.phase = "retreat"
        if self.phase == "approach":
            xy_err = np.linalg.norm(ee[:2] - behind[:2])
            if xy_err < 0.008 and ee[2] < 0.03:
                self.phase = "push"
            elif xy_err < 0.01:
                return np.r_[_move(ee, behind), -1.0]
            else:
                if ee[2] < 0.07 and np.linalg.norm(ee[:2] - c[:2]) < 0.06:
                    return np.r_[_move(ee, np.r_[ee[:2], 0.08]), -1.0]
                return np.r_[_move(ee, np.r_[behind[:2], 0.08]), -1.0]
        if self.phase == "push":
            target = np.r_[c[:2] - ux * 0.03 + ux * 0.025 - 0.5 * np.r_[0.0, ee[1] - c[1]], 0.02]
            return np.r_[_move(ee, target, gain=10.0, vmax=0.4), -1.0]
        if self.phase == "retreat":
            if ee[2] > 0.075:
                self.phase = "done"
            else:
                away = np.r_[ee[:2] - ux * 0.01, 0.09]
                return np.r_[_move(ee, away), -1.0]  # opening down here would hit a cube
        return np.r_[0.0, 0.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------- PickAndPlace
class PickAndPlaceExpert(_Expert):
    """Go above the cube with the gripper open, descend, grasp, then carry the cube to the goal
    (which may be in the air) and hold it there."""

    action_dim = 4

    def reset(self):
        self.skill = _PickPlace(obj_off=7, place=False, safe_height=False)

    def expert_action(self, obs):
        return self.skill.act(obs["observation"], obs["desired_goal"].astype(np.float64))


# ----------------------------------------------------------------------------------------- Stack
class StackExpert(_Expert):
    """Pick-and-place cube 1 on its goal, then cube 2 on top of it (carrying at a safe height,
    lowering vertically, releasing and backing off upwards). If cube 2 starts on top of cube 1
    or where cube 1 must go, it is first moved to a free spot. A cube with the other one right
    beside it along the fingers' axis cannot be grasped (a finger lands on the neighbour): it is
    first pushed along x with the closed fingers. If the gripper still cannot get down to a
    cube, the expert lifts and plans again from the current state."""

    action_dim = 4
    OBJ1, _ = _obj_slices(7)
    OBJ2, _ = _obj_slices(19)
    OBJ1_VZ, OBJ2_VZ = 7 + 8, 19 + 8
    half = 0.02

    def reset(self):
        self.plan = None
        self.skill = None
        self.t = 0
        self.replans = 0
        self.nudges = 0

    def _nudge_for(self, o, off):
        """A _Nudge if the cube at ``off`` is too close to the other one (same level, side by
        side along the fingers' axis y) to be grasped, else None."""
        other_off = 19 if off == 7 else 7
        c, n = o[_obj_slices(off)[0]], o[_obj_slices(other_off)[0]]
        dx, dy, dz = c - n
        if abs(dz) > 0.02 or abs(dx) >= 0.04 or abs(dy) >= 0.08:
            return None
        if abs(dx) > 0.01:
            s = np.sign(dx)  # push away from the neighbour along x
        else:
            s = -np.sign(c[0]) if abs(c[0]) > 1e-3 else -1.0  # toward the middle of the table
        return _Nudge(off, other_off, s)

    def _make_plan(self, o, goal):
        obj1, obj2 = o[self.OBJ1], o[self.OBJ2]
        g1 = goal[:3]
        plan = []
        on_top = np.linalg.norm(obj2[:2] - obj1[:2]) < 0.045
        in_the_way = np.linalg.norm(obj2[:2] - g1[:2]) < 0.07
        if on_top or in_the_way:
            # put cube 2 down on a free spot (reachable, away from cube 1 and from goal 1)
            best, best_score = None, -np.inf
            for x in np.linspace(-0.12, 0.08, 6):
                for y in np.linspace(-0.12, 0.12, 7):
                    p = np.array([x, y])
                    clear = min(np.linalg.norm(p - obj1[:2]), np.linalg.norm(p - g1[:2]))
                    score = min(clear, 0.1) - 0.2 * np.linalg.norm(p - obj2[:2])
                    if score > best_score:
                        best, best_score = p, score
            spot = np.r_[best, self.half]
            plan.append(("move2", 19, lambda g, spot=spot: spot))
        plan.append(("place1", 7, lambda g: g[:3]))
        plan.append(("place2", 19, lambda g: g[3:] + np.array([0.0, 0.0, 0.004])))
        return plan

    def expert_action(self, obs):
        o = obs["observation"]
        goal = obs["desired_goal"].astype(np.float64)
        if self.plan is None:
            self.t += 1
            settling = np.abs(o[self.OBJ1_VZ]) > 0.02 or np.abs(o[self.OBJ2_VZ]) > 0.02
            if self.t <= 2 or (settling and self.t <= 6):  # cubes still falling into place
                return np.r_[0.0, 0.0, 0.0, 1.0]
            self.plan = self._make_plan(o, goal)
        while self.plan:
            name, off, tgt = self.plan[0]
            if self.skill is None:
                nudge = self._nudge_for(o, off) if self.nudges < 2 else None
                if nudge is not None:
                    self.nudges += 1
                    self.plan.insert(0, ("nudge", off, None))
                    self.skill = nudge
                    continue
                self.skill = _PickPlace(obj_off=off, place=True, safe_height=True)
            if name == "nudge":
                if not self.skill.done():
                    return self.skill.act(o)
                self.plan.pop(0)
                self.skill = None
                continue
            if self.skill.phase == "blocked" and self.replans < 3:
                # the gripper could not get down to the cube: lift, then plan again from here
                a = self.skill.act(o, tgt(goal))
                if self.skill.phase != "blocked":
                    self.plan, self.skill = None, None
                    self.replans += 1
                return a
            if not self.skill.done():
                return self.skill.act(o, tgt(goal))
            self.plan.pop(0)
            self.skill = None
        # finished: keep the gripper open and stay clear above the stack
        ee = o[EE_POS]
        return np.r_[_move(ee, np.r_[ee[:2], max(ee[2], goal[5] + 0.08)]), 1.0]


EXPERTS: Dict[str, Callable[[], _Expert]] = {
    "PandaReach": ReachExpert,
    "PandaPush": PushExpert,
    "PandaSlide": SlideExpert,
    "PandaPickAndPlace": PickAndPlaceExpert,
    "PandaStack": StackExpert,
}

_ID_RE = re.compile(r"^(Panda(?:Reach|Push|Slide|PickAndPlace|Stack))(Dense)?-v3$")


def supported_env_ids():
    """The env ids an expert exists for (sparse and dense rewards, ee control)."""
    return [f"{k}{d}-v3" for k in EXPERTS for d in ("", "Dense")]


def make_expert(env_id: str) -> Optional[_Expert]:
    """A fresh expert for ``env_id`` (e.g. ``PandaPush-v3``), or None if there is none."""
    m = _ID_RE.match(env_id)
    if m is None:
        return None
    return EXPERTS[m.group(1)]()
