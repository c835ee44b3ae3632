"""berry.keras: Keras 3 initializers drawn from berry's keyed sampler.

Runs on whichever Keras backend berry.keras selects (JAX here, or the one set
by ``KERAS_BACKEND``); the backend fallback, the torch backend and
docs/keras.md (with no ``KERAS_BACKEND`` at all) are checked in subprocesses.
Each class's values are compared with ``berry.sample`` of the spec it
documents (whose laws tests/test_distributions.py checks); Keras' own
initializers are compared by two-sample KS tests (same law, same scale).
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from _helpers import P_MIN, ROOT, dtype_params, ks_two_sample, run_python

bk = pytest.importorskip("berry.keras")
keras = pytest.importorskip("keras")
pytest.importorskip("scipy.stats")

import berry  # noqa: E402

# Every class with constructor arguments that exercise it.
CLASSES = {
    "VarianceScaling": lambda seed: bk.VarianceScaling(2.0, "fan_avg", "uniform", seed=seed),
    "GlorotNormal": lambda seed: bk.GlorotNormal(seed=seed),
    "GlorotUniform": lambda seed: bk.GlorotUniform(seed=seed),
    "HeNormal": lambda seed: bk.HeNormal(seed=seed),
    "HeUniform": lambda seed: bk.HeUniform(seed=seed),
    "LecunNormal": lambda seed: bk.LecunNormal(seed=seed),
    "LecunUniform": lambda seed: bk.LecunUniform(seed=seed),
    "Orthogonal": lambda seed: bk.Orthogonal(gain=2.0, seed=seed),
    "TruncatedNormal": lambda seed: bk.TruncatedNormal(mean=0.5, stddev=0.1, seed=seed),
    "RandomNormal": lambda seed: bk.RandomNormal(stddev=0.2, seed=seed),
    "RandomUniform": lambda seed: bk.RandomUniform(-1.0, 2.0, seed=seed),
    "Xavier": lambda seed: bk.Xavier(seed=seed, name="w"),
    "DeepNet": lambda seed: bk.DeepNet("uniform", gain=1.5, seed=seed),
    "BerryInitializer": lambda seed: bk.BerryInitializer("lecun", "truncated_normal", seed=seed, gain=2.0),
    "Identity": lambda seed: bk.Identity(gain=3.0),
    "Constant": lambda seed: bk.Constant(0.75),
    "Zeros": lambda seed: bk.Zeros(),
    "Ones": lambda seed: bk.Ones(),
}
RANDOM = {name for name in CLASSES if name not in ("Identity", "Constant", "Zeros", "Ones")}


def numpy(tensor):
    if isinstance(tensor, keras.Variable):
        tensor = tensor.value
    return np.asarray(keras.ops.convert_to_numpy(tensor))


# ------------------------------------------------------------------ shapes x dtypes


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")
@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("dtype", dtype_params(["float32", "float16", "bfloat16", "float64"]))
def test_every_class_fills_every_shape_and_dtype(name, dtype):
    init = CLASSES[name](seed=1)
    # What the backend makes of the dtype (JAX without x64 keeps float64 as float32, as for Keras' own).
    expected = keras.backend.standardize_dtype(keras.ops.zeros((1,), dtype=dtype).dtype)
    shapes = [(6, 4)] if name == "Identity" else [(6, 4), (3, 3, 4, 5)]
    for shape in shapes:
        value = init(shape, dtype=dtype)
        assert tuple(value.shape) == shape
        assert keras.backend.standardize_dtype(value.dtype) == expected
        assert np.isfinite(numpy(keras.ops.cast(value, "float32"))).all()


def test_default_dtype_is_floatx():
    assert keras.backend.standardize_dtype(bk.HeNormal(seed=0)((2, 2)).dtype) == keras.config.floatx()


@pytest.mark.parametrize(("dtype", "bits"), [("float16", 11), pytest.param("bfloat16", 8, marks=dtype_params(["bfloat16"])[0].marks)])
def test_low_precision_rounds_the_same_draw(dtype, bits):
    full = numpy(bk.HeUniform(seed=4)((32, 16), dtype="float32"))
    low = numpy(keras.ops.cast(bk.HeUniform(seed=4)((32, 16), dtype=dtype), "float32"))
    np.testing.assert_allclose(low, full, rtol=2.0**-bits)
    expected = berry.sample((32, 16), "he", distribution="uniform", seed=4, name="", dtype=dtype)
    np.testing.assert_array_equal(low, expected.astype(np.float32))


def test_empty_shape():
    assert tuple(bk.HeNormal(seed=0)((0, 3)).shape) == (0, 3)


# ------------------------------------------------------------------ seeds


def test_int_seed_is_berrys_seed_and_repeats():
    init = bk.Xavier(seed=11, name="dense/kernel")
    first, second = numpy(init((8, 4))), numpy(init((8, 4)))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, berry.sample((8, 4), "xavier", seed=11, name="dense/kernel"))
    assert not np.array_equal(first, numpy(bk.Xavier(seed=11, name="other")((8, 4))))
    assert not np.array_equal(first, numpy(bk.Xavier(seed=12, name="dense/kernel")((8, 4))))


def test_keras_named_classes_equal_registry_rules():
    shape = (3, 3, 8, 16)
    pairs = [
        (bk.GlorotNormal(seed=2), dict(init="xavier", distribution="truncated_normal")),
        (bk.GlorotUniform(seed=2), dict(init="xavier", distribution="uniform")),
        (bk.HeNormal(seed=2), dict(init="he", distribution="truncated_normal")),
        (bk.LecunUniform(seed=2), dict(init="lecun", distribution="uniform")),
        (bk.DeepNet(seed=2), dict(init="deepnet")),
    ]
    for init, spec in pairs:
        np.testing.assert_array_equal(numpy(init(shape)), berry.sample(shape, seed=2, name="", **spec))


def test_seed_none_draws_once_per_instance_reproducibly():
    keras.utils.set_random_seed(123)
    a = bk.HeNormal()
    first = numpy(a((5, 5)))
    np.testing.assert_array_equal(first, numpy(a((5, 5))))  # same instance: same values
    assert not np.array_equal(first, numpy(bk.HeNormal()((5, 5))))  # new instance: new draw
    keras.utils.set_random_seed(123)
    np.testing.assert_array_equal(first, numpy(bk.HeNormal()((5, 5))))  # reproducible
    assert a.get_config()["seed"] is None


def test_seed_generator_gives_fresh_values_per_call():
    init = bk.RandomNormal(seed=keras.random.SeedGenerator(7))
    first, second = numpy(init((6,))), numpy(init((6,)))
    assert not np.array_equal(first, second)
    again = bk.RandomNormal(seed=keras.random.SeedGenerator(7))
    np.testing.assert_array_equal(first, numpy(again((6,))))
    np.testing.assert_array_equal(second, numpy(again((6,))))


# ------------------------------------------------------------------ laws


# Each class's values are exactly berry.sample of the spec it documents; that spec's law is checked
# once, by KS against the exact law, in tests/test_distributions.py.
SHAPE = (256, 128)
SIGMA_AVG, SIGMA_IN = math.sqrt(2 / 384), math.sqrt(2 / 256)
DOCUMENTED_SPECS = [
    ("GlorotNormal", bk.GlorotNormal(seed=3), dict(std=SIGMA_AVG, distribution="truncated_normal")),
    ("HeUniform", bk.HeUniform(seed=3), dict(std=SIGMA_IN, distribution="uniform")),
    ("VarianceScaling", bk.VarianceScaling(3.0, "fan_out", "untruncated_normal", seed=3), dict(std=math.sqrt(3 / 128))),
    ("TruncatedNormal", bk.TruncatedNormal(mean=1.0, stddev=0.5, seed=3),
     dict(mean=1.0, std=0.5, distribution="truncated_normal", bounds=(-2.0, 2.0), correct_variance=False)),
    ("RandomNormal", bk.RandomNormal(mean=-1.0, stddev=0.3, seed=3), dict(mean=-1.0, std=0.3)),
    ("RandomUniform", bk.RandomUniform(-0.5, 1.5, seed=3), dict(distribution="uniform", low=-0.5, high=1.5)),
    ("Xavier", bk.Xavier(seed=3), dict(std=SIGMA_AVG)),
    ("DeepNet", bk.DeepNet(seed=3), dict(std=math.sqrt(2 / 128))),
]


@pytest.mark.parametrize(("label", "init", "spec"), DOCUMENTED_SPECS, ids=[case[0] for case in DOCUMENTED_SPECS])
def test_values_are_berry_sample_of_the_documented_law(label, init, spec):
    np.testing.assert_array_equal(numpy(init(SHAPE)), berry.sample(SHAPE, seed=3, name="", **spec))


@pytest.mark.parametrize(
    "name",
    [
        "GlorotNormal",
        "GlorotUniform",
        "HeNormal",
        "LecunUniform",
        "TruncatedNormal",
        "RandomNormal",
        "RandomUniform",
    ],
)
def test_same_law_as_keras(name):
    ours = numpy(getattr(bk, name)(seed=5)((3, 3, 16, 32))).ravel()
    theirs = numpy(getattr(keras.initializers, name)(seed=6)((3, 3, 16, 32))).ravel()
    assert ks_two_sample(ours, theirs) > P_MIN


def test_variance_scaling_axes_follow_keras():
    shape = (4, 64, 96)
    ours = bk.VarianceScaling(1.0, "fan_in", "uniform", seed=1, input_axes=[1], output_axes=[2])
    # Keras: explicit axes give fan_in = 64 exactly (no receptive field), so the bound is sqrt(3 / 64).
    values = numpy(ours(shape))
    assert np.abs(values).max() <= math.sqrt(3 / 64)
    assert np.abs(values).max() > 0.99 * math.sqrt(3 / 64)


def test_structural_and_constants_match_keras():
    for ours, theirs, shape in [
        (bk.Identity(2.0), keras.initializers.Identity(2.0), (3, 5)),
        (bk.Zeros(), keras.initializers.Zeros(), (2, 3)),
        (bk.Ones(), keras.initializers.Ones(), (2, 3)),
        (bk.Constant(-3.0), keras.initializers.Constant(-3.0), (2, 3)),
    ]:
        np.testing.assert_array_equal(numpy(ours(shape)), numpy(theirs(shape)))
    w = numpy(bk.Orthogonal(gain=2.0, seed=0)((3, 3, 4, 6))).astype(np.float64).reshape(-1, 6)
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(6), atol=1e-4)


# ------------------------------------------------------------------ serialization and lookup


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_config_round_trips_through_json(name):
    init = CLASSES[name](seed=9)
    text = json.dumps(keras.saving.serialize_keras_object(init))
    restored = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(restored) is type(init)
    assert restored.get_config() == init.get_config()
    assert type(init).from_config(init.get_config()).get_config() == init.get_config()
    shape = (4, 4) if name == "Identity" else (3, 4, 5)
    np.testing.assert_array_equal(numpy(restored(shape)), numpy(init(shape)))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside Keras' own saving
def test_model_save_and_load(tmp_path):
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(
        5, kernel_initializer=bk.HeNormal(seed=3, name="hidden"), bias_initializer=bk.Constant(0.1)
    )(inputs)
    outputs = keras.layers.Dense(2, kernel_initializer=bk.Xavier("uniform", gain=2.0, seed=4))(hidden)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for original, restored in zip(model.layers[1:], loaded.layers[1:], strict=True):
        assert type(restored.kernel_initializer) is type(original.kernel_initializer)
        assert restored.kernel_initializer.get_config() == original.kernel_initializer.get_config()
        np.testing.assert_array_equal(numpy(restored.kernel), numpy(original.kernel))
    np.testing.assert_array_equal(
        numpy(model.layers[1].kernel),
        berry.sample((6, 5), "he", distribution="truncated_normal", seed=3, name="hidden"),
    )
    # A fresh layer from the saved config draws the same weights again.
    clone = keras.models.clone_model(loaded)
    np.testing.assert_array_equal(numpy(clone.layers[1].kernel), numpy(model.layers[1].kernel))


def test_lookup_by_snake_and_camel_case():
    assert type(bk.get("glorot_uniform")) is bk.GlorotUniform
    assert type(bk.get("GlorotUniform")) is bk.GlorotUniform
    assert type(bk.get("deep_net")) is bk.DeepNet
    assert type(bk.get("deepnet")) is bk.DeepNet
    assert type(bk.get("he_normal")) is bk.HeNormal
    assert bk.get(None) is None
    init = bk.Orthogonal(seed=1)
    assert bk.get(init) is init
    assert (
        type(bk.get({"class_name": "RandomNormal", "config": {"stddev": 0.5, "seed": 1}})) is bk.RandomNormal
    )
    assert type(keras.initializers.get("berry>GlorotUniform")) is bk.GlorotUniform


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: bk.VarianceScaling(mode="fan_mean"), ValueError, ["Invalid `mode` argument: fan_mean."]),
        (lambda: bk.VarianceScaling(distribution="cauchy"), ValueError, ["Invalid `distribution` argument: cauchy."]),
        (lambda: bk.VarianceScaling(scale=0.0), ValueError, ["Argument `scale` must be positive float. Received: scale=0.0"]),
        (lambda: bk.HeNormal(seed="abc"), ValueError,
         ["`seed` argument should be an instance of `keras.random.SeedGenerator()` or an integer. Received: seed=abc"]),
        (lambda: bk.HeNormal(seed=1.5), ValueError, ["`seed` argument should be an instance"]),
        (lambda: bk.HeNormal(seed=-1), ValueError, ["seed", "-1"]),
        (lambda: bk.HeNormal(seed=1, name=5), TypeError, ["name"]),
        (lambda: bk.RandomUniform(1.0, 0.0), ValueError, ["minval", "maxval"]),
        (lambda: bk.Orthogonal(seed=0)((4,)), ValueError,
         ["The tensor to initialize must be at least two-dimensional. Received: shape=(4,) of rank 1."]),
        (lambda: bk.Identity()((2, 2, 2)), ValueError,
         ["Identity matrix initializer can only be used for 2D matrices. Received: shape=(2, 2, 2) of rank 3."]),
        (lambda: bk.HeNormal(seed=0)((2, 2), dtype="int32"), ValueError, ["dtype", "int32"]),  # as Keras
        (lambda: bk.Constant(np.ones(2))((3, 3)), ValueError, ["Incompatible shapes for broadcasting: shapes=[(2,), (3, 3)]"]),
        (lambda: bk.get(np.ones((2, 2)))((2, 3)), ValueError,
         ["Expected `shape` to be (2, 2) for direct tensor as initializer. Received shape=(2, 3)"]),
        (lambda: bk.STFT("imaginary"), ValueError, ["side should be 'real' or 'imag', not imaginary"]),
        (lambda: bk.STFT(scaling="l2"), ValueError,
         ["Scaling is invalid, it must be `None`, 'density' or 'spectrum'. Received scaling=l2"]),
        (lambda: bk.STFT(window=np.ones(5))((16, 1, 9)), ValueError,
         ["The shape of `window` must be equal to [frame_length].Received: window shape=(5,)"]),
        (lambda: bk.STFT()((16, 9)), ValueError, ["not enough values to unpack (expected 3, got 2)"]),
        (lambda: bk.STFT()((16, 1, 1)), ValueError, ["fft_length >= 2"]),
        (lambda: bk.BerryInitializer("hee", seed=0), ValueError, ["hee", "he"]),
        (lambda: bk.BerryInitializer("he", "cauchy", seed=0), ValueError, ["distribution", "cauchy"]),
        (lambda: bk.BerryInitializer("orthogonal", std=0.1, seed=0), ValueError, ["std=0.1"]),
        (lambda: bk.BerryInitializer("constant"), ValueError, ["value="]),
        (lambda: bk.HeNormal(seed=2**64), ValueError, ["seed", "2**64"]),
        (lambda: bk.get(3.5), ValueError, ["Could not interpret initializer identifier: 3.5"]),
        (lambda: bk.get("glorot_unifrom"), ValueError,
         ["Could not interpret initializer identifier: glorot_unifrom", "Did you mean 'glorot_uniform'"]),
    ],
)
def test_clear_errors(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.VarianceScaling(mode="fan_mean"),
        lambda m: m.VarianceScaling(distribution="cauchy"),
        lambda m: m.VarianceScaling(scale=-1.0),
        lambda m: m.HeNormal(seed="abc"),
        lambda m: m.HeNormal(seed=1.5),
        lambda m: m.Orthogonal(seed=0)((4,)),
        lambda m: m.Identity()((2, 2, 2)),
        lambda m: m.Constant(np.ones(2))((3, 3)),
        lambda m: m.get(np.ones((2, 2)))((2, 3)),
        lambda m: m.STFT("imaginary"),
        lambda m: m.STFT(scaling="l2"),
        lambda m: m.STFT(window="unknown"),
        lambda m: m.STFT(window=np.ones(5))((16, 1, 9)),
        lambda m: m.STFT()((16, 9)),
        lambda m: m.get("typo"),
        lambda m: m.get(3.5),
    ],
)
def test_errors_are_keras_side_by_side(call):
    with pytest.raises(Exception) as theirs:
        call(keras.initializers)
    with pytest.raises(Exception) as ours:
        call(bk)
    assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))
    expected = str(theirs.value).split("{")[0]  # Keras prints sets of choices, in no fixed order
    assert str(ours.value).startswith(expected), (str(theirs.value), str(ours.value))


def test_bad_options_fail_when_constructed_not_when_called():
    with pytest.raises(ValueError, match="sparsity"):
        bk.BerryInitializer("sparse", sparsity=2.0, seed=0)  # no call: construction checks every option
    with pytest.raises(ValueError, match="bounds"):
        bk.BerryInitializer("he", "uniform", bounds=(-1.0, 1.0), seed=0)


def test_an_int_seed_is_keras_seed_and_the_name_is_optional_as_in_keras():
    # Keras' own seeded initializers repeat their values for the same seed (and prefix them); so does berry.
    ours = bk.RandomNormal(stddev=1.0, seed=5)
    np.testing.assert_array_equal(numpy(ours((4,))), numpy(ours((8,)))[:4])
    assert not np.array_equal(numpy(bk.RandomNormal(stddev=1.0, seed=5, name="a")((4,))), numpy(ours((4,))))


# ------------------------------------------------------------------ everything keras.initializers accepts


def test_every_name_of_keras_initializers():
    theirs = {name for name in dir(keras.initializers) if not name.startswith("_")}
    assert not theirs - set(dir(bk)), theirs - set(dir(bk))
    assert bk.Initializer is keras.initializers.Initializer
    from keras.src.initializers import ALL_OBJECTS_DICT

    for name, cls in ALL_OBJECTS_DICT.items():  # every name get() resolves gives berry's class of the same name
        ours = bk.get(name)
        assert isinstance(ours, keras.initializers.Initializer), name
        assert type(ours).__name__ == cls.__name__, (name, type(ours), cls)
        if cls is not keras.initializers.Initializer:
            assert type(ours).__module__.startswith("berry.keras"), name
    for name in theirs - {"get", "serialize", "deserialize", "Initializer"}:
        assert getattr(bk, name).__name__ == getattr(keras.initializers, name).__name__, name


def test_keras_own_initializer_tests_pass_with_berry_keras(tmp_path):
    """Keras' own test files (installed with Keras), run with berry.keras in place of keras.initializers."""
    source = __import__("pathlib").Path(keras.__file__).parent / "src" / "initializers"
    files = ["random_initializers_test.py", "constant_initializers_test.py"]
    if not all((source / name).exists() for name in files):
        pytest.skip("this Keras installation ships no tests")
    for name in files:
        text = (source / name).read_text()
        assert "from keras.src import initializers\n" in text
        (tmp_path / name).write_text(text.replace("from keras.src import initializers\n", "import berry.keras as initializers\n"))
    (tmp_path / "conftest.py").write_text(
        "import pytest, keras\n"
        "def skip_if_backend(backend, reason):\n"
        "    return pytest.mark.skipif(keras.backend.backend() == backend, reason=reason)\n"
    )
    code = f"import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {str(tmp_path)!r}]))"
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b[1-9]\d* passed", summary) and "failed" not in summary and "error" not in summary, summary


