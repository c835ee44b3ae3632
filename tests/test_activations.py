"""Activations: values and derivatives against 30-digit mpmath formulas and torch, names, bad input."""

from __future__ import annotations

import dataclasses
import math
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berry._special import ndtr, ndtr_array, npdf_array
from berry._validation import UnknownNameError
from berry.activations import (
    SELU_ALPHA,
    SELU_SCALE,
    Activation,
    get_activation,
    list_activations,
)

mp.mp.dps = 30

# (name, param) pairs covering every named activation, defaults and other parameters.
CASES: list[tuple[str, float | None]] = [
    ("identity", None),
    ("relu", None),
    ("leaky_relu", None),
    ("leaky_relu", 0.2),
    ("leaky_relu", -0.5),
    ("relu6", None),
    ("squared_relu", None),
    ("elu", None),
    ("elu", 0.5),
    ("celu", None),
    ("celu", 2.0),
    ("selu", None),
    ("gelu", None),
    ("gelu_tanh", None),
    ("quick_gelu", None),
    ("silu", None),
    ("silu", 1.5),
    ("mish", None),
    ("softplus", None),
    ("softplus", 2.0),
    ("softsign", None),
    ("hardswish", None),
    ("hardsigmoid", None),
    ("hardtanh", None),
    ("sigmoid", None),
    ("tanh", None),
    ("log_sigmoid", None),
    ("sin", None),
    ("sin", 30.0),
]

EXPECTED_KINKS = {
    "relu": (0.0,), "leaky_relu": (0.0,), "relu6": (0.0, 6.0), "squared_relu": (0.0,), "elu": (0.0,),
    "celu": (0.0,), "selu": (0.0,), "hardswish": (-3.0, 3.0), "hardsigmoid": (-3.0, 3.0),
    "hardtanh": (-1.0, 1.0),
}


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def mp_reference(name: str, param: float | None):
    """The activation written directly from its paper's formula, in mpmath (independent of berry)."""
    p = None if param is None else mp.mpf(param)
    selu_alpha = mp.mpf("1.6732632423543772848170429916717")
    selu_scale = mp.mpf("1.0507009873554804934193349852946")
    c = mp.sqrt(2 / mp.pi)
    table = {
        "identity": lambda x: x,
        "relu": lambda x: max(x, 0),
        "leaky_relu": lambda x: x if x > 0 else (p if p is not None else mp.mpf("0.01")) * x,
        "relu6": lambda x: min(max(x, 0), 6),
        "squared_relu": lambda x: max(x, 0) ** 2,
        "elu": lambda x: x if x > 0 else (p if p is not None else 1) * mp.expm1(x),
        "celu": lambda x: x if x > 0 else (p if p is not None else 1) * mp.expm1(x / (p if p is not None else 1)),
        "selu": lambda x: selu_scale * (x if x > 0 else selu_alpha * mp.expm1(x)),
        "gelu": lambda x: x * mp.ncdf(x),
        # x (1 + tanh u) / 2 = x sigmoid(2u): the same function, without 30-digit cancellation in the tail.
        "gelu_tanh": lambda x: x * _sigmoid(2 * c * (x + mp.mpf("0.044715") * x**3)),
        "quick_gelu": lambda x: x * _sigmoid(mp.mpf("1.702") * x),
        "silu": lambda x: x * _sigmoid((p if p is not None else 1) * x),
        "mish": lambda x: x * mp.tanh(mp.log1p(mp.exp(x))),
        "softplus": lambda x: mp.log1p(mp.exp((p if p is not None else 1) * x)) / (p if p is not None else 1),
        "softsign": lambda x: x / (1 + abs(x)),
        "hardswish": lambda x: x * min(max(x + 3, 0), 6) / 6,
        "hardsigmoid": lambda x: min(max(x + 3, 0), 6) / 6,
        "hardtanh": lambda x: min(max(x, -1), 1),
        "sigmoid": _sigmoid,
        "tanh": mp.tanh,
        "log_sigmoid": lambda x: -mp.log1p(mp.exp(-x)),
        "sin": lambda x: mp.sin((p if p is not None else 1) * x),
    }
    return table[name]


