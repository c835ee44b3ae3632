"""Gains: torch's table bit for bit, exact gains against mpmath and a 10^7-sample Monte Carlo, bad input."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_activations import CASES, mp_reference

from berry._special import ndtr_array
from berry._validation import UnknownNameError
from berry.activations import get_activation
from berry.gains import calculate_gain, gain, gaussian_expectation, leaky_relu_gain_squared, second_moment

mp.mp.dps = 30

TORCH_NAMES = [
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid", "tanh", "relu", "leaky_relu", "selu",
]


# --- calculate_gain: torch's table ---------------------------------------------------------------

def _torch_init():
    torch = pytest.importorskip("torch")
    return torch.nn.init


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_calculate_gain_is_torchs_bit_for_bit(name: str) -> None:
    init = _torch_init()
    ours, theirs = calculate_gain(name), init.calculate_gain(name)
    assert type(ours) is type(theirs) and ours == theirs and repr(ours) == repr(theirs)


@pytest.mark.parametrize("slope", [None, 0, 1, -1, 3, 0.0, 0.01, 0.2, -0.2, 1e-300, 1e10, 1e150, np.float64(0.3)])
def test_calculate_gain_leaky_relu_slopes(slope: float | None) -> None:
    init = _torch_init()
    ours, theirs = calculate_gain("leaky_relu", slope), init.calculate_gain("leaky_relu", slope)
    assert type(ours) is type(theirs) and repr(ours) == repr(theirs)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**200), 10**200)))
def test_calculate_gain_leaky_relu_any_slope(slope: float) -> None:
    init = _torch_init()
    try:
        theirs = init.calculate_gain("leaky_relu", slope)
    except OverflowError:  # a slope whose square overflows float64
        with pytest.raises(OverflowError, match="too large"):
            calculate_gain("leaky_relu", slope)
        return
    assert repr(calculate_gain("leaky_relu", slope)) == repr(theirs)


@pytest.mark.parametrize("name", ["ReLU", "Tanh", "gelu", "identity", "", "leaky relu", None, 3, ("relu",)])
def test_calculate_gain_unsupported_names_like_torch(name: object) -> None:
    init = _torch_init()
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain(name)
    with pytest.raises(ValueError, match="Unsupported nonlinearity") as info:
        calculate_gain(name)  # type: ignore[arg-type]
    assert isinstance(info.value, UnknownNameError)


def test_calculate_gain_suggests_a_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'relu'"):
        calculate_gain("ReLU")


@pytest.mark.parametrize("slope", [True, False, "0.1", [0.1], np.float32(0.1), np.int64(1), complex(1, 0)])
def test_calculate_gain_bad_slopes_like_torch(slope: object) -> None:
    init = _torch_init()
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", slope)
    with pytest.raises(ValueError, match=r"negative_slope.*not a valid number"):
        calculate_gain("leaky_relu", slope)  # type: ignore[arg-type]


@pytest.mark.parametrize("slope", [float("nan"), float("inf"), -float("inf")])
def test_calculate_gain_rejects_non_finite_slopes(slope: float) -> None:
    # A deliberate difference: torch returns nan or 0.0 here, silently.
    with pytest.raises(ValueError, match="finite"):
        calculate_gain("leaky_relu", slope)


def test_calculate_gain_ignores_param_except_for_leaky_relu_like_torch() -> None:
    init = _torch_init()
    for name in ("relu", "tanh", "selu", "linear"):
        assert calculate_gain(name, "anything") == init.calculate_gain(name, "anything")  # type: ignore[arg-type]


# --- gain: exact values ----------------------------------------------------------------------------

def mp_second_moment(name: str, param: float | None, mode: str) -> mp.mpf:
    """E[f(z)**2] or E[f'(z)**2] by 30-digit tanh-sinh quadrature, split at the kinks (independent of berry)."""
    if name == "sin":  # closed forms: an oscillating integrand is no test of the reference
        w = mp.mpf(param if param is not None else 1.0)
        if mode == "forward":
            return (1 - mp.exp(-2 * w * w)) / 2
        return w * w * (1 + mp.exp(-2 * w * w)) / 2
    f = mp_reference(name, param)
    g = f if mode == "forward" else (lambda x: mp.diff(f, x))
    kinks = sorted(set(get_activation(name, param).kinks) | {-4.0, 0.0, 4.0})
    points = [-mp.inf, *[mp.mpf(k) for k in kinks], mp.inf]
    return mp.quad(lambda x: g(x) ** 2 * mp.npdf(x), points)


@pytest.mark.parametrize("mode", ["forward", "backward"])
@pytest.mark.parametrize(("name", "param"), CASES)
def test_gain_matches_mpmath(name: str, param: float | None, mode: str) -> None:
    want = 1 / mp.sqrt(mp_second_moment(name, param, mode))
    got = gain(name, param, mode=mode)
    assert abs(got - want) <= 1e-13 * want, (got, want)


def test_closed_forms_are_exact() -> None:
    assert gain("relu") == math.sqrt(2.0) == calculate_gain("relu")
    assert gain("identity") == 1.0 == gain("linear") == gain("conv2d")
    assert gain("leaky_relu") == calculate_gain("leaky_relu")
    assert gain("squared_relu") == 1 / math.sqrt(1.5)
    assert abs(gain("selu") - 1.0) < 1e-15  # SELU keeps unit second moment by construction


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.floats(-20, 20, allow_nan=False))
def test_leaky_relu_gain_any_slope(slope: float) -> None:
    assert gain("leaky_relu", slope) == math.sqrt(2.0 / (1 + slope**2))
    # and the quadrature agrees with the closed form
    act = get_activation("leaky_relu", slope)
    moment = gaussian_expectation(lambda x: act(x) ** 2, act.kinks)
    assert abs(moment - (1 + slope**2) / 2) <= 1e-14 * (1 + slope**2)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.floats(-1e100, 1e100, allow_nan=False))
