"""Activation functions with exact derivatives and their kinks, in NumPy.

Each named activation is an :class:`Activation`: its function, its exact
derivative (the probe backpropagates through them) and its *kinks*, the points
where the function or its derivative is not smooth (the gain quadrature of
:mod:`berry.gains` integrates each smooth piece separately). Every function is
vectorized, computed in float64 and written to stay accurate for large ``|x|``
(no overflow in ``exp``, no cancellation in ``1 - tanh(x)**2``, the normal CDF
of :mod:`berry._special` with full relative precision in GELU's left tail).

>>> import numpy as np
>>> from berry.activations import get_activation
>>> gelu = get_activation("gelu")
>>> print(np.round(gelu(np.array([-1.0, 0.0, 1.0])), 6))
[-0.158655  0.        0.841345]
>>> get_activation("leaky_relu", 0.2).kinks
(0.0,)
>>> get_activation("swish").name
'silu'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from berry._special import ndtr_array, npdf_array
from berry._validation import check_finite, check_positive, unknown_name

__all__ = [
    "SELU_ALPHA",
    "SELU_SCALE",
    "Activation",
    "canonical_name",
    "describe",
    "get_activation",
    "list_activations",
]

Array = NDArray[np.float64]
ArrayFunction = Callable[[Array], Array]


# The SELU constants of Klambauer et al. (2017), eq. (14): the solutions of the
# fixed-point equations for mean 0 and variance 1, to the paper's 31 digits.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class Activation:
    """An elementwise activation function with its derivative and kinks.

    Attributes:
        name: the canonical name (``"relu"``, ``"gelu_tanh"``...), or the
            callable's ``__name__`` for a user function.
        param: the activation's parameter after defaults were applied
            (``leaky_relu``'s slope, ``elu``'s alpha...), ``None`` if it takes none.
        fn: the function, float64 array in, float64 array out (same shape).
        derivative: its derivative, same calling convention.
        kinks: sorted points where ``fn`` or ``derivative`` is not smooth.
            Empty for a user callable unless ``kinks=`` was given.
        exact_derivative: False when ``derivative`` is a finite-difference
            estimate (a user callable given without ``derivative=``).

    Calling the object applies ``fn`` to anything array-like.

    >>> from berry.activations import get_activation
    >>> relu = get_activation("relu")
    >>> relu([-2.0, 3.0]).tolist(), relu.derivative(np.array([-2.0, 3.0])).tolist()
    ([0.0, 3.0], [0.0, 1.0])
    """

    name: str
    param: float | None
    fn: ArrayFunction
    derivative: ArrayFunction
    kinks: tuple[float, ...] = ()
    exact_derivative: bool = True

    def __call__(self, x: ArrayLike) -> Array:
        return self.fn(np.asarray(x, dtype=np.float64))


# ---------------------------------------------------------------------------
# Numerically stable building blocks.


def _sigmoid(x: Array) -> Array:
    """1 / (1 + exp(-x)), never overflowing: exp of a non-positive number only."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_product(x: Array) -> Array:
    """sigmoid(x) * sigmoid(-x), the derivative of the sigmoid, without cancellation."""
    e = np.exp(-np.abs(x))
    return e / ((1.0 + e) * (1.0 + e))