GRID = np.concatenate([np.linspace(-20.0, 20.0, 401) + 0.0123, [-20.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 20.0]])


def _away_from_kinks(x: np.ndarray, kinks: tuple[float, ...], margin: float) -> np.ndarray:
    keep = np.ones(x.shape, dtype=bool)
    for kink in kinks:
        keep &= np.abs(x - kink) > margin
    return x[keep]


def _relative_error(got: np.ndarray, want: np.ndarray, floor: float = 1e-300) -> float:
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), floor)))


def test_every_named_activation_is_covered() -> None:
    assert {name for name, _ in CASES} == set(list_activations(aliases=False))


@pytest.mark.parametrize(("name", "param"), CASES)
def test_values_match_mpmath(name: str, param: float | None) -> None:
    act = get_activation(name, param)
    reference = mp_reference(name, param)
    want = np.array([float(reference(mp.mpf(float(x)))) for x in GRID])
    # 1e-12 relative allows for the conditioning of e.g. sigmoid(2u(x)) at |x| = 20; sin(30 x) near
    # its zeros is ill-conditioned in relative terms (the product 30 x is rounded), so absolute there.
    floor = 1.0 if name == "sin" else 1e-300
    assert _relative_error(act(GRID), want, floor) < 1e-12


@pytest.mark.parametrize(("name", "param"), CASES)
def test_derivatives_match_mpmath(name: str, param: float | None) -> None:
    act = get_activation(name, param)
    reference = mp_reference(name, param)
    x = _away_from_kinks(GRID[::4], act.kinks, 1e-3)
    want = np.array([float(mp.diff(reference, mp.mpf(float(v)))) for v in x])
    assert _relative_error(act.derivative(x), want) < 1e-12
    assert act.exact_derivative


@pytest.mark.parametrize(("name", "param"), CASES)
def test_derivatives_match_finite_differences(name: str, param: float | None) -> None:
    act = get_activation(name, param)
    x = _away_from_kinks(np.linspace(-8.0, 8.0, 161) + 0.00731, act.kinks, 1e-4)
    h = 1e-6
    numeric = (act(x + h) - act(x - h)) / (2 * h)
    scale = max(1.0, float(np.max(np.abs(act.derivative(x)))))
    np.testing.assert_allclose(act.derivative(x), numeric, rtol=1e-6, atol=1e-7 * scale)


