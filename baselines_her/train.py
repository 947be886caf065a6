"""The epoch loop: rollouts -> store -> updates -> target update per cycle; per epoch: test
rollouts, a resumable checkpoint, the progress row, policy files.

With ``--rollout_process`` (one-process runs) the training rollouts run in a second process
(:mod:`baselines_her.rollout_process`) while the learner trains. Cycle c then receives its
episodes (running them first when nothing is in flight: the first cycle of an epoch and the first
after a start or resume), asks for cycle c+1's episodes with the actor it was given (the weights
after cycle c-1's updates) unless c is the epoch's last cycle, and stores and trains as in one
process. So rollouts use the actor of one cycle earlier, the pipeline is empty at every epoch's
end (test rollouts and checkpoint), and a stop waits for the episodes in flight and saves them in
the checkpoint as the next cycle's pending episodes.

Order at the end of an epoch: checkpoint (holding the epoch's row), then the row in TensorBoard
and progress.csv, then policy files. A kill at any instant therefore resumes from a complete
checkpoint, and resume writes any row and policy files the kill cut off, so every epoch appears
exactly once. SIGTERM / SIGINT finish the current cycle, save and exit cleanly.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from baselines_her import checkpoint, mpi_util, sim_state
from baselines_her.config import Params, batch_rows, prepare_resume_params
from baselines_her.errors import TrainingDiverged, UserError
from baselines_her.her_sampler import HerSampler
from baselines_her.logger import (Logger, keep_progress_before, last_logged_epoch,
                                  last_tensorboard_epoch)
from baselines_her.policy_file import save_policy
from baselines_her.prioritized import annealed_beta, make_priorities
from baselines_her.quiet_tensorflow import import_tensorflow
from baselines_her.replay_buffer import ReplayBuffer
from baselines_her.rollout import DemoResets, RolloutWorker
from baselines_her.rollout_process import RolloutProcess
from baselines_her.seeding import seed_everything
from baselines_her.sources import EpisodeSource, fixed_source, sample_mixed


@dataclass
class TrainResult:
    logdir: str
    epochs_run: int
    final_test_success: float
    best_test_success: float
    best_epoch: int
    env_steps: int
    wall_s: float
    stopped_by: str = ""  # the signal that stopped the run early, if one did


def default_logdir(params: Params) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("logs", f"{params.env_name}-{params.algo}-seed{params.seed}-{stamp}")


def configure_tensorflow(num_threads: int) -> str:
    """Apply the thread settings; returns the device the update runs on, e.g. ``'CPU'``."""
    tf = import_tensorflow()
    threading = tf.config.threading
    if num_threads > 0 and threading.get_intra_op_parallelism_threads() != num_threads:
        try:
            threading.set_intra_op_parallelism_threads(num_threads)
            threading.set_inter_op_parallelism_threads(num_threads)
        except RuntimeError:  # TF already started in this process (e.g. a second run)
            from baselines_her.logger import warn
            warn(f"--num_threads={num_threads} ignored: TensorFlow was already started in this "
                 f"process with other thread settings")
    if num_threads == 1:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and tensorflow_builds_clash():
        from baselines_her.logger import warn
        warn("both tensorflow-cpu and tensorflow are installed (`.[gpu]` adds the CUDA build beside "
             "the CPU one) and no GPU is in use: the CPU build's files may have replaced the CUDA "
             "build's. For the GPU: pip uninstall -y tensorflow-cpu tensorflow && pip install "
             "'tensorflow[and-cuda]==2.21.*'")
    return f"GPU ({', '.join(g.name for g in gpus)})" if gpus else "CPU"


def tensorflow_builds_clash(distribution=None) -> bool:
    """Whether the tensorflow-cpu and tensorflow distributions are both installed: they ship the
    same ``tensorflow/`` files, so the one pip installed last decides which build runs."""
    from importlib import metadata
    distribution = distribution or metadata.distribution

    def installed(name: str) -> bool:
        try:
            distribution(name)
            return True
        except metadata.PackageNotFoundError:
            return False
    return installed("tensorflow-cpu") and installed("tensorflow")


class StopSignals:
    """While active, the first SIGTERM or SIGINT asks the run to stop after the current cycle; a
    second SIGINT interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.received = ""
        self._previous = {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def requested(self) -> bool:
        """True on every rank once any rank received a signal (one small all-reduce)."""
        return bool(mpi_util.allreduce_sum(np.array([float(bool(self.received))]))[0])


def _new_epoch_stats() -> dict:
    # rollout_s: the learner's time getting episodes (running them, or waiting for the rollout
    # process); collect_s: the time the rollouts took, wherever they ran.
    return {"critic": [], "actor": [], "bc": [], "bc_rows": [], "train_success": [],
            "rollout_s": 0.0, "collect_s": 0.0, "train_s": 0.0, "elapsed_s": 0.0, "stale": 0,
            "env_steps": 0}


class Trainer:
    """Owns env, buffer, sampler, agent and workers for one run (one MPI rank)."""

    def __init__(self, params: Params, logdir: str):
        self.params, self.logdir = params, logdir
        self.rank = mpi_util.rank()
        if params.rollout_process and mpi_util.size() > 1:
            raise UserError(f"--rollout_process=1 is for one-process runs; this run has "
                            f"{mpi_util.size()} MPI ranks: drop the flag")
        # The rollout process imports its modules and builds its envs while TensorFlow starts.
        early = None
        if params.rollout_process:
            early = RolloutProcess(params.env_name, params.rollout_batch_size)
            early.start()
        try:
            self._build(params, logdir, early)
        except BaseException:
            if early is not None:
                early.close()
            raise

    def _build(self, params: Params, logdir: str, rollout_process: RolloutProcess | None):
        self.device = configure_tensorflow(params.num_threads)
        from baselines_her.ddpg import DDPG
        from baselines_her.envs import describe_env, make_env

        n_train, n_test = params.rollout_batch_size, params.n_test_rollouts
        self.rngs = seed_everything(params.seed, self.rank, n_envs=n_train + n_test)
        # With the rollout process the training envs live there; this process builds the test
        # envs. The n_test_rollouts test episodes run in rounds on at most rollout_batch_size
        # envs (each episode keeps a reset generator of its own), since building a panda-gym
        # env costs about 0.2 s of start-up.
        n_here = 0 if rollout_process is not None else n_train
        n_test_envs = min(max(n_test, 1), max(n_train, 1))
        envs = [make_env(params.env_name)]
        self.spec = spec = describe_env(envs[0], params.env_name)
        if spec.T != params.T:
            raise ValueError(f"params.T={params.T} but env {params.env_name} has T={spec.T}")
        dims = (spec.dim_o, spec.dim_g, spec.dim_u)
        max_u = min(params.max_u, spec.max_u)  # decided once: the actor's scale and the rollouts'
        self.agent = DDPG(*dims, params, tf_seed=self.rngs.tf_seed, max_u=max_u)
        self.agent.sync_from_root()
        self.buffer = ReplayBuffer(spec.T, *dims, params.buffer_size)
        self.sampler = HerSampler(params.replay_strategy, params.replay_k, spec.T,
                                  spec.compute_reward, spec.distance_threshold)
        self.priorities = make_priorities(params.prioritized, self.buffer, params, spec.dt)
        self.logger = Logger(logdir, enabled=self.rank == 0)
        self.sources, demo_states = self._build_sources(dims, envs[0])
        demo_resets = (DemoResets(demo_states, params.demo_reset_prob, self.rngs.demo_reset)
                       if demo_states is not None else None)
        train_seeds = self.rngs.env_seeds[:n_train]
        envs += [make_env(params.env_name) for _ in range(n_here + n_test_envs - 1)]
        if rollout_process is not None:
            self.worker = rollout_process.configure(
                spec.T, *dims, max_u, self.rngs.rollout, train_seeds, params.noise_eps,
                params.random_eps, demo_resets=demo_resets)
        else:
            self.worker = RolloutWorker(envs[:n_train], spec.T, *dims, max_u, self.rngs.rollout,
                                        train_seeds, params.noise_eps, params.random_eps,
                                        demo_resets=demo_resets)
        # Shares the exploration generator but never draws from it (explore=False).
        self.evaluator = RolloutWorker(envs[n_here:], spec.T, *dims, max_u, self.rngs.rollout,
                                       self.rngs.env_seeds[n_train:n_train + max(n_test, 1)])
        # Episodes that ran while a stopped run's last cycle trained: the next cycle's (they are
        # saved in the checkpoint). (episode batch, stats) or None.
        self.pending: tuple[dict, dict] | None = None
        self.best_success, self.best_epoch, self.env_steps, self.cycles_done = -1.0, -1, 0, 0
        self.position = (0, 0)  # the next (epoch, cycle) to run
        self.stats = _new_epoch_stats()
        self.last_row: dict | None = None  # the progress row of the last finished epoch
        self.checkpoint_dir = checkpoint.checkpoint_dir(logdir, self.rank)

    def _source_sampler(self, her: bool) -> HerSampler:
        """The sampler of a fixed episode source: the agent's HER sampler, or (``her`` off) one
        that keeps each row's recorded goal and recomputes its reward."""
        if her:
            return self.sampler
        return HerSampler("none", 0, self.spec.T, self.spec.compute_reward,
                          self.spec.distance_threshold)

    def _build_sources(self, dims: tuple, env) -> tuple[list, np.ndarray | None]:
        """Replay, plus demo and human episode sources when their files are given; and the
        demos' simulator states when ``--demo_reset_prob`` > 0 (else None). ``env``: one of the
        run's envs, whose state size the states must have."""
        p, T = self.params, self.spec.T
        rows = batch_rows(p)
        sources = [EpisodeSource("replay", self.buffer, self.sampler, rows["replay"], False,
                                 priorities=self.priorities)]
        demo_states = None
        if p.demo_file or p.human_file:
            from baselines_her.demo import load_episodes
        if p.demo_file:
            resets = p.demo_reset_prob > 0
            state_dim = sim_state.state_size(env) if resets else None  # non-panda: a user error
            demos = load_episodes(p.demo_file, T, *dims, num=p.num_demo, source="--demo_file",
                                  sim_states="required" if resets else "ignore",
                                  sim_state_dim=state_dim)
            demo_states = demos.pop("sim_state", None)
            sources.append(fixed_source("demo", demos, self._source_sampler(p.demo_her),
                                        rows["demo"], p.bc_loss, dims))
            self._update_normalizers(demos)  # demo data updates the normalisers
        if p.human_file:
            human = load_episodes(p.human_file, T, *dims, source="--human_file")
            sources.append(fixed_source("human", human, self._source_sampler(p.human_her),
                                        rows["human"], p.human_bc, dims))
            if p.human_norm:
                self._update_normalizers(human)
        for s in sources[1:]:
            self.logger.info(f"{s.name} source: {s.buffer.current_size} episodes, {s.rows} rows "
                             f"per batch, behaviour cloning {'on' if s.bc else 'off'}")
        if demo_states is not None:
            self.logger.info(f"demo resets: a training episode starts from a demo state with "
                             f"probability {p.demo_reset_prob}")
        return sources, demo_states

    # ---- one cycle / epoch -------------------------------------------------------------------
    def _update_normalizers(self, episodes: dict) -> None:
        # Baselines: normalisers see HER-relabelled transitions of the new episodes.
        n = episodes["u"].shape[0]
        relabelled = self.sampler.sample(episodes, n, n * self.spec.T, self.rngs.sampler)
        self.agent.update_normalizers(relabelled["o"], relabelled["g"])

    def _store(self, episodes: dict) -> None:
        slots = self.buffer.store_episode(episodes)
        if self.priorities is not None:
            self.priorities.on_store(slots, episodes)
        self._update_normalizers(episodes)

    @property
    def _in_flight(self) -> bool:
        """Rollouts were requested from the rollout process and not yet received."""
        return isinstance(self.worker, RolloutProcess) and self.worker.in_flight

    def _episodes(self, actor) -> tuple[dict, dict]:
        """This cycle's training episodes: the pending ones, those in flight, or run now."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            return pending
        if self._in_flight:
            return self.worker.receive()
        return self.worker.generate_rollouts(actor, explore=True)

    def _cycle(self, actor, epoch: int, prefetch: bool = False) -> None:
        """One cycle with ``actor`` (the weights after the previous cycle's updates). With the
        rollout process and ``prefetch`` (every cycle but an epoch's last), the next cycle's
        rollouts run with ``actor`` during this cycle's updates."""
        p, stats = self.params, self.stats
        t0 = time.perf_counter()
        episodes, info = self._episodes(actor)
        if prefetch and isinstance(self.worker, RolloutProcess):
            self.worker.submit(actor)
        t1 = time.perf_counter()
        self._store(episodes)
        steps = episodes["u"].shape[0] * self.spec.T
        self.env_steps += steps
        stats["env_steps"] += steps
        replay = self.sources[0]
        replay.beta = annealed_beta(p.beta0, self.cycles_done / max(p.n_epochs * p.n_cycles, 1))
        if p.n_batches:
            per_batch = self.priorities is not None and self.priorities.updates_priorities
            for _ in range(p.n_batches if per_batch else 1):
                batch = sample_mixed(self.sources, self.rngs.sampler, 1 if per_batch else
                                     p.n_batches)
                self._train(batch, epoch)
        self.agent.update_target_net()
        self.cycles_done += 1
        stats["train_success"].append(info["success_rate"])
        stats["rollout_s"] += t1 - t0
        stats["collect_s"] += info["rollout_s"]
        stats["train_s"] += time.perf_counter() - t1

    def _receive_in_flight(self) -> None:
        """Wait for rollouts in flight; they become the next cycle's pending episodes."""
        if self._in_flight:
            t0 = time.perf_counter()
            self.pending = self.worker.receive()
            self.stats["rollout_s"] += time.perf_counter() - t0

    def _train(self, batch: dict, epoch: int) -> None:
        """Updates on a stack of batches; stops the run if anything became NaN or inf."""
        out = self.agent.train_batches(batch)
        self._check_finite(out, epoch)
        if self.priorities is not None and self.priorities.updates_priorities:
            self.stats["stale"] += self.priorities.update(batch.get("priority_token"),
                                                          out["td_abs"][0][batch["replay_rows"]])
        updated = out["actor_updated"]
        self.stats["critic"] += out["critic_loss"].tolist()
        self.stats["actor"] += out["actor_loss"][updated].tolist()
        self.stats["bc"] += out["bc_loss"][updated].tolist()
        self.stats["bc_rows"] += out["bc_rows_kept"][updated].tolist()

    def _check_finite(self, out: dict, epoch: int) -> None:
        checks = (("critic loss", out["critic_loss"]), ("actor loss", out["actor_loss"]),
                  ("behaviour-cloning loss", out["bc_loss"]), ("TD errors", out["td_abs"]),
                  ("network weights", out["weights_finite"]))
        bad = [(name, np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1)
                                     if x.dtype != bool else ~x)) for name, x in checks]
        bad = [(name, steps) for name, steps in bad if len(steps)]
        if not bad:
            return
        first = min(int(steps[0]) for _, steps in bad)
        update = int(self.agent.n_updates.numpy()) - len(out["critic_loss"]) + first
        kept = (f"the last good checkpoint ({self.checkpoint_dir}) and policy files in "
                f"{self.logdir} are kept" if os.path.isdir(self.checkpoint_dir)
                else "no checkpoint was written yet")
        raise TrainingDiverged(
            f"training diverged: {', '.join(name for name, _ in bad)} became NaN or inf at epoch "
            f"{epoch}, update {update}; stopped, {kept} (lower --Q_lr / --pi_lr or check the "
            f"observations)")

    def _test(self, actor) -> tuple[float, float]:
        """Mean final success and mean Q over the n_test_rollouts test episodes."""
        successes, qs, n_test = [], [], max(self.params.n_test_rollouts, 1)
        while len(successes) < n_test:
            n = min(len(self.evaluator.envs), n_test - len(successes))
            episodes, _ = self.evaluator.generate_rollouts(actor, explore=False, n_episodes=n)
            successes += episodes["info_is_success"][:, -1, 0].tolist()
            qs.append(self.agent.mean_q(episodes["o"][:, :-1], episodes["g"]) * n)
        return float(np.mean(successes)), float(np.sum(qs) / n_test)

    def run(self, stop: StopSignals | None = None) -> TrainResult:
        """Train from :attr:`position` to ``n_epochs``, or until ``stop`` is requested. The
        rollout process, if any, is shut down when this returns or raises."""
        try:
            return self._run(stop)
        finally:
            self.close()

    def close(self) -> None:
        """Shut the rollout process down (a later rollout starts it again)."""
        if isinstance(self.worker, RolloutProcess):
            self.worker.close()

    def _run(self, stop: StopSignals | None) -> TrainResult:
        p, log = self.params, self.logger
        log.write_params(p)
        log.info(f"baselines_her: {p.env_name} algo={p.algo} seed={p.seed} T={p.T} "
                 f"epochs={p.n_epochs} ranks={mpi_util.size()} device={self.device} "
                 f"logdir={self.logdir}")
        t_start = time.perf_counter()
        first_epoch, first_cycle = self.position
        final_success = self.last_row["test/success_rate"] if self.last_row else float("nan")
        actor = self.agent.numpy_actor()
        for epoch in range(first_epoch, p.n_epochs):
            t_epoch = time.perf_counter() - self.stats["elapsed_s"]
            for cycle in range(first_cycle if epoch == first_epoch else 0, p.n_cycles):
                self._cycle(actor, epoch, prefetch=cycle + 1 < p.n_cycles)
                actor = self.agent.numpy_actor()
                if stop is not None and stop.requested():
                    self._receive_in_flight()
                    self.position = (epoch, cycle + 1)
                    self.stats["elapsed_s"] = time.perf_counter() - t_epoch
                    self.save_checkpoint()
                    log.info(f"stopped by {stop.received or 'a signal on another rank'} at epoch "
                             f"{epoch}, cycle {cycle + 1}/{p.n_cycles}; checkpoint saved. Resume "
                             f"with: python -m baselines_her.her --resume --logdir={self.logdir}")
                    return self._result(epoch - first_epoch, final_success, t_start,
                                        stop.received or "signal")
            t_test = time.perf_counter()
            test_success, mean_q = self._test(actor)
            row = self._epoch_row(epoch, test_success, mean_q, time.perf_counter() - t_test,
                                  time.perf_counter() - t_epoch)
            final_success = row["test/success_rate"]
            # Gradients are averaged over ranks, so weights must stay identical; check it.
            mpi_util.check_in_sync("network weights", self.agent.flat_weights())
            if final_success >= self.best_success:
                self.best_success, self.best_epoch = final_success, epoch
            self.position, self.last_row, self.stats = (epoch + 1, 0), row, _new_epoch_stats()
            self.save_checkpoint()
            self._publish_epoch(row)
        log.info(f"final test success rate: {final_success:.3f} (best "
                 f"{self.best_success:.3f} at epoch {self.best_epoch}); policies in "
                 f"{self.logdir}")
        log.close()
        return self._result(p.n_epochs - first_epoch, final_success, t_start)

    def _result(self, epochs_run, final_success, t_start, stopped_by="") -> TrainResult:
        return TrainResult(self.logdir, epochs_run, final_success, self.best_success,
                           self.best_epoch, self.env_steps, time.perf_counter() - t_start,
                           stopped_by)

    def _epoch_row(self, epoch, test_success, mean_q, test_s, epoch_s):
        """The epoch's progress row. Times in seconds: ``time/rollout_s`` is the time the
        learner spent getting training episodes (running them, or with the rollout process
        waiting for them), ``time/train_s`` storing them and the updates, ``time/test_s`` the
        test rollouts, ``time/epoch_s`` the whole epoch; ``perf/env_steps_per_s`` divides the
        epoch's env steps by the time the training rollouts took, wherever they ran."""
        o_norm, g_norm, stats = self.agent.o_norm, self.agent.g_norm, self.stats
        mean = lambda key: np.mean(stats[key]) if stats[key] else np.nan  # noqa: E731
        local = np.array([test_success, mean_q, np.mean(stats["train_success"]), mean("critic"),
                          mean("actor"), mean("bc"), mean("bc_rows")])
        (test_success, mean_q, train_success, critic, actor, bc,
         bc_rows) = mpi_util.allreduce_mean(local)
        epoch_steps = stats["env_steps"] * mpi_util.size()
        return {
            "epoch": epoch, "test/success_rate": float(test_success), "test/mean_Q": float(mean_q),
            "train/success_rate": float(train_success),
            "stats_o/mean": float(np.mean(o_norm.mean)), "stats_o/std": float(np.mean(o_norm.std)),
            "stats_g/mean": float(np.mean(g_norm.mean)), "stats_g/std": float(np.mean(g_norm.std)),
            "loss/critic": float(critic), "loss/actor": float(actor), "loss/bc": float(bc),
            **{f"batch/{s.name}_rows": s.rows for s in self.sources},
            "batch/bc_rows_kept": float(bc_rows),
            "per/beta": float(self.sources[0].beta), "per/stale_updates": stats["stale"],
            "total/env_steps": self.env_steps * mpi_util.size(),
            "total/episodes": self.buffer.n_episodes_stored * mpi_util.size(),
            "total/updates": int(self.agent.n_updates.numpy()),
            "time/rollout_s": stats["rollout_s"], "time/train_s": stats["train_s"],
            "time/test_s": test_s, "time/epoch_s": epoch_s,
            "perf/env_steps_per_s": epoch_steps / max(stats["collect_s"], 1e-9),
            "perf/updates_per_s": len(stats["critic"]) / max(stats["train_s"], 1e-9),
        }

    # ---- files -------------------------------------------------------------------------------
    def _publish_epoch(self, row: dict) -> None:
        """The epoch's policy files (rank 0), then its progress row and TensorBoard point: the
        row comes last but one, so an epoch with a row has its policy files (resume
        re-publishes an epoch without one, see :meth:`load_checkpoint`)."""
        if self.rank == 0:
            epoch = int(row["epoch"])
            state = self.agent.policy_state(self.params.env_name)
            save_policy(os.path.join(self.logdir, "policy_latest.pkl"), state)
            if self.best_epoch == epoch:
                save_policy(os.path.join(self.logdir, "policy_best.pkl"), state)
            k = self.params.policy_save_interval
            if k > 0 and epoch % k == 0:
                save_policy(os.path.join(self.logdir, f"policy_{epoch}.pkl"), state)
        self.logger.log_epoch(row, self.params.n_epochs)

    def save_checkpoint(self) -> None:
        """Everything needed to continue the run at :attr:`position` (see checkpoint.py)."""
        if self._in_flight:  # their generators' states are not known here yet
            raise RuntimeError("checkpoint requested while rollouts are in flight")
        checkpoint.save(self)

    def load_checkpoint(self, snapshot: str) -> None:
        meta = checkpoint.restore(self, snapshot)
        if self.cycles_done:  # the IS exponent of the last cycle run, which a row may still show
            p = self.params
            self.sources[0].beta = annealed_beta(
                p.beta0, (self.cycles_done - 1) / max(p.n_epochs * p.n_cycles, 1))
        self.stats = {**_new_epoch_stats(), **self.stats}  # keys a checkpoint may lack
        if not meta["has_buffer"]:
            self.logger.info("the checkpoint holds no replay buffer (--save_buffer=0): resuming "
                             "with an empty buffer")
        self.logger.info(f"resumed from {snapshot} at epoch {self.position[0]}, cycle "
                         f"{self.position[1]}")
        if self.last_row is not None and self.rank == 0:  # a kill cut the last publish short
            epoch = self.last_row["epoch"]
            if last_logged_epoch(self.logdir) < epoch:  # between checkpoint and row
                self._publish_epoch(self.last_row)
            elif self.logger.tensorboard and last_tensorboard_epoch(self.logdir) < epoch:
                self.logger.write_tensorboard(self.last_row)  # between row and TensorBoard


def train(params: Params, logdir: str | None = None, resume: bool = False) -> TrainResult:
    """Train one run; with ``resume`` continue the run in ``logdir`` from its checkpoint.

    Raises :class:`UserError` for a logdir that already holds a run (without ``resume``) or holds
    no checkpoint (with it), and :class:`TrainingDiverged` when a value becomes NaN or inf.
    """
    # Rank 0 names the run (default names hold a timestamp that other ranks could disagree on).
    logdir = mpi_util.broadcast_object(logdir or params.logdir or default_logdir(params))
    snapshot = None
    if resume:
        params = prepare_resume_params(logdir, {k: v for k, v in params.items() if k != "T"})
        directory = checkpoint.checkpoint_dir(logdir, mpi_util.rank())
        snapshot = checkpoint.latest_snapshot(directory)
        if snapshot is None:
            raise UserError(f"--resume: no checkpoint in {directory} (the run stopped before "
                            f"its first checkpoint); start it again without --resume")
        if mpi_util.rank() == 0:
            keep_progress_before(logdir, checkpoint.read_meta(snapshot)["position"][0])
    else:
        if mpi_util.rank() == 0 and os.path.exists(os.path.join(logdir, "progress.csv")):
            raise UserError(f"{logdir} already holds a run (progress.csv); pass --resume to "
                            f"continue it or choose another --logdir")
        params = Params({**params, "logdir": logdir})  # params.json names the run's folder
    trainer = Trainer(params, logdir)
    if snapshot is not None:
        trainer.load_checkpoint(snapshot)
    with StopSignals() as stop:
        return trainer.run(stop)
