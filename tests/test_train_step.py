"""The composed DDPG/TD3 update of ``baselines_her.ddpg`` against a numpy re-implementation.

A tiny network (1 hidden ReLU layer of 4 units; dims o=2, g=1, u=1) is trained for a few updates
by the agent and by a float64 numpy copy of the same step: forward pass, hand-written backprop,
Keras 3 Adam, TD target with clipping / min over critics / TD3 smoothing, importance weights,
behaviour cloning with the Q-filter, policy delay and the polyak target update. Several updates
are compared (not one): Adam's first step is ``~lr * sign(grad)``, so only later steps see the
gradients' magnitudes. The returned losses are compared too.
"""
import copy

import numpy as np
import pytest
import tensorflow as tf

from baselines_her.config import prepare_params
from baselines_her.ddpg import DDPG

DO, DG, DU = 2, 1, 1
B = 6
T = 50  # given to prepare_params so that building params does not load the env
BETA_1, BETA_2, EPS = 0.9, 0.999, 1e-7  # Keras Adam defaults (keras/src/optimizers/adam.py)
RTOL, ATOL = 2e-4, 2e-5  # float32 agent vs float64 reference


def make_params(overrides):
    # Every value the reference reads is pinned, so that changed defaults or presets (e.g. what
    # demo_file switches on) cannot silently change the case under test.
    base = {"algo": "ddpg", "layers": 1, "hidden": 4, "Q_lr": 0.01, "pi_lr": 0.01, "max_u": 2.0,
            "polyak": 0.9, "action_l2": 0.5, "gamma": 0.98, "clip_return": True,
            "norm_clip": 5.0, "clip_obs": 200.0, "bc_loss": False, "q_filter": False}
    params = prepare_params("PandaReach-v3", {**base, **overrides}, T=T)
    assert all(params[k] == v for k, v in {**base, **overrides}.items())
    return params


# ---- numpy reference -----------------------------------------------------------------------
def forward(ws, x, out):
    """[kernel0, bias0, kernel_out, bias_out] of build_mlp with layers=1; returns (y, cache)."""
    w1, b1, w2, b2 = ws
    pre = x @ w1 + b1
    h = np.maximum(pre, 0.0)
    z = h @ w2 + b2
    y = np.tanh(z) if out == "tanh" else z
    return y, (x, pre, h, y)


def backward(ws, cache, dy, out):
    """Gradients of the weights and of the input, given dLoss/dy."""
    w1, _, w2, _ = ws
    x, pre, h, y = cache
    dz = dy * (1.0 - y ** 2) if out == "tanh" else dy
    dh = dz @ w2.T
    dpre = dh * (pre > 0)
    return [x.T @ dpre, dpre.sum(0), h.T @ dz, dz.sum(0)], dpre @ w1.T


class Adam:
    """Keras 3 Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    w -= m * lr sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps)."""

    def __init__(self, lr, weights):
        self.lr, self.t = lr, 0
        self.m = [np.zeros_like(w) for w in weights]
        self.v = [np.zeros_like(w) for w in weights]

    def step(self, weights, grads):
        self.t += 1
        alpha = self.lr * np.sqrt(1 - BETA_2 ** self.t) / (1 - BETA_1 ** self.t)
        for w, g, m, v in zip(weights, grads, self.m, self.v):
            m += (g - m) * (1 - BETA_1)
            v += (g * g - v) * (1 - BETA_2)
            w -= m * alpha / (np.sqrt(v) + EPS)


