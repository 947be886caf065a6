"""Record human demonstrations by driving the Panda with the keyboard.

    python experiment/data_generation/record_human.py --env PandaPickAndPlace-v3 --out human.npz \
        [--episodes 20] [--seed 0] [--fps 5] [--speed 0.5] [--append]

A pygame window shows the env's ``rgb_array`` render with the episode, step, success and the
number of saved episodes. Keys (directions are relative to the camera, so "up" moves the gripper
away from you on screen, whatever the camera yaw):

    arrows              move in the table plane (up/down = away/towards, left/right)
    W / S, PgUp / PgDn  move up / down
    SPACE               toggle the gripper (open <-> closed; starts open)
    ENTER               save the finished episode
    BACKSPACE           discard the episode and start a new one
    ESC (or close)      quit; the saved episodes are in the file

An episode starts with the first movement or gripper key and then runs exactly T env steps (one per
frame at ``--fps``; panda-gym's success does not end it); once T steps are done it waits for ENTER
or BACKSPACE. Each action is ``--speed`` (in [0, 1] action units, 0.05 m per unit) along every held
direction, and -1/+1 on the fingers. Episode i (counting discarded ones) is reset with seed
``--seed + i``. After every save the file is rewritten atomically (``baselines_her.demo
.save_episodes``): the native demo file, ready for ``--human_file`` / ``--demo_file``.

The logic is in :class:`Recorder` (no pygame: ``handle_key(name, pressed)`` / ``step()``); the
window is :class:`PygameView`; :func:`run` joins them with an injectable event source and clock,
so everything runs headless (``SDL_VIDEODRIVER=dummy``). Needs pygame: ``pip install -e
'.[human]'``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Iterable, Optional

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from generate_demos import check_env_id  # noqa: E402

from baselines_her.episode import Episodes  # noqa: E402
from baselines_her.errors import UserErrorParser, run_cli  # noqa: E402

# key name -> (axis, sign); axes: "right", "forward" (screen directions in the table plane), "z"
MOVE_KEYS = {"up": ("forward", 1.0), "down": ("forward", -1.0), "right": ("right", 1.0),
             "left": ("right", -1.0), "w": ("z", 1.0), "pageup": ("z", 1.0), "s": ("z", -1.0),
             "pagedown": ("z", -1.0)}
ACTION_KEYS = ("space", "return", "backspace", "escape")
RENDER_SIZE = (480, 320)
KEY_HELP = ("keys: arrows move in the table plane (relative to the camera), W/S or PgUp/PgDn "
            "up/down, SPACE gripper, ENTER save, BACKSPACE discard, ESC quit")


def camera_axes(yaw_deg: float) -> tuple:
    """World-frame unit vectors (x, y) of the screen's right and into-the-screen directions for
    pybullet's ``computeViewMatrixFromYawPitchRoll(yaw, upAxisIndex=2)`` camera."""
    yaw = np.deg2rad(yaw_deg)
    right = np.array([np.cos(yaw), np.sin(yaw)])
    forward = np.array([-np.sin(yaw), np.cos(yaw)])
    return right, forward


