"""Every distribution against its exact law, and the structure of the structural initializers.

Statistical tests use fixed seeds, so they are deterministic: a p-value above 1e-4 here is a
property of berry's stream, not luck on the day.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from _helpers import P_MIN, dtype_params, ks_pvalue

from berry import _lowp, _special
from berry.distributions import sparse_zero_count, uniform_bound
from berry.initializations import he, xavier
from berry.sampling import sample

stats = pytest.importorskip("scipy.stats")

SHAPE = (160, 125)  # 20000 samples
XAVIER_STD = xavier(fan_in=160, fan_out=125)


# -- elementwise laws --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_follows_its_law_at_the_rule_std(seed):
    w = sample(SHAPE, "xavier", seed=seed, name="w", dtype="float64")
    assert ks_pvalue(w, stats.norm(scale=XAVIER_STD)) > P_MIN
    assert abs(w.std() / XAVIER_STD - 1) < 0.03
    assert abs(w.mean()) < 4 * XAVIER_STD / math.sqrt(w.size)


def test_normal_with_mean_std_and_layout():
    w = sample((300, 80), "he", layout="torch", mean=0.5, dtype="float64", name="shifted")
    std = he(fan_in=80)
    assert ks_pvalue(w, stats.norm(loc=0.5, scale=std)) > P_MIN


@pytest.mark.parametrize(
    "bounds",
    [(-2.0, 2.0), (-1.0, 3.0), (-math.inf, 1.0), (0.0, math.inf), (2.0, 3.0), (5.0, 6.0), (-9.0, -8.0)],
)
def test_truncated_normal_with_variance_correction(bounds):
    a, b = bounds
    w = sample(SHAPE, "xavier", distribution="truncated_normal", bounds=bounds, dtype="float64", name=str(bounds))
    parent_scale = XAVIER_STD / _special.truncnorm_std(a, b)
    assert ks_pvalue(w, stats.truncnorm(a, b, scale=parent_scale)) > P_MIN
    # The correction makes the sample std the rule's std, whatever the interval.
    assert abs(w.std() / XAVIER_STD - 1) < 0.03
    assert w.min() >= a * parent_scale and w.max() <= b * parent_scale


@pytest.mark.parametrize("bounds", [(-2.0, 2.0), (-0.5, math.inf)])
def test_truncated_normal_without_correction_uses_the_parent_std(bounds):
    a, b = bounds
    w = sample(SHAPE, "xavier", distribution="trunc_normal", bounds=bounds, correct_variance=False, dtype="float64", name="w")
    law = stats.truncnorm(a, b, scale=XAVIER_STD)
    assert ks_pvalue(w, law) > P_MIN
    assert abs(w.std() / law.std() - 1) < 0.03


@pytest.mark.parametrize("width", [1e-6, 1e-4, 1e-2])
def test_truncated_normal_on_a_narrow_interval_has_the_asked_std(width):
    # The variance correction of v1 cancelled catastrophically: bounds (1, 1 + 1e-6) gave a sample std of
    # 0.0095 instead of 1 (the truncated std was 105x off).
    w = sample((20_000,), distribution="truncated_normal", std=1.0, bounds=(1.0, 1.0 + width), dtype="float64",
               name="narrow")
    assert abs(w.std() - 1.0) < 0.03
    assert ks_pvalue(w, stats.uniform(loc=w.min(), scale=w.max() - w.min())) > P_MIN  # nearly uniform there


def test_truncnorm_std_matches_scipy():
    for a, b in [(-2, 2), (-1, 3), (2, 3), (5, 6), (-math.inf, 0.5), (1, math.inf)]:
        assert _special.truncnorm_std(a, b) == pytest.approx(stats.truncnorm(a, b).std(), rel=1e-9)


def test_truncated_normal_with_std_and_mean():
    w = sample(SHAPE, distribution="truncated_normal", mean=1.0, std=0.02, dtype="float64", name="w")
    parent = 0.02 / _special.truncnorm_std(-2, 2)
    assert ks_pvalue(w, stats.truncnorm(-2, 2, loc=1.0, scale=parent)) > P_MIN


def test_uniform_from_the_rule_std():
    w = sample(SHAPE, "xavier", distribution="uniform", dtype="float64", name="w")
    bound = uniform_bound(XAVIER_STD)
    assert bound == pytest.approx(math.sqrt(3) * XAVIER_STD)
    assert ks_pvalue(w, stats.uniform(loc=-bound, scale=2 * bound)) > P_MIN
    assert abs(w.std() / XAVIER_STD - 1) < 0.03
    assert -bound < w.min() and w.max() < bound


def test_uniform_with_absolute_bounds():
    w = sample(SHAPE, distribution="uniform", low=-0.1, high=0.3, dtype="float64", name="w")
    assert ks_pvalue(w, stats.uniform(loc=-0.1, scale=0.4)) > P_MIN


@pytest.mark.parametrize("distribution", ["normal", "truncated_normal"])
@pytest.mark.parametrize("dtype", dtype_params(["float16", "bfloat16", "float32"]))
def test_low_precision_is_the_float32_transform_rounded_once(distribution, dtype):
    # normal and truncated normal in float32 and narrower come from the stream's float32 transform
    # (berry.stream docstring): loc + scale * z in float64, clamped, then rounded ONCE to the dtype.
    from berry import _stream_numpy, distributions, stream

    narrow = sample((64, 50), "he", distribution=distribution, dtype=dtype, name="lp")
    assert narrow.dtype.name == dtype
    law = distributions.elementwise_law(distribution, std=he(fan_in=64))
    params = stream.kernel_params(law, narrow.dtype)
    assert params.transform == 1  # the float32 transform
    before = _stream_numpy.prerounded(np.arange(narrow.size, dtype=np.uint64), stream.key_for(0, "lp"), params)
    expected = _lowp.round_float64(before, narrow.dtype).reshape(narrow.shape)
    np.testing.assert_array_equal(narrow.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("distribution", ["uniform"])
@pytest.mark.parametrize("dtype", dtype_params(["float16", "bfloat16", "float32"]))
def test_low_precision_is_the_float64_value_rounded_once(distribution, dtype):
    wide = sample((64, 50), "he", distribution=distribution, dtype="float64", name="lp")
    narrow = sample((64, 50), "he", distribution=distribution, dtype=dtype, name="lp")
    assert narrow.dtype.name == dtype
    expected = _lowp.round_float64(wide, narrow.dtype)
    if distribution != "normal":
        # Rounding may push a value onto or past a bound; the stream clamps it to the nearest value inside
        # (strictly inside the open interval of a uniform law).
        std = he(fan_in=64)
        bound = 2 * std / _special.truncnorm_std(-2, 2) if distribution == "truncated_normal" else uniform_bound(std)
        lo, hi = _lowp.inward_bounds(-bound, bound, narrow.dtype, open_interval=distribution == "uniform")
        expected = _lowp.round_float64(np.clip(expected.astype(np.float64), lo, hi), narrow.dtype)
    np.testing.assert_array_equal(narrow.astype(np.float64), expected.astype(np.float64))


def test_sparse_nonzeros_follow_torchs_default_law():
    w = sample((400, 50), "sparse", sparsity=0.5, dtype="float64", name="sp")
    nonzero = w[w != 0]
    assert nonzero.size == 400 * 50 // 2
    assert ks_pvalue(nonzero, stats.norm(scale=0.01)) > P_MIN


@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_sparse_nonzeros_with_other_laws(distribution):
    w = sample((300, 40), "sparse", sparsity=0.25, distribution=distribution, std=0.1, dtype="float64", name="w")
    nonzero = w[w != 0]
    assert abs(nonzero.std() / 0.1 - 1) < 0.05


# -- orthogonal -------------------------------------------------------------------------------


def _as_matrix(w: np.ndarray, layout: str) -> np.ndarray:
    axis = 0 if layout == "torch" else w.ndim - 1
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)


def _orthogonality_error(matrix: np.ndarray, gain: float = 1.0) -> float:
    small = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return float(np.abs(small - gain**2 * np.eye(len(small))).max())


ORTHOGONAL_SHAPES = [
    ((50, 50), "channels_last"),
    ((80, 30), "channels_last"),
    ((30, 80), "channels_last"),
    ((80, 30), "torch"),
    ((30, 80), "torch"),
    ((3, 3, 16, 32), "channels_last"),
    ((64, 16, 3, 3), "torch"),
    ((4, 4, 8), "channels_last"),
    ((8, 4, 5), "torch"),
    ((2, 3, 4, 5, 6), "torch"),
    # more than one block of reflectors, with a partial last block
    ((300, 300), "channels_last"),
    ((1000, 260), "channels_last"),
    ((260, 1000), "channels_last"),
    ((129, 2, 65), "torch"),
]


@pytest.mark.parametrize(("shape", "layout"), ORTHOGONAL_SHAPES)
@pytest.mark.parametrize(("dtype", "tolerance"), [("float64", 1e-6), ("float32", 1e-5)])
def test_orthogonal_is_orthogonal(shape, layout, dtype, tolerance):
    w = sample(shape, "orthogonal", layout=layout, dtype=dtype, name="q")
    assert w.dtype.name == dtype and w.shape == shape
    assert _orthogonality_error(_as_matrix(w, layout)) < tolerance


def test_orthogonal_times_gain():
    w = sample((40, 60), "orthogonal", gain=1.5, dtype="float64", name="w")
    assert _orthogonality_error(w, gain=1.5) < 1e-6
    np.testing.assert_allclose(w, 1.5 * sample((40, 60), "orthogonal", dtype="float64", name="w"), rtol=0, atol=1e-15)


def test_orthogonal_layouts_orthonormalize_the_output_units():
    # channels_last (in=40, out=20): the 20 output columns are orthonormal; torch (out=20, in=40): the rows.
    cl = sample((40, 20), "orthogonal", dtype="float64", name="w")
    np.testing.assert_allclose(cl.T @ cl, np.eye(20), atol=1e-12)
    torch_like = sample((20, 40), "orthogonal", layout="torch", dtype="float64", name="w")
    np.testing.assert_allclose(torch_like @ torch_like.T, np.eye(20), atol=1e-12)


def _haar_samples(shape: tuple[int, int], count: int, tag: str = "haar") -> np.ndarray:
    return np.stack([sample(shape, "orthogonal", dtype="float64", name=f"{tag}{i}") for i in range(count)])


def _entry_law(n: int):
    # A column (or row) of a Haar matrix of O(n) is uniform on the unit sphere of R^n, so one entry x
    # has density proportional to (1 - x^2)^((n-3)/2): (x + 1) / 2 ~ Beta((n-1)/2, (n-1)/2).
    return stats.beta((n - 1) / 2, (n - 1) / 2, loc=-1, scale=2)


@pytest.mark.parametrize("shape", [(8, 8), (10, 4), (4, 10), (7, 7)])
def test_orthogonal_is_haar_distributed(shape):
    # Every corner: the first entry depends on the first reflector only, the last ones on all of them
    # and on the sign correction. Without the sign correction the entries are biased.
    q = _haar_samples(shape, 1500)
    law = _entry_law(max(shape))
    for entry in [(0, 0), (-1, -1), (0, -1), (-1, 0), (shape[0] // 2, shape[1] // 2)]:
        assert ks_pvalue(q[(slice(None), *entry)], law) > P_MIN, entry


def test_orthogonal_entries_of_a_large_matrix_follow_the_exact_law():
    # Several blocks of reflectors; for large n, sqrt(n) * entry is nearly N(0, 1).
    n = 100
    q = _haar_samples((n, n), 400, tag="large")
    for entry in [(0, 0), (n - 1, n - 1), (n // 2, n - 1), (n - 1, 70)]:
        values = q[(slice(None), *entry)]
        assert ks_pvalue(values, _entry_law(n)) > P_MIN, entry
        assert ks_pvalue(values * math.sqrt(n), stats.norm()) > 1e-3, entry


@pytest.mark.parametrize("n", [16, 17])
def test_orthogonal_traces_and_determinants_follow_the_haar_law(n):
    # Haar O(n): tr Q and tr Q^2 are, up to an error that falls faster than any power of n (Diaconis and
    # Shahshahani 1994; Johansson 1997), N(0, 1) and N(1, 2); det Q = +1 and -1 equally likely.
    q = _haar_samples((n, n), 1500, tag="trace")
    assert ks_pvalue(np.trace(q, axis1=1, axis2=2), stats.norm()) > P_MIN
    assert ks_pvalue(np.einsum("kij,kji->k", q, q), stats.norm(loc=1, scale=math.sqrt(2))) > P_MIN
    det = np.linalg.det(q)
    np.testing.assert_allclose(np.abs(det), 1.0, atol=1e-12)
    assert stats.binomtest(int((det > 0).sum()), len(det)).pvalue > P_MIN


def test_orthogonal_stream_layout():
    # Documented layout: one float64 draw of n*m - m*(m-1)/2 normals; x_1 is the first n of them and the
    # first column of the tall matrix is x_1 / |x_1| (Stewart 1980 with Mezzadri's sign correction).
    from berry import stream
    from berry.distributions import orthogonal_matrix

    key = stream.key_for(3, "layout")
    n, m = 70, 20
    x = stream.draw((n * m - m * (m - 1) // 2,), stream.Normal(0.0, 1.0), key=key, dtype="float64")
    tall = orthogonal_matrix(n, m, key=key)
    np.testing.assert_allclose(tall[:, 0], x[:n] / np.linalg.norm(x[:n]), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(orthogonal_matrix(m, n, key=key), tall.T)
    np.testing.assert_array_equal(sample((n, m), "orthogonal", seed=3, name="layout", dtype="float64"), tall)


@pytest.mark.parametrize("shape", [(300, 300), (1000, 260), (3, 3, 64, 128)])
def test_orthogonal_low_precision_is_the_float64_matrix_to_1e_6(shape):
    # float32, float16 and bfloat16 outputs are computed in float32 (documented: within 1.5e-7 of float64).
    w64 = sample(shape, "orthogonal", name="precision", dtype="float64")
    w32 = sample(shape, "orthogonal", name="precision", dtype="float32")
    np.testing.assert_allclose(w32.astype(np.float64), w64, rtol=0, atol=1e-6)
    w16 = sample(shape, "orthogonal", name="precision", dtype="float16")
    np.testing.assert_array_equal(w16, _lowp.round_float64(w32.astype(np.float64), np.dtype("float16")))


def test_orthogonal_matrix_compute_dtypes():
    from berry import stream
    from berry.distributions import orthogonal_matrix

    key = stream.key_for(0, "dtype")
    assert orthogonal_matrix(7, 5, key=key, dtype="float32").dtype == np.float32
    assert orthogonal_matrix(0, 5, key=key).shape == (0, 5)
    with pytest.raises(ValueError, match="float32 or float64"):
        orthogonal_matrix(4, 4, key=key, dtype="float16")


def test_orthogonal_ignores_the_stream_thread_count():
    one = sample((300, 200), "orthogonal", name="threads", threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(sample((300, 200), "orthogonal", name="threads", threads=threads), one)


def test_orthogonal_distinct_names_give_distinct_matrices():
    a = sample((16, 16), "orthogonal", name="a")
    b = sample((16, 16), "orthogonal", name="b")
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, sample((16, 16), "orthogonal", name="a"))


ORTHOGONAL_SCRIPT = """
import hashlib, sys, numpy as np, berry
for shape in [(300, 300), (400, 120)]:
    for dtype in ("float64", "float32"):
        w = berry.sample(shape, "orthogonal", dtype=dtype, name="blas").astype(np.float64)
        sys.stdout.write(w.tobytes().hex() + "\\n")
