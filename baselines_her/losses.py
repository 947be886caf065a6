"""Pure loss functions of the learner (TensorFlow ops, no state). Shapes: batch-first vectors.

Each function is a formula from baselines' DDPG or TD3 and is tested on tiny hand-computed cases.
"""
from __future__ import annotations

from baselines_her.quiet_tensorflow import import_tensorflow

tf = import_tensorflow()


def critic_target(r, q_next, gamma: float, clip_return: float | None):
    """``y = clip(r + gamma * Q'(s', pi'(s')), -clip_return, 0)``, no gradient.

    With sparse rewards in ``[-1, 0]`` every return lies in ``[-1/(1-gamma), 0]``, so baselines
    clips the target to that range (``clip_return=None`` disables it). Success is not terminal,
    so there is no done mask (DESIGN.md).
    """
    y = r + gamma * q_next
    if clip_return is not None:
        y = tf.clip_by_value(y, -clip_return, 0.0)
    return tf.stop_gradient(y)


def min_over_critics(q_values):
    """TD3's clipped double-Q: element-wise minimum over a list of target-critic outputs."""
    return tf.reduce_min(tf.stack(q_values, axis=0), axis=0)


def smoothed_target_action(action, noise, noise_clip: float, max_u: float):
    """TD3 target policy smoothing: ``clip(a + clip(noise, ±noise_clip), ±max_u)``."""
    return tf.clip_by_value(action + tf.clip_by_value(noise, -noise_clip, noise_clip), -max_u, max_u)


def critic_loss(q, y, weights=None):
    """Mean (optionally importance-weighted) squared TD error ``mean(w * (y - q)^2)``."""
    sq = tf.square(y - q)
    if weights is not None:
        sq = weights * sq
    return tf.reduce_mean(sq)


def actor_loss(q_pi, pi, max_u: float, action_l2: float):
    """Baselines' actor loss: ``-mean Q(s, pi(s)) + action_l2 * mean((pi / max_u)^2)``."""
    return -tf.reduce_mean(q_pi) + action_l2 * tf.reduce_mean(tf.square(pi / max_u))


def q_filter_mask(bc_mask, q_demo_action, q_pi):
    """Nair et al.'s Q-filter: keep a demo row only where ``Q(s, a_demo) > Q(s, pi(s))``.

    ``bc_mask`` (B,) is 1 for rows eligible for behaviour cloning; Q values are (B, 1).
    """
    better = tf.cast(q_demo_action[:, 0] > q_pi[:, 0], bc_mask.dtype)
    return tf.stop_gradient(bc_mask * better)


def bc_loss(pi, u, mask):
    """Behaviour cloning, baselines' form: ``sum over masked rows of ||pi(s) - a||^2``."""
    return tf.reduce_sum(mask[:, None] * tf.square(pi - u))


def actor_loss_with_bc(q_pi, pi, max_u: float, action_l2: float, bc, prm_loss_weight: float,
                       aux_loss_weight: float):
    """``prm * (-mean Q(s, pi(s)) + action_l2 * mean((pi/max_u)^2)) + aux * bc`` (baselines)."""
    return (prm_loss_weight * actor_loss(q_pi, pi, max_u, action_l2)
            + aux_loss_weight * bc)
