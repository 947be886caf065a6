"""The training rollouts in a second process, so the envs step while the learner trains.

:class:`RolloutProcess` stands in for the training :class:`~baselines_her.rollout.RolloutWorker`:
the training envs live in a child process started with multiprocessing's ``spawn`` context (the
parent has TensorFlow running, which must not be forked). The child imports numpy, gymnasium, the
env packages and the rollout modules, never TensorFlow; it ignores SIGINT and SIGTERM (a Ctrl-C
reaches the whole process group, and the parent decides when to stop) and exits when its pipe
closes. numpy's BLAS threads are limited to one in the child through the environment it starts
with. As with any spawned process, the child imports the parent's main script again (as
``__mp_main__``), so a script that trains must do so under ``if __name__ == "__main__":``; the
child reports whether TensorFlow got imported that way, and the parent warns if so. The child
builds its envs, says it is ready, takes the setup (the worker's arguments beyond its envs), then
serves requests; a trainer starts it before importing TensorFlow, so both start-ups overlap.

One request runs one batch of training rollouts: the parent sends the actor as plain arrays and
the states of every generator the rollouts draw from (exploration, per-env reset seeds, demo
resets); the child sets its generators to those states, runs the episodes and sends back the
episode batch, its stats and the generators' states afterwards, which the parent copies into its
own generators. The parent's generators are therefore the reference whenever nothing is in
flight (what a checkpoint saves), and which actor and which random streams a batch uses never
depends on timing. At most one request is in flight.

An exception in the child comes back with its traceback and is raised in the parent as a
RuntimeError holding it; a child that dies without a reply is a RuntimeError naming its exit code.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import wait

import numpy as np

from baselines_her.checkpoint import generator_states, restore_generator_states
from baselines_her.networks import NumpyActor
from baselines_her.rollout import DemoResets, RolloutWorker

# numpy's BLAS reads these when it loads; the child's envs and actor need one thread each.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
IDLE_EXIT_S = 10.0  # how long close() waits for an idle child to exit before killing it
_start_lock = threading.Lock()  # the environment and signal mask are process-wide during a start


def actor_arrays(actor: NumpyActor) -> dict:
    """A :class:`NumpyActor` as plain data (its activations are functions, which do not pickle):
    kernels, biases, activation names, normaliser statistics, clips and ``max_u``."""
    return {"kernels": list(actor.kernels), "biases": list(actor.biases),
            "activations": list(actor.activation_names), "max_u": actor.max_u,
            "o_mean": actor.o_mean, "o_std": actor.o_std, "g_mean": actor.g_mean,
            "g_std": actor.g_std, "norm_clip": actor.norm_clip, "clip_obs": actor.clip_obs}


def actor_from_arrays(arrays: dict) -> NumpyActor:
    """The :class:`NumpyActor` that :func:`actor_arrays` describes (same arrays, same actions)."""
    layers = [(f"layer{i}", name) for i, name in enumerate(arrays["activations"])]
    weights = {}
    for (layer, _), kernel, bias in zip(layers, arrays["kernels"], arrays["biases"]):
        weights[f"{layer}/kernel"], weights[f"{layer}/bias"] = kernel, bias
    return NumpyActor(weights, "actor", layers, arrays["max_u"], arrays["o_mean"],
                      arrays["o_std"], arrays["g_mean"], arrays["g_std"], arrays["norm_clip"],
                      arrays["clip_obs"])


def rollout_generators(worker) -> dict:
    """The generators a batch of training rollouts draws from, by the names checkpoints use."""
    generators = {"rollout": worker.rng, "envs": worker.env_rngs}
    if worker.demo_resets is not None:
        generators["demo_reset"] = worker.demo_resets.rng
    return generators


@contextlib.contextmanager
def _child_start_settings():
    """What a spawned child inherits at its start: one BLAS thread, and SIGINT/SIGTERM blocked
    until it ignores them (a Ctrl-C during its imports must not kill it). The parent's other
    threads still take its signals meanwhile; a blocked one waits and is not lost."""
    with _start_lock:
        saved = {name: os.environ.get(name) for name in THREAD_VARS}
        os.environ.update({name: "1" for name in THREAD_VARS})
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class RolloutProcess:
    """The training rollouts of ``n_envs`` envs of ``env_name``, run in a child process.

    Two steps, so that the child can import its modules and build its envs while this process
    starts TensorFlow: the constructor names the envs (and :meth:`start` may start the child at
    once); :meth:`configure` gives the rest of :class:`RolloutWorker`'s arguments before the first
    request. The child starts with :meth:`start` or at the first request.

    ``rng``, :attr:`env_rngs` and ``demo_resets.rng`` are the parent's copies of the child's
    generators: :meth:`submit` sends their states, :meth:`receive` sets them to the states after
    the rollouts. ``demo_resets`` (optional) supplies the demo states and the probability; its
    ``last_starts`` is set from the child's.
    """

    def __init__(self, env_name: str, n_envs: int):
        self.env_name, self.n_envs = env_name, n_envs
        self.rng = self.demo_resets = None
        self.env_rngs: list = []
        self._setup = None  # what the child needs beyond its envs; set by configure()
        self._process = None
        self._conn = None
        self._starting = False  # started, its "ready" message not read yet
        self.in_flight = False  # a request was sent and its reply not yet received
        self.tensorflow_in_child = False  # as the child reported when it started

    def configure(self, T: int, dim_o: int, dim_g: int, dim_u: int, max_u: float,
                  rng: np.random.Generator, env_seeds: list, noise_eps: float = 0.0,
                  random_eps: float = 0.0,
                  demo_resets: DemoResets | None = None) -> "RolloutProcess":
        """:class:`RolloutWorker`'s arguments after its envs; returns ``self``. Once only."""
        if self._setup is not None:
            raise RuntimeError("the rollout process is already configured")
        self.rng, self.demo_resets = rng, demo_resets
        self.env_rngs = [np.random.default_rng(s) for s in env_seeds[:self.n_envs]]
        self._setup = {"T": T, "dims": (dim_o, dim_g, dim_u), "max_u": float(max_u),
                       "env_seeds": list(env_seeds[:self.n_envs]), "noise_eps": float(noise_eps),
                       "random_eps": float(random_eps),
                       "demo": None if demo_resets is None else (demo_resets.states,
                                                                 demo_resets.prob)}
        return self

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child, which builds its envs, and return at once (the first request waits
        for it to be ready). Requests start it if this was not called."""
        if self._process is not None:
            return
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(child_end, self.env_name, self.n_envs),
                              name="baselines_her-rollouts", daemon=True)
        with _child_start_settings():
            process.start()
        child_end.close()  # so that the child's death reads as EOF here
        self._process, self._conn = process, parent_end
        # Before multiprocessing's own exit handler joins its children (LIFO), which would wait
        # forever on a child that ignores SIGTERM and still has its pipe open.
        atexit.register(self.close)
        self._starting = True

    def _await_ready(self) -> None:
        """Wait for the child's first message (its envs are built), then send it the setup."""
        self._starting = False
        reply = self._reply(starting=True)
        if reply[0] == "error":
            self._failed(reply[1])
        self.tensorflow_in_child = reply[1]
        self._send(("setup", self._setup))
        if self.tensorflow_in_child:
            from baselines_her.logger import warn
            warn("the rollout process imported TensorFlow, which it does not need (memory, "
                 "start-up time); multiprocessing's spawn imports the main script again there, "
                 "so a script that imports TensorFlow at top level does this: import it inside "
                 "a function, or train with --rollout_process=0")

    def submit(self, actor: NumpyActor) -> None:
        """Ask for one episode per env with ``actor`` and exploration; returns at once."""
        if self.in_flight:
            raise RuntimeError("rollouts were requested twice without receiving the first batch")
        if self._setup is None:
            raise RuntimeError("configure() the rollout process before requesting rollouts")
        self.start()
        if self._starting:
            self._await_ready()
        self._send((actor_arrays(actor), generator_states(rollout_generators(self))))
        self.in_flight = True

    def _send(self, message) -> None:
        try:
            self._conn.send(message)
        except OSError:  # the child is gone
            self._died()

    def receive(self) -> tuple[dict, dict]:
        """The episode batch and stats of the request in flight, waiting for them; the
        generators are set to their states after those rollouts."""
        if not self.in_flight:
            raise RuntimeError("no rollouts were requested")
        reply = self._reply()
        self.in_flight = False
        if reply[0] == "error":
            self._failed(reply[1])
        _, episodes, info, states, last_starts = reply
        restore_generator_states(rollout_generators(self), states)
        if self.demo_resets is not None:
            self.demo_resets.last_starts = last_starts
        return episodes, info

    def generate_rollouts(self, policy: NumpyActor, explore: bool = True) -> tuple[dict, dict]:
        """:meth:`RolloutWorker.generate_rollouts` for training rollouts: submit, then wait."""
        if not explore:
            raise ValueError("the rollout process runs training rollouts (explore=True) only")
        self.submit(policy)
        return self.receive()

    def _reply(self, starting: bool = False):
        while True:
            ready = wait([self._conn, self._process.sentinel])
            if self._conn in ready:
                try:
                    return self._conn.recv()
                except (EOFError, OSError):
                    break
            if self._process.sentinel in ready and not self._conn.poll():
                break
        self._died(starting)

    def _failed(self, child_traceback: str):
        self.close()
        raise RuntimeError(f"the rollout process failed:\n{child_traceback}")

    def _died(self, starting: bool = False):
        pid = self._process.pid
        self._process.join(timeout=IDLE_EXIT_S)
        code = self._process.exitcode
        self.close()
        how = f" (killed by {signal.Signals(-code).name})" if code is not None and code < 0 else ""
        hint = ("while starting (see its output above; multiprocessing's spawn imports the main "
                "script again in it, so a script must start training under "
                "`if __name__ == '__main__':`)" if starting else "without a reply")
        raise RuntimeError(f"the rollout process (pid {pid}) exited with code {code}{how} {hint}")

    def close(self) -> None:
        """End the child: closing the pipe ends an idle one; a busy one (rollouts in flight,
        whose results nobody will read) is killed. Waits until it is gone."""
        atexit.unregister(self.close)
        process, conn, busy = self._process, self._conn, self.in_flight
        self._process = self._conn = None
        self.in_flight = self._starting = False
        if process is None:
            return
        conn.close()
        process.join(timeout=0 if busy else IDLE_EXIT_S)
        if process.exitcode is None:
            process.kill()
            process.join()
        process.close()