@pytest.mark.parametrize(
    ("args", "shape"),
    [(("real", "hann", "density", False), (64, 1, 33)), (("imag", "hamming", "spectrum", True), (32, 1, 17)),
     (("real", None, None, False), (16, 1, 9)), (("imag", [float(i) for i in range(1, 17)], "density", False), (16, 1, 5))],
    ids=["hann-density", "hamming-spectrum-periodic", "no-window", "array-window"],
)
def test_stft_matches_keras(args, shape):
    ours = numpy(bk.STFT(*args)(shape, dtype="float32"))
    theirs = numpy(keras.initializers.STFT(*args)(shape, dtype="float32"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # Keras computes in float32 (errors ~1e-6), berry in float64
    wide = numpy(bk.STFT(*args)((shape[0], 3, shape[2])))
    np.testing.assert_array_equal(wide, np.repeat(ours, 3, axis=1))  # every input channel gets the kernel


def test_stft_formula_in_float64():
    frame, bins = 8, 5
    w = bk.STFT("real", None, None).values((frame, 1, bins), "float32")
    t, f = np.arange(frame)[:, None], np.arange(bins)[None, :]
    np.testing.assert_array_equal(w[:, 0, :], np.cos(-2 * np.pi * t * f / (2 * (bins - 1))).astype(np.float32))


@pytest.mark.parametrize(
    ("value", "shape", "dtype"),
    [(np.arange(6.0).reshape(2, 3), (2, 3), "float32"), ([1.0, 2.0], (3, 2), "float32"), (2.5, (3,), "int32"),
     (np.float32(1.5), (2, 2), "float16"), (keras.ops.ones((1, 2)), (3, 2), "float32"), (1.0, (2,), "bool")],
    ids=["array", "list", "int-truncates", "np-scalar", "tensor", "bool"],
)
def test_constant_takes_arrays_as_keras(value, shape, dtype):
    ours, theirs = bk.Constant(value)(shape, dtype=dtype), keras.initializers.Constant(value)(shape, dtype=dtype)
    assert keras.backend.standardize_dtype(ours.dtype) == keras.backend.standardize_dtype(theirs.dtype)
    np.testing.assert_array_equal(numpy(ours), numpy(theirs))
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(keras.saving.serialize_keras_object(bk.Constant(value)))))
    np.testing.assert_array_equal(numpy(restored(shape, dtype=dtype)), numpy(ours))


