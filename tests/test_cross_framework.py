"""One set of weights: the same (seed, name, spec) gives the same float32 bits everywhere.

``berry.sample`` is the reference; ``berry.jax`` (key ``jax.random.key(seed)``),
``berry.keras`` (``seed=seed``) and ``berry.torch`` (``seed=``/``name=``) must
reproduce it bit for bit on CPU. Each framework is skipped when it is not
installed. The shapes are in each framework's own layout: where the rule is
symmetric in the fans (xavier, plain laws, 2-D orthogonal) the very same
array comes out of a torch ``(out, in)`` tensor and a channels-last one of the
same shape; for rules that are not (he, deepnet), torch's is compared with
``berry.sample(..., layout="torch")``.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from _helpers import assert_same_bits, run_python

import berry

SHAPE = (48, 32)
SEED = 1234
NAME = "encoder.layers.0.weight"

# spec name -> berry.sample keyword arguments
SPECS = {
    "xavier": dict(init="xavier"),
    "xavier_uniform": dict(init="xavier", distribution="uniform"),
    "deepnet": dict(init="deepnet"),
    "he_truncated": dict(init="he", distribution="truncated_normal"),
    "normal": dict(distribution="normal", std=0.02),
    "uniform_0_to_scale": dict(distribution="uniform", low=0.0, high=0.5),
    "uniform_symmetric": dict(distribution="uniform", low=-0.5, high=0.5),
    "truncated_normal": dict(
        distribution="truncated_normal", std=0.02, bounds=(-2.0, 2.0), correct_variance=False
    ),
    "orthogonal": dict(init="orthogonal", gain=1.5),
}


def reference(spec, shape=SHAPE, **extra):
    return berry.sample(shape, seed=SEED, name=NAME, dtype="float32", **SPECS[spec], **extra)


def jax_initializers():
    import berry.jax as bj

    return {
        "xavier": bj.xavier(name=NAME),
        "xavier_uniform": bj.glorot_uniform(name=NAME),
        "deepnet": bj.deepnet(name=NAME),
        "he_truncated": bj.he_normal(name=NAME),
        "normal": bj.normal(0.02, name=NAME),
        "uniform_0_to_scale": bj.uniform(0.5, name=NAME),
        "truncated_normal": bj.truncated_normal(0.02, name=NAME),
        "orthogonal": bj.orthogonal(1.5, name=NAME),
    }


def keras_initializers():
    import berry.keras as bk

    return {
        "xavier": bk.Xavier(seed=SEED, name=NAME),
        "xavier_uniform": bk.GlorotUniform(seed=SEED, name=NAME),
        "deepnet": bk.DeepNet(seed=SEED, name=NAME),
        "he_truncated": bk.HeNormal(seed=SEED, name=NAME),
        "normal": bk.RandomNormal(0.0, 0.02, seed=SEED, name=NAME),
        "uniform_0_to_scale": bk.RandomUniform(0.0, 0.5, seed=SEED, name=NAME),
        "uniform_symmetric": bk.RandomUniform(-0.5, 0.5, seed=SEED, name=NAME),
        "truncated_normal": bk.TruncatedNormal(0.0, 0.02, seed=SEED, name=NAME),
        "orthogonal": bk.Orthogonal(1.5, seed=SEED, name=NAME),
    }


def assert_bits_equal(actual, expected, label):
    assert expected.dtype == np.float32
    assert_same_bits(actual, expected, label)


def test_jax_matches_numpy():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    key = jax.random.key(SEED)
    for spec, init in jax_initializers().items():
        expected = reference(spec)
        assert_bits_equal(init(key, SHAPE, jnp.float32), expected, f"berry.jax {spec}")
        jitted = jax.jit(init, static_argnums=(1, 2))(key, SHAPE, jnp.float32)
        assert_bits_equal(jitted, expected, f"berry.jax jit {spec}")


def test_keras_matches_numpy():
    pytest.importorskip("berry.keras")
    import keras

    for spec, init in keras_initializers().items():
        values = keras.ops.convert_to_numpy(init(SHAPE, dtype="float32"))
        assert_bits_equal(values, reference(spec), f"berry.keras {spec}")


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    init = pytest.importorskip("berry.torch")

    def filled(fill, *args, **kwargs):
        return fill(torch.empty(SHAPE), *args, seed=SEED, name=NAME, **kwargs).numpy()

    cases = {
        "xavier": (filled(init.xavier_normal_), reference("xavier")),
        "xavier_uniform": (filled(init.xavier_uniform_), reference("xavier_uniform")),
        "normal": (filled(init.normal_, 0.0, 0.02), reference("normal")),
        "uniform_0_to_scale": (filled(init.uniform_, 0.0, 0.5), reference("uniform_0_to_scale")),
        "uniform_symmetric": (filled(init.uniform_, -0.5, 0.5), reference("uniform_symmetric")),
        "truncated_normal": (
            filled(init.trunc_normal_, 0.0, 0.02, -0.04, 0.04),
            reference("truncated_normal"),
        ),
        "orthogonal": (filled(init.orthogonal_, 1.5), reference("orthogonal")),
        # he is not symmetric in the fans: torch's (out, in) tensor matches the torch layout.
        "he_truncated": (
            filled(init.kaiming_normal_, nonlinearity="relu"),
            berry.sample(SHAPE, "he", seed=SEED, name=NAME, layout="torch"),
        ),
    }
    for spec, (values, expected) in cases.items():
        assert_bits_equal(values, expected, f"berry.torch {spec}")


def test_jax_key_and_keras_seed_map_to_berry_seed():
    """The documented mapping: jax.random.key(s) <-> seed s <-> Keras seed=s."""
    jax = pytest.importorskip("jax")
    import berry.jax as bj

    for seed in (0, 1, 2**31, 2**32 - 1):
        assert bj.seed_from_key(jax.random.key(seed)) == seed
        assert bj.seed_from_key(jax.random.PRNGKey(seed)) == seed


@pytest.mark.slow
def test_keras_torch_backend_matches_numpy(tmp_path):
    """berry.keras on the torch backend (its own process: the backend is fixed at Keras' import)."""
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    script = textwrap.dedent(
        """
        import numpy as np, keras, berry
        from test_cross_framework import keras_initializers, reference, SHAPE
        assert keras.backend.backend() == "torch", keras.backend.backend()
        for spec, init in keras_initializers().items():
            values = keras.ops.convert_to_numpy(init(SHAPE, dtype="float32"))
            assert values.dtype == np.float32 and values.tobytes() == reference(spec).tobytes(), spec
        from berry.keras import HeNormal
        assert keras.backend.standardize_dtype(HeNormal(seed=2)((3, 3), dtype="bfloat16").dtype) == "bfloat16"
        import berry.keras as bk
        assert keras.ops.convert_to_numpy(bk.Constant([1.0, 2.0])((2, 2))).tolist() == [[1.0, 2.0], [1.0, 2.0]]
        values = np.arange(6.0, dtype="float32").reshape(2, 3)
        assert (keras.ops.convert_to_numpy(bk.get(values)((2, 3))) == values).all()
        stft = keras.ops.convert_to_numpy(bk.STFT()((8, 1, 5)))
        assert np.allclose(stft, keras.ops.convert_to_numpy(keras.initializers.STFT()((8, 1, 5))), atol=1e-5)
        # whole-model initialization on the torch backend: the same weights as berry.torch's, in Keras' layout
        import torch, berry.torch as bt
        inputs = keras.Input((5, 4))
        x = keras.layers.Dense(6, name="fc")(inputs)
        model = keras.Model(inputs, keras.layers.GRU(3, name="gru")(x))
        rules = {"*bias*": {"std": 0.1}}
        bk.init_model(model, rules, seed=3)
        class Torch(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.gru = torch.nn.Linear(4, 6), torch.nn.GRU(6, 3)
        reference = Torch()
        bt.init_model(reference, rules, seed=3)
        state = bk.canonical_state(model)
        for key, value in reference.state_dict().items():
            assert state[key].tobytes() == value.detach().numpy().tobytes(), key
        print("ok")
        """
    )
    result = run_python(script, env={"KERAS_BACKEND": "torch", "KERAS_HOME": str(tmp_path)}, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")


# ------------------------------------------------------------------ whole models: torch == Flax == Keras
#
# The same architecture built in PyTorch, Flax NNX, Flax Linen and Keras, initialized with one rule set
# in canonical (torch) names: every framework's weights, read back in the canonical layout
# (berry.jax.canonical_state, berry.keras.canonical_state), equal torch's state_dict bit for bit, and the
# models compute the same function.

E, HEADS = 16, 4
CANONICAL_RULES = {
    "*.bias": {"std": 0.1},
    "*.in_proj_bias": {"std": 0.1},
    "Linear:weight": "he",  # not symmetric in the fans: a transposition mistake would change the scale
    "_ConvNd:weight": {"init": "he", "distribution": "uniform"},
    "LayerNorm:weight": {"mean": 1.0, "std": 0.1},
    "_NormBase:weight": {"mean": 1.0, "std": 0.1},
}
RNN_RULES = {"*bias*": {"std": 0.0}}  # Flax cells hold bias_hh only, Keras' bias_ih only: zero them for the forward


def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=4)
            self.bn = nn.BatchNorm2d(8)
            self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):  # NHWC in and out, as the others
            x = x.permute(0, 3, 1, 2)
            x = self.up(self.bn(torch.relu(self.conv2(torch.relu(self.conv1(x))))))
            return self.fc(x.mean(dim=(2, 3)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(E), nn.LayerNorm(E)
            self.attn = nn.MultiheadAttention(E, HEADS, batch_first=True)
            self.c_fc, self.c_proj = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)

        def forward(self, x):
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.c_proj(nn.functional.gelu(self.c_fc(self.ln_2(x))))

    class RNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.gru = nn.LSTM(8, 6, batch_first=True), nn.GRU(6, 5, batch_first=True)

        def forward(self, x):
            return self.gru(self.lstm(x)[0])[0]

    return {"mlp": MLP, "cnn": CNN, "block": Block, "rnn": RNN}


def _nnx_models():
    pytest.importorskip("flax")
    import jax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.fc1, self.fc2, self.fc3 = nnx.Linear(16, 32, rngs=rngs), nnx.Linear(32, 8, rngs=rngs), nnx.Linear(8, 4, rngs=rngs)

        def __call__(self, x):
            return self.fc3(jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x)))))

    class CNN(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=rngs)
            self.conv2 = nnx.Conv(8, 8, (3, 3), padding="SAME", feature_group_count=4, rngs=rngs)
            self.bn = nnx.BatchNorm(8, use_running_average=True, rngs=rngs)
            self.up = nnx.ConvTranspose(8, 4, (2, 2), strides=(2, 2), transpose_kernel=True, rngs=rngs)
            self.fc = nnx.Linear(4, 10, rngs=rngs)

        def __call__(self, x):
            x = self.up(self.bn(jax.nn.relu(self.conv2(jax.nn.relu(self.conv1(x))))))
            return self.fc(x.mean(axis=(1, 2)))

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.ln_1, self.ln_2 = nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs), nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(num_heads=HEADS, in_features=E, decode=False, rngs=rngs)
            self.c_fc, self.c_proj = nnx.Linear(E, 4 * E, rngs=rngs), nnx.Linear(4 * E, E, rngs=rngs)

        def __call__(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(jax.nn.gelu(self.c_fc(self.ln_2(x)), approximate=False))

    class RNN(nnx.Module):
        def __init__(self, rngs):
            self.lstm = nnx.RNN(nnx.LSTMCell(8, 6, rngs=rngs))
            self.gru = nnx.RNN(nnx.GRUCell(6, 5, rngs=rngs))

        def __call__(self, x):
            return self.gru(self.lstm(x))

    return {"mlp": MLP, "cnn": CNN, "block": Block, "rnn": RNN}


def _linen_models():
    pytest.importorskip("flax")
    import flax.linen as nn
    import jax

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jax.nn.relu(nn.Dense(32, name="fc1")(x))
            return nn.Dense(4, name="fc3")(jax.nn.relu(nn.Dense(8, name="fc2")(x)))

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = jax.nn.relu(nn.Conv(8, (3, 3), padding="SAME", name="conv1")(x))
            x = jax.nn.relu(nn.Conv(8, (3, 3), padding="SAME", feature_group_count=4, name="conv2")(x))
            x = nn.BatchNorm(use_running_average=True, name="bn")(x)
            x = nn.ConvTranspose(4, (2, 2), strides=(2, 2), transpose_kernel=True, name="up")(x)
            return nn.Dense(10, name="fc")(x.mean(axis=(1, 2)))

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS, name="attn")(nn.LayerNorm(1e-5, name="ln_1")(x))
            h = nn.Dense(4 * E, name="c_fc")(nn.LayerNorm(1e-5, name="ln_2")(x))
            return x + nn.Dense(E, name="c_proj")(jax.nn.gelu(h, approximate=False))

    return {"mlp": MLP, "cnn": CNN, "block": Block}