def _softplus(x: Array) -> Array:
    """log(1 + exp(x)) for any x."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _tanh_softplus(x: Array) -> tuple[Array, Array]:
    """tanh(softplus(x)) and its complement 1 - tanh(softplus(x))**2, both without cancellation.

    With n = exp(x): tanh(log(1 + n)) = n (n + 2) / (n (n + 2) + 2); for x > 0 the same
    fraction is rewritten in m = exp(-x) as (1 + 2m) / (1 + 2m + 2m**2).
    """
    e = np.exp(-np.abs(x))  # n for x <= 0, m for x > 0
    positive = x > 0
    numerator = np.where(positive, 1.0 + 2.0 * e, e * (e + 2.0))
    denominator = np.where(positive, 1.0 + 2.0 * e + 2.0 * e * e, e * (e + 2.0) + 2.0)
    t = numerator / denominator
    one_minus_t = np.where(positive, 2.0 * e * e, 2.0) / denominator
    return t, one_minus_t * (1.0 + t)


def _where_positive(x: Array, positive: Array, negative: Array) -> Array:
    return np.where(x > 0, positive, negative)


# ---------------------------------------------------------------------------
# The named activations. Each builder takes the (validated) parameter and returns
# (fn, derivative, kinks).

Built = tuple[ArrayFunction, ArrayFunction, tuple[float, ...]]


def _identity(_: Any) -> Built:
    return (lambda x: x.copy()), (lambda x: np.ones_like(x)), ()


def _relu(_: Any) -> Built:
    # Derivative 0 at the kink, as autograd in torch, JAX and TensorFlow.
    return (lambda x: np.maximum(x, 0.0)), (lambda x: (x > 0).astype(np.float64)), (0.0,)


def _leaky_relu(slope: float) -> Built:
    return ((lambda x: np.where(x > 0, x, slope * x)),
            (lambda x: np.where(x > 0, 1.0, slope)), (0.0,))


def _relu6(_: Any) -> Built:
    return ((lambda x: np.clip(x, 0.0, 6.0)),
            (lambda x: ((x > 0) & (x < 6)).astype(np.float64)), (0.0, 6.0))


def _squared_relu(_: Any) -> Built:
    return (lambda x: np.maximum(x, 0.0) ** 2), (lambda x: 2.0 * np.maximum(x, 0.0)), (0.0,)


def _elu(alpha: float) -> Built:
    def fn(x: Array) -> Array:
        return _where_positive(x, x, alpha * np.expm1(np.minimum(x, 0.0)))

    def derivative(x: Array) -> Array:
        return _where_positive(x, np.ones_like(x), alpha * np.exp(np.minimum(x, 0.0)))

    return fn, derivative, (0.0,)


def _celu(alpha: float) -> Built:
    def fn(x: Array) -> Array:
        return _where_positive(x, x, alpha * np.expm1(np.minimum(x, 0.0) / alpha))

    def derivative(x: Array) -> Array:
        return _where_positive(x, np.ones_like(x), np.exp(np.minimum(x, 0.0) / alpha))

    # alpha = 1 is smooth (C^1) at 0 but its second derivative still jumps there.
    return fn, derivative, (0.0,)


def _selu(_: Any) -> Built:
    elu_fn, elu_derivative, kinks = _elu(SELU_ALPHA)
    return (lambda x: SELU_SCALE * elu_fn(x)), (lambda x: SELU_SCALE * elu_derivative(x)), kinks


def _gelu(_: Any) -> Built:
    return (lambda x: x * ndtr_array(x)), (lambda x: ndtr_array(x) + x * npdf_array(x)), ()


_GELU_TANH_C = math.sqrt(2.0 / math.pi)
_GELU_TANH_CUBIC = 0.044715


def _gelu_tanh(_: Any) -> Built:
    # 0.5 (1 + tanh u) = sigmoid(2u): no cancellation in the left tail. The cubic is formed
    # from x clipped to +-1e3, where sigmoid(2u) is already exactly 0 or 1, so it cannot overflow.
    def inner(x: Array) -> Array:
        xc = np.clip(x, -1e3, 1e3)
        return 2.0 * _GELU_TANH_C * (xc + _GELU_TANH_CUBIC * xc**3)

    def fn(x: Array) -> Array:
        return x * _sigmoid(inner(x))

    def derivative(x: Array) -> Array:
        xc = np.clip(x, -1e3, 1e3)
        d_inner = 2.0 * _GELU_TANH_C * (1.0 + 3.0 * _GELU_TANH_CUBIC * xc * xc)
        return _sigmoid(inner(x)) + xc * _sigmoid_product(inner(x)) * d_inner

    return fn, derivative, ()


def _quick_gelu(_: Any) -> Built:
    silu_fn, silu_derivative, _kinks = _silu(1.702)
    return silu_fn, silu_derivative, ()


def _silu(beta: float) -> Built:
    def fn(x: Array) -> Array:
        return x * _sigmoid(beta * x)

    def derivative(x: Array) -> Array:
        return _sigmoid(beta * x) + beta * x * _sigmoid_product(beta * x)

    return fn, derivative, ()


def _mish(_: Any) -> Built:
    def fn(x: Array) -> Array:
        return x * _tanh_softplus(x)[0]

    def derivative(x: Array) -> Array:
        t, sech2 = _tanh_softplus(x)
        return t + x * sech2 * _sigmoid(x)

    return fn, derivative, ()


def _softplus_beta(beta: float) -> Built:
    return (lambda x: _softplus(beta * x) / beta), (lambda x: _sigmoid(beta * x)), ()


def _softsign(_: Any) -> Built:
    return (lambda x: x / (1.0 + np.abs(x))), (lambda x: 1.0 / (1.0 + np.abs(x)) ** 2), ()


def _hardswish(_: Any) -> Built:
    def fn(x: Array) -> Array:
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0

    def derivative(x: Array) -> Array:
        # torch's convention at the kinks: the middle branch on [-3, 3].
        return np.where(x < -3, 0.0, np.where(x > 3, 1.0, x / 3.0 + 0.5))

    return fn, derivative, (-3.0, 3.0)


def _hardsigmoid(_: Any) -> Built:
    return ((lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0),
            (lambda x: np.where((x > -3) & (x < 3), 1.0 / 6.0, 0.0)), (-3.0, 3.0))


def _hardtanh(_: Any) -> Built:
    return ((lambda x: np.clip(x, -1.0, 1.0)),
            (lambda x: ((x > -1) & (x < 1)).astype(np.float64)), (-1.0, 1.0))


def _sigmoid_activation(_: Any) -> Built:
    return _sigmoid, _sigmoid_product, ()


def _tanh(_: Any) -> Built:
    # 1 - tanh(x)**2 = 4 sigmoid(2x) sigmoid(-2x), exact in relative terms for large |x|.
    return np.tanh, (lambda x: 4.0 * _sigmoid_product(2.0 * x)), ()


def _log_sigmoid(_: Any) -> Built:
    return (lambda x: -_softplus(-x)), (lambda x: _sigmoid(-x)), ()


def _sin(frequency: float) -> Built:
    return (lambda x: np.sin(frequency * x)), (lambda x: frequency * np.cos(frequency * x)), ()


@dataclass(frozen=True)
class _Definition:
    build: Callable[[Any], Built]
    default: float | None = None  # None: the activation takes no parameter
    param_name: str = ""
    check: Callable[[str, Any], float] | None = None
    summary: str = ""


def _check_positive(argument: str, value: Any) -> float:
    return check_positive(argument, value)


_DEFINITIONS: dict[str, _Definition] = {
    "identity": _Definition(_identity, summary="f(x) = x"),
    "relu": _Definition(_relu, summary="max(x, 0) (Nair & Hinton 2010)"),
    "leaky_relu": _Definition(_leaky_relu, 0.01, "negative_slope", check_finite,
                              "x for x > 0, slope * x otherwise (Maas et al. 2013); default slope 0.01 as torch"),
    "relu6": _Definition(_relu6, summary="min(max(x, 0), 6) (Krizhevsky 2010, MobileNet)"),
    "squared_relu": _Definition(_squared_relu, summary="max(x, 0)**2 (So et al. 2021, Primer)"),
    "elu": _Definition(_elu, 1.0, "alpha", check_finite,
                       "x for x > 0, alpha (exp(x) - 1) otherwise (Clevert et al. 2016)"),
    "celu": _Definition(_celu, 1.0, "alpha", _check_positive,
                        "x for x > 0, alpha (exp(x / alpha) - 1) otherwise (Barron 2017)"),
    "selu": _Definition(_selu, summary="scale * elu(x, alpha) with the constants of Klambauer et al. 2017"),
    "gelu": _Definition(_gelu, summary="x Phi(x), the exact (erf) form (Hendrycks & Gimpel 2016)"),
    "gelu_tanh": _Definition(_gelu_tanh, summary="x sigmoid(2 sqrt(2/pi) (x + 0.044715 x**3)), GELU's tanh form"),
    "quick_gelu": _Definition(_quick_gelu, summary="x sigmoid(1.702 x) (CLIP's approximation of GELU)"),
    "silu": _Definition(_silu, 1.0, "beta", check_finite,
                        "x sigmoid(beta x) (Elfwing et al. 2018; Ramachandran et al. 2017's swish)"),
    "mish": _Definition(_mish, summary="x tanh(softplus(x)) (Misra 2019)"),
    "softplus": _Definition(_softplus_beta, 1.0, "beta", _check_positive,
                            "log(1 + exp(beta x)) / beta, exact (torch switches to x above beta x = 20)"),
    "softsign": _Definition(_softsign, summary="x / (1 + |x|)"),
    "hardswish": _Definition(_hardswish, summary="x relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3)"),
    "hardsigmoid": _Definition(_hardsigmoid, summary="relu6(x + 3) / 6 (torch's and Keras 3's definition)"),
    "hardtanh": _Definition(_hardtanh, summary="min(max(x, -1), 1)"),
    "sigmoid": _Definition(_sigmoid_activation, summary="1 / (1 + exp(-x))"),
    "tanh": _Definition(_tanh, summary="tanh(x)"),
    "log_sigmoid": _Definition(_log_sigmoid, summary="log(sigmoid(x)) = -softplus(-x)"),
    "sin": _Definition(_sin, 1.0, "frequency", _check_positive,
                       "sin(frequency x) (SIREN, Sitzmann et al. 2020, uses frequency 30 in its first layer)"),
}

_ALIASES: dict[str, str] = {
    "linear": "identity",
    "swish": "silu",
    "leakyrelu": "leaky_relu",
    "lrelu": "leaky_relu",
    "relu_squared": "squared_relu",
    "relu2": "squared_relu",
    "gelu_erf": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_approximate": "gelu_tanh",
    "hard_swish": "hardswish",
    "hard_silu": "hardswish",
    "hard_sigmoid": "hardsigmoid",
    "hard_tanh": "hardtanh",
    "logistic": "sigmoid",
    "logsigmoid": "log_sigmoid",
    "sine": "sin",
    "siren": "sin",
}


def list_activations(*, aliases: bool = True) -> list[str]:
    """The names :func:`get_activation` accepts, sorted (aliases included unless ``aliases=False``).

    >>> "gelu_tanh" in list_activations(aliases=False), "swish" in list_activations()
    (True, True)
    """
    names = set(_DEFINITIONS)
    if aliases:
        names |= set(_ALIASES)
    return sorted(names)


def canonical_name(name: str) -> str:
    """The canonical activation name for ``name`` (case, ``-`` and spaces ignored; aliases resolved).

    >>> canonical_name("Leaky-ReLU"), canonical_name("swish")
    ('leaky_relu', 'silu')
    """
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name or a callable, got {name!r} of type {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _DEFINITIONS:
        raise unknown_name("activation", name, list_activations())
    return key


def _check_param(name: str, param: Any) -> float | None:
    definition = _DEFINITIONS[name]
    if definition.default is None:
        if param is not None:
            raise ValueError(f"activation {name!r} takes no parameter, got param={param!r}")
        return None
    if param is None:
        return definition.default
    assert definition.check is not None
    return definition.check(f"param ({name}'s {definition.param_name})", param)


def _as_array_function(f: Callable[..., Any]) -> ArrayFunction:
    """``f`` applied to float64 arrays; element by element if ``f`` does not take arrays (``math.tanh``)."""

    def apply(x: Array) -> Array:
        try:
            y = np.asarray(f(x), dtype=np.float64)
        except (TypeError, ValueError):
            y = np.vectorize(lambda v: float(f(float(v))), otypes=[np.float64])(x)
        if y.shape != x.shape:
            try:
                y = np.broadcast_to(y, x.shape).copy()
            except ValueError:
                raise ValueError(f"activation {f!r} returned shape {y.shape} for input of shape {x.shape}; "
                                 "an activation must act elementwise") from None
        return y

    return apply


def _finite_difference(fn: ArrayFunction) -> ArrayFunction:
    """Fourth-order central differences, error about 1e-12 relative where ``fn`` is smooth.

    (The complex step would be exact to rounding but silently wrong for functions
    written with ``abs``, ``maximum`` or comparisons, which are common in activations.)
    """

    def derivative(x: Array) -> Array:
        step = np.finfo(np.float64).eps ** 0.2 * np.maximum(1.0, np.abs(x))
        step = (x + step) - x  # make x +- step exactly representable
        return (8.0 * (fn(x + step) - fn(x - step)) - (fn(x + 2 * step) - fn(x - 2 * step))) / (12.0 * step)

    return derivative


def get_activation(
    activation: str | Callable[..., Any] | Activation,
    param: float | None = None,
    *,
    derivative: Callable[..., Any] | None = None,
    kinks: Sequence[float] = (),
) -> Activation:
    """The :class:`Activation` for a name or a Python/NumPy callable.

    A name is looked up case-insensitively (``-`` and spaces count as ``_``),
    with aliases: ``linear`` = ``identity``, ``swish`` = ``silu``,
    ``gelu_new``/``gelu_pytorch_tanh`` = ``gelu_tanh``, ``hard_swish``... (see
    :func:`list_activations`). ``param`` is the activation's parameter:
    ``leaky_relu``'s negative slope (default 0.01, as torch), ``elu``'s and
    ``celu``'s alpha (default 1; celu needs alpha > 0), ``silu``'s beta (default
    1), ``softplus``'s beta (default 1, > 0) and ``sin``'s frequency (default 1,
    > 0); the other names take none.

    A callable ``f`` is used as it is: it should act elementwise on a float64
    array (a scalar function such as ``math.tanh`` is applied element by
    element, slowly). Its derivative is ``derivative`` if given, otherwise a
    fourth-order central difference (about 1e-12 relative where ``f`` is smooth,
    wrong within a few 1e-3 of a kink; ``exact_derivative`` is then False).
    ``kinks`` tells :func:`berry.gains.gain` where ``f`` is not smooth.

    Note: JAX's ``jax.nn.gelu`` defaults to the tanh form; berry's ``gelu`` is
    the exact erf form, as ``torch.nn.functional.gelu`` and Keras.

    Args:
        activation: a name, a callable, or an :class:`Activation` (returned as is).
        param: the parameter of a named activation (``None``: its default).
        derivative: the derivative of a callable ``activation``.
        kinks: the points where a callable ``activation`` is not smooth.

    Raises:
        UnknownNameError: an unknown name (a ValueError, with a did-you-mean).
        TypeError / ValueError: a bad ``param`` (not a number, NaN, infinite,
            out of range, or given to an activation that takes none).

    >>> import numpy as np
    >>> act = get_activation("elu", 0.5)
    >>> act.name, act.param, act.kinks
    ('elu', 0.5, (0.0,))
    >>> print(np.round(act(np.array([-1.0, 2.0])), 6))
    [-0.31606  2.     ]
    >>> cube = get_activation(lambda x: x**3)
    >>> bool(abs(cube.derivative(np.array([2.0]))[0] - 12.0) < 1e-9), cube.exact_derivative
    (True, False)
    """
    if isinstance(activation, Activation):
        if param is not None or derivative is not None or len(kinks):
            raise ValueError("param, derivative and kinks cannot be given with an Activation object")
        return activation
    if isinstance(activation, str):
        if derivative is not None or len(kinks):
            raise ValueError("derivative and kinks are only for callables; a named activation has its own")
        name = canonical_name(activation)
        value = _check_param(name, param)
        fn, exact_derivative, known_kinks = _DEFINITIONS[name].build(value)
        return Activation(name, value, fn, exact_derivative, known_kinks)
    if not callable(activation):
        raise TypeError(f"activation must be a name or a callable, got {activation!r} "
                        f"of type {type(activation).__name__}")
    if param is not None:
        raise ValueError("param is only for named activations; bind a callable's parameters yourself "
                         f"(functools.partial or a lambda), got param={param!r}")
    checked_kinks = tuple(sorted({check_finite(f"kinks[{i}]", k) for i, k in enumerate(kinks)}))
    fn = _as_array_function(activation)
    name = getattr(activation, "__name__", None) or type(activation).__name__
    if derivative is None:
        return Activation(name, None, fn, _finite_difference(fn), checked_kinks, exact_derivative=False)
    if not callable(derivative):
        raise TypeError(f"derivative must be a callable, got {derivative!r}")
    return Activation(name, None, fn, _as_array_function(derivative), checked_kinks)


def describe(name: str) -> str:
    """A one-line description of a named activation.

    >>> describe("relu6")
    'min(max(x, 0), 6) (Krizhevsky 2010, MobileNet)'
    """
    return _DEFINITIONS[canonical_name(name)].summary
