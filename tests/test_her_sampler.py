"""HER strategies: baselines `future` boundaries and distribution, goal provenance, rewards."""
import numpy as np
import pytest

from baselines_her.her_sampler import HerSampler
from baselines_her.sampling_kernels import her_future_t_numpy, sparse_distance_reward_numpy

T, N, DO, DG, DU = 5, 7, 4, 3, 2
THRESH = 0.05


def make_arrays(rng):
    # Achieved goals are unique per (episode, step) so provenance can be checked exactly.
    ag = np.arange(N * (T + 1) * DG, dtype=np.float32).reshape(N, T + 1, DG) * 0.01
    return {"o": rng.normal(size=(N, T + 1, DO)).astype(np.float32), "ag": ag,
            "g": rng.normal(size=(N, T, DG)).astype(np.float32) + 100.0,
            "u": rng.normal(size=(N, T, DU)).astype(np.float32),
            "info_is_success": np.zeros((N, T, 1), np.float32)}


def reward(ag, g):
    return sparse_distance_reward_numpy(ag, g, THRESH)


def locate(ag, goal):
    """(episode, step) of the achieved goal equal to ``goal``."""
    e, t = np.nonzero(np.all(ag == goal, axis=-1))
    assert len(e) == 1
    return e[0], t[0]


def test_future_t_boundaries():
    t = np.array([0, 0, 4, 4, 2, 2])
    u = np.array([0.0, np.nextafter(1.0, 0.0), 0.0, np.nextafter(1.0, 0.0), 0.0, 0.999999])
    np.testing.assert_array_equal(her_future_t_numpy(t, u, 5), [1, 5, 5, 5, 3, 5])


def test_future_t_never_le_t_never_gt_T_and_uniform():
    rng = np.random.default_rng(0)
    t = rng.integers(0, T, 200_000)
    future = her_future_t_numpy(t, rng.random(200_000), T)
    assert np.all(future > t) and np.all(future <= T)
    for t0 in range(T):  # given t, t' is uniform over the T - t values in [t+1, T]
        counts = np.bincount(future[t == t0], minlength=T + 1)[t0 + 1:]
        assert len(counts) == T - t0
        assert counts.min() / counts.max() > 0.95


@pytest.mark.parametrize("replay_k", [1, 4, 8])
def test_future_relabel_fraction_and_offsets(replay_k):
    rng = np.random.default_rng(1)
    arrays = make_arrays(rng)
    sampler = HerSampler("future", replay_k, T, reward, THRESH)
    batch = sampler.sample(arrays, N, 20_000, rng)
    future_p = 1 - 1 / (1 + replay_k)
    assert batch["relabelled"].mean() == pytest.approx(future_p, abs=0.015)
    ep, t = batch["slot"] // T, batch["slot"] % T
    for i in np.nonzero(batch["relabelled"])[0][:500]:
        e_goal, t_goal = locate(arrays["ag"], batch["g"][i])
        assert e_goal == ep[i] and t[i] + 1 <= t_goal <= T
    kept = ~batch["relabelled"]
    np.testing.assert_array_equal(batch["g"][kept], arrays["g"][ep[kept], t[kept]])


@pytest.mark.parametrize("strategy", ["final", "episode", "random"])
def test_relabelled_goals_are_achieved_goals(strategy):
    rng = np.random.default_rng(2)
    arrays = make_arrays(rng)
    batch = HerSampler(strategy, 4, T, reward, THRESH).sample(arrays, N, 4000, rng)
    ep = batch["slot"] // T
    relabelled = np.nonzero(batch["relabelled"])[0]
    assert len(relabelled) > 2000
    seen_other_episode = False
    for i in relabelled[:500]:
        e_goal, t_goal = locate(arrays["ag"], batch["g"][i])
        if strategy == "final":
            assert (e_goal, t_goal) == (ep[i], T)
        elif strategy == "episode":
            assert e_goal == ep[i] and 0 <= t_goal <= T
        else:
            seen_other_episode |= e_goal != ep[i]
    assert strategy != "random" or seen_other_episode


def test_none_never_relabels():
    rng = np.random.default_rng(3)
    arrays = make_arrays(rng)
    batch = HerSampler("none", 4, T, reward, THRESH).sample(arrays, N, 1000, rng)
    assert not batch["relabelled"].any()
    ep, t = batch["slot"] // T, batch["slot"] % T
    np.testing.assert_array_equal(batch["g"], arrays["g"][ep, t])


def test_transition_fields_and_recomputed_rewards():
    rng = np.random.default_rng(4)
    arrays = make_arrays(rng)
    # Put some goals within the threshold so both reward values occur.
    arrays["g"][:, :, :] = arrays["ag"][:, 1:, :] + 0.01
    batch = HerSampler("future", 4, T, reward, None).sample(arrays, N, 2000, rng)
    ep, t = batch["slot"] // T, batch["slot"] % T
    np.testing.assert_array_equal(batch["o"], arrays["o"][ep, t])
    np.testing.assert_array_equal(batch["o_2"], arrays["o"][ep, t + 1])
    np.testing.assert_array_equal(batch["ag_2"], arrays["ag"][ep, t + 1])
    np.testing.assert_array_equal(batch["u"], arrays["u"][ep, t])
    np.testing.assert_array_equal(batch["r"], reward(batch["ag_2"], batch["g"]))
    assert set(np.unique(batch["r"])) == {-1.0, 0.0}


def test_given_episode_indices_are_used():
    rng = np.random.default_rng(5)
    arrays = make_arrays(rng)
    ep = np.array([3, 3, 6, 0])
    batch = HerSampler("future", 4, T, reward, THRESH).sample(arrays, N, 4, rng, ep_idx=ep)
    np.testing.assert_array_equal(batch["slot"] // T, ep)


def test_bad_strategy_and_empty_buffer():
    with pytest.raises(ValueError, match="replay_strategy"):
        HerSampler("fututre", 4, T, reward)
    with pytest.raises(ValueError, match="empty"):
        HerSampler("future", 4, T, reward).sample(make_arrays(np.random.default_rng(0)), 0, 4,
                                                  np.random.default_rng(0))