class Reference:
    """The update of DDPG._fused_step in numpy, from given weights (see :func:`random_weights`).

    ``filter_critic="pre"`` evaluates the Q-filter with the critic from before this step's critic
    update (the wrong choice): used to show the Q-filter test can tell the two apart.
    """

    def __init__(self, params, weights, filter_critic="post"):
        self.p = p = params
        w = cast(weights, np.float64)  # a float64 copy, updated in place
        self.actor, self.t_actor = w["actor"], w["target_actor"]
        self.critics, self.t_critics = w["critics"], w["target_critics"]
        self.pi_adam = Adam(p.pi_lr, self.actor)
        self.q_adam = Adam(p.Q_lr, [x for c in self.critics for x in c])
        self.max_u, self.gamma = p.max_u, p.gamma
        self.clip_return = 1.0 / (1.0 - p.gamma) if p.clip_return else None
        self.n_updates = 0
        self.filter_critic = filter_critic
        self.noise = []  # standard normal draws, one (B, DU) array per update, when target_noise
        self.log = {}  # intermediate values, a list per key (one entry per step or draw)

    def obs(self, o, g):
        # Normalisers start at mean 0, std 1: normalising is clipping to +-norm_clip.
        c = self.p.norm_clip
        return np.concatenate([np.clip(o, -c, c), np.clip(g, -c, c)], axis=-1).astype(np.float64)

    def note(self, key, value):
        self.log.setdefault(key, []).append(value)

    def next_value(self, batch):
        """``gamma * min_i Q'_i(s', a')``, ``a'`` from the target actor (smoothed for TD3)."""
        p, max_u = self.p, self.max_u
        obs_2 = self.obs(batch["o_2"], batch["g"])
        a_2 = max_u * forward(self.t_actor, obs_2, "tanh")[0]
        if p.target_noise > 0:
            noise = self.noise.pop(0).astype(np.float64) * (p.target_noise * max_u)
            c = p.target_noise_clip * max_u
            self.note("a_2_raw", a_2)
            self.note("noise", noise)
            a_2 = np.clip(a_2 + np.clip(noise, -c, c), -max_u, max_u)
            self.note("a_2", a_2)
        q_next = [forward(c, np.concatenate([obs_2, a_2 / max_u], -1), None)[0]
                  for c in self.t_critics]
        self.note("q_next", np.concatenate(q_next, axis=1))
        return self.gamma * np.min(q_next, axis=0)

    def step(self, batch):
        p, max_u = self.p, self.max_u
        obs = self.obs(batch["o"], batch["g"])
        u = batch["u"].astype(np.float64)
        r = batch["r"].astype(np.float64)[:, None]
        w = batch.get("w", np.ones(len(r)))[:, None].astype(np.float64)
        n = len(r)
        y = r + self.next_value(batch)
        self.note("y_unclipped", y[:, 0])
        if self.clip_return is not None:
            y = np.clip(y, -self.clip_return, 0.0)

        critics_before = copy.deepcopy(self.critics)
        critic_loss, grads, qs = 0.0, [], []
        for c in self.critics:
            q, cache = forward(c, np.concatenate([obs, u / max_u], -1), None)
            qs.append(q)
            critic_loss += np.mean(w * (y - q) ** 2)
            grads += backward(c, cache, -2.0 * w * (y - q) / n, None)[0]
        self.q_adam.step([x for c in self.critics for x in c], grads)
        out = {"critic_loss": critic_loss, "q_mean": np.mean(qs[0]),
               "td_abs": np.abs(y - qs[0])[:, 0], "actor_loss": 0.0, "bc_loss": 0.0,
               "bc_rows_kept": 0.0, "actor_updated": self.n_updates % p.policy_delay == 0}

        if out["actor_updated"]:
            pi_t, cache_a = forward(self.actor, obs, "tanh")
            pi = max_u * pi_t
            q_pi, cache_c = forward(self.critics[0], np.concatenate([obs, pi / max_u], -1), None)
            rl_loss = -np.mean(q_pi) + p.action_l2 * np.mean((pi / max_u) ** 2)
            _, dx = backward(self.critics[0], cache_c, -np.ones_like(q_pi) / n, None)
            d_pi = dx[:, DO + DG:] / max_u + p.action_l2 * 2 * pi / max_u ** 2 / pi.size
            loss = rl_loss
            if p.bc_loss:
                mask = batch["bc"].astype(np.float64)
                if p.q_filter:
                    fc = self.critics[0] if self.filter_critic == "post" else critics_before[0]
                    q_demo = forward(fc, np.concatenate([obs, u / max_u], -1), None)[0]
                    q_pi_f = forward(fc, np.concatenate([obs, pi / max_u], -1), None)[0]
                    mask = mask * (q_demo[:, 0] > q_pi_f[:, 0])
                bc = np.sum(mask[:, None] * (pi - u) ** 2)
                loss = p.prm_loss_weight * rl_loss + p.aux_loss_weight * bc
                d_pi = (p.prm_loss_weight * d_pi
                        + p.aux_loss_weight * 2 * mask[:, None] * (pi - u))
                out.update(bc_loss=bc, bc_rows_kept=mask.sum())
                self.note("mask", mask)
            grads_a, _ = backward(self.actor, cache_a, d_pi * max_u, "tanh")
            self.pi_adam.step(self.actor, grads_a)
            out["actor_loss"] = loss
        self.n_updates += 1
        return out

    def polyak(self):
        k = self.p.polyak
        for tgt, main in [(self.t_actor, self.actor)] + list(zip(self.t_critics, self.critics)):
            for t_w, m_w in zip(tgt, main):
                t_w[...] = k * t_w + (1 - k) * m_w


