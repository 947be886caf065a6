"""Actor and critic MLPs (Keras) and a numpy forward pass of the actor.

Inputs are already normalised: actor ``[o, g] -> max_u * tanh(...)``; critic
``[o, g, u / max_u] -> Q``. ``layers`` hidden ReLU layers of ``hidden`` units (baselines: 3x256).
The numpy actor (:class:`NumpyActor`) runs rollouts and ``play.py`` without a TF call per step;
it runs chains of Dense layers and refuses any other layer (:func:`dense_chain`).
"""
from __future__ import annotations

import numpy as np

from baselines_her.quiet_tensorflow import import_tensorflow


def build_mlp(name: str, dim_in: int, dim_out: int, layers: int, hidden: int,
              out_activation: str | None = None):
    tf = import_tensorflow()
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


def _weight_key(layer, variable) -> str:
    short = variable.name.split("/")[-1].split(":")[0]  # "kernel", "bias", "gamma", ...
    return f"{layer.name}/{short}"


def model_weights(model) -> dict:
    """``{'<layer>/<weight>': array}`` for every weight of every layer (Dense: ``kernel``,
    ``bias``), as numpy arrays."""
    out = {}
    for layer in model.layers:
        for variable, value in zip(layer.weights, layer.get_weights()):
            out[_weight_key(layer, variable)] = np.asarray(value)
    return out


def set_model_weights(model, weights: dict) -> None:
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([weights[_weight_key(layer, v)] for v in layer.weights])


class UnsupportedLayerError(TypeError):
    """The model has a layer :class:`NumpyActor` cannot run."""


_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh, "linear": lambda x: x}


def dense_chain(model) -> list[tuple[str, str]]:
    """``[(layer name, activation), ...]`` of a model that is a chain of Dense layers with
    relu/tanh/linear activations and biases; raises :class:`UnsupportedLayerError` naming the
    first layer that is anything else."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedLayerError(f"model {model.name!r}: NumpyActor runs single-input, "
                                    f"single-output models only")
    chain = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        what = f"model {model.name!r}, layer {layer.name!r} ({kind})"
        if kind != "Dense":
            raise UnsupportedLayerError(f"{what}: NumpyActor runs Dense layers only")
        config = layer.get_config()
        activation = config.get("activation")
        if not isinstance(activation, str) or activation not in _ACTIVATIONS:
            raise UnsupportedLayerError(f"{what}: activation {activation!r} is not one of "
                                        f"{sorted(_ACTIVATIONS)}")
        if not config.get("use_bias", True):
            raise UnsupportedLayerError(f"{what}: NumpyActor needs use_bias=True")
        chain.append((layer.name, activation))
    return chain


class NumpyActor:
    """Deterministic policy ``a = max_u * tanh(MLP([norm(o), norm(g)]))`` in numpy.

    ``layers`` is either the list ``[(layer name, activation), ...]`` of :func:`dense_chain`, or
    the number of hidden layers of :func:`build_actor`'s network named ``name`` (ReLU hidden
    layers ``<name>_dense_<i>``, tanh output ``<name>_out``). ``weights`` must hold exactly those
    layers' kernels and biases: a weight of any other layer raises
    :class:`UnsupportedLayerError`, since the numpy pass would silently skip it.
    """

    def __init__(self, weights: dict, name: str, layers, max_u: float,
                 o_mean, o_std, g_mean, g_std, norm_clip: float, clip_obs: float):
        if isinstance(layers, int):
            layers = [(f"{name}_dense_{i}", "relu") for i in range(layers)] + [(f"{name}_out", "tanh")]
        chain = [(str(n), str(a)) for n, a in layers]
        expected = {f"{n}/{w}" for n, _ in chain for w in ("kernel", "bias")}
        extra = sorted(set(weights) - expected)
        if extra:
            raise UnsupportedLayerError(
                f"{name}: weights {extra} belong to layers NumpyActor does not run (it runs the "
                f"Dense chain {[n for n, _ in chain]})")
        missing = sorted(expected - set(weights))
        if missing:
            raise KeyError(f"{name}: weights {missing} are missing")
        for n, activation in chain:
            if activation not in _ACTIVATIONS:
                raise UnsupportedLayerError(f"{name}, layer {n!r}: activation {activation!r} is "
                                            f"not one of {sorted(_ACTIVATIONS)}")
        self.kernels = [np.asarray(weights[f"{n}/kernel"], dtype=np.float32) for n, _ in chain]
        self.biases = [np.asarray(weights[f"{n}/bias"], dtype=np.float32) for n, _ in chain]
        self.activation_names = [a for _, a in chain]  # e.g. 'relu'; the functions do not pickle
        self.activations = [_ACTIVATIONS[a] for a in self.activation_names]
        self.max_u = float(max_u)
        self.o_mean, self.o_std = np.asarray(o_mean, np.float32), np.asarray(o_std, np.float32)
        self.g_mean, self.g_std = np.asarray(g_mean, np.float32), np.asarray(g_std, np.float32)
        self.norm_clip, self.clip_obs = float(norm_clip), float(clip_obs)

    @classmethod
    def from_model(cls, model, max_u: float, o_mean, o_std, g_mean, g_std, norm_clip: float,
                   clip_obs: float) -> "NumpyActor":
        """The numpy twin of a Keras actor, built from the model's own layers
        (:func:`dense_chain`); raises :class:`UnsupportedLayerError` on a layer it cannot run."""
        return cls(model_weights(model), model.name, dense_chain(model), max_u, o_mean, o_std,
                   g_mean, g_std, norm_clip, clip_obs)

    def _norm(self, x, mean, std):
        x = np.clip(x, -self.clip_obs, self.clip_obs)
        return np.clip((x - mean) / std, -self.norm_clip, self.norm_clip)

    def inputs(self, o: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.concatenate([self._norm(o, self.o_mean, self.o_std),
                               self._norm(g, self.g_mean, self.g_std)], axis=-1).astype(np.float32)

    def __call__(self, o: np.ndarray, g: np.ndarray) -> np.ndarray:
        h = self.inputs(np.atleast_2d(o), np.atleast_2d(g))
        for kernel, bias, activation in zip(self.kernels, self.biases, self.activations):
            h = activation(h @ kernel + bias)
        return self.max_u * h
