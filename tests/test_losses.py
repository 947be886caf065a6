"""Loss functions on tiny hand-computed cases."""
import numpy as np
import pytest
import tensorflow as tf

from baselines_her import losses


def test_critic_target_clips_to_return_range():
    gamma = 0.98
    clip_return = 1.0 / (1.0 - gamma)  # 50
    r = tf.constant([[-1.0], [0.0], [-1.0], [0.0]])
    q_next = tf.constant([[-10.0], [5.0], [-100.0], [-0.5]])
    y = losses.critic_target(r, q_next, gamma, clip_return).numpy()[:, 0]
    # -1 + .98*-10 = -10.8 ; 0 + .98*5 = 4.9 -> clipped to 0 ; -1 - 98 = -99 -> -50 ; -0.49
    np.testing.assert_allclose(y, [-10.8, 0.0, -50.0, -0.49], rtol=1e-6)


def test_critic_target_unclipped_when_disabled():
    y = losses.critic_target(tf.constant([[0.0]]), tf.constant([[5.0]]), 0.5, None).numpy()
    assert y[0, 0] == pytest.approx(2.5)


def test_critic_target_has_no_gradient():
    q_next = tf.Variable([[1.0]])
    with tf.GradientTape() as tape:
        y = losses.critic_target(tf.constant([[0.0]]), q_next, 0.9, None)
    assert tape.gradient(y, q_next) is None


def test_critic_loss_plain_and_weighted():
    q = tf.constant([[1.0], [2.0]])
    y = tf.constant([[0.0], [0.0]])
    assert losses.critic_loss(q, y).numpy() == pytest.approx((1 + 4) / 2)
    w = tf.constant([[2.0], [0.5]])
    assert losses.critic_loss(q, y, w).numpy() == pytest.approx((2 * 1 + 0.5 * 4) / 2)


def test_actor_loss_action_l2_term():
    q_pi = tf.constant([[-2.0], [-4.0]])
    pi = tf.constant([[1.0, 0.0], [0.5, 0.5]])
    # -mean(q) = 3 ; mean((pi/max_u)^2) with max_u=2: [0.25, 0, 0.0625, 0.0625] -> 0.09375
    loss = losses.actor_loss(q_pi, pi, max_u=2.0, action_l2=1.0).numpy()
    assert loss == pytest.approx(3.0 + 0.09375)
    assert losses.actor_loss(q_pi, pi, 2.0, 0.0).numpy() == pytest.approx(3.0)


def test_min_over_critics():
    q1 = tf.constant([[1.0], [-3.0]])
    q2 = tf.constant([[0.5], [2.0]])
    np.testing.assert_array_equal(losses.min_over_critics([q1, q2]).numpy(), [[0.5], [-3.0]])


def test_smoothed_target_action_clips_noise_then_action():
    a = tf.constant([[0.9, -0.2, 0.0]])
    noise = tf.constant([[0.3, -2.0, 0.1]])
    out = losses.smoothed_target_action(a, noise, noise_clip=0.5, max_u=1.0).numpy()
    np.testing.assert_allclose(out, [[1.0, -0.7, 0.1]], rtol=1e-6)