# ---- helpers -------------------------------------------------------------------------------
def random_weights(params, seed):
    """Distinct random weights for every network, main and target (at construction the agent's
    targets equal its mains, which would hide a target/main mix-up)."""
    rng = np.random.default_rng(seed)
    h = params.hidden

    def mlp(dim_in, dim_out):
        return [rng.normal(0.0, s, shape) for s, shape in
                ((0.8, (dim_in, h)), (0.3, (h,)), (0.8, (h, dim_out)), (0.3, (dim_out,)))]

    n = params.n_critics
    return {"actor": mlp(DO + DG, DU), "target_actor": mlp(DO + DG, DU),
            "critics": [mlp(DO + DG + DU, 1) for _ in range(n)],
            "target_critics": [mlp(DO + DG + DU, 1) for _ in range(n)]}


def cast(weights, dtype):
    """A copy of a :func:`random_weights` dict with every array cast to ``dtype``."""
    return {k: [np.array(w, dtype) for w in v] if k.endswith("actor") else
            [[np.array(w, dtype) for w in ws] for ws in v] for k, v in weights.items()}


def make_agent(params, weights):
    agent = DDPG(DO, DG, DU, params, tf_seed=0)
    agent.actor.set_weights(weights["actor"])
    agent.target_actor.set_weights(weights["target_actor"])
    for model, ws in zip(agent.critics + agent.target_critics,
                         weights["critics"] + weights["target_critics"]):
        model.set_weights(ws)
    return agent


def setup(overrides, seed):
    """Agent and numpy reference with the same float32 starting weights."""
    params = make_params(overrides)
    weights = cast(random_weights(params, seed), np.float32)  # as the agent stores them
    return make_agent(params, weights), Reference(params, weights), weights


def make_batches(k, seed, max_u=2.0, r=None, w=None, bc=None):
    rng = np.random.default_rng(seed)
    f = lambda *shape: rng.normal(0.0, 1.5, shape).astype(np.float32)  # noqa: E731
    batches = {"o": f(k, B, DO), "g": f(k, B, DG), "o_2": f(k, B, DO),
               "u": rng.uniform(-max_u, max_u, (k, B, DU)).astype(np.float32),
               "r": -rng.integers(0, 2, (k, B)).astype(np.float32)}
    batches["o"][:, 0, 0] = 7.0  # beyond norm_clip=5: the normaliser clips it
    for key, value in (("r", r), ("w", w), ("bc", bc)):
        if value is not None:
            batches[key] = np.broadcast_to(np.asarray(value, np.float32), (k, B)).copy()
    return batches


def at(batches, i):
    return {key: v[i] for key, v in batches.items()}


def copy_noise(agent, k, calls):
    """The standard normals the agent's next ``k`` updates draw, from a generator with the same
    state: one ``(k * B, DU)`` draw for a ``train_batches`` call of ``k`` updates (``calls=1``),
    one ``(B, DU)`` draw per call for ``train`` (``calls=k``). XLA turns the same Philox bits into
    other normals than the TF kernel does, so the draw is compiled like the agent's step."""
    rng = tf.random.Generator.from_state(agent.noise_rng.state.numpy(), agent.noise_rng.algorithm)
    per_call = k // calls

    def draw():
        return rng.normal((per_call * B, DU))

    draw = tf.function(draw, jit_compile=agent.params.jit_compile)
    return [x for _ in range(calls) for x in np.split(draw().numpy(), per_call)]