"""


def _orthogonal_in_subprocess(**env_vars: str) -> list[np.ndarray]:
    env = {**os.environ, **env_vars, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", ORTHOGONAL_SCRIPT], capture_output=True, text=True, env=env, check=True)
    return [np.frombuffer(bytes.fromhex(line), dtype=np.float64) for line in result.stdout.split()]


@pytest.mark.slow
def test_orthogonal_across_blas_threads_and_cpu_kernels():
    # The documented guarantee: agreement to 1e-6 (not bits) for any BLAS thread count and CPU kernel;
    # other kernels are emulated with OPENBLAS_CORETYPE (x86-64 OpenBLAS only). Measured: about 1e-14.
    one = _orthogonal_in_subprocess(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    two = _orthogonal_in_subprocess(OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    uses_openblas = "openblas" in str(np.show_config(mode="dicts")["Build Dependencies"]["blas"]).lower()
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    if uses_openblas and platform.machine().lower() in ("x86_64", "amd64"):
        for a, b in zip(one, _orthogonal_in_subprocess(OPENBLAS_CORETYPE="Prescott"), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


# -- delta-orthogonal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((3, 8, 16), "channels_last"), ((3, 3, 8, 8), "channels_last"), ((16, 8, 5), "torch"), ((8, 4, 3, 3, 3), "torch")],
)
def test_delta_orthogonal_structure(shape, layout):
    w = sample(shape, "delta_orthogonal", layout=layout, gain=2.0, dtype="float64", name="delta")
    spatial = shape[2:] if layout == "torch" else shape[:-2]
    center = tuple((k - 1) // 2 for k in spatial)
    if layout == "torch":
        middle = w[(slice(None), slice(None), *center)]  # (out, in)
        rest = np.delete(w.reshape(*shape[:2], -1), np.ravel_multi_index(center, spatial), axis=-1)
        isometry = middle.T  # (in, out)
    else:
        middle = w[(*center, slice(None), slice(None))]  # (in, out)
        rest = np.delete(w.reshape(-1, *shape[-2:]), np.ravel_multi_index(center, spatial), axis=0)
        isometry = middle
    assert not rest.any()
    # Rows (input channels) orthonormal: the center map is an isometry from the inputs, times gain.
    np.testing.assert_allclose(isometry @ isometry.T, 4.0 * np.eye(isometry.shape[0]), atol=1e-12)


def test_delta_orthogonal_layouts_hold_the_same_matrix():
    cl = sample((3, 3, 4, 6), "delta_orthogonal", name="k")
    torch_layout = sample((6, 4, 3, 3), "delta_orthogonal", layout="torch", name="k")
    np.testing.assert_array_equal(np.moveaxis(cl, (-1, -2), (0, 1)), torch_layout)


def test_delta_orthogonal_even_kernel_center_is_the_lower_middle():
    w = sample((4, 2, 2), "delta_orthogonal", name="w")
    assert w[1].any() and not w[0].any() and not w[2:].any()


# -- eye, dirac -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (2, 3, 4, 4), (1, 0, 3)])
def test_eye_and_batched_eye(shape):
    w = sample(shape, "eye", gain=0.5)
    expected = np.broadcast_to(0.5 * np.eye(shape[-2], shape[-1]), shape)
    np.testing.assert_array_equal(w, expected)
    np.testing.assert_array_equal(sample(shape, "identity", gain=0.5), w)


def test_eye_matches_torch():
    torch = pytest.importorskip("torch")
    for shape in [(4, 6), (6, 4), (5, 5)]:
        t = torch.empty(shape)
        torch.nn.init.eye_(t)
        np.testing.assert_array_equal(sample(shape, "eye"), t.numpy())


DIRAC_CASES = [((4, 2, 3), 2), ((6, 3, 3, 3), 3), ((8, 2, 2, 5), 2), ((4, 4, 3, 2, 2), 1), ((5, 7, 3), 1), ((6, 2, 4), 1)]


@pytest.mark.parametrize(("shape", "groups"), DIRAC_CASES)
def test_dirac_structure(shape, groups):
    w = sample(shape, "dirac", layout="torch", groups=groups, dtype="float64")
    per_group = shape[0] // groups
    copies = min(per_group, shape[1])
    center = tuple(k // 2 for k in shape[2:])
    expected = np.zeros(shape)
    for group in range(groups):
        for channel in range(copies):
            expected[(group * per_group + channel, channel, *center)] = 1.0
    np.testing.assert_array_equal(w, expected)
    assert w.sum() == groups * copies
    # Channels-last stores the same kernel with (out, in) moved to the end, as (in, out).
    cl = sample((*shape[2:], shape[1], shape[0]), "dirac", groups=groups, dtype="float64")
    np.testing.assert_array_equal(np.moveaxis(cl, (-1, -2), (0, 1)), expected)


@pytest.mark.parametrize(("shape", "groups"), DIRAC_CASES)
def test_dirac_matches_torch(shape, groups):
    torch = pytest.importorskip("torch")
    t = torch.empty(shape)
    torch.nn.init.dirac_(t, groups=groups)
    np.testing.assert_array_equal(sample(shape, "dirac", layout="torch", groups=groups), t.numpy())


@pytest.mark.parametrize("groups", [1, 4, 1 << 24])
def test_dirac_region_of_a_huge_kernel_costs_the_region(groups):
    # v1 built index arrays over every channel: a 2x2 corner of a (2**24, 2**24, 3) kernel allocated ~600 MB.
    import tracemalloc

    shape, region = (1 << 24, 1 << 24, 3), (slice(7, 9), slice(7, 9), slice(0, 3))
    tracemalloc.start()
    try:
        corner = sample(shape, "dirac", layout="torch", groups=groups, region=region, dtype="float64")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    per_group = shape[0] // groups
    expected = np.zeros((2, 2, 3))
    for o in range(7, 9):
        if o % per_group < min(per_group, shape[1]) and 7 <= o % per_group < 9:
            expected[o - 7, o % per_group - 7, 1] = 1.0
    np.testing.assert_array_equal(corner, expected)


def test_dirac_convolution_is_the_identity():
    # A 1-D convolution with the dirac kernel returns its input (per output channel < in channels).
    w = sample((3, 4, 4), "dirac", dtype="float64")  # (k, in, out)
    x = np.arange(40, dtype=np.float64).reshape(10, 4)
    padded = np.pad(x, ((1, 1), (0, 0)))
    y = sum(padded[k : k + 10] @ w[k] for k in range(3))
    np.testing.assert_array_equal(y, x)


# -- sparse, constants -----------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.15, 1 / 3, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("shape", [(10, 7), (33, 5), (1, 4)])
def test_sparse_column_zero_counts_are_torchs(shape, sparsity):
    w = sample(shape, "sparse", sparsity=sparsity, name="s")
    expected = math.ceil(sparsity * shape[0])
    assert sparse_zero_count(shape[0], sparsity) == expected
    np.testing.assert_array_equal((w == 0).sum(axis=0), np.full(shape[1], expected))


def test_sparse_zero_positions_are_uniform_over_rows():
    # Each row should be zero in about sparsity * columns columns: chi-square against uniform.
    rows, cols = 8, 4000
    w = sample((rows, cols), "sparse", sparsity=0.25, name="uniform-rows")
    zeros_per_row = (w == 0).sum(axis=1)
    assert zeros_per_row.sum() == 2 * cols
    assert stats.chisquare(zeros_per_row).pvalue > P_MIN


def test_sparse_columns_choose_different_rows():
    w = sample((20, 50), "sparse", sparsity=0.5, name="w")
    patterns = {tuple(np.flatnonzero(column == 0)) for column in w.T}
    assert len(patterns) > 40


def test_sparse_matches_torch_counts():
    torch = pytest.importorskip("torch")
    t = torch.empty(30, 9)
    torch.nn.init.sparse_(t, sparsity=0.3)
    w = sample((30, 9), "sparse", sparsity=0.3, name="w")
    np.testing.assert_array_equal((w == 0).sum(0), (t.numpy() == 0).sum(0))


@pytest.mark.parametrize("dtype", dtype_params(["float16", "bfloat16", "float32", "float64"]))
def test_constants(dtype):
    assert not sample((3, 4), "zeros", dtype=dtype).astype(np.float64).any()
    assert (sample((3, 4), "ones", dtype=dtype).astype(np.float64) == 1).all()
    w = sample((2, 5), "constant", value=0.1, dtype=dtype)
    assert w.dtype.name == dtype
    expected = _lowp.round_float64(np.array([0.1]), w.dtype).astype(np.float64)[0]
    assert (w.astype(np.float64) == expected).all()
    assert sample((), "constant", value=2.0, dtype=dtype).shape == ()
