"""NumpyActor: equals the Keras actor it is built from, and refuses layers it cannot run."""
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from baselines_her.networks import (NumpyActor, UnsupportedLayerError, build_actor,  # noqa: E402
                                    dense_chain, model_weights, set_model_weights)

DO, DG, DU = 5, 3, 2
NORM = dict(o_mean=np.full(DO, 0.1), o_std=np.full(DO, 2.0), g_mean=np.zeros(DG),
            g_std=np.ones(DG), norm_clip=5.0, clip_obs=200.0)


def inputs(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, DO)).astype(np.float32),
            rng.normal(size=(n, DG)).astype(np.float32))


def keras_action(model, actor, o, g, max_u):
    return max_u * model(actor.inputs(o, g)).numpy()


@pytest.mark.parametrize("build", ["from_model", "by_names"])
def test_numpy_actor_equals_keras(build):
    tf.keras.utils.set_random_seed(0)
    model = build_actor(DO, DG, DU, layers=2, hidden=16)
    if build == "from_model":
        actor = NumpyActor.from_model(model, 0.5, **NORM)
    else:
        actor = NumpyActor(model_weights(model), "actor", 2, 0.5, **NORM)
    o, g = inputs()
    np.testing.assert_allclose(actor(o, g), keras_action(model, actor, o, g, 0.5), atol=1e-6)


def actor_with(extra_layer):
    """build_actor's network with ``extra_layer`` inserted after the first hidden layer."""
    x = inp = tf.keras.Input(shape=(DO + DG,), name="actor_in")
    x = tf.keras.layers.Dense(16, activation="relu", name="actor_dense_0")(x)
    x = extra_layer(x)
    x = tf.keras.layers.Dense(16, activation="relu", name="actor_dense_1")(x)
    out = tf.keras.layers.Dense(DU, activation="tanh", name="actor_out")(x)
    return tf.keras.Model(inp, out, name="actor")


def test_layer_norm_is_refused_both_ways():
    model = actor_with(tf.keras.layers.LayerNormalization(name="actor_ln_0"))
    with pytest.raises(UnsupportedLayerError, match="'actor_ln_0' \\(LayerNormalization\\)"):
        NumpyActor.from_model(model, 1.0, **NORM)
    # A policy file's weights by name: the layer norm's gamma and beta are not silently skipped.
    with pytest.raises(UnsupportedLayerError, match="actor_ln_0/gamma"):
        NumpyActor(model_weights(model), "actor", 2, 1.0, **NORM)


def test_other_activation_is_refused():
    model = actor_with(tf.keras.layers.Dense(16, activation="elu", name="actor_dense_elu"))
    with pytest.raises(UnsupportedLayerError, match="'elu'"):
        dense_chain(model)


def test_weights_round_trip_by_name():
    tf.keras.utils.set_random_seed(1)
    model = actor_with(tf.keras.layers.LayerNormalization(name="actor_ln_0"))
    weights = model_weights(model)
    assert {"actor_ln_0/gamma", "actor_ln_0/beta", "actor_out/kernel"} <= set(weights)
    tf.keras.utils.set_random_seed(2)
    other = actor_with(tf.keras.layers.LayerNormalization(name="actor_ln_0"))
    set_model_weights(other, {k: v + 1.0 for k, v in weights.items()})
    for key, value in model_weights(other).items():
        np.testing.assert_array_equal(value, weights[key] + 1.0)