@pytest.mark.parametrize("make", [bk.Zeros, bk.Ones, lambda: bk.Constant(2.5), lambda: bk.Constant(np.array(2.5))],
                         ids=["zeros", "ones", "constant", "constant-0d-array"])
def test_exact_initializers_keep_a_scalar_shape_as_keras(make):
    # np.ascontiguousarray turned the 0-d result into shape (1,): a silent wrong shape
    theirs = keras.initializers.Constant(2.5)(())
    assert tuple(make()(()).shape) == tuple(theirs.shape) == ()
    assert make().values(()).shape == ()


@pytest.mark.parametrize("dtype", ["complex64", "float8_e4m3fn"])
@pytest.mark.parametrize("name", ["Zeros", "Ones", "Constant", "Identity"])
def test_exact_initializers_fill_complex_and_float8_as_keras(name, dtype):
    # docs/keras.md: "the exact ones fill any dtype Keras can"; berry refused complex64 and float8
    args = {"Constant": (2.5,), "Identity": (2.0,)}.get(name, ())
    ours, theirs = getattr(bk, name)(*args)((2, 3), dtype), getattr(keras.initializers, name)(*args)((2, 3), dtype)
    assert keras.backend.standardize_dtype(ours.dtype) == keras.backend.standardize_dtype(theirs.dtype) == dtype
    np.testing.assert_array_equal(numpy(ours).astype(np.complex128), numpy(theirs).astype(np.complex128))


