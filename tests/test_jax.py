"""berry.jax: JAX-protocol initializers drawn from berry's keyed sampler.

Checks JAX's meanings (two-sample KS against jax.nn.initializers, fans against
JAX's own), that every factory's values are exactly ``berry.sample`` of the
documented spec (whose laws tests/test_distributions.py checks), the shapes x
dtypes table, jit/vmap/eager agreement, Flax Linen and NNX models, the errors,
and that docs/jax.md runs as written.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from _helpers import P_MIN, ROOT, TRUNC_STD_2, dtype_params, ks_two_sample, run_python, shape_and_region

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytest.importorskip("scipy.stats")

import berry  # noqa: E402
import berry.jax as bj  # noqa: E402
from berry import compute_fans  # noqa: E402
from berry._validation import MissingNameError  # noqa: E402

KEY = jax.random.key(0)

# Every factory with the shapes it accepts (a dense kernel and a conv kernel).
FACTORIES = {
    "variance_scaling": lambda: bj.variance_scaling(1.5, "fan_avg", "uniform"),
    "glorot_normal": bj.glorot_normal,
    "glorot_uniform": bj.glorot_uniform,
    "xavier_normal": bj.xavier_normal,
    "xavier_uniform": bj.xavier_uniform,
    "he_normal": bj.he_normal,
    "he_uniform": bj.he_uniform,
    "kaiming_normal": bj.kaiming_normal,
    "kaiming_uniform": bj.kaiming_uniform,
    "lecun_normal": bj.lecun_normal,
    "lecun_uniform": bj.lecun_uniform,
    "normal": bj.normal,
    "truncated_normal": bj.truncated_normal,
    "uniform": bj.uniform,
    "orthogonal": bj.orthogonal,
    "constant": lambda: bj.constant(0.5),
    "xavier": bj.xavier,
    "deepnet": bj.deepnet,
    "initializer_he_uniform": lambda: bj.initializer("he", "uniform"),
    "delta_orthogonal": bj.delta_orthogonal,
}
SHAPES = [(5, 7), (3, 3, 4, 6)]


def _init(name):
    factory = FACTORIES[name]
    return factory()


# ------------------------------------------------------------------ keys and seeds


def test_key_data_becomes_the_seed():
    assert bj.seed_from_key(jax.random.key(42)) == 42
    assert bj.seed_from_key(jax.random.PRNGKey(42)) == 42
    assert bj.seed_from_key(jax.random.wrap_key_data(jnp.array([1, 2], dtype=jnp.uint32))) == 2**32 + 2
    # A non-threefry key is folded into 64 bits, deterministically.
    rbg = jax.random.key(3, impl="rbg")
    assert bj.seed_from_key(rbg) == bj.seed_from_key(jax.random.key(3, impl="rbg"))
    assert 0 <= bj.seed_from_key(rbg) < 2**64


def test_same_bits_as_berry_sample_for_key_of_seed():
    w = bj.xavier(name="layer.weight")(jax.random.key(11), (6, 4))
    expected = berry.sample((6, 4), "xavier", seed=11, name="layer.weight")
    np.testing.assert_array_equal(np.asarray(w), expected)
    # Legacy and new-style keys give the same values; the name changes them.
    legacy = bj.xavier(name="layer.weight")(jax.random.PRNGKey(11), (6, 4))
    np.testing.assert_array_equal(np.asarray(legacy), expected)
    other = bj.xavier(name="other")(jax.random.key(11), (6, 4))
    assert not np.array_equal(np.asarray(other), expected)


def test_mirrored_factories_equal_the_registry_rules():
    shape = (3, 3, 8, 16)
    pairs = [
        (bj.glorot_normal(), dict(init="xavier", distribution="truncated_normal")),
        (bj.glorot_uniform(), dict(init="xavier", distribution="uniform")),
        (bj.he_normal(), dict(init="he", distribution="truncated_normal")),
        (bj.lecun_uniform(), dict(init="lecun", distribution="uniform")),
        (
            bj.initializer("deepnet", "truncated_normal"),
            dict(init="deepnet", distribution="truncated_normal"),
        ),
    ]
    for init, spec in pairs:
        np.testing.assert_array_equal(np.asarray(init(KEY, shape)), berry.sample(shape, seed=0, name="", **spec))


# ------------------------------------------------------------------ shapes x dtypes


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("dtype", dtype_params(["float32", "float16", "bfloat16", "float64"]))
def test_every_factory_fills_every_shape_and_dtype(name, dtype):
    init = _init(name)
    expected_dtype = (
        jnp.dtype(dtype) if dtype != "float64" or jax.config.jax_enable_x64 else jnp.dtype("float32")
    )
    for shape in SHAPES:
        if name == "delta_orthogonal" and len(shape) < 3:
            continue
        value = init(KEY, shape, getattr(jnp, dtype))
        assert value.shape == shape
        assert value.dtype == expected_dtype
        assert bool(jnp.isfinite(value.astype(jnp.float32)).all())
        if name not in ("constant",):
            assert float(jnp.abs(value.astype(jnp.float32)).max()) > 0


@pytest.mark.parametrize("dtype", dtype_params(["bfloat16", "float16"]))
def test_low_precision_is_berry_sample_in_that_dtype(dtype):
    shape = (16, 8)
    low = np.asarray(bj.he_uniform()(KEY, shape, getattr(jnp, dtype)))
    expected = berry.sample(shape, "he", distribution="uniform", seed=0, name="", dtype=dtype)
    assert low.dtype == expected.dtype and low.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", dtype_params(["bfloat16", "float16"]))
def test_low_precision_is_the_rounded_float32_draw(dtype):
    shape = (16, 8)
    full = np.asarray(bj.he_uniform()(KEY, shape, jnp.float32))
    low = np.asarray(bj.he_uniform()(KEY, shape, getattr(jnp, dtype)))
    # Rounded once from the exact value: within half an ulp of the low-precision type, relative.
    np.testing.assert_allclose(low.astype(np.float32), full, rtol=2 ** -(jnp.finfo(getattr(jnp, dtype)).nmant))


@pytest.mark.parametrize("dtype", dtype_params(["bfloat16"]))
def test_factory_dtype_is_the_default(dtype):
    assert bj.normal(dtype=jnp.bfloat16)(KEY, (3,)).dtype == jnp.bfloat16
    assert bj.normal(dtype=jnp.bfloat16)(KEY, (3,), jnp.float16).dtype == jnp.float16


@pytest.mark.parametrize("dtype", dtype_params(["float32", "bfloat16", "int32"]))
def test_zeros_ones_constant_follow_jax(dtype):
    dtype = getattr(jnp, dtype)
    for ours, theirs in [
        (bj.zeros, jax.nn.initializers.zeros),
        (bj.ones, jax.nn.initializers.ones),
        (bj.constant(-7.0), jax.nn.initializers.constant(-7.0)),
    ]:
        if True:
            a, b = ours(KEY, (2, 3), dtype), theirs(KEY, (2, 3), dtype)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_empty_shapes():
    for init in (bj.he_normal(), bj.orthogonal(), bj.normal()):
        assert init(KEY, (0, 4)).shape == (0, 4)


# ------------------------------------------------------------------ JAX's meanings


@pytest.mark.parametrize(
    ("shape", "in_axis", "out_axis", "batch_axis"),
    [
        ((7, 5), -2, -1, ()),
        ((3, 3, 4, 6), -2, -1, ()),
        ((6, 4, 5), 1, 2, 0),
        ((4, 5, 6), (0, 1), 2, ()),
        ((10, 3), -2, 0, ()),  # Flax Embed: in and out share axis 0
        ((2, 3, 4, 5), 3, 0, (1,)),
    ],
)
def test_fans_match_jax(shape, in_axis, out_axis, batch_axis):
    from jax._src.nn.initializers import _compute_fans

    expected = _compute_fans(shape, in_axis, out_axis, batch_axis)
    fans = compute_fans(shape, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis, convention="jax")
    assert fans == tuple(round(f) for f in expected)


VARIANCE_CASES = [
    (2.0, "fan_in", "truncated_normal", (256, 128), {}),
    (1.0, "fan_avg", "uniform", (3, 3, 32, 64), {}),
    (0.5, "fan_out", "normal", (64, 300), {}),
    (1.0, "fan_geo_avg", "truncated_normal", (4, 64, 96), {"batch_axis": 0}),
    (1.0, "fan_in", "normal", (300, 64), {"out_axis": 0}),
]


@pytest.mark.parametrize(("scale", "mode", "distribution", "shape", "axes"), VARIANCE_CASES)
def test_variance_scaling_has_jax_law(scale, mode, distribution, shape, axes):
    """Two-sample KS against JAX's own initializer: same law, same scale."""
    ours = np.asarray(
        bj.variance_scaling(scale, mode, distribution, **axes)(jax.random.key(1), shape)
    ).ravel()
    theirs = np.asarray(
        jax.nn.initializers.variance_scaling(scale, mode, distribution, **axes)(jax.random.key(2), shape)
    ).ravel()
    assert ks_two_sample(ours, theirs) > P_MIN


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (bj.glorot_normal(), jax.nn.initializers.glorot_normal()),
        (bj.he_uniform(), jax.nn.initializers.he_uniform()),
        (bj.lecun_normal(), jax.nn.initializers.lecun_normal()),
        (bj.normal(0.3), jax.nn.initializers.normal(0.3)),
        (bj.uniform(2.0), jax.nn.initializers.uniform(2.0)),
        (
            bj.truncated_normal(0.5, lower=-1.0, upper=3.0),
            jax.nn.initializers.truncated_normal(0.5, lower=-1.0, upper=3.0),
        ),
    ],
    ids=["glorot_normal", "he_uniform", "lecun_normal", "normal", "uniform", "truncated_normal"],
)
def test_named_factories_have_jax_law(ours, theirs):
    shape = (200, 150)
    a = np.asarray(ours(jax.random.key(5), shape)).ravel()
    b = np.asarray(theirs(jax.random.key(6), shape)).ravel()
    assert ks_two_sample(a, b) > P_MIN