class Recorder:
    """Keyboard-driven episodes of exactly T steps; no pygame in here.

    ``handle_key(name, pressed)`` takes the names in :data:`MOVE_KEYS` and :data:`ACTION_KEYS`;
    ``step()`` advances the env by one step when an episode is running. ``on_save(batch)`` is
    called with all saved episodes after every save.
    """

    def __init__(self, env, T: Optional[int] = None, seed: int = 0, episodes: Optional[int] = None,
                 speed: float = 0.5, on_save: Optional[Callable[[dict], None]] = None,
                 initial: Optional[dict] = None):
        self.env, self.base = env, env.unwrapped
        if T is None:
            T = env.spec.max_episode_steps
        self.T, self.seed, self.episodes_wanted = int(T), int(seed), episodes
        self.speed = float(speed)
        self.on_save = on_save
        self.du = env.action_space.shape[0]
        robot = getattr(self.base, "robot", None)
        self.has_gripper = self.du == 4 and not getattr(robot, "block_gripper", True)
        self.right, self.forward = camera_axes(getattr(self.base, "render_yaw", 45.0))
        self.saved: list = []
        if initial is not None:  # episodes already in the file (--append)
            n = initial["o"].shape[0]
            self.saved = [{k: v[i] for k, v in initial.items()} for i in range(n)]
        self.initial_count = len(self.saved)
        self.attempt = 0
        self.discarded = 0
        self.quit = False
        self.held: set = set()
        self.gripper_open = True
        self.message = "press a movement key to start"
        self._new_episode()

    # -- episode state ------------------------------------------------------------------------
    def _new_episode(self) -> None:
        obs, _ = self.env.reset(seed=self.seed + self.attempt)
        self.attempt += 1
        # success does not end the episode: the unwrapped env is stepped
        self.episode = Episodes([self.base], [obs], self.T)
        self.started = False
        self.gripper_open = True

    @property
    def t(self) -> int:
        return self.episode.t

    @property
    def ep(self) -> dict:
        """The running episode's arrays so far: ``o`` and ``ag`` (t+1, d), the others (t, d)."""
        return {k: v[0] for k, v in self.episode.batch().items()}

    @property
    def done(self) -> bool:
        return self.episode.done

    @property
    def success(self) -> bool:
        t = self.episode.t
        return bool(t > 0 and self.episode.info_is_success[0, t - 1, 0] > 0.5)

    @property
    def n_saved(self) -> int:
        return len(self.saved)

    # -- input --------------------------------------------------------------------------------
    def handle_key(self, key: str, pressed: bool = True) -> None:
        if key in MOVE_KEYS:
            if pressed:
                self.held.add(key)
                if not self.started and not self.done:
                    self.started = True
                    self.message = ""
            else:
                self.held.discard(key)
            return
        if not pressed:
            return
        if key == "space":
            if not self.has_gripper:
                self.message = "this env has no gripper"
                return
            self.gripper_open = not self.gripper_open
            if not self.done:
                self.started = True
            self.message = "gripper open" if self.gripper_open else "gripper closed"
        elif key == "return":
            if self.done:
                self.save()
            else:
                self.message = (f"episode not finished ({self.t}/{self.T} steps); BACKSPACE "
                                f"discards it")
        elif key == "backspace":
            self.discarded += 1
            self.message = f"episode discarded ({self.t}/{self.T} steps)"
            self._new_episode()
        elif key == "escape":
            self.quit = True

    def action(self) -> np.ndarray:
        a = np.zeros(self.du, np.float32)
        move = np.zeros(3)
        for key in self.held:
            axis, sign = MOVE_KEYS[key]
            if axis == "z":
                move[2] += sign
            else:
                move[:2] += sign * (self.right if axis == "right" else self.forward)
        a[:3] = np.clip(move * self.speed, -1.0, 1.0)
        if self.has_gripper:
            a[3] = 1.0 if self.gripper_open else -1.0
        return a

    # -- stepping -----------------------------------------------------------------------------
    def step(self) -> bool:
        """One env step if an episode is running; returns whether it stepped."""
        if self.quit or self.done or not self.started:
            return False
        self.episode.step(self.action()[None])
        if self.done:
            self.held.clear()
            self.message = (f"episode finished ({'success' if self.success else 'no success'}): "
                            f"ENTER saves, BACKSPACE discards")
        return True

    def save(self) -> None:
        if not self.done:
            raise RuntimeError("only a finished episode (T steps) can be saved")
        self.saved.append(self.ep)
        ok = "success" if self.success else "no success"
        self.message = f"saved episode {self.n_saved} ({ok})"
        if self.on_save is not None:
            self.on_save(self.batch())
        if self.episodes_wanted is not None and self.n_saved - self.initial_count >= \
                self.episodes_wanted:
            self.quit = True
            return
        self._new_episode()

    def batch(self) -> Optional[dict]:
        if not self.saved:
            return None
        return {k: np.stack([ep[k] for ep in self.saved]) for k in self.saved[0]}

    def status_lines(self) -> list:
        state = ("waiting for a key" if not self.started else
                 "done: ENTER save / BACKSPACE discard" if self.done else "recording")
        goal = "" if self.episodes_wanted is None else f"/{self.episodes_wanted}"
        lines = [f"episode {self.attempt}  step {self.t}/{self.T}  "
                 f"success {'yes' if self.success else 'no'}  "
                 f"saved {self.n_saved - self.initial_count}{goal}  [{state}]"]
        if self.has_gripper:
            lines[0] += f"  gripper {'open' if self.gripper_open else 'closed'}"
        lines.append("arrows: move  W/S: up/down  SPACE: gripper")
        lines.append("ENTER: save  BACKSPACE: discard  ESC: quit")
        if self.message:
            lines.append(self.message)
        return lines

    def render(self) -> Optional[np.ndarray]:
        return self.env.render()