def run_both(agent, ref, batches, via_train=False):
    """K updates by the agent (one ``train_batches`` call, or ``train`` per batch) and by ``ref``;
    returns the agent's and the reference's outputs, stacked over the K updates."""
    k = len(batches["r"])
    if agent.params.target_noise > 0:
        ref.noise = copy_noise(agent, k, calls=k if via_train else 1)
    if via_train:
        outs = [agent.train(at(batches, i)) for i in range(k)]
        got = {key: np.stack([o[key] for o in outs]) for key in outs[0]}
    else:
        got = agent.train_batches(batches)
    steps = [ref.step(at(batches, i)) for i in range(k)]
    want = {key: np.stack([np.asarray(s[key]) for s in steps]) for key in steps[0]}
    return got, want


def assert_weights(agent, ref):
    pairs = [("actor", agent.actor, ref.actor), ("target_actor", agent.target_actor, ref.t_actor)]
    for j in range(len(agent.critics)):
        pairs += [(f"critic{j}", agent.critics[j], ref.critics[j]),
                  (f"target_critic{j}", agent.target_critics[j], ref.t_critics[j])]
    for name, model, ws in pairs:
        for i, (a, b) in enumerate(zip(model.get_weights(), ws)):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{name}[{i}]")


def assert_outputs(got, want):
    for key in ("critic_loss", "actor_loss", "bc_loss", "bc_rows_kept", "q_mean", "td_abs"):
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)
    np.testing.assert_array_equal(got["actor_updated"], want["actor_updated"])
    assert got["weights_finite"].all()


# ---- tests ---------------------------------------------------------------------------------
def test_target_clipping():
    # gamma=0.5 clips targets to [-2, 0]. Rewards are set from the (fixed) target networks so
    # that the unclipped targets are exactly `offsets`: three rows past a bound, three inside.
    agent, ref, weights = setup({"gamma": 0.5, "jit_compile": False}, seed=1)
    offsets = np.array([-3.0, 1.0, -1.0, 0.5, -0.5, -2.5], np.float32)
    batches = make_batches(3, seed=1)
    probe = Reference(agent.params, weights)
    batches["r"] = np.stack([offsets - probe.next_value(at(batches, i))[:, 0]
                             for i in range(3)]).astype(np.float32)
    got, want = run_both(agent, ref, batches)
    np.testing.assert_allclose(np.stack(ref.log["y_unclipped"]), np.tile(offsets, (3, 1)),
                               atol=1e-5)
    assert_outputs(got, want)
    assert_weights(agent, ref)


def test_min_over_two_critics():
    agent, ref, _ = setup({"n_critics": 2, "jit_compile": False}, seed=2)
    got, want = run_both(agent, ref, make_batches(3, seed=2), via_train=True)
    q = np.concatenate(ref.log["q_next"])
    assert (q[:, 0] < q[:, 1]).any() and (q[:, 1] < q[:, 0]).any()  # each critic is the min
    assert_outputs(got, want)
    assert_weights(agent, ref)  # both critics step on the shared target


def test_td3_smoothing_and_delay_compiled():
    # TD3 under XLA: two critics, policy delay 2, smoothing noise reproduced from a copy of the
    # agent's generator. Noise std 1.5 max_u clipped to 0.5 max_u: both clips bind on some rows.
    agent, ref, _ = setup({"algo": "td3", "target_noise": 1.5, "target_noise_clip": 0.5,
                           "jit_compile": True}, seed=3)
    assert agent.params.n_critics == 2 and agent.params.policy_delay == 2
    got, want = run_both(agent, ref, make_batches(4, seed=3))
    noise, c = np.concatenate(ref.log["noise"]), 0.5 * agent.max_u
    a_raw, a_2 = np.concatenate(ref.log["a_2_raw"]), np.concatenate(ref.log["a_2"])
    assert (np.abs(noise) > c).any() and (np.abs(noise) < c).any()
    assert (np.abs(a_raw + np.clip(noise, -c, c)) > agent.max_u).any()
    assert np.all(np.abs(a_2 - a_raw) <= c + 1e-9) and np.all(np.abs(a_2) <= agent.max_u)
    np.testing.assert_array_equal(got["actor_updated"], [True, False, True, False])
    assert_outputs(got, want)
    assert_weights(agent, ref)