@pytest.mark.parametrize(("name", "param"), CASES)
def test_stable_for_large_inputs(name: str, param: float | None) -> None:
    act = get_activation(name, param)
    x = np.array([-1e4, -800.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        values, slopes = act(x), act.derivative(x)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(slopes))
    assert values.dtype == np.float64 and values.shape == x.shape


@pytest.mark.parametrize(("name", "param"), CASES)
def test_kinks(name: str, param: float | None) -> None:
    assert get_activation(name, param).kinks == EXPECTED_KINKS.get(name, ())


def test_selu_constants_are_the_papers() -> None:
    # Klambauer et al. 2017, eq. (14), to 31 digits; the float64 values are the nearest doubles.
    assert SELU_ALPHA == float(mp.mpf("1.6732632423543772848170429916717"))
    assert SELU_SCALE == float(mp.mpf("1.0507009873554804934193349852946"))


# --- torch.nn.functional as a second reference -------------------------------------------------

def _torch_functions():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return torch, {
        ("relu", None): F.relu,
        ("leaky_relu", None): F.leaky_relu,
        ("leaky_relu", 0.2): lambda t: F.leaky_relu(t, 0.2),
        ("relu6", None): F.relu6,
        ("elu", None): F.elu,
        ("elu", 0.5): lambda t: F.elu(t, 0.5),
        ("celu", 2.0): lambda t: F.celu(t, 2.0),
        ("selu", None): F.selu,
        ("gelu", None): F.gelu,
        ("gelu_tanh", None): lambda t: F.gelu(t, approximate="tanh"),
        ("silu", None): F.silu,
        ("mish", None): F.mish,
        ("softplus", None): F.softplus,
        ("softplus", 2.0): lambda t: F.softplus(t, beta=2.0),
        ("softsign", None): F.softsign,
        ("hardswish", None): F.hardswish,
        ("hardsigmoid", None): F.hardsigmoid,
        ("hardtanh", None): F.hardtanh,
        ("sigmoid", None): torch.sigmoid,
        ("tanh", None): torch.tanh,
        ("log_sigmoid", None): F.logsigmoid,
    }


TORCH_CASES = [
    ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("relu6", None), ("elu", None), ("elu", 0.5),
    ("celu", 2.0), ("selu", None), ("gelu", None), ("gelu_tanh", None), ("silu", None), ("mish", None),
    ("softplus", None), ("softplus", 2.0), ("softsign", None), ("hardswish", None), ("hardsigmoid", None),
    ("hardtanh", None), ("sigmoid", None), ("tanh", None), ("log_sigmoid", None),
]


@pytest.mark.parametrize(("name", "param"), TORCH_CASES)
def test_values_and_derivatives_match_torch(name: str, param: float | None) -> None:
    torch, functions = _torch_functions()
    act = get_activation(name, param)
    x = _away_from_kinks(np.linspace(-30.0, 30.0, 1201) + 0.0037, act.kinks, 1e-6)
    if name == "softplus":
        # torch returns x itself above beta * x = 20, an approximation of about 2e-9 / beta.
        x = x[(param or 1.0) * x <= 20]
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = functions[(name, param)](t)
    (grad,) = torch.autograd.grad(y.sum(), t)
    # Absolute floor: torch computes gelu as x (1 + erf(x / sqrt 2)) / 2 and its tanh form as
    # x (1 + tanh u) / 2, which cancel in the left tail (berry's forms do not; see the mpmath tests).
    np.testing.assert_allclose(act(x), y.detach().numpy(), rtol=1e-12, atol=1e-13)
    # torch's hardsigmoid backward multiplies by 1/6 rounded to float32, even in float64.
    rtol = 1e-7 if name == "hardsigmoid" else 1e-12
    np.testing.assert_allclose(act.derivative(x), grad.numpy(), rtol=rtol, atol=1e-13)


# --- names, aliases and bad input --------------------------------------------------------------

@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("linear", "identity"), ("swish", "silu"), ("Swish", "silu"), ("GELU", "gelu"), ("gelu-tanh", "gelu_tanh"),
     ("gelu_new", "gelu_tanh"), ("gelu_pytorch_tanh", "gelu_tanh"), ("hard_swish", "hardswish"),
     ("Leaky ReLU", "leaky_relu"), ("logistic", "sigmoid"), ("hard_sigmoid", "hardsigmoid"), ("siren", "sin")],
)
def test_aliases(alias: str, canonical: str) -> None:
    assert get_activation(alias).name == canonical
    assert alias.lower().replace("-", "_").replace(" ", "_") in list_activations()


def test_defaults_follow_torch() -> None:
    assert get_activation("leaky_relu").param == 0.01
    assert get_activation("elu").param == 1.0
    assert get_activation("softplus").param == 1.0
    assert get_activation("relu").param is None


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"activation='gleu'.*Did you mean 'gelu'") as info:
        get_activation("gleu")
    assert isinstance(info.value, ValueError) and isinstance(info.value, NotImplementedError)


