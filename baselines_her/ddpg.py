"""The learner: DDPG and TD3 are one agent with flags (``n_critics``, ``policy_delay``,
``target_noise``, ``target_noise_clip``); DDPG is TD3 with those off.

Numerics live in compiled functions: in one process :meth:`DDPG._fused_steps` (XLA) runs ``K``
updates on a stack of ``K`` preprocessed batches and returns a dict of per-update losses; under MPI
the same step is split into compiled gradient and apply functions with the all-reduce between
them. Normalisation, MPI and bookkeeping stay in plain Python.
"""
from __future__ import annotations

import functools

import numpy as np

from baselines_her import losses, mpi_util
from baselines_her.networks import (NumpyActor, build_actor, build_critic, model_weights)
from baselines_her.normalizer import Normalizer
from baselines_her.quiet_tensorflow import import_tensorflow

tf = import_tensorflow()

POLICY_FORMAT_VERSION = 1
TRAIN_KEYS = ("o", "g", "o_2", "u", "r", "w", "bc")  # the batch arrays an update reads


class DDPG:
    def __init__(self, dim_o: int, dim_g: int, dim_u: int, params, tf_seed: int = 0,
                 max_u: float | None = None):
        """``max_u``: the action bound the actor is scaled to (default ``params.max_u``; the
        trainer passes ``min(params.max_u, the env's bound)``)."""
        p = params
        self.params = p
        self.dim_o, self.dim_g, self.dim_u = dim_o, dim_g, dim_u
        self.max_u = float(p.max_u if max_u is None else max_u)
        self.gamma = float(p.gamma)
        self.clip_return = 1.0 / (1.0 - self.gamma) if p.clip_return else None
        self.use_bc = bool(p.bc_loss)
        self.o_norm = Normalizer(dim_o, p.norm_eps, p.norm_clip, p.clip_obs)
        self.g_norm = Normalizer(dim_g, p.norm_eps, p.norm_clip, p.clip_obs)

        self.actor = build_actor(dim_o, dim_g, dim_u, p.layers, p.hidden, "actor")
        self.critics = [build_critic(dim_o, dim_g, dim_u, p.layers, p.hidden, f"critic{i}")
                        for i in range(p.n_critics)]
        self.target_actor = build_actor(dim_o, dim_g, dim_u, p.layers, p.hidden, "actor")
        self.target_critics = [build_critic(dim_o, dim_g, dim_u, p.layers, p.hidden, f"critic{i}")
                               for i in range(p.n_critics)]
        self.target_actor.set_weights(self.actor.get_weights())
        for target, main in zip(self.target_critics, self.critics):
            target.set_weights(main.get_weights())

        self.critic_vars = [v for c in self.critics for v in c.trainable_variables]
        self.actor_vars = list(self.actor.trainable_variables)
        self.pi_opt = tf.keras.optimizers.Adam(p.pi_lr)
        self.q_opt = tf.keras.optimizers.Adam(p.Q_lr)
        # Build optimiser slots now: apply_gradients runs inside a tf.cond (policy delay).
        self.pi_opt.build(self.actor_vars)
        self.q_opt.build(self.critic_vars)
        self.n_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="n_updates")
        self.noise_rng = tf.random.Generator.from_seed(tf_seed)
        self._target_pairs = list(zip(
            self.target_actor.variables + [v for c in self.target_critics for v in c.variables],
            self.actor.variables + [v for c in self.critics for v in c.variables]))
        self.n_ranks = mpi_util.size()  # read here: mpi4py calls inside tf.function confuse AutoGraph
        self._out_dtypes = {"critic_loss": tf.float32, "actor_loss": tf.float32,
                            "bc_loss": tf.float32, "bc_rows_kept": tf.float32,
                            "q_mean": tf.float32, "td_abs": tf.float32,
                            "actor_updated": tf.bool, "weights_finite": tf.bool}
        # autograph=False: the numerics branch only on Python values (tf.cond and tf.while_loop
        # are explicit); converting their source added about 2 s to the first update on a loaded 2-core VM.
        compiled = functools.partial(tf.function, jit_compile=p.jit_compile, autograph=False)
        if self.n_ranks == 1:
            # One XLA-compiled call runs a whole stack of updates (see train_batches).
            self._steps = compiled(self._fused_steps)
        else:
            # Gradients are averaged over ranks between compiled gradient and apply functions.
            self._critic_grads_c = compiled(self._critic_grads)
            self._actor_grads_c = compiled(self._actor_grads)
            self._apply_critic_c = compiled(self._apply_critic)
            self._apply_actor_c = compiled(self._apply_actor)
            self._finish_c = compiled(self._finish_step)
        self._update_target = compiled(self._polyak_update)
        self._q_pi = tf.function(self._q_of_policy, autograph=False)

    # ---- numerics (inside tf.function) -------------------------------------------------------
    def _critic_in(self, obs, u):
        return tf.concat([obs, u / self.max_u], axis=-1)

    def _td_target(self, obs_2, r):
        """``y (N, 1)`` for ``obs_2 (N, do+dg)`` normalised and ``r (N,)``, from the target networks
        (with TD3's smoothing noise, one ``(N, du)`` draw)."""
        p = self.params
        a_2 = self.max_u * self.target_actor(obs_2)
        if p.target_noise > 0:
            noise = self.noise_rng.normal(tf.shape(a_2)) * (p.target_noise * self.max_u)
            a_2 = losses.smoothed_target_action(a_2, noise, p.target_noise_clip * self.max_u,
                                                self.max_u)
        q_next = losses.min_over_critics([c(self._critic_in(obs_2, a_2))
                                          for c in self.target_critics])
        return losses.critic_target(r[:, None], q_next, self.gamma, self.clip_return)

    def _critic_grads(self, batch, y=None):
        """Critic loss and its gradient (before any update of this step) against the TD target
        ``y (B, 1)`` (computed here when not given).

        ``batch``: ``obs, obs_2 (B, do+dg)`` normalised; ``u (B, du)``; ``r (B,)``; ``w (B,)``
        importance weights (ones for uniform replay); ``bc (B,)`` 1 on rows that get the
        behaviour-cloning loss.
        """
        obs, u, w = batch["obs"], batch["u"], batch["w"][:, None]
        if y is None:
            y = self._td_target(batch["obs_2"], batch["r"])
        with tf.GradientTape() as tape:
            qs = [c(self._critic_in(obs, u)) for c in self.critics]
            critic_loss = tf.add_n([losses.critic_loss(q, y, w) for q in qs])
        grads = tape.gradient(critic_loss, self.critic_vars)
        return grads, {"critic_loss": critic_loss, "q_mean": tf.reduce_mean(qs[0]),
                       "td_abs": tf.abs(y - qs[0])[:, 0]}

    def _actor_grads(self, batch):
        """Actor loss and its gradient, from the critic as it is when called (after this step's
        critic update). With the Q-filter, ``Q(s, a_demo)`` and ``Q(s, pi(s))`` come from that same
        critic in one forward pass, so the filter compares two values of one function.
        """
        p = self.params
        obs, u = batch["obs"], batch["u"]
        bc, bc_rows = tf.constant(0.0), tf.constant(0.0)
        with tf.GradientTape() as tape:
            pi = self.max_u * self.actor(obs)
            if self.use_bc and p.q_filter:
                both = self.critics[0](tf.concat([self._critic_in(obs, pi),
                                                  self._critic_in(obs, u)], axis=0))
                q_pi, q_demo = tf.split(both, 2, axis=0)
            else:
                q_pi = self.critics[0](self._critic_in(obs, pi))
            if self.use_bc:
                mask = batch["bc"]
                if p.q_filter:
                    mask = losses.q_filter_mask(mask, q_demo, q_pi)
                bc, bc_rows = losses.bc_loss(pi, u, mask), tf.reduce_sum(mask)
                loss = losses.actor_loss_with_bc(q_pi, pi, self.max_u, p.action_l2, bc,
                                                 p.prm_loss_weight, p.aux_loss_weight)
            else:
                loss = losses.actor_loss(q_pi, pi, self.max_u, p.action_l2)
        grads = tape.gradient(loss, self.actor_vars)
        return grads, {"actor_loss": loss, "bc_loss": bc, "bc_rows_kept": bc_rows}

    def _apply_critic(self, grads):
        self.q_opt.apply_gradients(zip(grads, self.critic_vars))

    def _apply_actor(self, grads):
        self.pi_opt.apply_gradients(zip(grads, self.actor_vars))

    def _weights_finite(self):
        """False if any trained network weight is NaN or inf."""
        return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v))
                                       for v in self.critic_vars + self.actor_vars]))

    def _finish_step(self, out: dict, check_weights: bool = True) -> dict:
        """Count the update; with ``check_weights``, add ``weights_finite`` after it (see
        :meth:`_weights_finite`)."""
        self.n_updates.assign_add(1)
        return {**out, "weights_finite": self._weights_finite()} if check_weights else out

    def _fused_step(self, batch, y):
        """One critic update against the targets ``y`` and, every ``policy_delay`` steps, one
        actor update (one process); counts the update."""
        critic_grads, out = self._critic_grads(batch, y)
        self._apply_critic(critic_grads)
        actor_updated = tf.equal(self.n_updates % self.params.policy_delay, 0)

        def actor_update():
            grads, actor_out = self._actor_grads(batch)
            self._apply_actor(grads)
            return actor_out

        zero = tf.constant(0.0)
        actor_out = tf.cond(actor_updated, actor_update, lambda: {
            "actor_loss": zero, "bc_loss": zero, "bc_rows_kept": zero})
        return self._finish_step({**out, **actor_out, "actor_updated": actor_updated},
                                 check_weights=False)

    def _fused_steps(self, batches):
        """``K`` updates in one compiled call; every array of ``batches`` has a leading ``K``.

        The target networks change only between calls (:meth:`update_target_net`), so the TD
        targets of all ``K`` batches come from one forward pass over ``K * B`` rows before the
        loop: larger matrix products than ``K`` passes of ``B`` rows, the same values. The weights
        are checked once, after the last update: ``weights_finite`` is True for the others. A
        weight that turns NaN or inf earlier in the call shows in the losses of the next update
        that reads it (the critic's in the next critic loss, the actor's in the next actor
        loss), or else in that final check.
        """
        k, b = tf.shape(batches["r"])[0], tf.shape(batches["r"])[1]
        obs_2 = tf.reshape(batches["obs_2"], (k * b, -1))
        y = tf.reshape(self._td_target(obs_2, tf.reshape(batches["r"], (-1,))), (k, b, 1))

        def body(i, outs):
            out = self._fused_step({key: v[i] for key, v in batches.items()}, y[i])
            return i + 1, {key: outs[key].write(i, out[key]) for key in outs}

        dtypes = {key: d for key, d in self._out_dtypes.items() if key != "weights_finite"}
        outs = {key: tf.TensorArray(dtype, size=k) for key, dtype in dtypes.items()}
        _, outs = tf.while_loop(lambda i, _: i < k, body, (tf.constant(0), outs))
        finite = tf.logical_or(tf.range(k) < k - 1, self._weights_finite())
        return {**{key: a.stack() for key, a in outs.items()}, "weights_finite": finite}

    def _mpi_steps(self, batches):
        """The same updates as :meth:`_fused_steps` with gradients averaged over MPI ranks."""
        outs = []
        for i in range(batches["r"].shape[0]):
            batch = {key: v[i] for key, v in batches.items()}
            critic_grads, out = self._critic_grads_c(batch)
            self._apply_critic_c(self._allreduce(critic_grads))
            actor_updated = int(self.n_updates.numpy()) % self.params.policy_delay == 0
            zero = tf.constant(0.0)
            actor_out = {"actor_loss": zero, "bc_loss": zero, "bc_rows_kept": zero}
            if actor_updated:
                actor_grads, actor_out = self._actor_grads_c(batch)
                self._apply_actor_c(self._allreduce(actor_grads))
            outs.append(self._finish_c({**out, **actor_out,
                                        "actor_updated": tf.constant(actor_updated)}))
        return {key: tf.stack([o[key] for o in outs]) for key in self._out_dtypes}

    def _allreduce(self, grads):
        flat = np.concatenate([g.numpy().ravel() for g in grads])
        flat = mpi_util.allreduce_mean(flat).astype(np.float32)
        out, offset = [], 0
        for g in grads:
            n = int(np.prod(g.shape))
            out.append(tf.constant(flat[offset:offset + n].reshape(g.shape)))
            offset += n
        return out

    def all_variables(self) -> list:
        """Every network variable (main and target), in a fixed order."""
        return (self.actor.variables + [v for c in self.critics for v in c.variables]
                + self.target_actor.variables
                + [v for c in self.target_critics for v in c.variables])

    def flat_weights(self) -> np.ndarray:
        return np.concatenate([v.numpy().ravel() for v in self.all_variables()])

    def sync_from_root(self) -> None:
        """Broadcast rank 0's network weights so every rank starts identical."""
        flat = mpi_util.broadcast(self.flat_weights())
        offset = 0
        for v in self.all_variables():
            n = int(np.prod(v.shape))
            v.assign(flat[offset:offset + n].reshape(v.shape))
            offset += n

    def _polyak_update(self):
        for target, main in self._target_pairs:
            target.assign(self.params.polyak * target + (1.0 - self.params.polyak) * main)

    def _q_of_policy(self, obs):
        return self.critics[0](self._critic_in(obs, self.max_u * self.actor(obs)))[:, 0]

    # ---- plain-python side -------------------------------------------------------------------
    def obs_input(self, o: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.concatenate([self.o_norm.normalize(o), self.g_norm.normalize(g)], axis=-1)

    def preprocess(self, batch: dict, weights: np.ndarray | None = None) -> dict:
        n = len(batch["r"])
        return {"obs": self.obs_input(batch["o"], batch["g"]),
                "obs_2": self.obs_input(batch["o_2"], batch["g"]),
                "u": np.asarray(batch["u"], np.float32),
                "r": np.asarray(batch["r"], np.float32).reshape(n),
                "w": np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32),
                "bc": np.asarray(batch.get("bc", np.zeros(n)), np.float32)}

    def train_batches(self, batches: dict) -> dict:
        """``K`` updates, one per batch: every array of ``batches`` has leading dims ``(K, B)``
        (``o, g, o_2, u, r``, optional ``w`` and ``bc``). Returns numpy arrays with a leading
        ``K``: losses, ``td_abs (K, B)``, ``actor_updated`` and ``weights_finite`` (see
        :meth:`_fused_steps` and :meth:`_finish_step`). The normalisers are read once for all
        ``K`` updates, and so are the target networks (they change in :meth:`update_target_net`).
        """
        k, b = np.shape(batches["r"])[:2]
        flat = {key: np.reshape(batches[key], (k * b,) + np.shape(batches[key])[2:])
                for key in TRAIN_KEYS if key in batches}
        stacked = {key: v.reshape((k, b) + v.shape[1:])
                   for key, v in self.preprocess(flat, flat.get("w")).items()}
        run = self._steps if self.n_ranks == 1 else self._mpi_steps
        return {key: v.numpy() for key, v in run(stacked).items()}

    def train(self, batch: dict, weights: np.ndarray | None = None) -> dict:
        """One update on one batch (``o, g, o_2, u, r``, optional ``w``, ``bc``, all ``(B, ...)``)."""
        batch = {key: batch[key] for key in TRAIN_KEYS if key in batch}
        if weights is not None:
            batch["w"] = weights
        out = self.train_batches({key: np.asarray(v)[None] for key, v in batch.items()})
        return {key: v[0] for key, v in out.items()}

    def update_target_net(self) -> None:
        self._update_target()

    def update_normalizers(self, o: np.ndarray, g: np.ndarray) -> None:
        self.o_norm.update(o)
        self.g_norm.update(g)
        self.o_norm.recompute_stats()
        self.g_norm.recompute_stats()

    def mean_q(self, o: np.ndarray, g: np.ndarray) -> float:
        return float(np.mean(self._q_pi(self.obs_input(o.reshape(-1, self.dim_o),
                                                       g.reshape(-1, self.dim_g))).numpy()))

    def policy_state(self, env_name: str) -> dict:
        """Plain data for ``policy_*.pkl``: rebuilds the actor anywhere (see :func:`actor_from_state`)."""
        return {
            "format_version": POLICY_FORMAT_VERSION,
            "env_name": env_name,
            "dims": {"o": self.dim_o, "g": self.dim_g, "u": self.dim_u},
            "params": {**dict(self.params), "max_u": self.max_u},
            "normalizer": {"o_mean": self.o_norm.mean, "o_std": self.o_norm.std,
                           "g_mean": self.g_norm.mean, "g_std": self.g_norm.std},
            "weights": {"actor": model_weights(self.actor),
                        **{f"critic{i}": model_weights(c) for i, c in enumerate(self.critics)}},
        }

    def numpy_actor(self) -> NumpyActor:
        """The actor as a numpy function for rollouts; fails on a layer numpy cannot run."""
        return NumpyActor.from_model(self.actor, self.max_u, self.o_norm.mean, self.o_norm.std,
                                     self.g_norm.mean, self.g_norm.std, self.params.norm_clip,
                                     self.params.clip_obs)

    def tf_checkpoint(self) -> tf.train.Checkpoint:
        """Networks, targets, optimisers and counters for ``--resume``."""
        return tf.train.Checkpoint(
            actor=self.actor, target_actor=self.target_actor,
            critics={str(i): c for i, c in enumerate(self.critics)},
            target_critics={str(i): c for i, c in enumerate(self.target_critics)},
            pi_opt=self.pi_opt, q_opt=self.q_opt, n_updates=self.n_updates,
            noise_rng=self.noise_rng)

    def normalizer_state(self) -> dict:
        return {**self.o_norm.state_dict("o_norm"), **self.g_norm.state_dict("g_norm")}

    def load_normalizer_state(self, state: dict) -> None:
        self.o_norm.load_state_dict(state, "o_norm")
        self.g_norm.load_state_dict(state, "g_norm")

