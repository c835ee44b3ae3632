"""Whole-model initialization for Keras 3: berry.keras.init_model and canonical_state.

Rules by Keras path, canonical name, class and class name; keys that do not
move when a layer is added; the report and the state it resets or leaves;
frozen layers; Keras-initializer rules; depthwise and separable convolutions
against torch's grouped ones; generic EinsumDense and unknown layers.
(Sharded JAX-backend variables: tests/test_flax_model.py; the torch backend:
tests/test_cross_framework.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

bk = pytest.importorskip("berry.keras")
keras = pytest.importorskip("keras")

import berry  # noqa: E402
from berry._rules import UnmatchedRuleError  # noqa: E402

layers = keras.layers
#: Layers start from berry's constants (no JAX compilation of Keras' random initializers); init_model replaces them.
CHEAP = {"kernel_initializer": bk.Constant(0.5), "bias_initializer": bk.Zeros()}


def numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable.value if isinstance(variable, keras.Variable) else variable))


def net(extra=False):
    x = inputs = keras.Input((8,))
    if extra:
        x = layers.Dense(8, name="pre", **CHEAP)(x)
    x = layers.Dense(16, name="fc1", **CHEAP)(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Dropout(0.1, name="drop")(x)
    return keras.Model(inputs, layers.Dense(4, name="fc2", **CHEAP)(x))


def test_defaults_are_berry_torchs_in_keras_layout():
    model = net()
    report = bk.init_model(model, seed=5)
    fc1 = model.get_layer("fc1")
    np.testing.assert_array_equal(numpy(fc1.kernel), berry.sample((16, 8), "xavier", seed=5, name="fc1.weight").T)
    assert not numpy(fc1.bias).any()
    assert report["fc1/kernel"].key == "fc1.weight" and report["fc1.weight"].std == pytest.approx(math.sqrt(2 / 24))
    assert report.reset_buffers == ("bn/moving_mean", "bn/moving_variance")
    assert (numpy(model.get_layer("bn").moving_variance) == 1).all()
    assert [p.rule for p in report if p.name.startswith("bn/")] == ["default _NormBase:weight", "default _NormBase:bias"]


def test_rules_match_keras_names_canonical_names_and_classes():
    model = net()
    rules = {"fc1/kernel": 0.5, "fc2.weight": 0.25, layers.BatchNormalization: 2.0, "Dense:bias": 0.125}
    report = bk.init_model(model, rules, seed=1, strict=True)
    assert numpy(model.get_layer("fc1").kernel)[0, 0] == 0.5 and numpy(model.get_layer("fc2").kernel)[0, 0] == 0.25
    assert numpy(model.get_layer("bn").gamma)[0] == 2.0 and numpy(model.get_layer("fc1").bias)[0] == 0.125
    assert report["fc1.bias"].rule == "Dense:bias"
    with pytest.raises(UnmatchedRuleError, match="fc1/kernel"):
        bk.init_model(net(), {"fc9.weight": 1.0}, strict=True)


def test_keys_are_layer_paths_so_adding_a_layer_changes_nothing_else():
    small, large = net(), net(extra=True)
    bk.init_model(small, seed=9)
    bk.init_model(large, seed=9)
    np.testing.assert_array_equal(numpy(small.get_layer("fc1").kernel), numpy(large.get_layer("fc1").kernel))


def test_subclassed_models_drop_their_own_name():
    class Model(keras.Model):
        def __init__(self):
            super().__init__(name="my_model")
            self.fc = layers.Dense(3, name="fc", **CHEAP)

        def call(self, x):
            return self.fc(x)

    model = Model()
    model(np.ones((1, 2), "float32"))
    report = bk.init_model(model, seed=2)
    assert [p.key for p in report] == ["fc.weight", "fc.bias"]


def test_frozen_layers_are_initialized_and_statistics_kept():
    norm = layers.Normalization(name="norm")
    norm.adapt(np.arange(12.0).reshape(6, 2))
    x = inputs = keras.Input((2,))
    frozen = layers.Dense(3, name="frozen", **CHEAP)
    frozen.trainable = False
    model = keras.Model(inputs, frozen(norm(x)))
    mean = numpy(norm.mean).copy()
    report = bk.init_model(model, seed=3)
    np.testing.assert_array_equal(numpy(frozen.kernel), berry.sample((3, 2), "xavier", seed=3, name="frozen.weight").T)
    np.testing.assert_array_equal(numpy(norm.mean), mean)
    assert "norm/mean" in report.other_buffers and "frozen/kernel" in [p.name for p in report]


def test_keras_initializer_rules_and_keep():
    model = net()
    before = numpy(model.get_layer("fc2").kernel).copy()
    report = bk.init_model(model, {"fc1/kernel": keras.initializers.Constant(3.0), "fc2/kernel": "keep"}, seed=4)
    assert (numpy(model.get_layer("fc1").kernel) == 3.0).all()
    np.testing.assert_array_equal(numpy(model.get_layer("fc2").kernel), before)
    assert report["fc1/kernel"].init == "Constant" and report["fc2/kernel"].init == "kept"


def test_depthwise_and_separable_convolutions_are_torchs_grouped_ones():
    torch = pytest.importorskip("torch")
    import berry.torch as bt

    x = inputs = keras.Input((7, 3))
    x = layers.DepthwiseConv1D(3, depth_multiplier=2, name="dw", depthwise_initializer=bk.Zeros())(x)
    x = layers.SeparableConv1D(4, 3, depth_multiplier=2, name="sep", depthwise_initializer=bk.Zeros(),
                               pointwise_initializer=bk.Zeros())(x)
    model = keras.Model(inputs, x)
    rules = {"*.bias": {"std": 0.1}, "_ConvNd:weight": "he"}
    bk.init_model(model, rules, seed=6)

    class Torch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = torch.nn.Conv1d(3, 6, 3, groups=3)
            self.sep = torch.nn.Module()
            self.sep.depthwise = torch.nn.Conv1d(6, 12, 3, groups=6, bias=False)
            self.sep.pointwise = torch.nn.Conv1d(12, 4, 1)

        def forward(self, x):
            return self.sep.pointwise(self.sep.depthwise(self.dw(x.transpose(1, 2)))).transpose(1, 2)

    reference = Torch()
    bt.init_model(reference, rules, seed=6)
    state = bk.canonical_state(model)
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(state[key], value.detach().numpy(), err_msg=key)
    data = np.random.default_rng(0).standard_normal((2, 7, 3)).astype("float32")
    expected = reference(torch.from_numpy(data)).detach().numpy()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(data)), expected, rtol=1e-4, atol=1e-5)


def test_einsum_dense_and_unknown_layers():
    class Gain(layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=(3, 4, 5), name="table", initializer="zeros")
            self.gain = self.add_weight(shape=(5,), name="gain", initializer="zeros")

        def call(self, x):
            return x

    x = inputs = keras.Input((4, 6))
    x = layers.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d", name="proj", **CHEAP)(x)
    model = keras.Model(inputs, Gain(name="gain_layer")(x))
    with pytest.warns(UserWarning, match="gain"):
        report = bk.init_model(model, seed=2)
    np.testing.assert_array_equal(numpy(model.get_layer("proj").kernel),
                                  berry.sample((5, 6), "xavier", seed=2, name="proj.weight").T)
    table = next(v for v in model.get_layer("gain_layer").weights if v.path.endswith("table"))
    np.testing.assert_array_equal(numpy(table), berry.sample((3, 4, 5), "xavier", seed=2, name="gain_layer.table"))
    assert report["gain_layer/gain"].rule == "default *:*"


def test_low_precision_variables():
    x = inputs = keras.Input((8,))
    model = keras.Model(inputs, layers.Dense(4, dtype="bfloat16", name="fc", **CHEAP)(x))
    bk.init_model(model, seed=1)
    kernel = numpy(model.get_layer("fc").kernel)
    expected = berry.sample((4, 8), "xavier", seed=1, name="fc.weight", dtype="bfloat16").T
    np.testing.assert_array_equal(kernel.astype(np.float32), expected.astype(np.float32))


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: bk.init_model("model"), TypeError, ["Keras model"]),
        (lambda: bk.init_model(layers.Dense(3)), ValueError, ["not built"]),
        (lambda: bk.init_model(net(), {"*.weight": "xavierr"}), ValueError, ["rule '*.weight'", "xavierr"]),
        (lambda: bk.init_model(net(), [(int, "zeros")]), TypeError, ["Keras module class"]),
        (lambda: bk.init_model(net(), seed=2**64), ValueError, ["seed"]),
        # a JAX initializer (key first) as a rule: the error names the rule, the parameter and the form
        (lambda: bk.init_model(net(), {"*.weight": lambda key, shape, dtype: None}), TypeError,
         ["rule '*.weight'", "kernel", "fn(shape, dtype=dtype)"]),
    ],
)
def test_clear_errors(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_layers_of_nested_functional_models_are_named_by_the_models_that_hold_them():
    # Keras' variable.path leaves a nested functional model out (its layers are made before it): two
    # sub-models with a layer "fc" were both "fc/kernel", so one of them was never written.
    def sub(name):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(3, name="fc")(inputs), name=name)

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Concatenate()([sub("enc")(inputs), sub("dec")(inputs)]))
    report = bk.init_model(model, seed=2)
    assert [p.name for p in report] == ["enc/fc/kernel", "enc/fc/bias", "dec/fc/kernel", "dec/fc/bias"]
    kernels = [numpy(v) for v in model.weights if v.path.endswith("kernel")]
    for kernel, name in zip(kernels, ["enc", "dec"], strict=True):
        np.testing.assert_array_equal(kernel, berry.sample((3, 4), "xavier", seed=2, name=f"{name}.fc.weight").T)