@pytest.mark.parametrize(
    ("name", "param", "error", "match"),
    [
        ("relu", 0.1, ValueError, "takes no parameter"),
        ("leaky_relu", float("nan"), ValueError, "finite"),
        ("leaky_relu", float("inf"), ValueError, "finite"),
        ("leaky_relu", "0.1", TypeError, "real number"),
        ("leaky_relu", True, TypeError, "real number"),
        ("elu", [1.0], TypeError, "real number"),
        ("celu", 0.0, ValueError, "> 0"),
        ("celu", -1.0, ValueError, "> 0"),
        ("softplus", -2.0, ValueError, "> 0"),
        ("sin", 0, ValueError, "> 0"),
    ],
)
def test_bad_params(name: str, param: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        get_activation(name, param)  # type: ignore[arg-type]
    assert name in str(info.value) or "param" in str(info.value)


def test_bad_activation_types() -> None:
    with pytest.raises(TypeError, match="name or a callable"):
        get_activation(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only for named"):
        get_activation(np.tanh, 0.5)
    with pytest.raises(ValueError, match="only for callables"):
        get_activation("relu", kinks=(0.0,))
    with pytest.raises(ValueError, match="finite"):
        get_activation(np.tanh, kinks=(float("nan"),))


def test_activation_is_frozen() -> None:
    act = get_activation("relu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        act.name = "other"  # type: ignore[misc]
    assert get_activation(act) is act


# --- callables ---------------------------------------------------------------------------------

def test_numpy_callable_gets_a_numeric_derivative() -> None:
    act = get_activation(np.tanh)
    x = np.linspace(-5, 5, 101)
    assert act.name == "tanh" and not act.exact_derivative and act.kinks == ()
    np.testing.assert_allclose(act.derivative(x), 1 - np.tanh(x) ** 2, rtol=1e-10, atol=1e-13)


def test_scalar_callable_is_applied_elementwise() -> None:
    act = get_activation(math.tanh, kinks=(1.0, -1.0))
    x = np.array([[-1.0, 0.5], [2.0, 3.0]])
    np.testing.assert_allclose(act(x), np.tanh(x), rtol=1e-15)
    assert act.kinks == (-1.0, 1.0)


def test_callable_with_given_derivative() -> None:
    act = get_activation(lambda x: x**2, derivative=lambda x: 2 * x)
    assert act.exact_derivative
    assert act.derivative(np.array([3.0])).tolist() == [6.0]


def test_constant_callable_is_broadcast_and_non_elementwise_is_refused() -> None:
    assert get_activation(lambda x: 2.0)(np.zeros(3)).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="elementwise"):
        get_activation(lambda x: np.zeros(7))(np.zeros(3))


# --- the normal CDF and density behind GELU (berry._special: the one copy, shared with the stream) ----

def test_gelu_normal_cdf_and_density_match_mpmath() -> None:
    y = np.concatenate([np.linspace(-37.0, 8.0, 901), np.geomspace(1e-300, 1.5, 60), -np.geomspace(1e-300, 1.5, 60)])
    want_cdf = np.array([float(mp.ncdf(v)) for v in y])
    assert _relative_error(ndtr_array(y), want_cdf) < 2e-15
    want_pdf = np.array([float(mp.npdf(v)) for v in y])
    keep = want_pdf > 1e-300
    assert _relative_error(npdf_array(y)[keep], want_pdf[keep]) < 2e-15


@settings(max_examples=80, derandomize=True, deadline=None)
@given(st.lists(st.floats(-1e300, 1e300, allow_nan=False), min_size=1, max_size=30))
def test_normal_cdf_of_a_batch_equals_each_value_alone(values: list[float]) -> None:
    x = np.array(values)
    vector = ndtr_array(x)
    scalar = np.array([ndtr.__wrapped__(v) for v in values])  # uncached: computed afresh
    np.testing.assert_array_equal(vector.view(np.uint64), scalar.view(np.uint64))
    assert np.all((vector >= 0) & (vector <= 1))


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.floats(-5, 5), st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=20))
def test_leaky_relu_any_slope(slope: float, values: list[float]) -> None:
    x = np.array(values)
    act = get_activation("leaky_relu", slope)
    np.testing.assert_array_equal(act(x), np.where(x > 0, x, slope * x))


def test_no_warnings_at_extremes() -> None:
    x = np.array([-np.finfo(np.float64).max / 4, -1e300, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("relu", "gelu", "tanh", "sigmoid", "softplus", "silu", "mish"):
            assert isinstance(get_activation(name)(x), np.ndarray)
        assert ndtr_array(x).tolist() == [0.0, 0.0, 1.0]
    assert isinstance(get_activation("relu"), Activation)
