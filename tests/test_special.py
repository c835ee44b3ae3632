"""berry._special: deterministic log, exp, ndtr, ndtri and truncated-normal moments, against references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from berry import _special
from berry._lowp import inward_bounds, resolve_dtype, round_float64

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 40


def ulps(value: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(value - reference) / np.spacing(np.abs(reference))


def test_log_is_within_one_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [np.exp(rng.uniform(-744, 709, 100_000)), rng.uniform(0.5, 2.0, 100_000), [1.0, 2.0, 0.5]]
    )
    assert ulps(_special.log_array(x), np.log(x)).max() <= 1.0
    assert _special.log_array(np.array([1.0]))[0] == 0.0


def test_log_of_subnormals_and_zero():
    x = np.array([5e-324, 1e-310, 2.2e-308])
    reference = np.array([float(mpmath.log(mpmath.mpf(v))) for v in x])
    assert ulps(_special.log_array(x), reference).max() <= 1.0
    assert _special.log_array(np.array([0.0]))[0] == -np.inf


def test_exp_is_accurate():
    for x in np.linspace(-740, 709, 2001):
        reference = float(mpmath.exp(mpmath.mpf(float(x))))
        assert abs(_special.exp(float(x)) - reference) <= 2 * math.ulp(reference)
    assert _special.exp(-800.0) == 0.0 and _special.exp(800.0) == math.inf and _special.exp(0.0) == 1.0


def _ndtri_reference(p: float) -> float:
    digits = 40 if p > 1e-20 else 40 - int(math.log10(p))  # 2p - 1 must keep p's digits
    with mpmath.workdps(digits):
        return float(mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(p) - 1))


def test_ndtri_relative_error():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(0, 1, 1_000), 10.0 ** -rng.uniform(0, 300, 100), [2.0**-53, 0.075, 0.925]])
    p = p[(p > 0) & (p < 1) & (p != 0.5)]
    reference = np.array([_ndtri_reference(v) for v in p])
    assert np.max(np.abs(_special.ndtri_array(p) / reference - 1)) < 3e-15


def test_ndtri_is_odd_about_one_half():
    p = np.arange(1, 2048) / 4096.0  # dyadic, so 1 - p is exact
    assert np.array_equal(_special.ndtri_array(p), -_special.ndtri_array(1.0 - p))
    assert _special.ndtri(0.5) == 0.0
    assert _special.ndtri(0.0) == -math.inf and _special.ndtri(1.0) == math.inf
    with pytest.raises(ValueError, match="p must be in"):
        _special.ndtri(1.5)


@pytest.mark.parametrize(
    "x", [-37.0, -30.0, -10.0, -5.0, -3.0, -1.6, -1.5, -1.49, -1.0, -0.3, 0.0, 0.7, 1.5, 3.0, 9.0]
)
def test_ndtr_full_relative_precision(x):
    reference = float(mpmath.ncdf(x))
    assert abs(_special.ndtr(x) / reference - 1) < 1e-15


def test_ndtr_limits():
    assert _special.ndtr(-math.inf) == 0.0 and _special.ndtr(math.inf) == 1.0
    assert math.isnan(_special.ndtr(math.nan))


@pytest.mark.parametrize(
    ("a", "b"),
    [(-2.0, 2.0), (2.0, 3.0), (5.0, 6.0), (-1.0, 0.5), (-math.inf, 1.0), (2.0, math.inf), (-3.0, -2.5)],
)
def test_truncnorm_moments(a, b):
    stats = pytest.importorskip("scipy.stats")
    mean, std = _special.truncnorm_mean_std(a, b)
    law = stats.truncnorm(a, b)
    assert abs(std / law.std() - 1) < 1e-11
    assert abs(mean - law.mean()) < 1e-11 * max(1.0, abs(law.mean()))
    assert _special.truncnorm_std(a, b) == std


def test_truncnorm_std_of_the_whole_line_is_one():
    assert abs(_special.truncnorm_std(-math.inf, math.inf) - 1) < 1e-15
    with pytest.raises(ValueError, match="a < b"):
        _special.truncnorm_std(1.0, 1.0)


# --- rounding into small formats (berry._lowp) --------------------------------------------------------


def test_float16_rounding_matches_numpy_everywhere():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(200_000) * 10.0 ** rng.integers(-9, 6, 200_000)
    x = np.concatenate(
        [x, [0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 2.0**-24, 2.0**-25, 3 * 2.0**-26]]
    )
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16)
    assert np.array_equal(round_float64(x, np.dtype(np.float16)).view(np.uint16), expected.view(np.uint16))


def test_bfloat16_rounds_once_from_float64():
    pytest.importorskip("ml_dtypes")
    bf16 = resolve_dtype("bfloat16")
    # 1 + 2**-8 is a tie between bfloat16 neighbours 1 and 1 + 2**-7; the tiny extra must round up,
    # whereas a detour through float32 drops it and then rounds the tie to even (down): double rounding.
    x = np.array([1.0 + 2.0**-8 + 2.0**-40])
    assert float(round_float64(x, bf16)[0]) == 1.0 + 2.0**-7
    assert float(x.astype(np.float32).astype(bf16)[0]) == 1.0
    rng = np.random.default_rng(3)
    y = (
        rng.standard_normal(100_000).astype(np.float32).astype(np.float64)
    )  # float32-exact: one rounding either way
    assert np.array_equal(
        round_float64(y, bf16).view(np.uint16), y.astype(np.float32).astype(bf16).view(np.uint16)
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_inward_bounds(dtype):
    pytest.importorskip("ml_dtypes") if dtype == "bfloat16" else None
    resolved = resolve_dtype(dtype)
    low, high = inward_bounds(-0.04, 0.1, resolved)
    assert -0.04 <= low and high <= 0.1
    assert float(round_float64(np.array([low]), resolved).astype(np.float64)[0]) == low
    assert inward_bounds(-math.inf, math.inf, resolved) == (-math.inf, math.inf)