class PygameView:
    """The window: env frame plus text overlay; ``events()`` yields ``(key_name, pressed)``."""

    def __init__(self, size: tuple = RENDER_SIZE, title: str = "baselines_her human demos"):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame
        self.pg = pygame
        pygame.display.init()
        pygame.font.init()
        self.screen = pygame.display.set_mode(size)
        pygame.display.set_caption(title)
        self.font = pygame.font.Font(None, 20)
        k = pygame
        self.names = {k.K_UP: "up", k.K_DOWN: "down", k.K_LEFT: "left", k.K_RIGHT: "right",
                      k.K_w: "w", k.K_s: "s", k.K_PAGEUP: "pageup", k.K_PAGEDOWN: "pagedown",
                      k.K_SPACE: "space", k.K_RETURN: "return", k.K_KP_ENTER: "return",
                      k.K_BACKSPACE: "backspace", k.K_ESCAPE: "escape"}

    def events(self) -> list:
        out = []
        for ev in self.pg.event.get():
            if ev.type == self.pg.QUIT:
                out.append(("escape", True))
            elif ev.type in (self.pg.KEYDOWN, self.pg.KEYUP) and ev.key in self.names:
                out.append((self.names[ev.key], ev.type == self.pg.KEYDOWN))
        return out

    def draw(self, frame: Optional[np.ndarray], lines: list) -> None:
        pg = self.pg
        self.screen.fill((0, 0, 0))
        if frame is not None:
            img = np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
            surf = pg.surfarray.make_surface(img.swapaxes(0, 1))
            if surf.get_size() != self.screen.get_size():
                surf = pg.transform.smoothscale(surf, self.screen.get_size())
            self.screen.blit(surf, (0, 0))
        y = 4
        for line in lines:
            text = self.font.render(line, True, (255, 255, 255))
            back = pg.Surface((text.get_width() + 6, text.get_height() + 2))
            back.set_alpha(150)
            self.screen.blit(back, (2, y - 1))
            self.screen.blit(text, (5, y))
            y += text.get_height() + 3
        pg.display.flip()

    def close(self) -> None:
        self.pg.display.quit()


def run(recorder: Recorder, events: Callable[[], Iterable], draw: Optional[Callable] = None,
        tick: Optional[Callable[[], None]] = None, max_frames: Optional[int] = None) -> int:
    """Main loop: per frame, feed ``events()`` to the recorder, take one env step, draw, tick.
    Ends when the recorder quits (or after ``max_frames``); returns the number of frames."""
    frames = 0
    while not recorder.quit and (max_frames is None or frames < max_frames):
        for key, pressed in events():
            recorder.handle_key(key, pressed)
            if recorder.quit:
                break
        if recorder.quit:
            break
        recorder.step()
        if draw is not None:
            draw(recorder.render(), recorder.status_lines())
        if tick is not None:
            tick()
        frames += 1
    return frames


