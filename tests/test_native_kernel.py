"""The compiled kernel (baselines_her._native) against the numpy references in sampling_kernels.

Exact equality on seeded random inputs and edge cases, the panda-gym reward bit for bit, sum-tree
sampling frequencies and rounding, argument validation, and the numpy fallback with its warning.
"""
from __future__ import annotations

import importlib
import math
import pickle
import sys
import warnings

import numpy as np
import pytest

from baselines_her import sampling_kernels as sk

F32_ONE_ULP = 2.0**-23


@pytest.fixture(scope="module")
def native():
    if not sk.NATIVE_AVAILABLE:
        pytest.fail("baselines_her._native is not built: pip install -e . compiles it")
    return sk._native


def test_extension_is_built():
    assert sk.NATIVE_AVAILABLE, (
        f"baselines_her._native did not import for {sk.__file__}: `pip install -e .` builds it"
    )
    assert sk.her_future_t is sk._native.her_future_t
    assert sk.her_future_indices is sk._native.her_future_indices
    assert sk.her_future_sample is sk._native.her_future_sample
    assert sk.gather_transitions is sk._native.gather_transitions
    assert sk.SumTree is sk._native.SumTree
    assert "build_type" in sk._native.BUILD_INFO


def bits(a: np.ndarray) -> np.ndarray:
    """Raw bits, so that -0.0 != 0.0 and NaNs compare by payload."""
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def assert_same_batch(got: dict, ref: dict) -> None:
    assert list(got) == list(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype, k
        assert got[k].shape == ref[k].shape, k
        assert got[k].flags.c_contiguous, k
        np.testing.assert_array_equal(bits(got[k]), bits(ref[k]), err_msg=k)


# --------------------------------------------------------------------------------------------
# her_future_t


@pytest.mark.parametrize("T", [1, 2, 50, 1000, 2**40])
def test_her_future_t_matches_numpy(native, T):
    rng = np.random.default_rng(T % 1000)
    B = 4096
    t = rng.integers(0, T, B)
    u = rng.random(B)
    u[:8] = [0.0, np.nextafter(1.0, 0.0), 0.5, 0.25, np.nextafter(0.5, 0), 1e-300, 0.999, 0.1]
    t[:4] = T - 1
    got = native.her_future_t(t, u, T)
    ref = sk.her_future_t_numpy(t, u, T)
    assert got.dtype == np.int64 and got.shape == (B,)
    np.testing.assert_array_equal(got, ref)
    assert np.all(got >= t + 1) and np.all(got <= T)


def test_her_future_t_boundaries(native):
    # T = 1: the only transition t=0 takes the final goal, t' = 1.
    u = np.array([0.0, 0.5, np.nextafter(1.0, 0.0)])
    np.testing.assert_array_equal(native.her_future_t(np.zeros(3, np.int64), u, 1), [1, 1, 1])
    # t = T-1: t' = T whatever u; u -> 1 never yields T+1.
    T = 50
    t = np.arange(T, dtype=np.int64)
    top = native.her_future_t(t, np.full(T, np.nextafter(1.0, 0.0)), T)
    np.testing.assert_array_equal(top, np.full(T, T))
    np.testing.assert_array_equal(native.her_future_t(t, np.zeros(T), T), t + 1)
    # strided inputs are read correctly
    t2 = np.repeat(t, 2)[::2]
    u2 = np.linspace(0, 0.99, 2 * T)[::2]
    np.testing.assert_array_equal(native.her_future_t(t2, u2, T), sk.her_future_t_numpy(t2, u2, T))
    assert native.her_future_t(np.zeros(0, np.int64), np.zeros(0), T).shape == (0,)


@pytest.mark.parametrize(
    "t, u, T, msg",
    [
        ([0, 50], [0.1, 0.2], 50, r"t\[1\] = 50 is out of range \[0, T\)"),
        ([-1], [0.1], 50, r"t\[0\] = -1 is out of range"),
        ([0, 1], [0.1, 1.0], 50, r"u\[1\] = 1 is outside \[0, 1\)"),
        ([0], [-0.5], 50, r"u\[0\] = -0.5 is outside"),
        ([0], [np.nan], 50, r"u\[0\] = nan is outside"),
        ([0], [0.1], 0, r"T must be >= 1"),
        ([0, 1], [0.1], 50, r"t and u must have the same length"),
    ],
)
def test_her_future_t_rejects_bad_input(native, t, u, T, msg):
    with pytest.raises(ValueError, match=msg):
        native.her_future_t(np.asarray(t, np.int64), np.asarray(u, np.float64), T)


def test_her_future_t_rejects_bad_dtypes(native):
    with pytest.raises(ValueError, match="t must have dtype int64, got int32"):
        native.her_future_t(np.zeros(2, np.int32), np.zeros(2), 5)
    with pytest.raises(ValueError, match="u must have dtype float64, got float32"):
        native.her_future_t(np.zeros(2, np.int64), np.zeros(2, np.float32), 5)
    with pytest.raises(ValueError, match=r"t must be 1-D, got shape \(2, 2\)"):
        native.her_future_t(np.zeros((2, 2), np.int64), np.zeros(4), 5)


def check_future_draw(got, ref, u, T, future_p):
    """Native (ep, t, goal_t) equal to the numpy reference; relabel where u[0] < future_p, with
    the goal step in [t + 1, T]."""
    for a, b in zip(got, ref):
        assert a.dtype == np.int64
        np.testing.assert_array_equal(a, b)
    _, t, goal_t = got
    relabel = goal_t >= 0
    np.testing.assert_array_equal(relabel, u[0] < future_p)
    assert np.all(goal_t[relabel] >= t[relabel] + 1) and np.all(goal_t[relabel] <= T)


@pytest.mark.parametrize("T,future_p", [(1, 0.8), (50, 0.0), (50, 0.8), (50, 1.0), (7, 0.5)])
def test_her_future_indices_matches_numpy(native, T, future_p):
    rng = np.random.default_rng(T)
    B, N = 3000, 40
    slots = rng.integers(0, N * T, B)
    slots[:2] = [0, N * T - 1]
    for u in (rng.random((2, B)), rng.random((B, 2)).T):  # C-contiguous and strided rows
        u[1, :3] = [0.0, np.nextafter(1.0, 0.0), 0.5]
        got = native.her_future_indices(slots, u, T, future_p)
        check_future_draw(got, sk.her_future_indices_numpy(slots, u, T, future_p), u, T, future_p)
        np.testing.assert_array_equal(got[0] * T + got[1], slots)


def test_her_future_indices_rejects_bad_input(native):
    s = np.array([0, 5], np.int64)
    u = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"slots\[1\] = -3 is negative"):
        native.her_future_indices(np.array([0, -3]), u, 5, 0.8)
    with pytest.raises(ValueError, match=r"u\[1, 0\] = 1 is outside \[0, 1\)"):
        native.her_future_indices(s, np.array([[0.5, 0.5], [1.0, 0.5]]), 5, 0.8)
    with pytest.raises(ValueError, match=r"u must have shape \(2, B=2\)"):
        native.her_future_indices(s, np.full((3, 2), 0.5), 5, 0.8)
    with pytest.raises(ValueError, match=r"future_p = 1.5 is outside \[0, 1\]"):
        native.her_future_indices(s, u, 5, 1.5)
    with pytest.raises(ValueError, match="T must be >= 1"):
        native.her_future_indices(s, u, 0, 0.5)


