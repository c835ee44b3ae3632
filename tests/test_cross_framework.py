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
        print("ok")
        """
    )
    result = run_python(script, env={"KERAS_BACKEND": "torch", "KERAS_HOME": str(tmp_path)}, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip().endswith("ok")
