"""The epoch loop: rollouts -> store -> n_batches x (sample -> train_step) -> target update;
per epoch: test rollouts, log, policy files and a resumable checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass

import numpy as np

from baselines_her import mpi_util
from baselines_her.config import Params, batch_rows
from baselines_her.her_sampler import HerSampler
from baselines_her.logger import Logger
from baselines_her.policy_file import save_policy
from baselines_her.prioritized import make_priorities
from baselines_her.replay_buffer import ReplayBuffer
from baselines_her.rollout import RolloutWorker
from baselines_her.seeding import seed_everything
from baselines_her.sources import EpisodeSource, fixed_source, sample_mixed



def checkpoint_dir() -> str:
    """``checkpoint`` in one process; ``checkpoint-rank{r}`` for every MPI rank r > 0."""
    r = mpi_util.rank()
    return "checkpoint" if r == 0 else f"checkpoint-rank{r}"


@dataclass
class TrainResult:
    logdir: str
    epochs_run: int
    final_test_success: float
    best_test_success: float
    best_epoch: int
    env_steps: int
    wall_s: float


def default_logdir(params: Params) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("logs", f"{params.env_name}-{params.algo}-seed{params.seed}-{stamp}")


def configure_tensorflow(num_threads: int) -> None:
    import tensorflow as tf
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


class Trainer:
    """Owns env, buffer, sampler, agent and workers for one run (one MPI rank)."""

    def __init__(self, params: Params, logdir: str):
        configure_tensorflow(params.num_threads)
        from baselines_her.ddpg import DDPG
        from baselines_her.envs import describe_env, make_env

        self.params, self.logdir = params, logdir
        self.rank = mpi_util.rank()
        n_train, n_test = params.rollout_batch_size, params.n_test_rollouts
        self.rngs = seed_everything(params.seed, self.rank, n_envs=n_train + n_test)
        envs = [make_env(params.env_name) for _ in range(n_train + max(n_test, 1))]
        self.spec = spec = describe_env(envs[0], params.env_name)
        if spec.T != params.T:
            raise ValueError(f"params.T={params.T} but env {params.env_name} has T={spec.T}")
        dims = (spec.dim_o, spec.dim_g, spec.dim_u)
        self.agent = DDPG(*dims, params, tf_seed=self.rngs.tf_seed)
        self.agent.sync_from_root()
        self.buffer = ReplayBuffer(spec.T, *dims, params.buffer_size)
        self.sampler = HerSampler(params.replay_strategy, params.replay_k, spec.T,
                                  spec.compute_reward, spec.distance_threshold)
        self.priorities = make_priorities(params.prioritized, self.buffer, params, spec.dt)
        max_u = min(params.max_u, spec.max_u)
        self.worker = RolloutWorker(envs[:n_train], spec.T, *dims, max_u, self.rngs.rollout,
                                    self.rngs.env_seeds[:n_train], params.noise_eps,
                                    params.random_eps)
        self.evaluator = RolloutWorker(envs[n_train:], spec.T, *dims, max_u, self.rngs.rollout,
                                       self.rngs.env_seeds[n_train:])
        self.logger = Logger(logdir, enabled=self.rank == 0)
        self.sources = self._build_sources(dims)
        self.start_epoch, self.best_success, self.best_epoch, self.env_steps = 0, -1.0, -1, 0
        self.cycles_done = 0

    def _build_sources(self, dims: tuple) -> list:
        """Replay, plus demo and human episode sources when their files are given."""
        p, T = self.params, self.spec.T
        rows = batch_rows(p)
        sources = [EpisodeSource("replay", self.buffer, self.sampler, rows["replay"], False,
                                 priorities=self.priorities)]
        if p.demo_file or p.human_file:
            from baselines_her.demo import load_episodes
        if p.demo_file:
            demos = load_episodes(p.demo_file, T, *dims, num=p.num_demo, source="--demo_file")
            sources.append(fixed_source("demo", demos, self.sampler, rows["demo"], p.bc_loss, dims))
            self._update_normalizers(demos)  # demo data updates the normalisers
        if p.human_file:
            human = load_episodes(p.human_file, T, *dims, source="--human_file")
            sampler = self.sampler if p.human_her else HerSampler(
                "none", 0, T, self.spec.compute_reward, self.spec.distance_threshold)
            sources.append(fixed_source("human", human, sampler, rows["human"], p.human_bc, dims))
            self._update_normalizers(human)
        for s in sources[1:]:
            self.logger.info(f"{s.name} source: {s.buffer.current_size} episodes, {s.rows} rows "
                             f"per batch, behaviour cloning {'on' if s.bc else 'off'}")
        return sources

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

    def _cycle(self, actor, stats: dict) -> None:
        p = self.params
        t0 = time.perf_counter()
        episodes, info = self.worker.generate_rollouts(actor, explore=True)
        self._store(episodes)
        self.env_steps += episodes["u"].shape[0] * self.spec.T
        t1 = time.perf_counter()
        replay = self.sources[0]
        progress = self.cycles_done / max(p.n_epochs * p.n_cycles, 1)
        replay.beta = p.beta0 + (1.0 - p.beta0) * min(progress, 1.0)  # anneal IS exponent to 1
        for _ in range(p.n_batches):
            batch = sample_mixed(self.sources, self.rngs.sampler)
            out = self.agent.train(batch)
            if self.priorities is not None:
                stats["stale"] += self.priorities.update(batch.get("priority_token"),
                                                         out["td_abs"][: replay.rows])
            stats["critic"].append(out["critic_loss"])
            if np.isfinite(out["actor_loss"]):
                stats["actor"].append(out["actor_loss"])
                stats["bc"].append(out["bc_loss"])
                stats["bc_rows"].append(out["bc_rows_kept"])
        self.agent.update_target_net()
        self.cycles_done += 1
        stats["train_success"].append(info["success_rate"])
        stats["rollout_s"] += t1 - t0
        stats["train_s"] += time.perf_counter() - t1

    def _test(self, actor) -> tuple[float, float]:
        successes, qs, done = [], [], 0
        while done < max(self.params.n_test_rollouts, 1):
            episodes, info = self.evaluator.generate_rollouts(actor, explore=False)
            successes.append(info["success_rate"])
            qs.append(self.agent.mean_q(episodes["o"][:, :-1], episodes["g"]))
            done += episodes["u"].shape[0]
        return float(np.mean(successes)), float(np.mean(qs))

    def run(self) -> TrainResult:
        p, log = self.params, self.logger
        log.write_params(p)
        log.info(f"baselines_her: {p.env_name} algo={p.algo} seed={p.seed} T={p.T} "
                 f"epochs={p.n_epochs} ranks={mpi_util.size()} logdir={self.logdir}")
        t_start = time.perf_counter()
        final_success = float("nan")
        actor = self.agent.numpy_actor()
        for epoch in range(self.start_epoch, p.n_epochs):
            t_epoch = time.perf_counter()
            stats = {"critic": [], "actor": [], "bc": [], "bc_rows": [], "train_success": [],
                     "rollout_s": 0.0, "train_s": 0.0, "stale": 0}
            steps_before = self.env_steps
            for _ in range(p.n_cycles):
                self._cycle(actor, stats)
                actor = self.agent.numpy_actor()
            t_test = time.perf_counter()
            test_success, mean_q = self._test(actor)
            test_s = time.perf_counter() - t_test
            row = self._epoch_row(epoch, stats, test_success, mean_q, test_s,
                                  time.perf_counter() - t_epoch, steps_before)
            final_success = row["test/success_rate"]
            # Gradients are averaged over ranks, so weights must stay identical; check it.
            mpi_util.check_in_sync("network weights", self.agent.flat_weights())
            log.log_epoch(row, p.n_epochs)
            self._save(epoch, final_success)
        self.logger.info(f"final test success rate: {final_success:.3f} (best "
                         f"{self.best_success:.3f} at epoch {self.best_epoch}); policies in "
                         f"{self.logdir}")
        self.logger.close()
        return TrainResult(self.logdir, p.n_epochs - self.start_epoch, final_success,
                           self.best_success, self.best_epoch, self.env_steps,
                           time.perf_counter() - t_start)

    def _epoch_row(self, epoch, stats, test_success, mean_q, test_s, epoch_s, steps_before):
        o_norm, g_norm = self.agent.o_norm, self.agent.g_norm
        mean = lambda key: np.mean(stats[key]) if stats[key] else np.nan  # noqa: E731
        local = np.array([test_success, mean_q, np.mean(stats["train_success"]), mean("critic"),
                          mean("actor"), mean("bc"), mean("bc_rows")])
        (test_success, mean_q, train_success, critic, actor, bc,
         bc_rows) = mpi_util.allreduce_mean(local)
        epoch_steps = (self.env_steps - steps_before) * mpi_util.size()
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
            "perf/env_steps_per_s": epoch_steps / max(stats["rollout_s"], 1e-9),
            "perf/updates_per_s": self.params.n_cycles * self.params.n_batches
            / max(stats["train_s"], 1e-9),
        }

    # ---- files -------------------------------------------------------------------------------
    def _save(self, epoch: int, test_success: float) -> None:
        if self.rank != 0:
            self.save_checkpoint(epoch)  # each rank keeps its own buffer and generators
            return
        state = self.agent.policy_state(self.params.env_name)
        save_policy(os.path.join(self.logdir, "policy_latest.pkl"), state)
        if test_success >= self.best_success:
            self.best_success, self.best_epoch = test_success, epoch
            save_policy(os.path.join(self.logdir, "policy_best.pkl"), state)
        k = self.params.policy_save_interval
        if k > 0 and epoch % k == 0:
            save_policy(os.path.join(self.logdir, f"policy_{epoch}.pkl"), state)
        self.save_checkpoint(epoch)

    def save_checkpoint(self, epoch: int) -> None:
        """Write the full training state to ``checkpoint/`` atomically (temp dir + rename)."""
        final = os.path.join(self.logdir, checkpoint_dir())
        tmp, old = final + ".tmp", final + ".old"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)  # makedirs also creates logdir on ranks without a logger
        self.agent.tf_checkpoint().write(os.path.join(tmp, "tf"))
        np.savez(os.path.join(tmp, "state.npz"), **self.buffer.state_dict(),
                 **self.agent.normalizer_state(),
                 **(self.priorities.state_dict() if self.priorities is not None else {}))
        meta = {"epoch": epoch, "best_success": self.best_success, "best_epoch": self.best_epoch,
                "env_steps": self.env_steps, "cycles_done": self.cycles_done,
                "rng": {"rollout": self.rngs.rollout.bit_generator.state,
                        "sampler": self.rngs.sampler.bit_generator.state,
                        "envs": [r.bit_generator.state for r in self._env_rngs()]}}
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f)
        if os.path.exists(final):
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)

    def _env_rngs(self) -> list:
        return self.worker.env_rngs + self.evaluator.env_rngs

    def load_checkpoint(self) -> None:
        path = os.path.join(self.logdir, checkpoint_dir())
        if not os.path.isdir(path) and os.path.isdir(path + ".old"):
            path += ".old"  # crashed between the two renames
        if not os.path.exists(os.path.join(path, "meta.json")):
            raise FileNotFoundError(f"--resume: no checkpoint in {self.logdir} "
                                    f"(expected {checkpoint_dir()}/meta.json)")
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        self.agent.tf_checkpoint().read(os.path.join(path, "tf")).assert_existing_objects_matched()
        with np.load(os.path.join(path, "state.npz"), allow_pickle=False) as state:
            self.buffer.load_state_dict(state)
            self.agent.load_normalizer_state(state)
            if self.priorities is not None:
                self.priorities.load_state_dict(state)
        self.rngs.rollout.bit_generator.state = meta["rng"]["rollout"]
        self.rngs.sampler.bit_generator.state = meta["rng"]["sampler"]
        for rng, state in zip(self._env_rngs(), meta["rng"]["envs"]):
            rng.bit_generator.state = state
        self.start_epoch = meta["epoch"] + 1
        self.best_success, self.best_epoch = meta["best_success"], meta["best_epoch"]
        self.env_steps, self.cycles_done = meta["env_steps"], meta["cycles_done"]
        self.logger.info(f"resumed from {path} at epoch {self.start_epoch}")


def train(params: Params, logdir: str | None = None, resume: bool = False) -> TrainResult:
    # Rank 0 names the run (default names hold a timestamp that other ranks could disagree on).
    logdir = mpi_util.broadcast_object(logdir or params.logdir or default_logdir(params))
    if (not resume and mpi_util.rank() == 0
            and os.path.exists(os.path.join(logdir, "progress.csv"))):
        raise FileExistsError(f"{logdir} already holds a run (progress.csv); pass --resume to "
                              f"continue it or choose another --logdir")
    trainer = Trainer(params, logdir)
    if resume:
        trainer.load_checkpoint()
    return trainer.run()