# Each factory's values are exactly berry.sample of the spec its docstring states; that spec's law is
# checked once, by KS against the exact law, in tests/test_distributions.py.
SHAPE = (256, 128)
SIGMA_AVG, SIGMA_IN = math.sqrt(2 / (256 + 128)), math.sqrt(2 / 256)
DOCUMENTED_SPECS = [
    ("glorot_normal", bj.glorot_normal(), dict(std=SIGMA_AVG, distribution="truncated_normal")),
    ("he_normal", bj.he_normal(), dict(std=SIGMA_IN, distribution="truncated_normal")),
    ("he_uniform", bj.he_uniform(), dict(std=SIGMA_IN, distribution="uniform")),
    ("xavier", bj.xavier(), dict(std=SIGMA_AVG)),
    ("variance_scaling", bj.variance_scaling(3.0, "fan_out", "normal"), dict(std=math.sqrt(3 / 128))),
    ("normal", bj.normal(), dict(std=1e-2)),
    ("uniform", bj.uniform(), dict(distribution="uniform", low=0.0, high=1e-2)),
    ("truncated_normal", bj.truncated_normal(2.0, lower=-1.0, upper=0.5),
     dict(std=2.0, distribution="truncated_normal", bounds=(-1.0, 0.5), correct_variance=False)),
]


