"""Actor and critic MLPs (Keras) and a numpy forward pass of the actor.

Inputs are already normalised: actor ``[o, g] -> max_u * tanh(...)``; critic
``[o, g, u / max_u] -> Q``. ``layers`` hidden ReLU layers of ``hidden`` units (baselines: 3x256).
The numpy actor (:class:`NumpyActor`) runs rollouts and ``play.py`` without a TF call per step.
"""
from __future__ import annotations

import numpy as np


def build_mlp(name: str, dim_in: int, dim_out: int, layers: int, hidden: int,
              out_activation: str | None = None):
    import tensorflow as tf
    inputs = tf.keras.Input(shape=(dim_in,), name=f"{name}_in")
    h = inputs
    for i in range(layers):
        h = tf.keras.layers.Dense(hidden, activation="relu", name=f"{name}_dense_{i}")(h)
    out = tf.keras.layers.Dense(dim_out, activation=out_activation, name=f"{name}_out")(h)
    return tf.keras.Model(inputs, out, name=name)


def build_actor(dim_o: int, dim_g: int, dim_u: int, layers: int, hidden: int, name="actor"):
    """Outputs tanh in [-1, 1]; the learner scales by ``max_u``."""
    return build_mlp(name, dim_o + dim_g, dim_u, layers, hidden, out_activation="tanh")


def build_critic(dim_o: int, dim_g: int, dim_u: int, layers: int, hidden: int, name="critic"):
    return build_mlp(name, dim_o + dim_g + dim_u, 1, layers, hidden)


def model_weights(model) -> dict:
    """``{'<layer>/kernel': W, '<layer>/bias': b}`` for every Dense layer, as numpy arrays."""
    out = {}
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            out[f"{layer.name}/kernel"] = np.asarray(kernel)
            out[f"{layer.name}/bias"] = np.asarray(bias)
    return out


def set_model_weights(model, weights: dict) -> None:
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([weights[f"{layer.name}/kernel"], weights[f"{layer.name}/bias"]])


class NumpyActor:
    """Deterministic policy ``a = max_u * tanh(MLP([norm(o), norm(g)]))`` in numpy."""

    def __init__(self, weights: dict, name: str, layers: int, max_u: float,
                 o_mean, o_std, g_mean, g_std, norm_clip: float, clip_obs: float):
        names = [f"{name}_dense_{i}" for i in range(layers)] + [f"{name}_out"]
        self.kernels = [np.asarray(weights[f"{n}/kernel"], dtype=np.float32) for n in names]
        self.biases = [np.asarray(weights[f"{n}/bias"], dtype=np.float32) for n in names]
        self.max_u = float(max_u)
        self.o_mean, self.o_std = np.asarray(o_mean, np.float32), np.asarray(o_std, np.float32)
        self.g_mean, self.g_std = np.asarray(g_mean, np.float32), np.asarray(g_std, np.float32)
        self.norm_clip, self.clip_obs = float(norm_clip), float(clip_obs)

    def _norm(self, x, mean, std):
        x = np.clip(x, -self.clip_obs, self.clip_obs)
        return np.clip((x - mean) / std, -self.norm_clip, self.norm_clip)

    def inputs(self, o: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.concatenate([self._norm(o, self.o_mean, self.o_std),
                               self._norm(g, self.g_mean, self.g_std)], axis=-1).astype(np.float32)

    def __call__(self, o: np.ndarray, g: np.ndarray) -> np.ndarray:
        h = self.inputs(np.atleast_2d(o), np.atleast_2d(g))
        for kernel, bias in zip(self.kernels[:-1], self.biases[:-1]):
            h = np.maximum(h @ kernel + bias, 0.0)
        return self.max_u * np.tanh(h @ self.kernels[-1] + self.biases[-1])