def test_weights_are_checked_after_the_last_update_of_a_call():
    # The fused call checks the weights once, after its last update: a NaN weight shows in the
    # last entry of weights_finite (and in the losses of every update that read it).
    agent, _, _ = setup({"jit_compile": True}, seed=5)
    good = agent.train_batches(make_batches(3, seed=5))
    np.testing.assert_array_equal(good["weights_finite"], [True, True, True])
    # A NaN reward in the last batch only: its critic step writes NaN weights, and the check,
    # read after the loop, sees them.
    batches = make_batches(3, seed=7)
    batches["r"][2, 0] = np.nan
    late = agent.train_batches(batches)
    np.testing.assert_array_equal(late["weights_finite"], [True, True, False])
    assert np.isfinite(late["critic_loss"][:2]).all() and np.isnan(late["critic_loss"][2])
    agent, _, _ = setup({"jit_compile": True}, seed=5)
    w = agent.critics[0].trainable_variables[0]
    w.assign(tf.tensor_scatter_nd_update(w, [[0, 0]], [np.nan]))
    bad = agent.train_batches(make_batches(3, seed=6))
    np.testing.assert_array_equal(bad["weights_finite"], [True, True, False])
    assert np.isnan(bad["critic_loss"]).all()


def test_importance_weights_scale_critic_loss():
    agent, ref, weights = setup({"jit_compile": False}, seed=4)
    w = [0.0, 3.0, 0.5, 1.0, 2.0, 0.1]
    batches = make_batches(3, seed=4, w=w)
    got, want = run_both(agent, ref, batches, via_train=True)
    # Unweighted, the loss differs: the comparison is sensitive to the weights.
    unweighted = Reference(agent.params, weights).step(at(make_batches(1, seed=4), 0))
    assert abs(unweighted["critic_loss"] - want["critic_loss"][0]) > 1e-2
    assert_outputs(got, want)
    assert_weights(agent, ref)


# demo_file only satisfies the config check (absolute, as the config stores it); DDPG never reads it
BC = {"bc_loss": True, "prm_loss_weight": 0.5, "aux_loss_weight": 0.3,
      "demo_file": "/unused/demos.npz"}


def test_bc_mask():
    agent, ref, _ = setup({**BC, "jit_compile": False}, seed=5)
    got, want = run_both(agent, ref, make_batches(3, seed=5, bc=[1, 0, 1, 1, 0, 0]))
    np.testing.assert_array_equal(got["bc_rows_kept"], [3, 3, 3])
    assert_outputs(got, want)
    assert_weights(agent, ref)


def test_q_filter_uses_updated_critic():
    # Find (in numpy) weights and batches where the first step's critic update flips the Q-filter
    # on some row: the filter from the pre-update critic keeps other rows. Three updates, since
    # Adam's first step hardly depends on the gradient's size.
    params = make_params({**BC, "q_filter": True, "Q_lr": 0.1, "jit_compile": True})
    for seed in range(100, 200):
        weights = cast(random_weights(params, seed), np.float32)
        batches = make_batches(3, seed=seed, bc=[1, 1, 1, 1, 1, 0])
        post, pre = Reference(params, weights), Reference(params, weights, filter_critic="pre")
        stale = [pre.step(at(batches, i)) for i in range(3)]
        for i in range(3):
            post.step(at(batches, i))
        kept = post.log["mask"][0]
        apart = max(np.abs(a - b).max() for a, b in zip(post.actor, pre.actor))
        if 0 < kept.sum() < 5 and not np.array_equal(kept, pre.log["mask"][0]) and apart > 1e-3:
            break  # the updated critic keeps some demo rows, not all, not those kept before, and
            # the two filters lead to actors further apart than the comparison's tolerance
    else:
        raise AssertionError("no seed where the critic update flips the Q-filter")
    agent, ref = make_agent(params, weights), Reference(params, weights)
    got, want = run_both(agent, ref, batches)
    np.testing.assert_array_equal(got["bc_rows_kept"], [m.sum() for m in post.log["mask"]])
    assert_outputs(got, want)
    assert_weights(agent, ref)
    # The stale-critic filter gives other losses and another actor: the checks can tell.
    assert np.abs(got["bc_loss"] - [s["bc_loss"] for s in stale]).max() > 1e-3
    assert max(np.abs(a - b).max() for a, b in zip(agent.actor.get_weights(), pre.actor)) > 1e-3