@pytest.mark.parametrize(("label", "init", "spec"), DOCUMENTED_SPECS, ids=[case[0] for case in DOCUMENTED_SPECS])
def test_values_are_berry_sample_of_the_documented_law(label, init, spec):
    expected = berry.sample(SHAPE, seed=3, name="", **spec)
    np.testing.assert_array_equal(np.asarray(init(jax.random.key(3), SHAPE)), expected)


def test_truncated_values_stay_in_bounds():
    w = np.asarray(bj.he_normal()(KEY, (512, 64)))
    bound = 2 * math.sqrt(2 / 512) / TRUNC_STD_2
    assert np.abs(w).max() <= bound
    w = np.asarray(bj.truncated_normal(1.0, lower=-0.5, upper=0.25)(KEY, (4096,)))
    assert w.min() >= -0.5 and w.max() <= 0.25


def test_orthogonal_matches_jax_convention():
    for shape, column_axis in [((6, 4), -1), ((4, 6), -1), ((3, 3, 8), -1), ((8, 3, 3), 0), ((5, 6), 0)]:
        w = np.asarray(bj.orthogonal(2.0, column_axis=column_axis)(KEY, shape), dtype=np.float64)
        matrix = np.moveaxis(w, column_axis, -1).reshape(-1, shape[column_axis])
        rows, cols = matrix.shape
        gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(min(rows, cols)), atol=1e-5)


def test_delta_orthogonal_center_tap():
    w = np.asarray(bj.delta_orthogonal(1.5)(KEY, (3, 3, 4, 8)), dtype=np.float64)
    center = w[1, 1]
    np.testing.assert_allclose(center @ center.T, 2.25 * np.eye(4), atol=1e-5)
    w[1, 1] = 0
    assert not w.any()


# ------------------------------------------------------------------ jit, vmap, eager


@pytest.mark.parametrize("name", ["he_normal", "uniform", "orthogonal", "xavier", "truncated_normal"])
def test_jit_equals_eager(name):
    init = _init(name)
    for dtype in (jnp.float32, jnp.bfloat16):
        eager = init(KEY, (8, 6), dtype)
        jitted = jax.jit(init, static_argnums=(1, 2))(KEY, (8, 6), dtype)
        assert jitted.dtype == dtype
        np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))