def test_her_future_indices_large_slots_split_exactly(native):
    """(slot // T, slot % T) exactly, at multiples of T, just below them, and beyond 2^53."""
    T = 7
    k = np.array([1, 2, 3, 10**6, 2**40, 2**50, 2**52 // T, 2**53 // T, 2**55 // T], np.int64)
    slots = np.concatenate([k * T, k * T - 1, k * T + T - 1, [0, 2**62]])
    u = np.zeros((2, len(slots)))
    ep, t, _ = native.her_future_indices(slots, u, T, 0.5)
    np.testing.assert_array_equal(ep, slots // T)
    np.testing.assert_array_equal(t, slots % T)


@pytest.mark.parametrize("n_episodes,T,future_p", [(1, 1, 0.8), (40, 50, 0.8), (7, 3, 0.0),
                                                   (2**34, 64, 1.0)])
def test_her_future_sample_matches_numpy(native, n_episodes, T, future_p):
    rng = np.random.default_rng(T)
    B = 3000
    n_slots = n_episodes * T
    for u in (rng.random((3, B)), rng.random((B, 3)).T):  # C-contiguous and strided rows
        u[2, :3] = [0.0, np.nextafter(1.0, 0.0), 0.5]
        got = native.her_future_sample(u, n_slots, T, future_p)
        check_future_draw(got, sk.her_future_sample_numpy(u, n_slots, T, future_p), u, T, future_p)
        slots = got[0] * T + got[1]
        assert slots.min() >= 0 and slots.max() <= n_slots - 1
        assert slots[0] == 0 and slots[1] == n_slots - 1  # u = 0 and the largest u below 1


def test_her_future_sample_is_uniform_over_slots(native):
    rng = np.random.default_rng(11)
    n_episodes, T, draws = 7, 5, 700_000
    ep, t, _ = native.her_future_sample(rng.random((3, draws)), n_episodes * T, T, 0.8)
    counts = np.bincount(ep * T + t, minlength=n_episodes * T)
    expected = draws / (n_episodes * T)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert len(counts) == n_episodes * T
    assert chi2 < 80.0  # 34 degrees of freedom: P(chi2 > 80) < 1e-5


def test_her_future_sample_rejects_bad_input(native):
    u = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"u must have shape \(3, B\)"):
        native.her_future_sample(np.full((2, 2), 0.5), 10, 5, 0.8)
    with pytest.raises(ValueError, match="u must have dtype float64, got float32"):
        native.her_future_sample(u.astype(np.float32), 10, 5, 0.8)
    bad = u.copy()
    bad[2, 1] = 1.0
    with pytest.raises(ValueError, match=r"u\[2, 1\] = 1 is outside \[0, 1\)"):
        native.her_future_sample(bad, 10, 5, 0.8)
    with pytest.raises(ValueError, match="n_slots must be >= 1, got 0"):
        native.her_future_sample(u, 0, 5, 0.8)
    with pytest.raises(ValueError, match="T must be >= 1"):
        native.her_future_sample(u, 10, 0, 0.8)
    with pytest.raises(ValueError, match=r"future_p = -0.1 is outside \[0, 1\]"):
        native.her_future_sample(u, 10, 5, -0.1)


# --------------------------------------------------------------------------------------------
# gather_transitions


def make_buffer(rng, N=40, T=50, do=19, dg=3, du=4, scale=0.1):
    o = rng.standard_normal((N, T + 1, do)).astype(np.float32)
    ag = (rng.standard_normal((N, T + 1, dg)) * scale).astype(np.float32)
    g = (rng.standard_normal((N, T, dg)) * scale).astype(np.float32)
    u = rng.uniform(-1, 1, (N, T, du)).astype(np.float32)
    return o, ag, g, u


def her_indices(rng, N, T, B, future_p=0.8):
    ep = rng.integers(0, N, B)
    t = rng.integers(0, T, B)
    fut = sk.her_future_t_numpy(t, rng.random(B), T)
    goal_t = np.where(rng.random(B) < future_p, fut, -1)
    return ep, t, ep.copy(), goal_t


@pytest.mark.parametrize("threshold", [None, 0.05, 0.15])
def test_gather_matches_numpy(native, threshold):
    rng = np.random.default_rng(1)
    o, ag, g, u = make_buffer(rng)
    N, T = u.shape[:2]
    ep, t, goal_ep, goal_t = her_indices(rng, N, T, 777)
    goal_ep[::3] = rng.integers(0, N, len(goal_ep[::3]))  # goals from other episodes too
    goal_t[:3] = [T, 0, -1]
    args = (o, ag, g, u, ep, t, goal_ep, goal_t)
    got = native.gather_transitions(*args, distance_threshold=threshold)
    ref = sk.gather_transitions_numpy(*args, distance_threshold=threshold)
    assert_same_batch(got, ref)
    assert ("r" in got) == (threshold is not None)
    if threshold is not None:
        assert set(np.unique(got["r"])) == {-1.0, 0.0}


@pytest.mark.parametrize("layout", ["records", "reversed", "step_major"])
def test_gather_reads_strided_views(native, layout):
    """Any layout with a contiguous last axis gives the numpy result: the replay buffer's
    interleaved record views, negative strides, and a step-major (T, N) memory order."""
    from baselines_her.replay_buffer import episode_shapes, record_views

    rng = np.random.default_rng(7)
    arrays = make_buffer(rng, N=30, T=20, do=7, dg=3, du=4)
    if layout == "records":
        views = record_views(30, episode_shapes(20, 7, 3, 4))
        for key, a in zip(("o", "ag", "g", "u"), arrays):
            views[key][...] = a
        strided = tuple(views[k] for k in ("o", "ag", "g", "u"))
    elif layout == "reversed":
        strided = tuple(np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1] for a in arrays)
    else:
        strided = tuple(np.ascontiguousarray(a.transpose(1, 0, 2)).transpose(1, 0, 2)
                        for a in arrays)
    assert not any(a.flags.c_contiguous for a in strided)
    ep, t, goal_ep, goal_t = her_indices(rng, 30, 20, 500)
    goal_ep[::4] = rng.integers(0, 30, len(goal_ep[::4]))
    for thr in (None, 0.1):
        got = native.gather_transitions(*strided, ep, t, goal_ep, goal_t, thr)
        assert_same_batch(got, sk.gather_transitions_numpy(*arrays, ep, t, goal_ep, goal_t, thr))


def test_gather_edge_shapes(native):
    rng = np.random.default_rng(2)
    o, ag, g, u = make_buffer(rng, N=3, T=1, do=5, dg=3, du=2)
    ep = np.array([0, 1, 2, 2], np.int64)
    t = np.zeros(4, np.int64)
    goal_t = np.array([1, 0, -1, 1], np.int64)
    for thr in (None, 0.1):
        assert_same_batch(
            native.gather_transitions(o, ag, g, u, ep, t, ep, goal_t, thr),
            sk.gather_transitions_numpy(o, ag, g, u, ep, t, ep, goal_t, thr),
        )
    empty = np.zeros(0, np.int64)
    got = native.gather_transitions(o, ag, g, u, empty, empty, empty, empty, 0.1)
    assert_same_batch(got, sk.gather_transitions_numpy(o, ag, g, u, empty, empty, empty, empty, 0.1))
    # goal_ep is not read (nor checked) where goal_t == -1
    bad_ep = np.array([99, 99, 99, 99], np.int64)
    stored = np.full(4, -1, np.int64)
    got = native.gather_transitions(o, ag, g, u, ep, t, bad_ep, stored)
    np.testing.assert_array_equal(got["g"], g[ep, t])


@pytest.mark.parametrize("dg", [1, 2, 3, 6, 7, 8, 9, 16, 17, 40, 130, 300])
def test_reward_matches_numpy_norm_for_any_goal_dim(native, dg):
    """The float32 pairwise sum of numpy's norm, reproduced for every goal size."""
    rng = np.random.default_rng(dg)
    N, T, B = 8, 10, 2000
    o, ag, g, u = make_buffer(rng, N=N, T=T, do=2, dg=dg, du=1)
    ag *= (10.0 ** rng.integers(-3, 3, ag.shape)).astype(np.float32)  # mixed magnitudes
    ep, t, goal_ep, goal_t = her_indices(rng, N, T, B, future_p=0.0)
    d = np.linalg.norm(ag[ep, t + 1] - g[ep, t], axis=-1)
    thresholds = [float(np.median(d))] + [float(x) for x in d[:20]]  # distances hit exactly
    for thr in thresholds:
        got = native.gather_transitions(o, ag, g, u, ep, t, goal_ep, goal_t, thr)["r"]
        ref = sk.sparse_distance_reward_numpy(ag[ep, t + 1], g[ep, t], thr)
        np.testing.assert_array_equal(bits(got), bits(ref))


def test_reward_threshold_promotion_follows_numpy(native):
    """A Python float threshold is compared in float32, a numpy float64 one in float64."""
    thr = 0.05
    d32 = np.float32(thr)  # the distance right at float32(0.05) > 0.05
    steps = [np.nextafter(d32, np.float32(0)), d32, np.nextafter(d32, np.float32(1))]
    T = len(steps)
    ag = np.zeros((1, T + 1, 3), np.float32)
    g = np.zeros((1, T, 3), np.float32)
    g[0, :, 0] = steps  # ||ag_2 - g|| = |g_x| exactly
    o = np.zeros((1, T + 1, 1), np.float32)
    u = np.zeros((1, T, 1), np.float32)
    t = np.arange(T, dtype=np.int64)
    ep = np.zeros(T, np.int64)
    keep = np.full(T, -1, np.int64)
    for th, expected in [
        (thr, [-0.0, -0.0, -1.0]),  # weak: float32(d) > float32(0.05)
        (np.float32(thr), [-0.0, -0.0, -1.0]),
        (np.float64(thr), [-0.0, -1.0, -1.0]),  # strong: float64(d) > 0.05
        (np.array(thr), [-0.0, -1.0, -1.0]),
        (0, [-1.0, -1.0, -1.0]),
    ]:
        got = native.gather_transitions(o, ag, g, u, ep, t, ep, keep, th)["r"]
        ref = sk.gather_transitions_numpy(o, ag, g, u, ep, t, ep, keep, th)["r"]
        np.testing.assert_array_equal(bits(got), bits(ref), err_msg=repr(th))
        np.testing.assert_array_equal(bits(got), bits(np.array(expected, np.float32)))


def _panda_episodes(name, n_episodes, seed):
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("panda_gym")
    env = gym.make(name)
    T = env.spec.max_episode_steps
    env.action_space.seed(seed)
    obs_space = env.observation_space
    do = obs_space["observation"].shape[0]
    dg = obs_space["desired_goal"].shape[0]
    du = env.action_space.shape[0]
    o = np.zeros((n_episodes, T + 1, do), np.float32)
    ag = np.zeros((n_episodes, T + 1, dg), np.float32)
    g = np.zeros((n_episodes, T, dg), np.float32)
    u = np.zeros((n_episodes, T, du), np.float32)
    for e in range(n_episodes):
        obs, _ = env.reset(seed=seed + e)
        for s in range(T):
            o[e, s], ag[e, s], g[e, s] = obs["observation"], obs["achieved_goal"], obs["desired_goal"]
            u[e, s] = env.action_space.sample()
            obs, *_ = env.step(u[e, s])  # terminated on success is ignored (design: T fixed)
        o[e, T], ag[e, T] = obs["observation"], obs["achieved_goal"]
    return env, (o, ag, g, u)


@pytest.mark.parametrize("name", ["PandaPush-v3", "PandaPickAndPlace-v3"])
def test_reward_equals_panda_compute_reward(native, name):
    env, (o, ag, g, u) = _panda_episodes(name, n_episodes=3, seed=7)
    try:
        task_env = env.unwrapped
        thr = task_env.task.distance_threshold
        assert type(thr) is float  # so numpy compares in float32; the kernel reproduces that
        rng = np.random.default_rng(3)
        N, T = u.shape[:2]
        # random batch from real episodes, HER-relabelled
        ep, t, goal_ep, goal_t = her_indices(rng, N, T, 1024, future_p=0.6)
        batch = native.gather_transitions(o, ag, g, u, ep, t, goal_ep, goal_t, thr)
        expected = task_env.compute_reward(batch["ag_2"], batch["g"], {})
        assert expected.dtype == np.float32
        np.testing.assert_array_equal(bits(batch["r"]), bits(expected))
        assert_same_batch(batch, sk.gather_transitions_numpy(o, ag, g, u, ep, t, goal_ep, goal_t, thr))

        # goals at the threshold +- a few float32 ulps, along axes and random directions
        a = ag[rng.integers(0, N, 64), rng.integers(1, T + 1, 64)]
        dirs = rng.standard_normal((64, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        dirs[:3] = np.eye(3)
        probes_ag, probes_g = [], []
        for k in range(-3, 4):
            radius = thr * (1.0 + k * F32_ONE_ULP)
            probes_ag.append(a)
            probes_g.append((a + dirs * radius).astype(np.float32))
        exact = np.zeros((3, 3), np.float32)  # |goal - ag| exactly float32(thr) and +-1 ulp
        t32 = np.float32(thr)
        for i, v in enumerate([np.nextafter(t32, np.float32(0)), t32, np.nextafter(t32, np.float32(1))]):
            exact[i, 0] = v
        probes_ag.append(np.zeros((3, 3), np.float32))
        probes_g.append(exact)
        pa = np.concatenate(probes_ag)
        pg = np.concatenate(probes_g)
        M = len(pa)
        buf_ag = np.zeros((1, M + 1, 3), np.float32)
        buf_ag[0, 1:] = pa
        buf_g = pg[None].copy()
        buf_o = np.zeros((1, M + 1, 1), np.float32)
        buf_u = np.zeros((1, M, 1), np.float32)
        tt = np.arange(M, dtype=np.int64)
        zero = np.zeros(M, np.int64)
        r = native.gather_transitions(buf_o, buf_ag, buf_g, buf_u, zero, tt, zero, zero - 1, thr)["r"]
        expected = task_env.compute_reward(pa, pg, {})
        np.testing.assert_array_equal(bits(r), bits(expected))
        assert 0 < np.count_nonzero(r) < M  # both sides of the boundary are probed
        np.testing.assert_array_equal(bits(r[-3:]), bits(np.array([-0.0, -0.0, -1.0], np.float32)))
    finally:
        env.close()


def test_gather_rejects_bad_input(native):
    rng = np.random.default_rng(4)
    o, ag, g, u = make_buffer(rng, N=5, T=6, do=4, dg=3, du=2)
    ep = np.array([0, 1, 4], np.int64)
    t = np.array([0, 5, 2], np.int64)
    gt = np.array([-1, 6, 3], np.int64)

    def call(**kw):
        args = dict(o=o, ag=ag, g=g, u=u, ep_idx=ep, t=t, goal_ep=ep, goal_t=gt, distance_threshold=0.05)
        args.update(kw)
        return native.gather_transitions(**args)

    call()  # valid
    cases = [
        (dict(o=o.astype(np.float64)), "o must have dtype float32, got float64"),
        (dict(ag=np.asfortranarray(ag)), "ag must have a contiguous last axis"),
        (dict(o=o[:, :, ::2]), "o must have a contiguous last axis"),
        (dict(g=g[:, :, :2].copy()), "last \\(goal\\) dimensions differ"),
        (dict(g=g[:, :-1].copy()), "g has shape \\(5, 5, 3\\), expected \\(N=5, T=6"),
        (dict(o=o[:, :-1].copy()), "o has shape \\(5, 6, 4\\), expected \\(N=5, T\\+1=7"),
        (dict(u=u[0]), "u must be 3-D, got shape \\(6, 2\\)"),
        (dict(ep_idx=np.array([0, 1, 5])), r"ep_idx\[2\] = 5 is out of range \[0, N\)"),
        (dict(ep_idx=np.array([0, -1, 1])), r"ep_idx\[1\] = -1 is out of range"),
        (dict(t=np.array([0, 6, 1])), r"t\[1\] = 6 is out of range \[0, T\)"),
        (dict(goal_t=np.array([7, 0, 0])), r"goal_t\[0\] = 7 is out of range \[-1, T\]"),
        (dict(goal_t=np.array([-2, 0, 0])), r"goal_t\[0\] = -2 is out of range"),
        (dict(goal_ep=np.array([0, 9, 0])), r"goal_ep\[1\] = 9 is out of range \[0, N\)"),
        (dict(t=np.array([0, 1])), "ep_idx and t must have the same length"),
        (dict(goal_t=gt.astype(np.int32)), "goal_t must have dtype int64, got int32"),
        (dict(distance_threshold=float("nan")), "distance_threshold is NaN"),
        (dict(distance_threshold="0.05"), "distance_threshold"),
        (dict(distance_threshold=np.longdouble(0.05)), "makes numpy compare the distances in float128"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            call(**kw)


# --------------------------------------------------------------------------------------------
# SumTree


def both_trees(native, capacity):
    return native.SumTree(capacity), sk.SumTreeNumpy(capacity)


def assert_trees_equal(a, b, rng=None):
    n = a.capacity
    assert b.capacity == n and len(a) == n
    np.testing.assert_array_equal(bits(a.get(np.arange(n))), bits(b.get(np.arange(n))))
    assert bits(np.array([a.total()])) == bits(np.array([b.total()]))
    assert a.min() == b.min()
    if a.total() > 0 and rng is not None:
        tot = a.total()
        x = np.concatenate([rng.random(500) * tot, [0.0, np.nextafter(tot, 0.0), tot * (1 - 1e-16)]])
        x = x[x < tot]
        np.testing.assert_array_equal(a.query(x), b.query(x))


@pytest.mark.parametrize("capacity", [1, 2, 7, 8, 9, 63, 64, 65, 1000, 4097])
def test_sum_tree_matches_numpy(native, capacity):
    rng = np.random.default_rng(capacity)
    a, b = both_trees(native, capacity)
    assert a.total() == 0.0 and a.min() == math.inf
    for step in range(12):
        K = int(rng.integers(1, 2 * capacity + 2))
        idx = rng.integers(0, capacity, K)
        p = rng.random(K) * 10.0 ** rng.integers(-12, 7, K)
        p[rng.random(K) < 0.2] = 0.0
        a.set(idx, p)
        b.set(idx, p)
        assert_trees_equal(a, b, rng)
        # last write wins: every index holds its last value in the batch
        last = {int(i): v for i, v in zip(idx, p)}
        keys = np.array(sorted(last), np.int64)
        np.testing.assert_array_equal(a.get(keys), [last[k] for k in keys])


def test_sum_tree_large_capacity_matches_numpy(native):
    """Levels over 2 MiB (huge-page allocation path), updates and queries against the reference."""
    rng = np.random.default_rng(13)
    capacity = 300_001
    a, b = both_trees(native, capacity)
    p = rng.random(capacity)
    p[rng.random(capacity) < 0.1] = 0.0
    for tree in (a, b):
        tree.set(np.arange(capacity), p)
    for _ in range(5):
        idx = rng.integers(0, capacity, 256)
        q = rng.random(256) * 10.0 ** rng.integers(-12, 7, 256)
        a.set(idx, q)
        b.set(idx, q)
        assert_trees_equal(a, b, rng)
    x = rng.random(20_000) * a.total()
    np.testing.assert_array_equal(a.query(x), b.query(x))


@pytest.mark.parametrize("capacity", [40_000, 2**18 + 3])
def test_sum_tree_sparse_updates_reach_the_root(native, capacity):
    """Small batches on a tree whose upper levels (<= 4096 nodes) find dirty nodes by bitmap.

    40,000 leaves: level 1 (5,000 nodes) per element, levels 2-6 by bitmap (the first built from
    the elements, the others from the level below); 2**18 + 3 leaves: two list levels first. A
    missed ancestor would leave total() or min() stale, which the reference comparison catches.
    """
    rng = np.random.default_rng(capacity)
    a, b = both_trees(native, capacity)
    p = rng.random(capacity) + 1.0
    for tree in (a, b):
        tree.set(np.arange(capacity), p)
    far = np.array([0, capacity - 1, capacity // 2 + 12345, 64 * 8**3, 64 * 8**3 - 1])
    for K in (1, 2, 3, 5, 64, 300):
        idx = np.concatenate([far, rng.integers(0, capacity, K)])[:K]
        q = rng.random(K) * 10.0 ** rng.integers(-3, 3, K)
        a.set(idx, q)
        b.set(idx, q)
        assert_trees_equal(a, b, rng)
    # The minimum rises again once its leaf is raised: every level of the min tree is recomputed.
    for tree in (a, b):
        tree.set(np.array([capacity - 1]), np.array([1e-30]))
    assert a.min() == b.min() == 1e-30
    for tree in (a, b):
        tree.set(np.array([capacity - 1]), np.array([5.0]))
    assert a.min() == b.min() > 1e-30
    assert_trees_equal(a, b, rng)


def test_sum_tree_duplicates_capacity_one_and_min(native):
    for tree in both_trees(native, 1):
        assert tree.min() == math.inf
        tree.set(np.array([0, 0, 0]), np.array([1.0, 7.0, 2.5]))
        assert tree.get(np.array([0]))[0] == 2.5 and tree.total() == 2.5 and tree.min() == 2.5
        np.testing.assert_array_equal(tree.query(np.array([0.0, 2.4999, np.nextafter(2.5, 0)])), [0, 0, 0])
    for tree in both_trees(native, 7):
        tree.set(np.array([3, 5, 3]), np.array([4.0, 1.0, 2.0]))
        np.testing.assert_array_equal(tree.get(np.arange(7)), [0, 0, 0, 2.0, 0, 1.0, 0])
        assert tree.total() == 3.0 and tree.min() == 1.0  # unset leaves do not count
        tree.set(np.array([6]), np.array([0.0]))
        assert tree.min() == 0.0 and tree.total() == 3.0  # a leaf set to 0 counts
        tree.set(np.array([6]), np.array([-0.0]))
        assert bits(tree.get(np.array([6])))[0] == 0  # stored as +0.0
        tree.set(np.array([3, 5]), np.float32([0.5, 0.25]))  # float32 accepted, exact
        assert tree.total() == 0.75


@pytest.mark.parametrize("capacity", [5, 7, 1000])
def test_sum_tree_all_zero_cannot_be_queried(native, capacity):
    for tree in both_trees(native, capacity):
        with pytest.raises(ValueError, match=r"total\(\) is 0"):
            tree.query(np.array([0.0]))
        tree.set(np.arange(capacity), np.zeros(capacity))
        assert tree.total() == 0.0 and tree.min() == 0.0
        with pytest.raises(ValueError, match=r"total\(\) is 0"):
            tree.query(np.array([0.0]))


@pytest.mark.parametrize("capacity,offset", [(7, 0), (1000, 5), (1000, 990), (4097, 4094)])
def test_sum_tree_bucket_boundaries(native, capacity, offset):
    # leaves offset.. hold [1, 2, 3, 0, 4] (crossing 8-leaf groups for offsets 5, 990, 4090)
    pr = np.array([1.0, 2.0, 3.0, 0.0, 4.0])
    idx = np.arange(offset, offset + 5) if offset + 5 <= capacity else np.arange(capacity - 5, capacity)
    o = idx[0]
    targets = np.array([0.0, np.nextafter(1.0, 0), 1.0, 2.999, 3.0, np.nextafter(6.0, 0), 6.0, 9.5, np.nextafter(10.0, 0)])
    expected = o + np.array([0, 0, 1, 1, 2, 2, 4, 4, 4])
    for tree in both_trees(native, capacity):
        tree.set(idx, pr)
        assert tree.total() == 10.0
        np.testing.assert_array_equal(tree.query(targets), expected)
        with pytest.raises(ValueError, match=r"targets\[0\] = 10 is outside \[0, total\(\)=10\)"):
            tree.query(np.array([10.0]))
    # trailing zero leaves are never returned, even for the largest target
    for tree in both_trees(native, capacity):
        assert tree.total() == 0.0
        tree.set(np.arange(4), np.array([1.0, 1.0, 0.0, 0.0]))
        assert tree.query(np.array([np.nextafter(2.0, 0.0)]))[0] == 1


def test_sum_tree_query_never_returns_zero_leaf(native):
    """Targets near total() and near every prefix boundary, on trees built to round badly."""
    rng = np.random.default_rng(5)
    for trial in range(30):
        capacity = int(rng.integers(1, 3000))
        p = rng.random(capacity) * 10.0 ** rng.integers(-12, 7, capacity)
        p[rng.random(capacity) < rng.random()] = 0.0
        if not p.any():
            p[-1] = 1e-12
        a, b = both_trees(native, capacity)
        a.set(np.arange(capacity), p)
        b.set(np.arange(capacity), p)
        tot = a.total()
        cum = np.cumsum(p)
        near = np.concatenate([cum, np.nextafter(cum, 0), np.nextafter(cum, np.inf)])
        x = np.concatenate(
            [near, [0.0, np.nextafter(tot, 0.0)], tot * (1 - rng.random(100) * 1e-15), rng.random(500) * tot]
        )
        x = x[(x >= 0) & (x < tot)]
        got = a.query(x)
        assert np.all((got >= 0) & (got < capacity))
        assert np.all(p[got] > 0), "a zero-priority leaf was sampled"
        np.testing.assert_array_equal(got, b.query(x))


def _descents_past_children(tree: sk.SumTreeNumpy, x: np.ndarray) -> np.ndarray:
    """Which targets hit the rounding fallback (target >= a node's children prefix) somewhere."""
    K = len(x)
    node, rest, hit_any = np.zeros(K, np.int64), x.copy(), np.zeros(K, bool)
    for level in range(len(tree._nodes) - 1, 0, -1):
        c = tree._sum[level - 1].reshape(-1, 8)[node]
        prefix = np.concatenate([np.zeros((K, 1)), np.cumsum(c, axis=1)], axis=1)
        below = rest[:, None] < prefix[:, 1:]
        miss = ~below.any(axis=1)
        hit_any |= miss
        i = np.where(miss, 7 - np.argmax(c[:, ::-1] > 0, axis=1), np.argmax(below, axis=1))
        rest = np.where(miss, np.nextafter(c[np.arange(K), i], 0.0), rest - prefix[np.arange(K), i])
        node = node * 8 + i
    return hit_any


def test_sum_tree_rounding_fallback_path(native):
    """Targets whose remainder rounds up to a child's whole mass: still a positive leaf."""
    rng = np.random.default_rng(11)
    exercised = 0
    for trial in range(300):
        capacity = int(rng.integers(9, 64))
        p = rng.random(capacity) * 10.0 ** rng.integers(-17, 1, capacity)
        p[rng.random(capacity) < 0.3] = 0.0
        p[0] = max(p[0], 1e-3)
        a, b = both_trees(native, capacity)
        a.set(np.arange(capacity), p)
        b.set(np.arange(capacity), p)
        steps = [np.cumsum(b._sum[1])]  # walk down from each level-1 prefix boundary
        for _ in range(6):
            steps.append(np.nextafter(steps[-1], 0.0))
        x = np.concatenate(steps[1:])
        x = x[(x >= 0) & (x < a.total())]
        got = a.query(x)
        assert np.all(p[got] > 0) and np.all(got < capacity)
        np.testing.assert_array_equal(got, b.query(x))
        exercised += int(_descents_past_children(b, x).sum())
    assert exercised > 0, "no target took the rounding fallback; the test lost its purpose"


def test_sum_tree_sampling_frequencies(native):
    rng = np.random.default_rng(6)
    capacity = 1000
    p = rng.random(capacity) ** 2
    p[rng.random(capacity) < 0.2] = 0.0
    tree = native.SumTree(capacity)
    tree.set(np.arange(capacity), p)
    n = 1_000_000
    idx = tree.query(rng.random(n) * tree.total())
    counts = np.bincount(idx, minlength=capacity)
    assert counts[p == 0].sum() == 0
    expected = p / math.fsum(p) * n
    pos = expected > 0
    z = (counts[pos] - expected[pos]) / np.sqrt(expected[pos])
    assert np.max(np.abs(z)) < 6.0
    dof = pos.sum() - 1
    chi2 = np.sum(z**2)
    assert abs(chi2 - dof) < 6 * math.sqrt(2 * dof)


def test_sum_tree_total_does_not_drift(native):
    """1e5 updates mixing 1e-12 and 1e6: total() stays the exact-to-rounding sum of the leaves."""
    rng = np.random.default_rng(8)
    capacity = 1000
    tree, ref = both_trees(native, capacity)
    for step in range(1000):  # 1000 x 100 = 1e5 updates
        idx = rng.integers(0, capacity, 100)
        huge = rng.random(100) < 0.5
        p = np.where(huge, 1e6 * (1 + rng.random(100)), 1e-12 * (1 + rng.random(100)))
        tree.set(idx, p)
        if step % 100 == 0:
            ref.set(idx, p)
    leaves = tree.get(np.arange(capacity))
    assert abs(tree.total() - math.fsum(leaves)) <= 1e-9 * math.fsum(leaves)
    # now drop every huge priority: the remaining mass is ~1e-9, which delta updates would lose
    tree.set(np.arange(capacity), np.where(leaves > 1, 3e-12, leaves))
    leaves = tree.get(np.arange(capacity))
    exact = math.fsum(leaves)
    assert abs(tree.total() - exact) <= 1e-9 * exact
    # the tree is a function of its leaves alone: identical to one built in a single update
    fresh = native.SumTree(capacity)
    fresh.set(np.arange(capacity), leaves)
    assert tree.total() == fresh.total()
    ref.set(np.arange(capacity), leaves)
    assert ref.total() == tree.total()


def test_sum_tree_query_weighted(native):
    rng = np.random.default_rng(9)
    capacity = 777
    p = rng.random(capacity) + 0.01
    a, b = both_trees(native, capacity)
    for tree in (a, b):
        tree.set(np.arange(capacity), p)
    x = rng.random(300) * a.total()
    for beta in (0.0, 0.4, 1.0):
        ia, wa = a.query_weighted(x, beta)
        ib, wb = b.query_weighted(x, beta)
        np.testing.assert_array_equal(ia, a.query(x))
        np.testing.assert_array_equal(ia, ib)
        assert wa.dtype == np.float32
        np.testing.assert_allclose(wa, wb, rtol=2e-7)
        P = p / p.sum()
        baselines = (capacity * P[ia]) ** -beta / (capacity * P.min()) ** -beta
        np.testing.assert_allclose(wa, baselines, rtol=1e-6)
        assert np.all(wa <= 1.0)
    with pytest.raises(ValueError, match="beta = -1 must be finite and >= 0"):
        a.query_weighted(x, -1.0)
    a.set(np.array([0]), np.array([0.0]))
    with pytest.raises(ValueError, match=r"min\(\) is 0"):
        a.query_weighted(x[:1], 0.5)


def test_sum_tree_rejects_bad_input(native):
    for tree in both_trees(native, 7):
        kind = type(tree).__name__
        tree.set(np.array([1, 2]), np.array([1.0, 2.0]))
        cases = [
            (lambda: tree.set(np.array([0, 7]), np.array([1.0, 1.0])),
             r"indices\[1\] = 7 is out of range \[0, capacity=7\)"),
            (lambda: tree.set(np.array([-1]), np.array([1.0])), r"indices\[0\] = -1 is out of range"),
            (lambda: tree.set(np.array([0, 1]), np.array([1.0, np.nan])), r"priorities\[1\] = nan is invalid"),
            (lambda: tree.set(np.array([0]), np.array([np.inf])), r"priorities\[0\] = inf is invalid"),
            (lambda: tree.set(np.array([0]), np.array([-1e-300])), r"priorities\[0\] = -1e-300 is invalid"),
            (lambda: tree.set(np.array([0, 1]), np.array([1.0])), "indices and priorities must have the same length"),
            (lambda: tree.set(np.array([0], np.int32), np.array([1.0])), "indices must have dtype int64, got int32"),
            (lambda: tree.set(np.array([0]), np.array([1])), "priorities must have dtype float64, got int64"),
            (lambda: tree.get(np.array([8])), r"indices\[0\] = 8 is out of range"),
            (lambda: tree.query(np.array([3.0])), r"targets\[0\] = 3 is outside \[0, total\(\)=3\)"),
            (lambda: tree.query(np.array([0.5, -0.1])), r"targets\[1\] = -0.1 is outside"),
            (lambda: tree.query(np.array([np.nan])), r"targets\[0\] = nan is outside"),
            (lambda: tree.query(np.array([1], np.int64)), "targets must have dtype float64, got int64"),
        ]
        for fn, msg in cases:
            with pytest.raises(ValueError, match=msg):
                fn()
            # a rejected update leaves the tree unchanged
            np.testing.assert_array_equal(tree.get(np.arange(7)), [0, 1, 2, 0, 0, 0, 0])
            assert tree.total() == 3.0 and tree.min() == 1.0, kind
        with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
            type(tree)(0)


def test_sum_tree_pickle_round_trip(native):
    rng = np.random.default_rng(10)
    a, b = both_trees(native, 100)
    idx = rng.integers(0, 100, 60)
    p = rng.random(60)
    p[:3] = 0.0
    for tree in (a, b):
        tree.set(idx, p)
    a2 = pickle.loads(pickle.dumps(a))
    b2 = pickle.loads(pickle.dumps(b))
    assert isinstance(a2, native.SumTree)
    assert_trees_equal(a, a2, rng)
    assert_trees_equal(a2, b2, rng)
    cross = sk.SumTreeNumpy.__new__(sk.SumTreeNumpy)  # native state loads into the reference
    cross.__setstate__(a.__getstate__())
    assert_trees_equal(a, cross, rng)


def _large_call(native, kernel: str):
    """A call of ``kernel`` on inputs large enough to run for a few hundred milliseconds."""
    rng = np.random.default_rng(3)
    if kernel == "her_future_t":
        t, u = rng.integers(0, 50, 3_000_000), rng.random(3_000_000)
        return lambda: native.her_future_t(t, u, 50)
    if kernel == "her_future_indices":
        slots, u = rng.integers(0, 50_000, 2_000_000), rng.random((2, 2_000_000))
        return lambda: native.her_future_indices(slots, u, 50, 0.8)
    if kernel == "her_future_sample":
        u = rng.random((3, 3_000_000))
        return lambda: native.her_future_sample(u, 50_000, 50, 0.8)
    if kernel == "gather_transitions":
        o, ag, g, u = make_buffer(rng, N=200, T=50)
        ep, t, goal_ep, goal_t = her_indices(rng, 200, 50, 400_000)
        return lambda: native.gather_transitions(o, ag, g, u, ep, t, goal_ep, goal_t, 0.05)
    tree = native.SumTree(1 << 21)
    leaves = rng.integers(0, 1 << 21, 6_000_000)
    tree.set(leaves, rng.random(len(leaves)) + 0.1)
    targets = rng.random(1_000_000) * tree.total()
    priorities = rng.random(len(leaves)) + 0.1
    return {"SumTree.set": lambda: tree.set(leaves, priorities),
            "SumTree.get": lambda: tree.get(leaves),
            "SumTree.query": lambda: tree.query(targets),
            "SumTree.query_weighted": lambda: tree.query_weighted(targets, 0.4)}[kernel]


@pytest.mark.parametrize("kernel", ["her_future_t", "her_future_indices", "her_future_sample",
                                    "gather_transitions", "SumTree.set", "SumTree.get",
                                    "SumTree.query", "SumTree.query_weighted"])
def test_kernel_releases_the_gil(native, kernel):
    """While the kernel runs in another thread, this Python thread keeps running.

    Holding the GIL for the whole call would stop this thread's loop for the call's duration;
    with the GIL released its longest pause is an OS scheduling slice.
    """
    import threading
    import time

    call = _large_call(native, kernel)
    span = {}

    def run():
        start = time.perf_counter()
        call()
        span["seconds"] = time.perf_counter() - start

    worker = threading.Thread(target=run)
    longest_pause, last = 0.0, time.perf_counter()
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest_pause, last = max(longest_pause, now - last), now
    worker.join()
    assert span["seconds"] > 0.02, f"{kernel} ran {span['seconds']:.3f} s: too short to tell"
    assert longest_pause < 0.5 * span["seconds"], (
        f"this thread stopped for {longest_pause:.3f} s of the {span['seconds']:.3f} s that "
        f"{kernel} ran: the GIL was held")


def test_kernels_run_concurrently_with_the_same_results(native):
    """Several threads share a tree and a buffer (GIL released in the loops; the tree locks)."""
    import concurrent.futures

    rng = np.random.default_rng(12)
    o, ag, g, u = make_buffer(rng, N=50, T=50)
    tree = native.SumTree(2500)
    tree.set(np.arange(2500), rng.random(2500) + 0.1)
    jobs = [her_indices(np.random.default_rng(s), 50, 50, 4096) for s in range(8)]
    expected = [sk.gather_transitions_numpy(o, ag, g, u, *j, 0.05) for j in jobs]
    x = rng.random(20000) * tree.total()
    q_expected = tree.query(x)

    def work(i):
        for _ in range(5):
            assert_same_batch(native.gather_transitions(o, ag, g, u, *jobs[i], 0.05), expected[i])
            np.testing.assert_array_equal(tree.query(x), q_expected)
            tree.set(np.array([i]), tree.get(np.array([i])))  # same value: tree unchanged
        return True

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(8)))


# --------------------------------------------------------------------------------------------
# fallback when the extension is missing


def test_numpy_fallback_warns_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "baselines_her._native", None)  # import now fails
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mod = importlib.reload(sk)
            tree = mod.SumTree(4)
            tree.set(np.array([0]), np.array([1.0]))
            mod.her_future_t(np.array([0]), np.array([0.5]), 3)
        ours = [w for w in caught if "baselines_her._native" in str(w.message)]
        assert len(ours) == 1
        assert issubclass(ours[0].category, RuntimeWarning)
        assert "numpy reference" in str(ours[0].message)
        assert mod.NATIVE_AVAILABLE is False
        assert mod.her_future_t is mod.her_future_t_numpy
        assert mod.her_future_indices is mod.her_future_indices_numpy
        assert mod.her_future_sample is mod.her_future_sample_numpy
        assert mod.gather_transitions is mod.gather_transitions_numpy
        assert mod.SumTree is mod.SumTreeNumpy
    finally:
        monkeypatch.undo()
        importlib.reload(sk)
    if "baselines_her._native" in sys.modules and sys.modules["baselines_her._native"] is not None:
        assert sk.NATIVE_AVAILABLE