def _keras_models():
    pytest.importorskip("berry.keras")
    import keras

    layers = keras.layers

    import berry.keras as bk

    cheap = {"kernel_initializer": bk.Zeros(), "bias_initializer": bk.Zeros()}  # berry fills them; no JAX compiles

    def mlp():
        x = inputs = keras.Input((16,))
        x = layers.Dense(32, activation="relu", name="fc1", **cheap)(x)
        x = layers.Dense(8, activation="relu", name="fc2", **cheap)(x)
        return keras.Model(inputs, layers.Dense(4, name="fc3", **cheap)(x))

    def cnn():
        x = inputs = keras.Input((6, 6, 3))
        x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1", **cheap)(x)
        x = layers.Conv2D(8, 3, padding="same", groups=4, activation="relu", name="conv2", **cheap)(x)
        x = layers.BatchNormalization(epsilon=1e-5, name="bn", gamma_initializer=bk.Zeros(), beta_initializer=bk.Zeros(),
                                      moving_mean_initializer=bk.Zeros(), moving_variance_initializer=bk.Zeros())(x)
        x = layers.Conv2DTranspose(4, 2, strides=2, name="up", **cheap)(x)
        return keras.Model(inputs, layers.Dense(10, name="fc", **cheap)(layers.GlobalAveragePooling2D()(x)))

    def block():
        x = inputs = keras.Input((5, E))
        norm = {"epsilon": 1e-5, "gamma_initializer": bk.Zeros(), "beta_initializer": bk.Zeros()}
        h = layers.LayerNormalization(name="ln_1", **norm)(x)
        x = x + layers.MultiHeadAttention(HEADS, E // HEADS, name="attn", **cheap)(h, h)
        h = layers.Dense(4 * E, activation=keras.activations.gelu, name="c_fc", **cheap)(layers.LayerNormalization(name="ln_2", **norm)(x))
        return keras.Model(inputs, x + layers.Dense(E, name="c_proj", **cheap)(h))

    def rnn():
        x = inputs = keras.Input((7, 8))
        recurrent = {**cheap, "recurrent_initializer": bk.Zeros()}
        x = layers.LSTM(6, return_sequences=True, name="lstm", unit_forget_bias=False, **recurrent)(x)
        return keras.Model(inputs, layers.GRU(5, return_sequences=True, name="gru", **recurrent)(x))

    return {"mlp": mlp, "cnn": cnn, "block": block, "rnn": rnn}


INPUTS = {"mlp": (2, 16), "cnn": (2, 6, 6, 3), "block": (2, 5, E), "rnn": (2, 7, 8)}


def _assert_state_equal(state, reference, label):
    assert state, label
    for key, value in state.items():
        assert key in reference, (label, key, sorted(reference))
        assert value.shape == reference[key].shape, (label, key)
        assert value.dtype == np.float32 and value.tobytes() == reference[key].tobytes(), f"{label}: {key} differs"


@pytest.mark.parametrize("architecture", ["mlp", "cnn", "block", "rnn"])
def test_torch_flax_and_keras_give_the_same_weights_and_function(architecture):
    torch = pytest.importorskip("torch")
    import berry.torch as bt

    rules = RNN_RULES if architecture == "rnn" else CANONICAL_RULES
    x = np.random.default_rng(0).standard_normal(INPUTS[architecture]).astype(np.float32)
    torch_model = _torch_models()[architecture]().eval()
    bt.init_model(torch_model, rules, seed=SEED)
    reference = {key: value.detach().numpy() for key, value in torch_model.state_dict().items() if value.dtype == torch.float32}
    expected = torch_model(torch.from_numpy(x)).detach().numpy()

    from flax import nnx

    import berry.jax as bj

    make = _nnx_models()[architecture]
    if architecture == "rnn":  # nnx.RNN holds RNG state, which an abstract model would lack
        nnx_model = make(nnx.Rngs(0))
    else:  # abstract: berry makes every array, Flax draws none
        nnx_model = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
    bj.init_nnx(nnx_model, rules, seed=SEED)
    state = bj.canonical_state(nnx_model)
    _assert_state_equal(state, reference, "nnx")
    np.testing.assert_allclose(np.asarray(nnx_model(x)), expected, rtol=1e-4, atol=1e-5)
    if architecture in _linen_models():
        linen_model = _linen_models()[architecture]()
        variables, _ = bj.init_linen(linen_model, x, rules=rules, seed=SEED)
        _assert_state_equal(bj.canonical_state(linen_model, variables, x), reference, "linen")
        np.testing.assert_allclose(np.asarray(linen_model.apply(variables, x)), expected, rtol=1e-4, atol=1e-5)

    import keras

    import berry.keras as bk

    keras_model = _keras_models()[architecture]()
    bk.init_model(keras_model, rules, seed=SEED)
    state = bk.canonical_state(keras_model)
    _assert_state_equal(state, reference, "keras")
    covered = set(state) | set(bj.canonical_state(nnx_model))
    assert covered >= {key for key in reference if "bias_hh" not in key and "bias_ih" not in key and "running" not in key}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras_model(x, training=False)), expected, rtol=1e-4, atol=1e-5)