def test_jit_with_legacy_key_and_key_arithmetic():
    init = bj.he_uniform()

    @jax.jit
    def make(key):
        a, b = jax.random.split(key)
        return init(a, (4, 4)), init(b, (4, 4))

    a, b = make(jax.random.PRNGKey(9))
    key_a, key_b = jax.random.split(jax.random.PRNGKey(9))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(init(key_a, (4, 4))))
    np.testing.assert_array_equal(np.asarray(b), np.asarray(init(key_b, (4, 4))))
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_vmap_over_keys_is_per_key():
    init = bj.normal(1.0)
    keys = jax.random.split(KEY, 3)
    stacked = jax.vmap(lambda k: init(k, (5,)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(stacked[i]), np.asarray(init(keys[i], (5,))))


# ------------------------------------------------------------------ Flax


def _tree_equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_flax_linen_models():
    nn = pytest.importorskip("flax.linen")

    class Model(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(50, 8, embedding_init=bj.variance_scaling(1.0, "fan_in", "normal", out_axis=0))(
                tokens
            )
            x = nn.Conv(16, (3,), kernel_init=bj.he_normal(), bias_init=bj.zeros)(x)
            x = nn.Dense(4, kernel_init=bj.xavier(), bias_init=bj.constant(0.1), param_dtype=jnp.bfloat16)(x)
            return x

    model = Model()
    tokens = jnp.zeros((2, 5), dtype=jnp.int32)
    eager = model.init(KEY, tokens)
    jitted = jax.jit(model.init)(KEY, tokens)
    _tree_equal(eager, jitted)
    params = eager["params"]
    assert params["Conv_0"]["kernel"].shape == (3, 8, 16)
    assert params["Dense_0"]["kernel"].dtype == jnp.bfloat16
    assert float(params["Dense_0"]["bias"][0].astype(jnp.float32)) == pytest.approx(0.1, rel=1e-2)
    embedding = np.asarray(params["Embed_0"]["embedding"])
    assert embedding.std() == pytest.approx(1 / math.sqrt(8), rel=0.15)
    # The model runs and a different key gives different weights.
    assert model.apply(eager, tokens).shape == (2, 5, 4)
    other = model.init(jax.random.key(1), tokens)
    assert not np.array_equal(
        np.asarray(other["params"]["Conv_0"]["kernel"]), np.asarray(params["Conv_0"]["kernel"])
    )


def test_flax_nnx_models():
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(50, 8, embedding_init=bj.normal(0.02), rngs=rngs)
            self.conv = nnx.Conv(8, 16, (3, 3), kernel_init=bj.he_uniform(), bias_init=bj.zeros, rngs=rngs)
            self.linear = nnx.Linear(16, 4, kernel_init=bj.glorot_normal(), bias_init=bj.ones, rngs=rngs)

    eager = nnx.state(Model(nnx.Rngs(0)), nnx.Param)
    jitted = nnx.state(nnx.jit(lambda: Model(nnx.Rngs(0)))(), nnx.Param)
    _tree_equal(eager, jitted)
    shapes = sorted(leaf.shape for leaf in jax.tree.leaves(eager))
    assert (3, 3, 8, 16) in shapes and (16, 4) in shapes and (50, 8) in shapes


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: bj.variance_scaling(1.0, "fan_mean", "normal"), ValueError,
         ["invalid mode for variance scaling initializer: fan_mean", "'fan_avg'"]),
        (lambda: bj.variance_scaling(1.0, "fan_in", "gaussian"), ValueError,
         ["invalid distribution for variance scaling initializer: gaussian"]),
        (lambda: bj.variance_scaling(-1.0, "fan_in", "normal"), ValueError, ["scale", "-1.0"]),
        (lambda: bj.he_normal()(KEY, (5,)), ValueError,
         ["Can't compute input and output sizes of a 1-dimensional weights tensor with default in_axis. "
          "Must be at least 2D or specify in_axis explicitly.", "(5,)"]),
        (lambda: bj.he_normal(in_axis=3)(KEY, (4, 5)), IndexError, ["tuple index out of range", "in_axis=3"]),
        (lambda: bj.he_normal(in_axis=0, out_axis=1, batch_axis=1)(KEY, (4, 5)), ValueError, ["batch_axis"]),
        (lambda: bj.he_normal()(7, (4, 5)), TypeError,
         ["JAX encountered invalid PRNG key data: expected key_data to have ndim, shape, and dtype", "jax.random.key"]),
        (lambda: bj.he_normal()(jnp.zeros(2), (4, 5)), TypeError,
         ["JAX encountered invalid PRNG key data: expected key_data.dtype = uint32; got dtype=float32"]),
        (lambda: bj.he_normal()(jax.random.split(KEY, 2), (4, 5)), ValueError,
         ["accepts a single key, but was given a key array of shape (2,) != (). Use jax.vmap for batching."]),
        (lambda: bj.he_normal()(KEY, (4, 5), jnp.int32), ValueError,
         ["dtype argument to `uniform` must be a float dtype, got int32"]),
        (lambda: bj.normal()(KEY, (4, 5), jnp.int32), ValueError,
         ["dtype argument to `normal` must be a float or complex dtype, got int32"]),
        (lambda: bj.uniform()(KEY, (4, 5), jnp.complex64), ValueError,
         ["dtype argument to `uniform` must be a float dtype, got complex64"]),
        (lambda: bj.truncated_normal()(KEY, (4, 5), jnp.complex64), ValueError,
         ["dtype argument to `truncated_normal` must be a float dtype, got complex64"]),
        (lambda: bj.he_normal()(KEY, (4, -5)), TypeError,
         ["Only non-negative indices are allowed when broadcasting static shapes, but got shape (4, -5)."]),
        (lambda: bj.he_normal()(KEY, (4.0, 5)), TypeError,
         ["Shapes must be 1D sequences of concrete values of integer type, got (4.0, 5)."]),
        (lambda: bj.orthogonal()(KEY, (4,)), ValueError, ["orthogonal initializer requires at least a 2D shape", "(4,)"]),
        (lambda: bj.orthogonal(column_axis=2)(KEY, (4, 4)), IndexError, ["tuple index out of range", "column_axis"]),
        (lambda: bj.delta_orthogonal()(KEY, (3, 4)), ValueError,
         ["Delta orthogonal initializer requires a 3D, 4D or 5D shape."]),
        (lambda: bj.delta_orthogonal()(KEY, (3, 8, 4)), ValueError, ["`fan_in` must be less or equal than `fan_out`. "]),
        (lambda: bj.truncated_normal(lower=1.0, upper=-1.0), ValueError, ["lower", "upper"]),
        (lambda: bj.constant([1.0, 2.0])(KEY, (3, 3)), ValueError, ["Incompatible types for broadcasting", "(2,)"]),
        (lambda: bj.constant("x"), TypeError, ["value"]),
        (lambda: bj.initializer("xavierr"), ValueError, ["xavierr", "xavier"]),
        (lambda: bj.initializer("xavier", "cauchy"), ValueError, ["distribution", "cauchy"]),
        (lambda: bj.initializer("xavier", std=0.1, gain=2.0), ValueError, ["gain=2.0", "initializer('xavier'"]),
        (lambda: bj.initializer("constant"), ValueError, ["value="]),
        (lambda: bj.initializer("xavier")(KEY, (4, 4), jnp.complex64), ValueError, ["complex64"]),
        (lambda: bj.orthogonal("big"), TypeError, ["scale"]),
        (lambda: bj.initializer("xavier", seed=3), TypeError, ["seed"]),
        (lambda: bj.xavier(name=3), TypeError, ["name"]),
        (lambda: bj.sharded(bj.he_normal(), (4, 4), "cpu", KEY), TypeError, ["sharding"]),
        (lambda: bj.he_normal()(KEY, (4, 4), out_sharding=jax.sharding.PartitionSpec()), ValueError,
         ["Using PartitionSpec when you are not under a mesh context is not allowed"]),
    ],
)
def test_clear_errors(make, error, words):
    with pytest.raises(error) as info:
        make()
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


