"""The stream's laws at their edges: tails, distinct values, endpoints, overflow, and every kind of ``out``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _helpers import P_MIN, assert_ks, dtype_params
from hypothesis import given, settings
from hypothesis import strategies as st

import berry
from berry import stream
from berry._lowp import resolve_dtype
from berry._special import ndtr
from berry.stream import Normal, TruncatedNormal, Uniform, draw, fill, key_for

INF = math.inf
HAVE_C = stream._CSTREAM is not None
needs_c = pytest.mark.skipif(not HAVE_C, reason="the C extension berry._cstream is not built")
BACKENDS = ["numpy", pytest.param("c", marks=needs_c)]


def poisson_two_sided_p(count: int, mean: float) -> float:
    """Two-sided p-value of ``count`` under Poisson(mean): twice the smaller tail, capped at 1."""
    pmf = [math.exp(-mean)]
    for k in range(1, max(count, int(mean * 4) + 50) + 1):
        pmf.append(pmf[-1] * mean / k)
    lower = sum(pmf[: count + 1])
    upper = 1.0 - sum(pmf[:count])
    return min(1.0, 2.0 * min(lower, upper))


# --- float32 truncated normals: tails and distinct values (issue 10, item 7) --------------------------------


@needs_c
def test_float32_truncated_normal_reaches_its_tails():
    # TN[-6, 6] in float32: 1e8 draws hold 11.4 values beyond 5.3 standard deviations. The 23-bit
    # recipe of stream v1 never went past 5.29 (0 of 11.4: p = 2e-5); each tail is checked on its own.
    n, chunk = 100_000_000, 1 << 23
    law = TruncatedNormal(0.0, 1.0, -6.0, 6.0)
    mass = 1.0 - 2.0 * ndtr(-6.0)
    counts = {5.0: [0, 0], 5.3: [0, 0], 5.6: [0, 0]}
    out = np.empty(chunk, dtype=np.float32)
    for start in range(0, n, chunk):
        part = out[: min(chunk, n - start)]
        fill(part, law, key=key_for(0, "tails"), global_shape=(n,), region_start=(start,))
        for edge, (low, high) in counts.items():
            counts[edge] = [low + int(np.count_nonzero(part < -edge)), high + int(np.count_nonzero(part > edge))]
    for edge, sides in counts.items():
        expected = n * (ndtr(-edge) - ndtr(-6.0)) / mass
        for count in sides:
            assert poisson_two_sided_p(count, expected) > P_MIN, (edge, count, expected)


@pytest.mark.parametrize(
    "law",
    [
        Normal(0.0, 1.0),
        TruncatedNormal(0.0, 1.0, -2.0, 2.0),
        TruncatedNormal(0.0, 1.0, -6.0, 6.0),
        TruncatedNormal(0.0, 1.0, -3.0, 1.5),
        TruncatedNormal(0.0, 1.0, 1.0, 4.0),
    ],
    ids=repr,
)
def test_float32_transform_has_as_many_distinct_values_as_its_law(law):
    # Ties among 2**20 float32 draws with |x| >= 1 (where float32's spacing is coarser than the transform's),
    # against the exact law rounded to float32 (the float64 output rounded): about 3000 for TN[-2, 2]. The
    # float32 transform has about 1.35 times as many (two roundings, of r and of z, make the mass per
    # float32 value uneven), the normal law as much as the truncated ones. Stream v1's truncated normals
    # drew 23 bits, at most 2**23 distinct values per tensor: 5.8 times as many ties. (Nearer 0 the
    # transform's values lie on a grid of about 7e-8: see the stream docstring.)
    n = 1 << 20
    key = key_for(1, "distinct")

    def ties(x: np.ndarray) -> int:
        x = x[np.abs(x) >= 1.0]
        return x.size - np.unique(x).size

    transform_ties = ties(draw((n,), law, key=key, dtype="float32"))
    exact_ties = ties(draw((n,), law, key=key, dtype="float64").astype(np.float32))
    assert exact_ties > 500
    assert transform_ties <= 1.6 * exact_ties


@pytest.mark.parametrize(
    ("a", "b"), [(-2.0, 2.0), (-6.0, 6.0), (-1.0, 0.5), (2.0, 3.0), (0.0, INF), (-INF, 1.0), (-3.0, -2.5), (1.5, 7.0)]
)
def test_float32_truncated_normal_matches_its_law(a, b):
    stats = pytest.importorskip("scipy.stats")
    law = TruncatedNormal(0.25, 0.5, a, b)
    assert stream.kernel_params(law, np.dtype("float32")).transform == 1  # the float32 transform, not the fallback
    x = draw((200_000,), law, key=key_for(2, f"ks32-{a}-{b}"), dtype="float32").astype(np.float64)
    exact = stats.truncnorm(a, b, loc=0.25, scale=0.5)
    assert_ks(x, exact)
    # the upper half of the draws (the complement form) against the law's upper half
    upper = x[x > exact.median()]
    assert_ks(upper, lambda t: 2.0 * exact.cdf(t) - 1.0, "upper half")


# --- Uniform: strictly inside (low, high) (issue 10, item 8) ------------------------------------------------


@pytest.mark.parametrize("dtype", dtype_params(["float64", "float32", "float16", "bfloat16"]))
@pytest.mark.parametrize("low_high", [(0.0, 1.0), (-1.0, 1.0), (-0.5, 0.25), (-2.0, -1.0)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_uniform_never_returns_an_endpoint(low_high, dtype, backend):
    # float16 Uniform(0, 1) rounded 1/4096 of its draws onto 1.0 in stream v1; the law is the open interval.
    low, high = low_high
    out = np.empty(1 << 16, dtype=resolve_dtype(dtype))
    fill(out, Uniform(low, high), key=key_for(3, "ends"), global_shape=out.shape, backend=backend)
    x = out.astype(np.float64)
    assert low < x.min() and x.max() < high
    # the cell next to an endpoint keeps at most 1.5 cells' mass (the half cell that rounded onto it)
    values, counts = np.unique(x, return_counts=True)
    if values.size > 8:
        assert counts[-1] <= 2.0 * counts[-5:-1].max() + 30 and counts[0] <= 2.0 * counts[1:5].max() + 30


def test_uniform_without_a_value_strictly_inside_uses_the_closed_interval():
    # (1, 1 + 2**-11) holds no float16 value; every draw rounds to 1.0, the only value of [1, 1 + 2**-11].
    assert np.all(draw((100,), Uniform(1.0, 1.0 + 2.0**-11), key=1, dtype="float16") == 1.0)


# --- overflow: an error naming the parameters, never inf, never a constant (issue 10, item 2) -----------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: Uniform(-1e308, 1e308), ["low=-1e+308", "high=1e+308"]),
        (lambda: Normal(0.0, 1e308), ["scale=1e+308"]),
        (lambda: Normal(1e308, 1e307), ["loc=1e+308", "scale=1e+307"]),
        (lambda: TruncatedNormal(0.0, 1e300, -1e10, 1e10), ["scale=1e+300", "a=-10000000000.0"]),
        (lambda: TruncatedNormal(0.0, 1e308, -2.0, 2.0), ["scale=1e+308", "b=2.0"]),
        (lambda: TruncatedNormal(1e308, 1e308, 0.0, INF), ["loc=1e+308"]),
    ],
)
def test_laws_whose_values_overflow_float64_are_rejected(make, names):
    with pytest.raises(ValueError, match="overflows float64") as error:
        make()
    for name in names:
        assert name in str(error.value)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"distribution": "uniform", "low": -1e308, "high": 1e308}, ["low=-1e+308", "high=1e+308"]),
        ({"distribution": "uniform", "std": 1e308}, ["std=1e+308"]),
        ({"distribution": "normal", "std": 1e308}, ["scale=1e+308"]),
        ({"distribution": "truncated_normal", "std": 1e308}, ["std=1e+308", "bounds=(-2.0, 2.0)"]),
        ({"distribution": "truncated_normal", "std": 1e300, "bounds": (-1e10, 1e10), "correct_variance": False}, ["a="]),
    ],
)
def test_sample_with_overflowing_parameters_raises(options, names):
    with pytest.raises(ValueError, match="overflow") as error:
        berry.sample((5,), dtype="float64", name="w", **options)
    for name in names:
        assert name in str(error.value)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("law", "dtype"),
    [
        (Normal(0.0, 1e38), "float32"),
        (Normal(0.0, 1e5), "float16"),
        (Uniform(-1e300, 1e300), "float32"),
        (Uniform(0.0, 7e4), "float16"),
        (TruncatedNormal(0.0, 1e300, -2.0, 2.0), "float32"),
        (TruncatedNormal(0.0, 1e4, 0.0, INF), "float16"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_laws_whose_values_overflow_the_dtype_are_rejected(law, dtype, backend):
    out = np.empty(10, dtype=dtype)
    with pytest.raises(ValueError, match=f"beyond the largest finite {dtype}"):
        fill(out, law, key=1, global_shape=(10,), backend=backend)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("law", "dtype"),
    [
        (Normal(0.0, 1e4), "float16"),  # the float32 transform's |z| <= 6.34: at most 63400 < 65504
        (Uniform(-1e300, 1e300), "float64"),
        (TruncatedNormal(0.0, 1e40, -1e-10, 1e-10), "float32"),  # values within 1e30, scale beyond float32
        (TruncatedNormal(0.0, 1.0, -1e10, 1e10), "float16"),  # bounds far beyond the reachable values
        (Normal(3e38, 1e36), "float32"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_large_laws_that_fit_the_dtype_give_finite_values_and_no_warning(law, dtype, backend):
    out = np.empty(20_000, dtype=dtype)
    fill(out, law, key=1, global_shape=out.shape, backend=backend)
    assert np.all(np.isfinite(out.astype(np.float64)))
    assert np.unique(out).size > 100


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"init": "constant", "value": 1e300, "dtype": "float32"}, "value=1e+300"),
        ({"init": "constant", "value": 1e5, "dtype": "float16"}, "value=100000.0"),
        ({"init": "eye", "gain": 1e300, "dtype": "float32"}, "gain=1e+300"),
        ({"init": "orthogonal", "gain": 1e39, "dtype": "float32"}, "gain=1e+39"),
        ({"distribution": "normal", "std": 0.0, "mean": 1e39, "dtype": "float32"}, "mean=1e+39"),
    ],
)
def test_structural_values_that_overflow_the_dtype_are_rejected(options, name):
    # v1 wrote inf (float16) or inf with a RuntimeWarning (float32).
    with pytest.raises(ValueError, match="beyond the largest finite") as error:
        berry.sample((2, 2), name="w", **options)
    assert name in str(error.value)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_truncation_bounds_beyond_the_dtype_give_no_warning(dtype):
    # the bounds are unreachable (|z| <= 8.2) but their rounding to the dtype overflows: inf, silently
    x = draw((1000,), TruncatedNormal(0.0, 1.0, -1e300, 1e300), key=1, dtype=dtype).astype(np.float64)
    assert np.all(np.abs(x) < 8.3)


def test_torch_uniform_with_an_overflowing_width_raises():
    torch = pytest.importorskip("torch")
    import berry.torch as init

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for options in ({"seed": 0, "name": "w"}, {}):
            with pytest.raises(ValueError, match="overflows float64"):
                init.uniform_(torch.empty(3, 4), -1e308, 1e308, **options)


# --- out: every kind of array, both backends (issue 10, item 4) ---------------------------------------------


def reference(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return draw(shape, Normal(), key=4, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_out_of_every_memory_layout(backend, dtype):
    expected = reference((10, 6), dtype)
    c_order = np.zeros((10, 6), dtype=dtype)
    fortran = np.zeros((10, 6), dtype=dtype, order="F")
    base = np.zeros((10, 12), dtype=dtype)
    strided = base[:, ::2]
    big_endian = np.zeros((10, 6), dtype=np.dtype(dtype).newbyteorder(">"))
    for out in (c_order, fortran, strided, big_endian):
        fill(out, Normal(), key=4, global_shape=(10, 6), backend=backend)
        assert np.array_equal(out.astype(dtype), expected)
    assert np.all(base[:, 1::2] == 0)  # the strided view wrote only its own elements


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_memmap_is_written_through(backend, tmp_path):
    out = np.memmap(tmp_path / "w.bin", dtype=np.float32, mode="w+", shape=(10, 6))
    fill(out, Normal(), key=4, global_shape=(10, 6), backend=backend)
    out.flush()
    assert np.array_equal(np.fromfile(tmp_path / "w.bin", dtype=np.float32).reshape(10, 6), reference((10, 6)))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
@pytest.mark.parametrize("backend", BACKENDS)
def test_out_subclasses_are_rejected_with_the_way_out(backend):
    # np.matrix stays 2-D when flattened: v1's NumPy backend wrote the first value everywhere.
    matrix = np.asmatrix(np.zeros((10, 6), dtype=np.float32))
    masked = np.ma.zeros((10, 6), dtype=np.float32)
    for out in (matrix, masked):
        with pytest.raises(TypeError, match=r"out\.view\(numpy\.ndarray\)"):
            fill(out, Normal(), key=4, global_shape=(10, 6), backend=backend)
    plain = matrix.view(np.ndarray)
    fill(plain, Normal(), key=4, global_shape=(10, 6), backend=backend)
    assert np.array_equal(np.asarray(matrix), reference((10, 6)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_read_only_or_of_a_wrong_dtype_is_rejected(backend):
    readonly = np.zeros((10, 6), dtype=np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        fill(readonly, Normal(), key=4, global_shape=(10, 6), backend=backend)
    for dtype in (np.int32, np.complex64, np.float128 if hasattr(np, "float128") else np.int8):
        with pytest.raises((TypeError, ValueError), match="dtype"):
            fill(np.zeros((10, 6), dtype=dtype), Normal(), key=4, global_shape=(10, 6), backend=backend)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_sample_out_of_every_kind():
    expected = berry.sample((10, 6), "he", seed=3, name="w")
    for out in (np.zeros((10, 6), np.float32), np.zeros((10, 6), np.float32, order="F"), np.zeros((10, 12), np.float32)[:, ::2]):
        berry.sample((10, 6), "he", seed=3, name="w", out=out)
        assert np.array_equal(out, expected)
    with pytest.raises(TypeError, match=r"out\.view\(numpy\.ndarray\)"):
        berry.sample((10, 6), "he", seed=3, name="w", out=np.asmatrix(np.zeros((10, 6), np.float32)))
    readonly = np.zeros((10, 6), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        berry.sample((10, 6), "he", seed=3, name="w", out=readonly)
    with pytest.raises(ValueError, match="dtype"):
        berry.sample((10, 6), "he", seed=3, name="w", out=np.zeros((10, 6), np.float64), dtype="float32")


# --- every law, any parameters: an error or finite values, never a warning (issue 10, item 2) ---------------

_HUGE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e308, max_value=1e308)
_SCALE = st.one_of(st.floats(min_value=0.0, max_value=1e308), st.sampled_from([0.0, 1e-300, 1e38, 1e300]))
_BOUND = st.one_of(st.floats(min_value=-50.0, max_value=50.0), st.sampled_from([-INF, INF, -1e300, 1e300, 0.0]))


@st.composite
def any_law(draw_):
    kind = draw_(st.sampled_from(["uniform", "normal", "truncated"]))
    if kind == "uniform":
        low, high = sorted((draw_(_HUGE), draw_(_HUGE)))
        return lambda: Uniform(low, high)
    loc, scale = draw_(_HUGE), draw_(_SCALE)
    if kind == "normal":
        return lambda: Normal(loc, scale)
    a, b = sorted((draw_(_BOUND), draw_(_BOUND)))
    return lambda: TruncatedNormal(loc, scale, a, b)


@pytest.mark.filterwarnings("error")
@settings(max_examples=300, derandomize=True, deadline=None)
@given(make=any_law(), dtype=st.sampled_from(["float64", "float32", "float16"]))
def test_any_law_gives_an_error_or_finite_values_never_a_warning(make, dtype):
    try:
        law = make()
        x = draw((64,), law, key=3, dtype=dtype).astype(np.float64)
    except ValueError as error:
        assert "overflow" in str(error) or "beyond" in str(error) or "a < b" in str(error) or "narrow" in str(
            error
        ) or "37 standard" in str(error) or "no " in str(error), str(error)
        return
    assert np.all(np.isfinite(x))
