"""Prioritized replay (TD and energy) on the sum tree; TD3's delayed actor updates."""
import csv

import numpy as np
import pytest

from baselines_her.config import prepare_params
from baselines_her.prioritized import (EpisodeEnergyPriorities, TransitionPriorities,
                                       annealed_beta, trajectory_energy)
from baselines_her.replay_buffer import ReplayBuffer

T, DO, DG, DU = 3, 2, 3, 1


def episodes(n, ag=None):
    out = {"o": np.zeros((n, T + 1, DO), np.float32), "ag": np.zeros((n, T + 1, DG), np.float32),
           "g": np.zeros((n, T, DG), np.float32), "u": np.zeros((n, T, DU), np.float32),
           "info_is_success": np.zeros((n, T, 1), np.float32)}
    if ag is not None:
        out["ag"] = np.asarray(ag, np.float32)
    return out


def store(buf, per, n):
    batch = episodes(n)
    per.on_store(buf.store_episode(batch), batch)


def test_new_episodes_enter_at_max_priority_and_td_errors_set_priorities():
    buf = ReplayBuffer(T, DO, DG, DU, 4 * T)
    per = TransitionPriorities(buf, alpha=0.5, priority_eps=0.01)
    store(buf, per, 2)
    np.testing.assert_array_equal(per.tree.get(np.arange(2 * T)), np.ones(2 * T))
    leaves = np.array([0, 4, 5])
    generations = buf.slot_generation[leaves // T].copy()
    assert per.update((leaves, generations), np.array([3.99, -0.0, 0.24])) == 0
    np.testing.assert_allclose(per.tree.get(leaves), [2.0, 0.1, 0.5])
    assert per.max_priority == pytest.approx(2.0)
    store(buf, per, 1)  # the next episode enters at the new maximum
    np.testing.assert_allclose(per.tree.get(np.arange(6, 9)), [2.0, 2.0, 2.0])


def test_is_weights_match_hand_computation():
    buf = ReplayBuffer(T, DO, DG, DU, 1 * T)
    per = TransitionPriorities(buf, alpha=1.0, priority_eps=1e-9)
    store(buf, per, 1)
    per.tree.set(np.arange(3), np.array([1.0, 2.0, 5.0]))
    ep, t, w, _ = per.sample(np.random.default_rng(0), 500, beta=0.5)
    p = np.array([1.0, 2.0, 5.0]) / 8.0
    expected = (3 * p) ** -0.5 / ((3 * p) ** -0.5).max()  # (N P(i))^-beta / max weight
    np.testing.assert_allclose(w, expected[t], rtol=1e-6)
    assert set(np.unique(t)) == {0, 1, 2} and np.all(ep == 0)


def test_sampled_frequencies_follow_priorities():
    buf = ReplayBuffer(T, DO, DG, DU, 4 * T)
    per = TransitionPriorities(buf, alpha=1.0, priority_eps=1e-9)
    store(buf, per, 4)
    priorities = np.arange(1, 13, dtype=np.float64)
    per.tree.set(np.arange(12), priorities)
    ep, t, _, _ = per.sample(np.random.default_rng(1), 200_000, beta=0.4)
    freq = np.bincount(ep * T + t, minlength=12) / 200_000
    np.testing.assert_allclose(freq, priorities / priorities.sum(), atol=0.004)


def test_updates_for_overwritten_slots_are_discarded():
    buf = ReplayBuffer(T, DO, DG, DU, 2 * T)
    per = TransitionPriorities(buf, alpha=1.0, priority_eps=1e-9)
    store(buf, per, 2)
    ep, t, w, token = per.sample(np.random.default_rng(2), 64, beta=1.0)
    store(buf, per, 1)  # slot 0 now holds a new episode
    dropped = per.update(token, np.full(64, 7.0))
    assert dropped == int((ep == 0).sum()) > 0
    np.testing.assert_array_equal(per.tree.get(np.arange(T)), np.ones(T))  # fresh, at max 1.0
    kept = (ep * T + t)[ep == 1]
    np.testing.assert_allclose(per.tree.get(kept), 7.0)


def test_trajectory_energy_by_hand():
    dt, clip = 0.5, 100.0
    # One object: rises 1 m in the first step, then moves 1 m sideways, then stops.
    ag = [[[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 0, 1]]]
    # potential m g dz: [9.81, 9.81, 9.81]; kinetic m v^2 / 2 with v = 2 m/s: [2, 2, 0]
    # total [11.81, 11.81, 9.81] -> increases [0, -2] -> clipped [0, 0] -> energy 0
    assert trajectory_energy(np.array(ag, np.float64), dt, clip)[0] == pytest.approx(0.0)
    ag2 = [[[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 3]]]
    # potential [0, 9.81, 29.43]; v_z = [0, 2, 4] -> kinetic [0, 2, 8]; total [0, 11.81, 37.43]
    # increases [11.81, 25.62]; clip at 20 -> 11.81 + 20
    assert trajectory_energy(np.array(ag2), dt, 20.0)[0] == pytest.approx(31.81)
    two_objects = np.concatenate([np.array(ag2), np.array(ag2)], axis=-1)
    assert trajectory_energy(two_objects, dt, 20.0)[0] == pytest.approx(2 * 31.81)


def test_energy_priorities_prefer_moving_episodes():
    buf = ReplayBuffer(T, DO, DG, DU, 2 * T)
    per = EpisodeEnergyPriorities(buf, alpha=1.0, priority_eps=1e-6, dt=0.04, clip_energy=0.5)
    still = np.zeros((1, T + 1, DG))
    moving = np.zeros((1, T + 1, DG))
    moving[0, :, 2] = [0.0, 0.01, 0.03, 0.06]
    batch = episodes(2, np.concatenate([still, moving]))
    per.on_store(buf.store_episode(batch), batch)
    ep, t, w, _ = per.sample(np.random.default_rng(3), 1000, beta=1.0)
    assert w is None and (ep == 1).mean() > 0.99 and set(np.unique(t)) == {0, 1, 2}


def test_td3_updates_actor_every_policy_delay_steps():
    from baselines_her.ddpg import DDPG
    params = prepare_params("PandaReach-v3", {"algo": "td3", "hidden": 8, "layers": 1})
    agent = DDPG(6, 3, 3, params)
    rng = np.random.default_rng(0)
    batch = {"o": rng.normal(size=(8, 6)), "o_2": rng.normal(size=(8, 6)),
             "g": rng.normal(size=(8, 3)), "u": rng.uniform(-1, 1, (8, 3)), "r": -np.ones(8)}
    updated, changed = [], []
    for _ in range(6):
        actor_before = agent.actor.get_weights()[0].copy()
        updated.append(bool(agent.train(batch)["actor_updated"]))
        changed.append(not np.array_equal(actor_before, agent.actor.get_weights()[0]))
    assert updated == [True, False] * 3
    assert changed == updated  # the flag tells the truth: the actor moves on those steps only
    assert int(agent.n_updates.numpy()) == 6
    assert len(agent.critics) == 2 and len(agent.target_critics) == 2


def test_beta_anneals_linearly_from_beta0_to_one():
    assert [annealed_beta(0.4, p) for p in (-0.1, 0.0, 0.25, 1.0, 1.5)] == pytest.approx(
        [0.4, 0.4, 0.55, 1.0, 1.0])


@pytest.mark.parametrize("kind", ["td", "energy"])
def test_resumed_prioritized_run_matches_the_uninterrupted_run(tmp_path, kind):
    """The checkpoint restores the priorities (tree and running maximum): the resumed epoch
    samples the rows, and so computes the numbers, of the run that was never stopped.

    beta0=1 keeps the importance weights' exponent fixed: it anneals over n_epochs, which the
    resumed run extends.
    """
    from baselines_her.train import train
    tiny = {"n_epochs": 3, "n_cycles": 2, "n_batches": 3, "batch_size": 32, "hidden": 16,
            "layers": 1, "n_test_rollouts": 1, "buffer_size": 2000, "prioritized": kind,
            "beta0": 1.0, "num_threads": 1, "seed": 4}
    train(prepare_params("PandaReach-v3", tiny), logdir=str(tmp_path / "full"))
    train(prepare_params("PandaReach-v3", {**tiny, "n_epochs": 2}), logdir=str(tmp_path / "part"))
    result = train(prepare_params("PandaReach-v3", tiny), logdir=str(tmp_path / "part"),
                   resume=True)
    assert result.epochs_run == 1
    full, part = (list(csv.DictReader(open(tmp_path / run / "progress.csv")))
                  for run in ("full", "part"))
    assert [r["epoch"] for r in part] == ["0", "1", "2"]
    for key in ("loss/critic", "loss/actor", "test/mean_Q", "per/stale_updates"):
        assert part[2][key] == full[2][key], key