def _same_error(call):
    """``call(module)`` raises the same kind of error, worded the same way first, with JAX's module and berry's."""
    with pytest.raises(Exception) as theirs:
        call(jax.nn.initializers)
    with pytest.raises(Exception) as ours:
        call(bj)
    assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))
    return str(theirs.value), str(ours.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.variance_scaling(1.0, "fan_mean", "normal")(KEY, (2, 3)),
        lambda m: m.variance_scaling(1.0, "fan_in", "gaussian")(KEY, (2, 3)),
        lambda m: m.he_normal()(KEY, (5,)),
        lambda m: m.he_normal(in_axis=3)(KEY, (4, 5)),
        lambda m: m.variance_scaling(1.0, "fan_in", "normal", in_axis=None)(KEY, (4, 5)),  # was int()'s own error
        lambda m: m.he_normal(out_axis=None)(KEY, (4, 5)),
        lambda m: m.he_normal(batch_axis=None)(KEY, (4, 5)),
        lambda m: m.he_normal()(7, (4, 5)),
        lambda m: m.he_normal()(jnp.zeros(2), (4, 5)),
        lambda m: m.he_normal()(KEY, (4, 5), jnp.int32),
        lambda m: m.glorot_uniform()(KEY, (4, 5), jnp.int32),
        lambda m: m.normal()(KEY, (4, 5), jnp.int32),
        lambda m: m.uniform()(KEY, (4, 5), jnp.complex64),
        lambda m: m.truncated_normal()(KEY, (4, 5), jnp.complex64),
        lambda m: m.he_normal()(KEY, (4, -5)),  # (JAX's normal crashes in MLIR here; berry says the same as he_normal)
        lambda m: m.normal()(KEY, (4.0, 5)),
        lambda m: m.orthogonal()(KEY, (4,)),
        lambda m: m.orthogonal(column_axis=2)(KEY, (4, 4)),
        lambda m: m.delta_orthogonal()(KEY, (3, 4)),
        lambda m: m.delta_orthogonal()(KEY, (3, 8, 4)),
        lambda m: m.he_normal()(KEY, (4, 4), out_sharding=jax.sharding.PartitionSpec()),
    ],
)
def test_errors_are_jaxs_side_by_side(call):
    theirs, ours = _same_error(call)
    assert ours.startswith(theirs), (theirs, ours)


