"""The front door: berry.sample and InitSpec, their keys, options, out=, serialization and errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _helpers import needs_ml_dtypes

import berry
from berry import stream
from berry._validation import MissingNameError, UnknownNameError
from berry.initializations import he, register_initialization, unregister_initialization, xavier
from berry.sampling import STRUCTURAL_INITIALIZERS, InitSpec, sample

# -- composition: the value is the rule's scale applied to the keyed stream --------------------------


def test_seed_rule_scale_goes_into_the_stream():
    shape = (300, 100)
    key = stream.key_for(7, "dense.kernel")
    expected = stream.draw(shape, stream.Normal(0.0, xavier(shape=shape)), key=key)
    np.testing.assert_array_equal(sample(shape, "xavier", seed=7, name="dense.kernel"), expected)


def test_explicit_fans_layout_groups_and_gain_reach_the_rule():
    assert InitSpec("xavier", fan_in=100, fan_out=300).scale((10, 20)) == xavier(fan_in=100, fan_out=300)
    assert InitSpec("he", layout="torch").scale((256, 784)) == he(fan_in=784)
    assert InitSpec("he", layout="pytorch", groups=4).scale((64, 8, 3, 3)) == he(fan_in=72)
    assert InitSpec("he", gain=0.5).scale((784, 256)) == he(fan_in=784, gain=0.5)
    assert InitSpec("he", fan_in=50).scale((784, 256)) == he(fan_in=50)
    np.testing.assert_array_equal(
        sample((30, 20), "xavier", fan_in=100, fan_out=300, name="w"),
        sample((30, 20), std=xavier(fan_in=100, fan_out=300), name="w"),
    )


def test_scale_of_specs_without_a_rule():
    assert InitSpec("sparse").scale((10, 10)) == 0.01
    assert InitSpec("sparse", std=0.2).scale((10, 10)) == 0.2
    with pytest.raises(ValueError, match="init='orthogonal' is not a scale rule"):
        InitSpec("orthogonal").scale((10, 10))


def test_rule_callable_and_registered_name_give_the_same_values():
    def flat(shape=None, fan_in=None, fan_out=None, gain=1.0, **kwargs):
        return 0.05 * gain

    np.testing.assert_array_equal(sample((40, 30), flat, gain=2.0, name="w"), sample((40, 30), std=0.1, name="w"))
    register_initialization("flat_for_test", flat)
    try:
        np.testing.assert_array_equal(
            sample((40, 30), "flat_for_test", gain=2.0, name="w"), sample((40, 30), flat, gain=2.0, name="w")
        )
    finally:
        unregister_initialization("flat_for_test")


def test_aliases_and_case():
    np.testing.assert_array_equal(sample((8, 8), "Glorot", name="w"), sample((8, 8), "xavier", name="w"))
    np.testing.assert_array_equal(sample((8, 8), "IDENTITY"), sample((8, 8), "eye"))
    np.testing.assert_array_equal(
        sample((8, 8), distribution="TRUNC_NORMAL", name="w"), sample((8, 8), distribution="truncated_normal", name="w")
    )
    np.testing.assert_array_equal(sample((8, 8), layout="keras", name="w"), sample((8, 8), name="w"))


def test_lazy_names_on_the_package():
    assert berry.sample is sample and berry.InitSpec is InitSpec


# -- keys: determinism and independence ---------------------------------------------------------------


def test_same_key_same_bits_and_call_order_does_not_matter():
    first = sample((64, 32), "he", seed=3, name="a")
    sample((1000,), "xavier", seed=3, name="other")
    np.testing.assert_array_equal(sample((64, 32), "he", seed=3, name="a"), first)


def test_names_and_seeds_give_independent_streams():
    a = sample((100, 100), "he", seed=0, name="layer1.weight").ravel()
    b = sample((100, 100), "he", seed=0, name="layer2.weight").ravel()
    c = sample((100, 100), "he", seed=1, name="layer1.weight").ravel()
    for other in (b, c):
        assert not np.array_equal(a, other)
        assert abs(np.corrcoef(a, other)[0, 1]) < 4 / math.sqrt(a.size)


def test_no_global_random_state_is_read_or_advanced():
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what must stay untouched
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    w1 = sample((50, 50), "orthogonal", name="w1")
    w2 = sample((50, 50), "he", distribution="truncated_normal", name="w2")
    w3 = sample((50, 50), "sparse", name="w3")
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    np.random.seed(999)  # noqa: NPY002
    np.testing.assert_array_equal(sample((50, 50), "orthogonal", name="w1"), w1)
    np.testing.assert_array_equal(sample((50, 50), "he", distribution="truncated_normal", name="w2"), w2)
    np.testing.assert_array_equal(sample((50, 50), "sparse", name="w3"), w3)


@pytest.mark.parametrize("init", ["he", "orthogonal", "sparse"])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_thread_count_does_not_change_the_bits(init, distribution):
    if init == "orthogonal" and distribution != "normal":
        return
    options = {"distribution": distribution, "name": "threads"}
    one = sample((257, 129), init, threads=1, **options)
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(sample((257, 129), init, threads=threads, **options), one)


GOLDEN_SCRIPT = textwrap.dedent(
    """
    import hashlib, berry
    for init, options in [("he", {}), ("xavier", {"distribution": "truncated_normal"}),
                          ("lecun", {"distribution": "uniform", "dtype": "float16"}), ("sparse", {"sparsity": 0.3})]:
        w = berry.sample((37, 23), init, seed=11, name="proc", **options)
        print(hashlib.sha256(w.tobytes()).hexdigest())
    """
)


def _digests() -> list[str]:
    cases = [
        ("he", {}),
        ("xavier", {"distribution": "truncated_normal"}),
        ("lecun", {"distribution": "uniform", "dtype": "float16"}),
        ("sparse", {"sparsity": 0.3}),
    ]
    return [hashlib.sha256(sample((37, 23), init, seed=11, name="proc", **o).tobytes()).hexdigest() for init, o in cases]


def test_another_process_gives_the_same_bits():
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", GOLDEN_SCRIPT], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == _digests()


# (init, options, sha256 prefix of the float bytes) for sample((37, 23), init, seed=11, name="golden", ...)
GOLDEN = [
    ("xavier", {}, "c641b892d42ae53c"),
    ("he", {"distribution": "truncated_normal", "dtype": "float64"}, "5eaa1e284cd6f986"),
    ("lecun", {"distribution": "uniform", "dtype": "float16"}, "371f52987dd06de0"),
    ("he", {"distribution": "truncated_normal", "bounds": (2.0, 3.0), "correct_variance": False}, "093b04e219c04bdc"),
    ("sparse", {"sparsity": 0.3}, "97ee9b05733a96f6"),
    ("dirac", {"layout": "torch"}, "9287ffc451d7b178"),
]


@pytest.mark.parametrize(("init", "options", "digest"), GOLDEN)
def test_golden_values(init, options, digest):
    # Pins how sample() composes rule, law and stream (STREAM_VERSION 2 changed the truncated normals). A change here changes every
    # user's weights: only with a deliberate, documented stream version bump.
    assert stream.STREAM_VERSION == 2
    shape = (37, 23, 3) if init == "dirac" else (37, 23)
    w = sample(shape, init, seed=11, name="golden", **options)
    assert hashlib.sha256(w.tobytes()).hexdigest()[:16] == digest


# -- dtype ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", np.float32, np.dtype("float64"), "f4", "half"])
def test_dtypes_accepted(dtype):
    assert sample((3, 2), dtype=dtype, name="w").dtype == np.dtype(dtype)


@needs_ml_dtypes
def test_bfloat16_forms():
    import ml_dtypes

    for dtype in ("bfloat16", ml_dtypes.bfloat16, np.dtype(ml_dtypes.bfloat16)):
        w = sample((3, 2), dtype=dtype, name="w")
        assert w.dtype == np.dtype(ml_dtypes.bfloat16)
    assert InitSpec(dtype=ml_dtypes.bfloat16).dtype == "bfloat16"


def test_bfloat16_without_ml_dtypes_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(ImportError, match=re.escape("berry[bfloat16]")):
        sample((2, 2), dtype="bfloat16", name="w")


@pytest.mark.parametrize("dtype", ["int32", np.int8, "complex64", "float128", "float8", object, bool, "bfloat"])
def test_unsupported_dtypes(dtype):
    with pytest.raises((ValueError, TypeError), match="dtype"):
        sample((2, 2), dtype=dtype, name="w")


def test_dtype_none_is_the_default_float32():
    assert InitSpec(dtype=None) == InitSpec(dtype="float32") and InitSpec().dtype == "float32"


def test_unsupported_dtype_suggests():
    with pytest.raises(UnknownNameError, match="float16, float32, float64"):
        sample((2, 2), dtype="int32", name="w")


# -- out= -------------------------------------------------------------------------------------------------


def test_out_is_filled_and_returned():
    out = np.full((20, 10), np.nan, dtype=np.float32)
    result = sample((20, 10), "he", name="o", out=out)
    assert result is out
    np.testing.assert_array_equal(out, sample((20, 10), "he", name="o"))


def test_out_takes_its_dtype_and_a_region_shape():
    out = np.empty((5, 10), dtype=np.float64)
    sample((20, 10), "he", name="o", region=(slice(5, 10),), out=out)
    np.testing.assert_array_equal(out, sample((20, 10), "he", name="o", dtype="float64")[5:10])


def test_out_may_be_a_strided_view():
    for init in ("he", "orthogonal", "eye"):
        base = np.zeros((20, 20), dtype=np.float32)
        view = base[::2, 5:15]
        sample((10, 10), init, name="view", out=view)
        np.testing.assert_array_equal(base[::2, 5:15], sample((10, 10), init, name="view"))
        assert not base[1::2].any() and not base[:, :5].any()


def test_spec_out_dtype_precedence():
    spec = InitSpec("he", dtype="float64")
    out = np.empty((4, 4), dtype=np.float32)
    assert spec((4, 4), name="w", out=out) is out  # out's dtype wins over the spec's default
    assert spec((4, 4), name="w").dtype == np.float64
    assert spec((4, 4), name="w", dtype="float16").dtype == np.float16


@pytest.mark.parametrize(
    ("out", "options", "error", "message"),
    [
        (np.empty((4, 5), np.float32), {}, ValueError, "out has shape (4, 5) but the region to fill has shape (4, 4)"),
        (np.empty((2, 4), np.float32), {"region": (slice(0, 3),)}, ValueError, "region to fill has shape (3, 4)"),
        (np.empty((4, 4), np.float64), {"dtype": "float32"}, ValueError, "out has dtype float64 but dtype='float32'"),
        (np.empty((4, 4), np.int32), {}, UnknownNameError, "dtype"),
        ([[0.0] * 4] * 4, {}, TypeError, "out must be a NumPy array, got list"),
    ],
)
def test_bad_out(out, options, error, message):
    with pytest.raises(error, match=re.escape(message)):
        sample((4, 4), "he", name="w", out=out, **options)


def test_dtype_names_outs_type_in_either_byte_order():
    # out of dtype '>f4' with dtype='float32' was refused as "out has dtype float32 but dtype='float32' was asked for".
    for init in ("he", "orthogonal"):
        out = np.zeros((4, 3), ">f4")
        assert sample((4, 3), init, name="w", out=out, dtype="float32") is out
        np.testing.assert_array_equal(out, sample((4, 3), init, name="w"))
    with pytest.raises(ValueError, match=re.escape("out has dtype float64 but dtype='float32'")):
        sample((4, 3), name="w", out=np.zeros((4, 3), ">f8"), dtype="float32")


def test_an_out_whose_elements_share_memory_is_refused():
    # A writable zero-stride view was "filled": every row kept the last row's values.
    from berry import stream

    shared = np.lib.stride_tricks.as_strided(np.zeros(12, np.float32), (4, 3), (0, 4))
    message = "out has stride 0 on axis 0 of size 4 (strides=(0, 4)), so its elements share memory"
    with pytest.raises(ValueError, match=re.escape(message)):
        sample((4, 3), name="w", out=shared)
    with pytest.raises(ValueError, match=re.escape(message)):
        stream.fill(shared, stream.Normal(0.0, 1.0), key=1, global_shape=(4, 3))
    single = np.lib.stride_tricks.as_strided(np.zeros(3, np.float32), (1, 3), (0, 4))  # size 1: nothing shared
    np.testing.assert_array_equal(sample((1, 3), name="w", out=single), sample((1, 3), name="w"))


def test_read_only_out():
    out = np.empty((4, 4), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        sample((4, 4), name="w", out=out)


# -- zero-size tensors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["he", "xavier", "orthogonal", "eye", "sparse", "zeros", "lecun"])
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
def test_zero_size_is_a_no_op(init, shape):
    w = sample(shape, init, name="empty", dtype="float64")
    assert w.shape == shape and w.dtype == np.float64
    out = np.empty(shape, dtype=np.float32)
    assert sample(shape, init, name="empty", out=out) is out


def test_zero_size_kernels_and_scalars():
    assert sample((3, 0, 4), "delta_orthogonal", name="k").shape == (3, 0, 4)
    assert sample((0, 2, 3), "dirac", layout="torch").shape == (0, 2, 3)
    assert sample((), std=1.0, name="s").shape == ()


# -- InitSpec ---------------------------------------------------------------------------------------------


def test_spec_is_frozen_and_normalized():
    spec = InitSpec("Kaiming", distribution="trunc_normal", layout="torch", bounds=[-3, "inf"], gain=2, dtype=np.float16)
    assert spec.init == "kaiming" and spec.distribution == "truncated_normal" and spec.layout == "torch"
    assert spec.bounds == (-3.0, math.inf) and spec.dtype == "float16" and isinstance(spec.gain, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.gain = 3.0  # type: ignore[misc]


def test_sample_is_the_spec_called():
    spec = InitSpec("he", distribution="uniform", gain=1.3)
    np.testing.assert_array_equal(
        spec((32, 16), seed=5, name="x"), sample((32, 16), "he", distribution="uniform", gain=1.3, seed=5, name="x")
    )


SPECS = [
    InitSpec(),
    InitSpec("he", distribution="truncated_normal", bounds=(-math.inf, 2.0), correct_variance=False, mean=0.1),
    InitSpec("lecun", distribution="uniform", layout="torch", groups=2, dtype="float64", fan_in=3),
    InitSpec(distribution="uniform", low=-1.0, high=2.0),
    InitSpec("orthogonal", gain=1.4142),
    InitSpec("dirac", groups=2, layout="torch"),
    InitSpec("sparse", sparsity=0.3, std=0.02),
    InitSpec("constant", value=0.5, dtype="float16"),
    InitSpec(std=0.02, distribution="truncated_normal", bounds=(-3.0, 3.0)),
]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips_through_dict_and_json(spec):
    text = spec.to_json()
    assert "Infinity" not in text and "NaN" not in text
    assert InitSpec.from_json(text) == spec
    assert InitSpec.from_dict(spec.to_dict()) == spec
    assert InitSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    data = spec.to_dict()
    assert data["stream_version"] == stream.STREAM_VERSION and data["berry_version"] == berry.__version__


def test_spec_from_dict_fills_defaults_and_rejects_unknown_keys():
    assert InitSpec.from_dict({"init": "he"}) == InitSpec("he")
    with pytest.raises(UnknownNameError, match="Did you mean 'distribution'"):
        InitSpec.from_dict({"init": "he", "distribtion": "uniform"})
    with pytest.raises(TypeError, match="mapping"):
        InitSpec.from_dict([("init", "he")])  # type: ignore[arg-type]


def test_spec_from_another_stream_version_warns():
    data = {**InitSpec().to_dict(), "stream_version": 0}
    with pytest.warns(UserWarning, match="stream version 0"):
        InitSpec.from_dict(data)
    newer = {**data, "stream_version": stream.STREAM_VERSION + 1}
    with pytest.warns(UserWarning, match=r"newer than this berry's \(\d+\), so the values sampled here differ"):
        InitSpec.from_dict(newer)


@pytest.mark.parametrize(
    ("version", "error", "message"),
    [
        ("2", TypeError, "stream_version must be an integer, got '2' of type str"),
        (None, TypeError, "stream_version must be an integer, got None"),
        ([2], TypeError, "stream_version must be an integer, got [2]"),
        (1.5, ValueError, "stream_version must be an integer, got 1.5"),
        (-1, ValueError, "stream_version must be >= 0, got -1"),
    ],
)
def test_a_stream_version_that_is_not_a_version_is_an_error(version, error, message):
    # Each was only a warning that the values differ ("written with stream version '2'").
    with pytest.raises(error, match=re.escape(message)):
        InitSpec.from_dict({**InitSpec().to_dict(), "stream_version": version})


def test_registered_callable_serializes_by_name_and_unregistered_does_not():
    assert InitSpec(xavier).to_dict()["init"] == "xavier"
    assert InitSpec.from_json(InitSpec(xavier).to_json()).init == "xavier"
    with pytest.raises(ValueError, match=r"not registered.*register_initialization"):
        InitSpec(lambda **kwargs: 0.1).to_json()


# -- bad input: every argument ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "error", "message"),
    [
        ((3, -1), ValueError, "shape[1] must be >= 0"),
        ((3, 2.5), ValueError, "shape[1] must be an integer"),
        ((3, "4"), TypeError, "shape[1] must be an integer"),
        ("34", TypeError, "shape must be a sequence of non-negative integers"),
        (None, TypeError, "shape must be a sequence"),
        (-3, ValueError, "shape[0] must be >= 0"),
        (np.array(5), TypeError, "shape must be a sequence of non-negative integers, got array(5) of type ndarray"),
    ],
)
def test_bad_shapes(shape, error, message):
    with pytest.raises(error, match=re.escape(message)):
        sample(shape)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2**62, 2**62), "shape=(4611686018427387904, 4611686018427387904) has 2126764793255865396"),
        ((10**400,), "has 1e+400 (an integer of 401 digits) elements, more than a NumPy array of float32 can hold"),
    ],
)
def test_a_shape_too_big_for_numpy_names_the_shape(shape, message):
    # Was NumPy's own "array is too big" / "Maximum allowed dimension exceeded", naming no argument.
    with pytest.raises(ValueError, match=re.escape(message)):
        sample(shape, name="w")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"init": "xavir"}, UnknownNameError, "Did you mean 'xavier'"),
        ({"init": "orthogonl"}, UnknownNameError, "Did you mean 'orthogonal'"),
        ({"init": 3}, TypeError, "init must be a rule name"),
        ({"distribution": "normla"}, UnknownNameError, "Did you mean 'normal'"),
        ({"distribution": "laplace"}, UnknownNameError, "supported: normal, truncated_normal, uniform"),
        ({"layout": "nchw"}, UnknownNameError, "layout='nchw'"),
        ({"distribution": "truncated_normal", "bounds": (2.0, 2.0)}, ValueError, "empty truncation interval"),
        ({"distribution": "truncated_normal", "bounds": (3.0, 1.0)}, ValueError, "empty truncation interval"),
        ({"distribution": "truncated_normal", "bounds": (math.nan, 1.0)}, ValueError, "bounds[0] must not be NaN"),
        ({"distribution": "truncated_normal", "bounds": (math.inf, math.inf)}, ValueError, "empty truncation"),
        ({"distribution": "truncated_normal", "bounds": (1.0,)}, TypeError, "bounds must be a pair"),
        ({"distribution": "truncated_normal", "bounds": "ab"}, TypeError, "bounds must be a pair"),
        ({"distribution": "truncated_normal", "bounds": (50.0, 51.0)}, ValueError, "bounds=(50.0, 51.0) cannot be sampled"),
        ({"distribution": "truncated_normal", "bounds": (50.0, 51.0), "correct_variance": False}, ValueError, "37 standard"),
        # Bounds a subnormal apart: the variance correction divided by a zero mass (ZeroDivisionError).
        ({"distribution": "truncated_normal", "bounds": (0.0, 5e-324)}, ValueError, "too narrow or too far in the tail"),
        ({"distribution": "truncated_normal", "bounds": (-5e-324, 5e-324)}, ValueError, "the truncated std is 0.0"),
        ({"gain": math.nan}, ValueError, "gain must be finite"),
        ({"gain": "2"}, TypeError, "gain must be a real number"),
        ({"std": -0.1}, ValueError, "std must be >= 0"),
        ({"mean": math.inf}, ValueError, "mean must be finite"),
        ({"fan_in": 0}, ValueError, "fan_in must be a positive integer"),
        ({"fan_out": 2.5}, ValueError, "fan_out must be an integer"),
        ({"groups": 0}, ValueError, "groups must be >= 1"),
        ({"correct_variance": "yes", "distribution": "truncated_normal"}, TypeError, "correct_variance must be True or False"),
        ({"distribution": "uniform", "low": -1.0}, ValueError, "give both low and high"),
        ({"distribution": "uniform", "low": 1.0, "high": -1.0}, ValueError, "low must be <= high"),
        ({"init": "sparse", "sparsity": 1.5}, ValueError, "sparsity must be in [0, 1]"),
        ({"seed": -1}, ValueError, "seed must be an integer in [0, 2**64), got -1"),
        ({"seed": 2**64}, ValueError, "seed must be an integer in [0, 2**64), got 18446744073709551616"),
        ({"seed": 1.5}, ValueError, "seed must be an integer"),
        ({"name": 3}, TypeError, "name must be a str"),
        ({"threads": 0}, ValueError, "threads must be >= 1"),
        # The C kernel counts threads in an int: 2**31 reached it and its error named no value.
        ({"threads": 2**31}, ValueError, "threads must be <= 2147483647, got 2147483648"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        sample((4, 4), **{"name": "w", **kwargs})


@pytest.mark.parametrize(
    ("init", "kwargs", "message"),
    [
        ("orthogonal", {"distribution": "uniform"}, "distribution='uniform' does not apply here: init='orthogonal' draws no elementwise"),
        ("eye", {"distribution": "truncated_normal"}, "distribution='truncated_normal' does not apply"),
        ("orthogonal", {"std": 0.1}, "std=0.1 does not apply here: init='orthogonal' does not use it"),
        ("orthogonal", {"fan_in": 3}, "fan_in=3 does not apply"),
        ("orthogonal", {"groups": 2}, "groups=2 does not apply"),
        ("delta_orthogonal", {"mean": 1.0}, "mean=1.0 does not apply"),
        ("eye", {"groups": 2}, "groups=2 does not apply"),
        ("zeros", {"gain": 2.0}, "gain=2.0 does not apply here: init='zeros' does not use it"),
        ("ones", {"value": 2.0}, "value=2.0 does not apply"),
        ("xavier", {"value": 2.0}, "value=2.0 does not apply"),
        ("xavier", {"sparsity": 0.5}, "sparsity=0.5 does not apply"),
        ("xavier", {"bounds": (-3.0, 3.0)}, "bounds=(-3.0, 3.0) does not apply here: it applies only to distribution='truncated_normal'"),
        ("xavier", {"correct_variance": False}, "only to distribution='truncated_normal'"),
        ("xavier", {"low": 0.0, "high": 1.0}, "low=0.0 does not apply here: it applies only to distribution='uniform'"),
        ("xavier", {"std": 0.1, "gain": 2.0}, "gain=2.0 does not apply here: std replaces the rule's scale"),
        ("xavier", {"std": 0.1, "fan_in": 10}, "fan_in=10 does not apply"),
        ("he", {"distribution": "uniform", "low": 0.0, "high": 1.0, "mean": 0.5}, "low/high give the uniform's bounds"),
        ("he", {"distribution": "uniform", "low": 0.0, "high": 1.0, "gain": 2.0}, "low/high replaces the rule's scale"),
        ("sparse", {"gain": 2.0}, "gain=2.0 does not apply"),
        ("constant", {}, "init='constant' needs value="),
    ],
)
def test_options_that_do_not_apply_are_errors(init, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        InitSpec(init, **kwargs)


@pytest.mark.parametrize(
    ("shape", "init", "kwargs", "message"),
    [
        ((5,), "orthogonal", {}, "init='orthogonal' needs a shape of rank >= 2, got shape=(5,)"),
        ((5,), "eye", {}, "init='eye' needs a shape of rank >= 2"),
        ((4, 4), "dirac", {}, "init='dirac' needs a 1-, 2- or 3-D convolution kernel (rank 3, 4 or 5)"),
        ((2, 2, 2, 2, 2, 2), "dirac", {}, "rank 3, 4 or 5"),
        ((4, 4), "delta_orthogonal", {}, "convolution kernel"),
        ((3, 8, 4), "delta_orthogonal", {}, "needs in_channels <= out_channels"),
        ((4, 8, 3), "delta_orthogonal", {"layout": "torch"}, "got in=8, out=4"),
        ((4, 4, 4), "sparse", {}, "init='sparse' needs a 2-D shape"),
        ((6, 2, 3), "dirac", {"groups": 4, "layout": "torch"}, "groups=4 must divide the output channels (6)"),
        ((3, 2, 6), "dirac", {"groups": 4}, "groups=4 must divide the output channels (6)"),
        ((8, 6, 3), "he", {"groups": 4}, "groups=4 must divide"),
    ],
)
def test_shapes_an_initializer_cannot_take(shape, init, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        sample(shape, init, name="w", **kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        InitSpec(init, **kwargs).check(shape)  # what the adapters call before drawing


def test_a_rule_that_returns_a_bad_std():
    with pytest.raises(ValueError, match="the std returned by init='negative' must be >= 0"):
        sample((3, 3), _negative, name="w")


def _negative(**kwargs):
    return -1.0


_negative.__name__ = "negative"


def test_structural_names_listed():
    assert set(STRUCTURAL_INITIALIZERS) >= {"orthogonal", "delta_orthogonal", "eye", "identity", "dirac", "sparse"}


def test_degenerate_laws_are_constants():
    # A zero-width law is a constant, even where the constant is not representable in the dtype.
    for options in ({"std": 0.0, "mean": 0.1}, {"std": 0.0, "mean": 0.1, "distribution": "truncated_normal"}):
        w = sample((3, 3), name="w", **options)
        assert (w == np.float32(0.1)).all()
    w = sample((3, 3), distribution="uniform", low=0.1, high=0.1, name="w")
    assert (w == np.float32(0.1)).all()


# -- sample() spells out InitSpec's fields for IDEs: they must agree ----------------------------------


def test_sample_signature_lists_initspec_fields_in_order_with_the_same_defaults():
    import inspect

    call_only = ["shape", "seed", "name", "region", "out", "threads"]
    parameters = inspect.signature(sample).parameters
    fields = dataclasses.fields(InitSpec)
    spec_parameters = [p for p in parameters if p not in call_only]
    assert spec_parameters == [field.name for field in fields]  # same names, same order
    for field in fields:
        assert parameters[field.name].default == field.default, field.name
    call = inspect.signature(InitSpec.__call__).parameters
    for name in ("seed", "name", "region", "dtype", "out", "threads"):
        assert call[name].default == parameters[name].default, name
    assert set(parameters) - {field.name for field in fields} == set(call_only)


# -- a keyed draw needs a name ----------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["xavier", "he", "orthogonal", "delta_orthogonal", "sparse"])
def test_a_random_draw_without_a_name_is_an_error_that_says_why(init):
    shape = (3, 3, 4) if init == "delta_orthogonal" else (4, 4)
    for call in (lambda: sample(shape, init), lambda: sample(shape, init, seed=7), lambda: InitSpec(init)(shape)):
        with pytest.raises(MissingNameError) as info:
            call()
        message = str(info.value)
        for words in ("name=", "(seed, name, flat index)", "identical", "prefix"):
            assert words in message, (words, message)


def test_the_unnamed_stream_is_why_names_are_required():
    # What the error prevents: two unnamed tensors share values, and a smaller one is a prefix of a larger one.
    small, large = sample((3, 4), std=1.0, name=""), sample((6, 4), std=1.0, name="")
    np.testing.assert_array_equal(large[:3], small)
    assert not np.array_equal(sample((6, 4), std=1.0, name="a")[:3], sample((6, 4), std=1.0, name="b")[:3])


@pytest.mark.parametrize("init", ["zeros", "ones", "eye", "identity"])
def test_deterministic_initializers_need_no_name(init):
    assert sample((3, 3), init).shape == (3, 3)
    np.testing.assert_array_equal(sample((3, 4, 3), "dirac"), sample((3, 4, 3), "dirac", seed=5, name="x"))
    np.testing.assert_array_equal(sample((2,), "constant", value=0.5), np.full(2, 0.5, np.float32))


def test_an_explicit_empty_name_is_the_anonymous_stream():
    np.testing.assert_array_equal(sample((5,), "he", name=""), InitSpec("he")((5,), name=""))
    expected = stream.draw((5,), stream.Normal(0.0, he(shape=(5,))), key=stream.key_for(0, ""))
    np.testing.assert_array_equal(sample((5,), "he", name=""), expected)