def test_get_takes_tensors_classes_callables_and_configs_as_keras():
    values = np.random.default_rng(0).random((3, 2)).astype("float32")
    for identifier in (values, keras.ops.convert_to_tensor(values)):
        np.testing.assert_array_equal(numpy(bk.get(identifier)((3, 2))), values)
    assert type(bk.get(bk.HeNormal)) is bk.HeNormal
    assert type(bk.get(keras.initializers.HeNormal)) is bk.HeNormal  # Keras' class: berry's, as its name gives
    assert type(bk.get(keras.initializers.Orthogonal)) is bk.Orthogonal
    made = keras.initializers.HeNormal(seed=1)
    assert bk.get(made) is made  # an object already made is the caller's
    function = lambda shape, dtype=None: keras.ops.zeros(shape, dtype)  # noqa: E731
    assert bk.get(function) is function
    assert type(bk.get("Initializer")) is keras.initializers.Initializer
    assert type(bk.get({"class_name": "Zeros", "config": {}})) is bk.Zeros
    keras_config = keras.initializers.serialize(keras.initializers.HeNormal(seed=4))
    restored = bk.deserialize(keras_config)  # Keras' own config gives berry's class, same meaning
    assert type(restored) is bk.HeNormal and restored.seed == 4
    assert type(bk.deserialize(bk.serialize(bk.STFT("imag")))) is bk.STFT
    assert type(bk.get("berry>GlorotUniform")) is bk.GlorotUniform