def test_errors_side_by_side_where_jax_names_its_own_function():
    theirs, ours = _same_error(lambda m: m.he_normal()(jax.random.split(KEY, 2), (4, 5)))
    tail = "accepts a single key, but was given a key array of shape (2,) != (). Use jax.vmap for batching."
    assert theirs.endswith(tail) and tail in ours
    theirs, ours = _same_error(lambda m: m.constant(jnp.ones(2))(KEY, (3, 3)))
    assert theirs.startswith("Incompatible types for broadcasting:") and ours.startswith("Incompatible types for broadcasting:")


def test_arguments_are_checked_when_the_factory_is_called():
    # Construction validates everything that does not depend on the shape (no key, no call needed).
    for make in (lambda: bj.initializer("he", "uniform", mean=0.5, low=0.0, high=1.0),
                 lambda: bj.initializer("orthogonal", distribution="uniform"),
                 lambda: bj.initializer("sparse", sparsity=2.0)):
        with pytest.raises(ValueError):
            make()


def test_shape_errors_surface_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="in_axis"):
        jax.jit(bj.he_normal(), static_argnums=1)(KEY, (5,))
    with pytest.raises(ValueError, match="groups=4 must divide"):
        jax.jit(bj.initializer("he", groups=4), static_argnums=1)(KEY, (3, 6))


def test_the_key_is_jaxs_random_state_and_the_name_is_optional_as_in_jax():
    # As with jax.nn.initializers, the same key gives the same values; each parameter needs its own key.
    ours = bj.normal(1.0)
    np.testing.assert_array_equal(np.asarray(ours(KEY, (4,))), np.asarray(ours(KEY, (8,)))[:4])
    theirs = jax.nn.initializers.normal(1.0)
    np.testing.assert_array_equal(np.asarray(theirs(KEY, (4,))), np.asarray(theirs(KEY, (8,)))[:4])


def test_integer_seeds_need_a_name_as_berry_sample_does():
    with pytest.raises(MissingNameError, match=re.escape("(seed, name, flat index)")):
        bj.he_normal().values(3, (4, 4))
    np.testing.assert_array_equal(
        bj.he_normal(name="w").values(3, (4, 4)), berry.sample((4, 4), "he", distribution="truncated_normal", seed=3, name="w")
    )
    assert bj.constant(2.0).values(3, (2,)).tolist() == [2.0, 2.0]  # nothing random: no name needed


def test_import_berry_jax_does_not_import_jax():
    import subprocess
    import sys

    code = "import sys, berry.jax; assert 'jax.numpy' not in sys.modules and 'flax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_repr_names_the_factory():
    assert repr(bj.he_normal(name="w")) == "berry.jax.he_normal(), name='w'"


# ------------------------------------------------------------------ everything jax.nn.initializers accepts


def test_every_name_of_jax_nn_initializers():
    theirs = {name for name in dir(jax.nn.initializers) if not name.startswith("_")}
    missing = theirs - set(dir(bj))
    assert not missing, missing
    for name in theirs - {"Initializer"}:
        assert callable(getattr(bj, name)), name
    assert isinstance(bj.he_normal(), jax.nn.initializers.Initializer)  # JAX's protocol holds for berry's objects