def test_leaky_relu_moment_and_gain_squared_are_one_formula(slope: float) -> None:
    # second_moment's closed form and the public gain formula (calculate_gain, gain, the he rule) are
    # reciprocals of each other, to rounding: neither can drift from the other.
    product = second_moment("leaky_relu", slope) * leaky_relu_gain_squared(slope)
    assert abs(product - 1.0) <= 4 * 2.0**-53
    assert second_moment("leaky_relu", slope, mode="backward") == second_moment("leaky_relu", slope)


def test_differs_from_torch_where_documented() -> None:
    assert abs(gain("tanh") - 1.5925374197228315) < 1e-13 and calculate_gain("tanh") == 5 / 3
    assert abs(gain("sigmoid") - 1.8462285453386054) < 1e-13 and calculate_gain("sigmoid") == 1
    assert abs(gain("selu") - 1) < 1e-13 and calculate_gain("selu") == 0.75


def test_second_moment() -> None:
    assert second_moment("relu") == 0.5
    assert abs(second_moment("tanh") - 1 / gain("tanh") ** 2) < 1e-15


# --- gain: callables -----------------------------------------------------------------------------

def test_smooth_callables_match_named() -> None:
    assert abs(gain(np.tanh) - gain("tanh")) < 1e-14
    assert abs(gain(math.tanh) - gain("tanh")) < 1e-14  # a scalar function, applied elementwise
    assert abs(gain(lambda x: x * ndtr_array(x)) - gain("gelu")) < 1e-13
    assert abs(gain(get_activation("mish")) - gain("mish")) < 1e-15


def test_callable_with_declared_kinks_matches_named() -> None:
    act = get_activation(lambda x: np.clip(x + 3, 0, 6) / 6, kinks=(-3.0, 3.0))
    assert abs(gain(act) / gain("hardsigmoid") - 1) < 1e-14


def test_fast_oscillation_is_resolved() -> None:
    # SIREN's first layer: sin(30 x), by quadrature, against the closed form.
    assert abs(gain(lambda x: np.sin(30.0 * x)) / gain("sin", 30.0) - 1) < 1e-12


def _max_moment(t: float) -> float:
    """E[max(z, t)**2] = t² Phi(t) + (1 - Phi(t)) + t phi(t)."""
    return float(t * t * mp.ncdf(t) + (1 - mp.ncdf(t)) + t * mp.npdf(t))


@settings(max_examples=25, derandomize=True, deadline=None)
@given(st.floats(-3, 3, allow_nan=False))
def test_undeclared_kink_anywhere(t: float) -> None:
    # max(z, t) has a kink at t that the quadrature is not told about.
    got = gain(lambda x: np.maximum(x, t))
    assert abs(got * math.sqrt(_max_moment(t)) - 1) < 1e-13


@settings(max_examples=15, derandomize=True, deadline=None)
@given(st.floats(-3, 3, allow_nan=False))
def test_undeclared_jump_anywhere(t: float) -> None:
    # A step at t: a discontinuous integrand, E[1(z > t)] = 1 - Phi(t).
    got = gain(lambda x: (x > t).astype(float))
    assert abs(got * math.sqrt(float(mp.ncdf(-t))) - 1) < 1e-12


