"""Learning from demonstrations and human data: BC / Q-filter losses, batch composition, config."""
import numpy as np
import pytest
import tensorflow as tf

from baselines_her import losses
from baselines_her.config import ConfigError, batch_rows, prepare_params
from baselines_her.her_sampler import HerSampler
from baselines_her.replay_buffer import ReplayBuffer
from baselines_her.sources import EpisodeSource, fixed_source, sample_mixed

T, DO, DG, DU = 4, 3, 2, 2


def test_q_filter_keeps_demo_rows_where_demo_action_is_better():
    bc_mask = tf.constant([1.0, 1.0, 0.0, 1.0])
    q_demo = tf.constant([[-1.0], [-5.0], [0.0], [-2.0]])
    q_pi = tf.constant([[-2.0], [-4.0], [-9.0], [-2.0]])
    # row 0: -1 > -2 keep; row 1: -5 < -4 drop; row 2: not a demo row; row 3: tie -> drop
    np.testing.assert_array_equal(losses.q_filter_mask(bc_mask, q_demo, q_pi).numpy(),
                                  [1.0, 0.0, 0.0, 0.0])


def test_bc_loss_sums_squared_error_over_masked_rows():
    pi = tf.constant([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])
    u = tf.constant([[0.0, 0.0], [0.5, -0.5], [1.0, 1.0]])
    mask = tf.constant([1.0, 1.0, 0.0])
    assert losses.bc_loss(pi, u, mask).numpy() == pytest.approx(1.0 + 1.0)


def test_actor_loss_with_bc_weights():
    q_pi = tf.constant([[-2.0], [-4.0]])
    pi = tf.constant([[0.0, 0.0], [0.0, 0.0]])
    loss = losses.actor_loss_with_bc(q_pi, pi, 1.0, 1.0, bc=tf.constant(10.0),
                                     prm_loss_weight=0.001, aux_loss_weight=0.0078)
    assert loss.numpy() == pytest.approx(0.001 * 3.0 + 0.0078 * 10.0)


@pytest.mark.parametrize("ratio,demo,expected", [
    (0.0, False, {"replay": 256, "demo": 0, "human": 0}),
    (0.25, False, {"replay": 192, "demo": 0, "human": 64}),
    (0.25, True, {"replay": 64, "demo": 128, "human": 64}),
    (0.1, True, {"replay": 102, "demo": 128, "human": 26}),
    (0.0, True, {"replay": 128, "demo": 128, "human": 0}),
])
def test_batch_rows(ratio, demo, expected):
    p = {"batch_size": 256, "demo_batch_size": 128, "demo_file": "d.npz" if demo else "",
         "human_file": "h.npz" if ratio else "", "human_ratio": ratio}
    assert batch_rows(p) == expected


def episodes(n, value):
    return {"o": np.full((n, T + 1, DO), value, np.float32),
            "ag": np.full((n, T + 1, DG), value, np.float32),
            "g": np.full((n, T, DG), value, np.float32), "u": np.full((n, T, DU), value, np.float32),
            "info_is_success": np.zeros((n, T, 1), np.float32)}


@pytest.mark.parametrize("rows", [(20, 0, 12), (8, 16, 8), (32, 0, 0), (10, 12, 0)])
def test_sample_mixed_row_counts_and_bc_mask(rows):
    n_replay, n_demo, n_human = rows
    sampler = HerSampler("future", 4, T, lambda a, g: -np.ones(len(a), np.float32), None)
    replay = ReplayBuffer(T, DO, DG, DU, 100 * T)
    replay.store_episode(episodes(5, 1.0))
    sources = [EpisodeSource("replay", replay, sampler, n_replay, False),
               fixed_source("demo", episodes(3, 2.0), sampler, n_demo, True, (DO, DG, DU)),
               fixed_source("human", episodes(3, 3.0), sampler, n_human, False, (DO, DG, DU))]
    k = 3
    batch = sample_mixed(sources, np.random.default_rng(0), k)
    total = n_replay + n_demo + n_human
    assert batch["u"].shape == (k, total, DU) and batch["r"].shape == (k, total)
    source_of_row = batch["u"][:, :, 0]  # each source's episodes hold its own constant
    for one_batch in source_of_row:
        assert (one_batch == 1.0).sum() == n_replay
        assert (one_batch == 2.0).sum() == n_demo
        assert (one_batch == 3.0).sum() == n_human
        np.testing.assert_array_equal(batch["replay_rows"], one_batch == 1.0)
    np.testing.assert_array_equal(batch["bc"], (source_of_row == 2.0).astype(np.float32))
    assert (batch["rows_replay"], batch["rows_demo"], batch["rows_human"]) == rows
    assert batch["slot"].shape == (k, n_replay)


def test_demo_file_turns_on_bc_unless_told_otherwise():
    assert prepare_params("PandaPush-v3", {"demo_file": "d.npz"}).bc_loss is True
    assert prepare_params("PandaPush-v3", {"demo_file": "d.npz", "bc_loss": "0"}).bc_loss is False
    assert prepare_params("PandaPush-v3").bc_loss is False