# JAX's own test suite (tests/nn_test.py, NNInitializersTest) with berry.jax in place of jax.nn.initializers.
_ALL_SHAPES = [(2,), (2, 2), (2, 3), (3, 2), (2, 3, 4), (4, 3, 2), (2, 3, 4, 5)]
_FLOATING = ["float32", "float16", "bfloat16"]
_INEXACT = [*_FLOATING, "complex64"]
_RECORDS = [
    ("uniform", bj.uniform, _FLOATING, 1, 4),
    ("normal", bj.normal, _INEXACT, 1, 4),
    ("he_normal", bj.he_normal, _INEXACT, 2, 4),
    ("he_uniform", bj.he_uniform, _INEXACT, 2, 4),
    ("glorot_normal", bj.glorot_normal, _INEXACT, 2, 4),
    ("glorot_uniform", bj.glorot_uniform, _INEXACT, 2, 4),
    ("lecun_normal", bj.lecun_normal, _INEXACT, 2, 4),
    ("lecun_uniform", bj.lecun_uniform, _INEXACT, 2, 4),
    ("orthogonal", bj.orthogonal, _INEXACT, 2, 2),
    ("truncated_normal", bj.truncated_normal, _FLOATING, 1, 4),
    ("delta_orthogonal", bj.delta_orthogonal, _INEXACT, 4, 4),
    ("variance_scaling_fan_geo_avg", lambda **kw: bj.variance_scaling(1, "fan_geo_avg", "normal", **kw), _FLOATING, 2, 4),
]
_CASES = [
    pytest.param(factory, shape, dtype, id=f"{name}-{'x'.join(map(str, shape))}-{dtype}")
    for name, factory, dtypes, low, high in _RECORDS
    for shape in _ALL_SHAPES if low <= len(shape) <= high
    for dtype in dtypes
]


@pytest.mark.parametrize(("factory", "shape", "dtype"), _CASES)
def test_jax_suite_initializer_and_provider(factory, shape, dtype):
    dtype = jnp.dtype(dtype)
    value = factory()(jax.random.PRNGKey(0), shape, dtype)
    assert value.shape == shape and value.dtype == jax.dtypes.canonicalize_dtype(dtype)
    provided = factory(dtype=dtype)(jax.random.PRNGKey(0), shape)
    assert provided.dtype == value.dtype
    np.testing.assert_array_equal(np.asarray(provided), np.asarray(value))


def test_jax_suite_variance_scaling_axes_and_error():
    key = jax.random.PRNGKey(0)
    multi = bj.variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis=(0, 1), out_axis=(-2, -1))
    assert multi(key, (2, 3, 4, 5)).shape == (2, 3, 4, 5)
    batched = bj.variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis=0, out_axis=(2, 3), batch_axis=1)
    assert batched(key, (2, 3, 4, 5)).shape == (2, 3, 4, 5)
    with pytest.raises(ValueError, match="Can't compute input and output sizes of a 1-dimensional weights tensor"):
        bj.variance_scaling(1.0, "fan_avg", "truncated_normal")(key, (5,))
    scalar = jnp.array(1.0, dtype=jnp.float32)  # JAX's testAccidentalUpcasting
    for init in (bj.uniform(scalar, jnp.bfloat16), bj.normal(scalar, jnp.bfloat16), bj.truncated_normal(scalar, jnp.bfloat16)):
        assert init(key, (4, 4)).dtype == jnp.bfloat16


@pytest.mark.parametrize("stddev", [0.5, np.float32(0.5), np.float64(0.5), np.array(0.5), 1, jnp.array(0.5)],
                         ids=["float", "np.float32", "np.float64", "0-d ndarray", "int", "0-d jax.Array"])
def test_scales_as_numbers_numpy_scalars_and_0d_arrays(stddev):
    expected = float(stddev)
    for make, reference in [(bj.normal, bj.normal(expected)), (bj.uniform, bj.uniform(expected)),
                            (lambda s: bj.variance_scaling(s, "fan_in", "normal"), bj.variance_scaling(expected, "fan_in", "normal")),
                            (bj.orthogonal, bj.orthogonal(expected))]:
        np.testing.assert_array_equal(np.asarray(make(stddev)(KEY, (4, 3))), np.asarray(reference(KEY, (4, 3))))


def test_traced_scales_are_refused_clearly():
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda s: bj.normal(s)(KEY, (2,)))(jnp.array(0.5))


def test_negative_scales_are_jaxs_stddev_times_z():
    for negative, positive in [(bj.normal(-0.5), bj.normal(0.5)), (bj.uniform(-2.0), bj.uniform(2.0)),
                               (bj.truncated_normal(-1.0, lower=-1.0, upper=2.0), bj.truncated_normal(1.0, lower=-1.0, upper=2.0))]:
        np.testing.assert_array_equal(np.asarray(negative(KEY, (50,))), -np.asarray(positive(KEY, (50,))))
    ours = np.asarray(bj.uniform(-2.0)(KEY, (4000,)))
    theirs = np.asarray(jax.nn.initializers.uniform(-2.0)(jax.random.key(1), (4000,)))
    assert ours.max() <= 0 and ours.min() > -2.0 and ks_two_sample(ours, theirs) > P_MIN
    assert not np.asarray(bj.uniform(0.0)(KEY, (5,))).any()
    assert not np.asarray(bj.variance_scaling(0.0, "fan_in", "normal")(KEY, (3, 4))).any()