def test_negative_stddev_is_keras_mean_plus_stddev_times_z():
    for make in (bk.RandomNormal, bk.TruncatedNormal):
        negative = numpy(make(mean=0.5, stddev=-0.2, seed=3)((400,)))
        mirrored = numpy(make(mean=-0.5, stddev=0.2, seed=3)((400,)))
        np.testing.assert_array_equal(negative, -mirrored)  # exact: the negation of berry's draw
    ours = numpy(bk.RandomNormal(1.0, -0.5, seed=1)((4000,)))
    theirs = numpy(keras.initializers.RandomNormal(1.0, -0.5, seed=2)((4000,)))
    assert ks_two_sample(ours, theirs) > P_MIN
    np.testing.assert_array_equal(numpy(bk.RandomUniform(2.0, 2.0, seed=1)((3,))), [2.0, 2.0, 2.0])
    assert bk.HeNormal(seed=True).seed == 1  # a bool is an int to Keras


# ------------------------------------------------------------------ backends (subprocesses)


def test_backend_fallback_when_tensorflow_is_missing(tmp_path):
    pytest.importorskip("jax")
    if __import__("importlib").util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: Keras' default backend loads")
    code = "import berry.keras, keras; print(keras.backend.backend())"
    result = run_python(code, env={"KERAS_BACKEND": None, "KERAS_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "jax"


def test_docs_examples_run_as_written_without_keras_backend(tmp_path):
    """docs/keras.md on a machine where nothing chose a backend (no KERAS_BACKEND, no keras.json)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "keras.md").read_text(), flags=re.S)
    assert blocks
    code = "\n".join(blocks)
    result = run_python(code, env={"KERAS_BACKEND": None, "KERAS_HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
