"""Replay buffer fill / overwrite and validation; normaliser statistics against numpy."""
import numpy as np
import pytest

from baselines_her.normalizer import Normalizer
from baselines_her.replay_buffer import ReplayBuffer

T, DO, DG, DU = 3, 2, 2, 1


def episodes(n, start):
    """n episodes whose every value equals the episode's id (start, start+1, ...)."""
    ids = np.arange(start, start + n, dtype=np.float32)[:, None, None]
    return {"o": np.ones((n, T + 1, DO), np.float32) * ids,
            "ag": np.ones((n, T + 1, DG), np.float32) * ids,
            "g": np.ones((n, T, DG), np.float32) * ids, "u": np.ones((n, T, DU), np.float32) * ids,
            "info_is_success": np.zeros((n, T, 1), np.float32)}


def test_fill_then_fifo_overwrite():
    buf = ReplayBuffer(T, DO, DG, DU, size_in_transitions=4 * T + 2)  # 4 episode slots
    assert buf.capacity == 4
    assert list(buf.store_episode(episodes(3, 0))) == [0, 1, 2]
    assert buf.current_size == 3 and buf.n_transitions_stored == 9
    assert list(buf.store_episode(episodes(2, 3))) == [3, 0]  # wraps: episode 4 replaces 0
    assert buf.current_size == 4 and buf.n_episodes_stored == 5
    np.testing.assert_array_equal(buf.arrays["o"][:, 0, 0], [4, 1, 2, 3])
    np.testing.assert_array_equal(buf.slot_generation, [2, 1, 1, 1])
    buf.store_episode(episodes(1, 5))
    np.testing.assert_array_equal(buf.arrays["g"][:, 0, 0], [4, 5, 2, 3])


def test_fields_of_a_step_share_one_record():
    """o, ag, g, u of step t lie side by side in memory, step t+1 right after (the layout the
    gather kernel is fast on), and writing one field never touches another."""
    buf = ReplayBuffer(T, DO, DG, DU, 2 * T)
    a = buf.arrays
    width = (DO + 2 * DG + DU) * 4
    base = a["o"].__array_interface__["data"][0]
    offsets = {k: a[k].__array_interface__["data"][0] - base for k in ("o", "ag", "g", "u")}
    assert offsets == {"o": 0, "ag": DO * 4, "g": (DO + DG) * 4, "u": (DO + 2 * DG) * 4}
    for k in ("o", "ag", "g", "u"):
        assert a[k].strides == ((T + 1) * width, width, 4), k
    rng = np.random.default_rng(0)
    batch = {k: rng.standard_normal((2, *v.shape[1:])).astype(np.float32) for k, v in a.items()}
    buf.store_episode(batch)
    for k in batch:
        np.testing.assert_array_equal(a[k][:2], batch[k], err_msg=k)


def test_state_dict_round_trip():
    buf = ReplayBuffer(T, DO, DG, DU, 5 * T)
    buf.store_episode(episodes(4, 0))
    buf.store_episode(episodes(3, 4))
    other = ReplayBuffer(T, DO, DG, DU, 5 * T)
    other.load_state_dict(buf.state_dict())
    assert (other.current_size, other.next_slot, other.n_episodes_stored) == (5, 2, 7)
    np.testing.assert_array_equal(other.arrays["u"], buf.arrays["u"])


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b.pop("ag"), "missing key"),
    (lambda b: b.__setitem__("o", np.zeros((2, T, DO), np.float32)), "'o' has shape"),
    (lambda b: b.__setitem__("u", np.zeros((3, T, DU), np.float32)), "'u' has 3 episodes"),
    (lambda b: b["g"].__setitem__((0, 0, 0), np.nan), "'g' contains NaN"),
])
def test_bad_episode_batches_are_rejected(mutate, match):
    batch = episodes(2, 0)
    mutate(batch)
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(T, DO, DG, DU, 10 * T).store_episode(batch)


def test_normalizer_matches_numpy():
    rng = np.random.default_rng(0)
    data = rng.normal(loc=[1.0, -3.0, 10.0], scale=[0.5, 2.0, 0.001], size=(5000, 3))
    norm = Normalizer(3, eps=0.01, clip=5.0)
    for chunk in np.array_split(data, 7):  # several updates accumulate
        norm.update(chunk)
        norm.recompute_stats()
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-5)
    expected_std = np.maximum(data.std(axis=0), 0.01)  # third dim is floored at eps
    np.testing.assert_allclose(norm.std, expected_std, rtol=1e-4)
    x = np.array([[1.0, -3.0, 10.0], [100.0, -3.0, 10.0]])
    out = norm.normalize(x)
    assert np.all(np.abs(out[0]) < 0.1)
    assert out[1, 0] == pytest.approx(5.0)  # clipped at norm_clip


def test_normalizer_clips_raw_observations_first():
    norm = Normalizer(1, eps=1e-3, clip=1e9, clip_obs=10.0)
    norm.update(np.array([[1e6], [0.0]]))
    norm.recompute_stats()
    assert norm.mean[0] == pytest.approx(5.0)  # 1e6 clipped to 10 before averaging