# ---- the child ---------------------------------------------------------------------------------
def _serve(conn, env_name: str, n_envs: int) -> None:
    """The child's main loop: builds the envs, says it is ready, takes the setup, then sends one
    reply per request until the pipe closes; an exception is sent back with its traceback and
    ends the child."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    envs = []
    try:
        from baselines_her.envs import make_env
        for _ in range(n_envs):
            envs.append(make_env(env_name))  # one by one, so a failure closes those built
        conn.send(("ready", "tensorflow" in sys.modules))
        try:
            kind, setup = conn.recv()
        except EOFError:  # closed before the first request
            return
        if kind != "setup":  # the protocol sends the setup first; anything else is a bug
            raise RuntimeError(f"rollout child: expected the setup message first, got {kind!r}")
        worker = _build_worker(envs, setup)
        while True:
            try:
                actor, states = conn.recv()
            except EOFError:  # the parent closed the pipe, or died
                return
            restore_generator_states(rollout_generators(worker), states)
            episodes, info = worker.generate_rollouts(actor_from_arrays(actor), explore=True)
            last_starts = worker.demo_resets.last_starts if worker.demo_resets else None
            reply = ("episodes", episodes, info, generator_states(rollout_generators(worker)),
                     last_starts)
            try:
                conn.send(reply)
            except OSError:  # the parent is gone
                return
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        for env in envs:
            env.close()


def _build_worker(envs: list, setup: dict) -> RolloutWorker:
    # Every request sets the states of all these generators to the parent's, so their seeds here
    # do not matter.
    demo_resets = None
    if setup["demo"] is not None:
        states, prob = setup["demo"]
        demo_resets = DemoResets(states, prob, np.random.default_rng())
    return RolloutWorker(envs, setup["T"], *setup["dims"], setup["max_u"], np.random.default_rng(),
                         setup["env_seeds"], setup["noise_eps"], setup["random_eps"],
                         demo_resets=demo_resets)
