"""berry.jax with complex dtypes: JAX's laws, from berry's keyed stream, region by region.

Each law is KS-tested against its exact law at the documented scale and, by a
two-sample KS test, against ``jax.nn.initializers`` itself; the documented
stream layout (the real tensor of shape ``(*S, 2)``) and region
addressability are checked bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import P_MIN, ks_pvalue, ks_two_sample

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
stats = pytest.importorskip("scipy.stats")

import berry  # noqa: E402
import berry.jax as bj  # noqa: E402
from berry.jax._complex import TRUNCATED_COMPLEX_STD  # noqa: E402

KEY = jax.random.key(3)
SHAPE = (300, 200)
SIGMA = math.sqrt(2.0 / 300)  # he: fan_in = 300
TAIL = -math.expm1(-4.0)  # P(|z| <= 2) for the unit complex normal: 1 - e^-4


def draw(init, key=KEY, shape=SHAPE, dtype=jnp.complex64):
    values = np.asarray(init(key, shape, dtype))
    assert values.dtype == np.dtype(dtype) and values.shape == shape
    return values.ravel().astype(np.complex128)


def test_normal_has_independent_parts_with_half_the_variance():
    w = draw(bj.variance_scaling(2.0, "fan_in", "normal"))
    for part in (w.real, w.imag):
        assert ks_pvalue(part, stats.norm(scale=SIGMA / math.sqrt(2))) > P_MIN
    assert ks_pvalue(abs(w) ** 2, stats.expon(scale=SIGMA**2)) > P_MIN  # E|w|^2 = sigma^2
    assert abs(np.corrcoef(w.real, w.imag)[0, 1]) < 4 / math.sqrt(w.size)


def test_uniform_is_the_disk_of_radius_sqrt2_sigma():
    w = draw(bj.he_uniform())
    assert ks_pvalue(abs(w) ** 2, stats.uniform(0, 2 * SIGMA**2)) > P_MIN
    assert ks_pvalue(np.angle(w), stats.uniform(-math.pi, 2 * math.pi)) > P_MIN


def test_truncated_normal_is_jaxs_truncated_disk_law():
    w = draw(bj.he_normal())
    scale = SIGMA / TRUNCATED_COMPLEX_STD
    squared = abs(w) ** 2 / scale**2  # Exp(1) conditioned on <= 4

    def cdf(x):
        return np.clip(-np.expm1(-np.asarray(x)) / TAIL, 0.0, 1.0)

    assert ks_pvalue(squared, cdf) > P_MIN
    assert squared.max() <= 4.0 * (1 + 1e-6)
    assert ks_pvalue(np.angle(w), stats.uniform(-math.pi, 2 * math.pi)) > P_MIN
    # JAX's constant is sqrt(1 - 5 e^-4), so E|w|^2 = sigma^2 / (1 - e^-4): the documented 1.87% above sigma^2.
    assert TRUNCATED_COMPLEX_STD == pytest.approx(math.sqrt(1 - 5 * math.exp(-4)), abs=1e-13)
    expected = SIGMA**2 / TAIL
    spread = np.std(abs(w) ** 2) / math.sqrt(w.size)
    assert abs(np.mean(abs(w) ** 2) - expected) < 4 * spread


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (bj.glorot_normal(), jax.nn.initializers.glorot_normal()),
        (bj.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
        (bj.variance_scaling(0.5, "fan_avg", "normal"), jax.nn.initializers.variance_scaling(0.5, "fan_avg", "normal")),
        (bj.normal(0.3), jax.nn.initializers.normal(0.3)),
    ],
    ids=["glorot_normal", "lecun_uniform", "variance_scaling_normal", "normal"],
)
def test_same_complex_law_as_jax(ours, theirs):
    a, b = draw(ours), draw(theirs, key=jax.random.key(4))
    for part in (np.real, np.imag, np.abs):
        assert ks_two_sample(part(a), part(b)) > P_MIN


def test_normal_is_the_documented_float_tensor_viewed_as_complex():
    init = bj.normal(0.5, name="w")
    for dtype, real in ((jnp.complex64, "float32"), (jnp.complex128, "float64")):
        if dtype == jnp.complex128 and not jax.config.jax_enable_x64:
            assert init(KEY, (3, 4), dtype).dtype == jnp.complex64  # JAX narrows it without x64
            continue
        parts = berry.sample((3, 4, 2), distribution="normal", std=0.5 / math.sqrt(2), seed=3, name="w", dtype=real)
        expected = parts.view(np.dtype(dtype))[..., 0]
        np.testing.assert_array_equal(np.asarray(init(KEY, (3, 4), dtype)), expected)


def test_negative_stddev_flips_the_sign_as_in_jax():
    np.testing.assert_array_equal(draw(bj.normal(-0.5)), -draw(bj.normal(0.5)))


@pytest.mark.parametrize("init", [bj.he_normal(name="w"), bj.glorot_uniform(name="w"), bj.normal(1.0, name="w")],
                         ids=["truncated", "uniform", "normal"])
def test_regions_are_slices_of_the_whole(init):
    shape = (7, 9)
    whole = init.values(5, shape, jnp.complex64)
    for region in [(slice(0, 3), slice(2, 9)), (slice(6, 7), slice(0, 1)), (slice(2, 5),)]:
        np.testing.assert_array_equal(init.values(5, shape, jnp.complex64, region), whole[region])


def test_jit_equals_eager():
    for init in (bj.he_normal(), bj.orthogonal(), bj.normal()):
        eager = init(KEY, (6, 4), jnp.complex64)
        jitted = jax.jit(init, static_argnums=(1, 2))(KEY, (6, 4), jnp.complex64)
        np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))


def test_orthogonal_is_haar_unitary():
    q = np.asarray(bj.orthogonal(2.0)(KEY, (12, 8), jnp.complex64)).astype(np.complex128)
    np.testing.assert_allclose(q.conj().T @ q, 4.0 * np.eye(8), atol=1e-5)
    wide = np.asarray(bj.orthogonal(column_axis=0)(KEY, (3, 5, 4), jnp.complex64)).astype(np.complex128)
    rows = np.moveaxis(wide, 0, -1).reshape(-1, 3)
    np.testing.assert_allclose(rows.conj().T @ rows, np.eye(3), atol=1e-5)
    # Haar: the first column is uniform on the complex sphere, so |q_11|^2 ~ Beta(1, n - 1) and its phase is uniform.
    n = 6
    init = bj.orthogonal(name="q")
    firsts = np.array([init.values(seed, (n, n), np.complex64)[0, 0] for seed in range(400)]).astype(np.complex128)
    assert ks_pvalue(abs(firsts) ** 2, stats.beta(1, n - 1)) > P_MIN
    assert ks_pvalue(np.angle(firsts), stats.uniform(-math.pi, 2 * math.pi)) > P_MIN


def test_delta_orthogonal_center_is_unitary():
    w = np.asarray(bj.delta_orthogonal(1.5)(KEY, (3, 3, 4, 6), jnp.complex64)).astype(np.complex128)
    center = w[1, 1]
    np.testing.assert_allclose(center @ center.conj().T, 2.25 * np.eye(4), atol=1e-5)
    w[1, 1] = 0
    assert not w.any()


def test_constants_and_zeros_fill_complex_as_jax():
    for ours, theirs in [(bj.zeros, jax.nn.initializers.zeros), (bj.ones, jax.nn.initializers.ones),
                         (bj.constant(1 + 2j), jax.nn.initializers.constant(1 + 2j))]:
        a, b = ours(KEY, (2, 3), jnp.complex64), theirs(KEY, (2, 3), jnp.complex64)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    eye = bj.initializer("eye")(KEY, (2, 3), jnp.complex64)  # berry's exact initializers: the real part
    np.testing.assert_array_equal(np.asarray(eye), np.eye(2, 3, dtype=np.complex64))


def test_complex_shards_are_the_whole_arrays_regions():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:1]), ("x",))
    init = bj.he_uniform()
    sharded = bj.sharded(init, (8, 4), NamedSharding(mesh, PartitionSpec("x")), KEY, jnp.complex64)
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(init(KEY, (8, 4), jnp.complex64)))