@pytest.mark.parametrize(
    ("value", "shape", "dtype"),
    [(-7, (3,), "int32"), ([1.0, 2.0], (3, 2), "float32"), (np.arange(4.0).reshape(2, 2), (2, 2), "bfloat16"),
     (2.5, (2,), "int32"), (True, (2,), "bool"), (jnp.array([[1.0], [2.0]]), (2, 3), "float16"), (1 + 2j, (2,), "complex64")],
    ids=["int", "list", "array-bf16", "truncate", "bool", "jax-array", "complex"],
)
def test_constant_takes_any_array_like_as_jax(value, shape, dtype):
    dtype = getattr(jnp, dtype) if dtype != "bool" else jnp.bool_
    as_jax = np.asarray(value) if isinstance(value, list) else value  # JAX refuses lists; berry takes any array-like
    ours, theirs = bj.constant(value)(KEY, shape, dtype), jax.nn.initializers.constant(as_jax)(KEY, shape, dtype)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    np.testing.assert_array_equal(np.asarray(jax.jit(bj.constant(value), static_argnums=(1, 2))(KEY, shape, dtype)),
                                  np.asarray(theirs))


@pytest.mark.parametrize(
    "init", [bj.zeros, bj.ones, bj.constant(2.5), bj.constant(np.array([1.0, -2.0]))], ids=["zeros", "ones", "constant", "array"]
)
def test_exact_initializers_fill_float8_as_jax(init):
    # docs/jax.md: exact ones "fill any numeric dtype"; berry refused ml_dtypes' float8 (JAX fills it)
    theirs = {bj.zeros: jax.nn.initializers.zeros, bj.ones: jax.nn.initializers.ones}.get(init)
    if theirs is None:
        theirs = jax.nn.initializers.constant(np.asarray(init.value))
    ours = init(KEY, (3, 2), jnp.float8_e4m3fn)
    assert ours.dtype == jnp.float8_e4m3fn and ours.shape == (3, 2)
    expected = theirs(KEY, (3, 2), jnp.float8_e4m3fn)
    np.testing.assert_array_equal(np.asarray(ours, np.float32), np.asarray(expected, np.float32))
    jitted = jax.jit(init, static_argnums=(1, 2))(KEY, (3, 2), jnp.float8_e4m3fn)
    np.testing.assert_array_equal(np.asarray(jitted, np.float32), np.asarray(expected, np.float32))


def test_array_constant_keeps_a_scalar_shape():
    # np.ascontiguousarray made the 0-d values 1-d: values() had shape (1,) and a sharded scalar crashed
    init = bj.constant(np.array(2.5))
    assert init.values(0, ()).shape == ()
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    w = bj.sharded(init, (), sharding, KEY)
    assert w.shape == () and float(w) == 2.5


def test_partition_spec_out_sharding_under_set_mesh():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
    init = bj.he_normal()
    with jax.set_mesh(mesh):
        w = init(KEY, (4, 6), out_sharding=jax.sharding.PartitionSpec("x"))
    assert isinstance(w.sharding, jax.sharding.NamedSharding)
    np.testing.assert_array_equal(np.asarray(w), np.asarray(init(KEY, (4, 6))))


def test_delta_orthogonal_column_axis_as_jax():
    for column_axis in (-2, -1, 0, 1):
        w = np.asarray(bj.delta_orthogonal(column_axis=column_axis)(KEY, (3, 3, 4, 6)), dtype=np.float64)
        np.testing.assert_allclose(w[1, 1] @ w[1, 1].T, np.eye(4), atol=1e-5)


# ------------------------------------------------------------------ regions (what each shard computes)

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
@hypothesis.given(shape_and_region(min_rank=2, max_rank=3, min_dim=1, max_dim=6), st.data())
def test_region_values_are_slices_of_the_whole(case, data):
    shape, region = case
    column_axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    for init in (bj.he_uniform(name="r"), bj.orthogonal(column_axis=column_axis, name="q"), bj.constant(2.0)):
        whole = init.values(3, shape)
        np.testing.assert_array_equal(init.values(3, shape, region=region), whole[region])


# ------------------------------------------------------------------ docs/jax.md runs as written


def test_docs_examples_run_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "jax.md").read_text(), flags=re.S)
    assert blocks
    result = run_python("\n".join(blocks), tmp_path=tmp_path, env={"KERAS_BACKEND": None})
    assert result.returncode == 0, result.stderr[-4000:]