def build_parser() -> argparse.ArgumentParser:
    p = UserErrorParser(description="Record human demonstrations with the keyboard (pygame "
                                    "window).",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=KEY_HELP)
    p.add_argument("--env", default="PandaPickAndPlace-v3", help="panda-gym env id "
                   "(end-effector control; default PandaPickAndPlace-v3)")
    p.add_argument("--out", required=True, help="native .npz demo file to write")
    p.add_argument("--episodes", type=int, default=None,
                   help="stop after saving this many episodes (default: until ESC)")
    p.add_argument("--seed", type=int, default=0, help="reset seed of the first episode")
    p.add_argument("--fps", type=float, default=5.0,
                   help="env steps per second (default 5: a 50-step episode lasts 10 s)")
    p.add_argument("--speed", type=float, default=0.5,
                   help="action magnitude per held direction, in (0, 1] (default 0.5 = 2.5 cm "
                        "per step)")
    p.add_argument("--append", action="store_true", help="add to the episodes already in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def _main(argv) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.episodes is not None and args.episodes < 1:
        p.error(f"--episodes must be a positive integer, got {args.episodes}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if not (np.isfinite(args.fps) and args.fps > 0):
        p.error(f"--fps must be > 0, got {args.fps}")
    if not 0 < args.speed <= 1:
        p.error(f"--speed must be in (0, 1], got {args.speed}")
    if args.append and args.overwrite:
        p.error("--append and --overwrite exclude each other")
    err = check_env_id(args.env)
    if err:
        p.error(err)
    out = args.out if args.out.endswith(".npz") else args.out + ".npz"
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        p.error(f"--out: directory {out_dir!r} does not exist")
    if os.path.exists(out) and not (args.append or args.overwrite):
        p.error(f"--out {out} exists; pass --append to add to it or --overwrite to replace it")
    try:
        import pygame  # noqa: F401
    except ImportError:
        p.error("pygame is not installed: pip install -e '.[human]'  (or pip install pygame)")

    from baselines_her.demo import DemoError, load_episodes_for_env, save_episodes
    from baselines_her.envs import make_env

    initial = None
    if args.append and os.path.exists(out):
        try:
            initial = load_episodes_for_env(out, args.env, source="human file")
        except DemoError as e:
            p.error(f"--append: {e}")
    env = make_env(args.env, render_mode="rgb_array")  # silences pybullet's start-up output
    base = env.unwrapped
    if getattr(getattr(base, "robot", None), "control_type", None) != "ee":
        p.error(f"{args.env}: keyboard control needs a panda-gym env with end-effector control")
    base.render_width, base.render_height = RENDER_SIZE

    def write(batch):
        save_episodes(out, batch)

    rec = Recorder(env, seed=args.seed, episodes=args.episodes, speed=args.speed, on_save=write,
                   initial=initial)
    view = PygameView(RENDER_SIZE, title=f"{args.env} -> {out}")
    clock = view.pg.time.Clock()
    print(KEY_HELP)
    try:
        run(rec, view.events, view.draw, lambda: clock.tick(args.fps))
    except KeyboardInterrupt:
        pass
    finally:
        view.close()
        env.close()
    new = rec.n_saved - rec.initial_count
    if rec.n_saved:
        batch = rec.batch()
        rate = batch["info_is_success"][:, -1, 0].mean()
        print(f"saved {new} new episode(s), {rec.n_saved} in {out} (final success rate "
              f"{rate:.2f}); {rec.discarded} discarded")
    else:
        print("no episode saved; nothing written")
    return 0


def main(argv=None) -> int:
    """The command line; a user error prints one line ``error: ...`` and returns 2."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