# --- gain: bad input -----------------------------------------------------------------------------

def test_gain_bad_input() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'gelu'"):
        gain("gelu2")
    with pytest.raises(ValueError, match="takes no parameter"):
        gain("relu", 0.1)
    with pytest.raises(ValueError, match="finite"):
        gain("leaky_relu", float("nan"))
    with pytest.raises(TypeError, match="real number"):
        gain("elu", "1")  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="mode"):
        gain("relu", mode="sideways")
    with pytest.raises(ValueError, match="positive second moment"):
        gain(lambda x: 0.0 * x)
    with pytest.raises(ValueError, match="not finite"):
        gain(lambda x: np.exp(x * x / 4))
    with pytest.raises(ValueError, match="does not converge"):
        gain(lambda x: np.where(np.abs(x) > 35, 1e150, 1.0))
    with pytest.raises(OverflowError, match="too large"):
        calculate_gain("leaky_relu", 1e200)
    assert gain("leaky_relu", 1e200) == math.sqrt(2.0) / 1e200
    with pytest.raises(ValueError, match="not finite"):
        with np.errstate(divide="ignore", invalid="ignore"):
            gain(lambda x: np.log(x))


def test_named_gains_are_cached() -> None:
    assert gain("gelu_tanh") is gain("gelu_tanh")


# --- gain: Monte Carlo ---------------------------------------------------------------------------

MC_SAMPLES = 10**7
MC_CHUNK = 10**6  # bounds memory: 8 MB of draws at a time


def monte_carlo_second_moment(act, seed: int = 20261129) -> tuple[float, float]:
    """E[f(z)**2] from 10^7 standard normal draws with a fixed seed, and the estimate's standard error."""
    rng = np.random.default_rng(seed)
    total = total_of_squares = 0.0
    for _ in range(MC_SAMPLES // MC_CHUNK):
        y = act(rng.standard_normal(MC_CHUNK)) ** 2
        total += float(y.sum())
        total_of_squares += float(y @ y)
    mean = total / MC_SAMPLES
    return mean, math.sqrt((total_of_squares / MC_SAMPLES - mean * mean) / MC_SAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted({name for name, _ in CASES}))
def test_gain_matches_monte_carlo(name: str) -> None:
    moment, standard_error = monte_carlo_second_moment(get_activation(name))
    relative_error = 1 / math.sqrt(moment) / gain(name) - 1
    # The gain's standard error is half the moment's relative one: 1e-4 to 4e-4 here, except
    # squared_relu (7.5e-4: f(z)**2 = relu(z)**4 is heavy-tailed), so 1e-3 is 2.5 to 10 sigma
    # and, the seed being fixed, deterministic. Both bounds must hold.
    assert abs(relative_error) < 1e-3
    assert abs(relative_error) < 4 * standard_error / moment / 2


# --- the one Gaussian quadrature (berry._gaussian), shared with the probe's mean field ---------------


def test_gaussian_expectation_over_variances_matches_closed_forms() -> None:
    q = np.array([0.0, 1e-300, 0.25, 1.0, 7.5, 1e6])
    relu = get_activation("relu")
    stacked = gaussian_expectation(lambda x: np.stack([relu(x), relu(x) ** 2, relu.derivative(x) ** 2]),
                                   relu.kinks, variance=q)
    assert stacked.shape == (3, q.size)
    np.testing.assert_allclose(stacked[0], np.sqrt(q / (2 * math.pi)), rtol=1e-14, atol=0)  # E[relu]
    np.testing.assert_allclose(stacked[1], q / 2, rtol=1e-14, atol=0)                        # E[relu^2]
    np.testing.assert_allclose(stacked[2][1:], 0.5, rtol=1e-14)  # E[relu'^2]: one-sided limits at the kink
    assert stacked[2][0] == 0.0  # a point mass at 0, where relu'(0) = 0
    each = [gaussian_expectation(lambda x: np.tanh(x) ** 2, variance=v) for v in q]
    np.testing.assert_array_equal(gaussian_expectation(lambda x: np.tanh(x) ** 2, variance=q), each)


def test_gaussian_expectation_rejects_bad_variances() -> None:
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="variance"):
            gaussian_expectation(np.tanh, variance=bad)
    assert math.isnan(gaussian_expectation(lambda x: x * np.inf, variance=1.0, finite=False))