def test_policy_delay():
    agent, ref, _ = setup({"policy_delay": 2, "jit_compile": False}, seed=6)
    batches = make_batches(4, seed=6)
    actor, critic = [agent.actor.get_weights()], [agent.critics[0].get_weights()]
    outs = []
    for i in range(4):
        got, want = run_both(agent, ref, {k: v[i:i + 1] for k, v in batches.items()})
        assert_outputs(got, want)
        outs.append(got)
        actor.append(agent.actor.get_weights())
        critic.append(agent.critics[0].get_weights())
    np.testing.assert_array_equal([o["actor_updated"][0] for o in outs], [True, False] * 2)
    assert [o["actor_loss"][0] == 0.0 for o in outs] == [False, True] * 2
    for i in range(4):
        changed = [not np.array_equal(a, b) for a, b in zip(actor[i], actor[i + 1])]
        assert any(changed) == (i % 2 == 0), f"update {i}: actor changed {changed}"
        assert not np.array_equal(critic[i][0], critic[i + 1][0])  # the critic steps every time
    assert_weights(agent, ref)


@pytest.mark.parametrize("jit", [True, False])
def test_polyak_update(jit):
    agent, ref, _ = setup({"n_critics": 2, "polyak": 0.7, "jit_compile": jit}, seed=8)
    for _ in range(2):
        agent.update_target_net()
        ref.polyak()
    assert_weights(agent, ref)  # main and target weights differ from the start (setup)
    assert not np.allclose(agent.target_actor.get_weights()[0], agent.actor.get_weights()[0])


def test_normalizers_see_relabelled_goals(tmp_path):
    # Trainer._store feeds the normalisers HER-relabelled transitions of the new episodes: the
    # goal statistics must be those of the relabelled goals, not of the stored g.
    from baselines_her.train import Trainer
    # num_threads=0: leave TensorFlow's threading (set once per process) as the other tests had it.
    params = prepare_params("PandaReach-v3", {"layers": 1, "hidden": 4, "num_threads": 0,
                                              "rollout_batch_size": 1, "n_test_rollouts": 0,
                                              "buffer_size": 500, "batch_size": 8})
    trainer = Trainer(params, logdir=str(tmp_path))
    trainer.logger.close()  # nothing is logged here
    n, T, spec = 2, trainer.spec.T, trainer.spec
    rng = np.random.default_rng(0)
    episodes = {"o": rng.normal(0.0, 1.0, (n, T + 1, spec.dim_o)),
                "ag": rng.uniform(-1.0, 1.0, (n, T + 1, spec.dim_g)),
                "g": np.full((n, T, spec.dim_g), 3.0),  # never achieved
                "u": rng.uniform(-1.0, 1.0, (n, T, spec.dim_u)),
                "info_is_success": np.zeros((n, T, 1))}
    episodes = {k: v.astype(np.float32) for k, v in episodes.items()}
    sampler_rng = copy.deepcopy(trainer.rngs.sampler)  # replays the draw _store will make
    trainer._store(episodes)
    expected = trainer.sampler.sample(episodes, n, n * T, sampler_rng)
    g = expected["g"].astype(np.float64)
    kept = np.all(g == 3.0, axis=1)
    assert kept.any() and not kept.all()  # replay_k=4: most rows relabelled, some not
    g_norm, o_norm = trainer.agent.g_norm, trainer.agent.o_norm
    assert g_norm.count == n * T and o_norm.count == n * T
    np.testing.assert_allclose(g_norm.sum, g.sum(0), rtol=1e-6)
    np.testing.assert_allclose(g_norm.sumsq, np.square(g).sum(0), rtol=1e-6)
    np.testing.assert_allclose(o_norm.sum, expected["o"].astype(np.float64).sum(0), rtol=1e-6)
    np.testing.assert_allclose(g_norm.mean, g.mean(0), rtol=1e-5)
    assert np.all(g_norm.mean < 2.0)  # the stored goals alone would give a mean of 3.0