@pytest.mark.parametrize("overrides,match", [
    ({"human_ratio": "0.25"}, "needs --human_file"),
    ({"human_file": "h.npz"}, "needs --human_ratio"),
    ({"bc_loss": "1"}, "--bc_loss=1 needs --demo_file"),
    ({"q_filter": "1"}, "--q_filter=1 needs --bc_loss=1"),
    ({"demo_file": "d.npz", "batch_size": "128"}, "leaves 0 replay rows"),
    ({"human_file": "h.npz", "human_ratio": "1.0"}, r"--human_ratio must be in \[0, 1\)"),
])
def test_bad_source_configs(overrides, match):
    with pytest.raises(ConfigError, match=match):
        prepare_params("PandaPush-v3", overrides)


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    """4 scripted-expert PandaReach-v3 episodes as a native demo file."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                    "experiment", "data_generation"))
    from generate_demos import main as generate_main
    demo = tmp_path_factory.mktemp("demos") / "demos.npz"
    assert generate_main(["--env", "PandaReach-v3", "--episodes", "4", "--seed", "0",
                          "--out", str(demo)]) == 0
    return demo


def test_training_with_demo_and_human_files(tmp_path, reach_demos):
    """End to end: expert demos + a human file mixed into every batch; BC with Q-filter runs."""
    import csv
    demo = reach_demos
    from baselines_her.train import train
    params = prepare_params("PandaReach-v3", {
        "n_epochs": 1, "n_cycles": 2, "n_batches": 3, "batch_size": 64, "hidden": 32, "layers": 2,
        "n_test_rollouts": 2, "buffer_size": 5000, "demo_file": str(demo), "num_demo": 3,
        "demo_batch_size": 16, "q_filter": True, "human_file": str(demo), "human_ratio": 0.25,
        "human_bc": True, "num_threads": 1})
    train(params, logdir=str(tmp_path / "run"))
    row = list(csv.DictReader(open(tmp_path / "run" / "progress.csv")))[0]
    assert (row["batch/replay_rows"], row["batch/demo_rows"], row["batch/human_rows"]) == (
        "32", "16", "16")
    # 32 demo and human rows per batch are cloned where the Q-filter keeps them
    assert float(row["loss/bc"]) > 0.0
    assert 0.0 < float(row["batch/bc_rows_kept"]) <= 32.0
    log = open(tmp_path / "run" / "log.txt").read()
    assert "demo source: 3 episodes, 16 rows per batch" in log
    assert "human source: 4 episodes, 16 rows per batch" in log


def test_behaviour_cloning_pulls_the_actor_to_the_demo_actions(tmp_path, reach_demos):
    """With only the BC term in the actor loss (prm_loss_weight=0) the trained actor reproduces
    the demo actions on the demo states far better than the same run with --bc_loss=0."""
    from baselines_her.policy_file import actor_from_state, load_policy
    from baselines_her.train import train
    with np.load(reach_demos) as f:
        o, g, u = f["o"][:, :-1].reshape(-1, 6), f["g"].reshape(-1, 3), f["u"].reshape(-1, 3)

    def demo_action_error(bc_loss: bool) -> float:
        logdir = tmp_path / f"bc{int(bc_loss)}"
        train(prepare_params("PandaReach-v3", {
            "n_epochs": 1, "n_cycles": 2, "n_batches": 15, "batch_size": 64, "hidden": 32,
            "layers": 2, "n_test_rollouts": 1, "buffer_size": 5000, "num_threads": 1,
            "demo_file": str(reach_demos), "demo_batch_size": 32, "bc_loss": bc_loss,
            "q_filter": False, "algo": "ddpg",  # every demo row cloned, every step
            "prm_loss_weight": 0.0, "aux_loss_weight": 1.0, "pi_lr": 0.01}), logdir=str(logdir))
        actor = actor_from_state(load_policy(str(logdir / "policy_latest.pkl")))
        return float(np.mean(np.square(actor(o, g) - u)))

    cloned, not_cloned = demo_action_error(True), demo_action_error(False)
    assert cloned < 0.5 * not_cloned, (cloned, not_cloned)


def test_bad_demo_file_fails_naming_file_and_key(tmp_path):
    import numpy as np
    from baselines_her.train import train
    bad = tmp_path / "bad.npz"
    np.savez(bad, o=np.zeros((2, 51, 6), np.float32))
    params = prepare_params("PandaReach-v3", {"demo_file": str(bad), "n_epochs": 1})
    with pytest.raises(ValueError, match=r"bad\.npz.*'ag'"):
        train(params, logdir=str(tmp_path / "run"))


@pytest.mark.parametrize("demo_her", [True, False])
def test_demo_her_off_keeps_the_demonstrators_goals(tmp_path, reach_demos, demo_her):
    """--demo_her=0: every demo row carries a goal the demonstrator was given (a Reach episode
    has one goal), with its reward recomputed; the default relabels demo rows with HER, so most
    rows carry achieved goals instead."""
    from baselines_her.train import Trainer
    trainer = Trainer(prepare_params("PandaReach-v3", {
        "n_epochs": 1, "hidden": 16, "layers": 1, "buffer_size": 2000, "num_threads": 1,
        "rollout_process": 0, "demo_file": str(reach_demos), "num_demo": 4,
        "demo_her": demo_her}), str(tmp_path / "run"))
    try:
        demo = next(s for s in trainer.sources if s.name == "demo")
        batch = demo.sample(np.random.default_rng(0), 400)
        reward = trainer.spec.compute_reward(batch["ag_2"], batch["g"])
    finally:
        trainer.close()
    with np.load(reach_demos) as f:
        goals = np.unique(f["g"].reshape(-1, 3), axis=0)
    given = (np.abs(batch["g"][:, None, :] - goals[None]).max(axis=2) == 0).any(axis=1)
    np.testing.assert_array_equal(np.ravel(batch["r"]), np.ravel(reward))
    if demo_her:
        assert given.mean() < 0.5, given.mean()  # replay_k=4: about 4 in 5 rows relabelled
    else:
        assert given.all()
