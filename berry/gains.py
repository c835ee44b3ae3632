"""Gains: torch's table, and the exact variance-preserving gain of any activation.

Two functions, for two purposes:

* :func:`calculate_gain` returns exactly what ``torch.nn.init.calculate_gain``
  returns (the same numbers to the last bit, the same errors), for code that
  must reproduce torch.
* :func:`gain` returns the gain that keeps the second moment of the signal
  unchanged through a layer followed by the activation,

  .. math:: g(f) = \\frac{1}{\\sqrt{\\mathbb{E}[f(z)^2]}}, \\qquad z \\sim \\mathcal{N}(0, 1),

  for every named activation of :mod:`berry.activations` and for any callable,
  by closed form or by quadrature to 1e-10 relative or better.

Why the forward definition: with weights of variance ``g**2 / fan_in`` and inputs
``x = f(h)`` of the previous pre-activations ``h ~ N(0, q)``, the next pre-activations
have variance ``fan_in * Var(w) * E[x**2] = g**2 E[f(h)**2]`` (He et al. 2015,
eq. 7 and 8: it is the *second moment* of ``f``, not its variance, that matters).
At ``q = 1`` this is 1 exactly when ``g = 1 / sqrt(E[f(z)**2])``. For a
positively homogeneous ``f`` (relu, leaky_relu, identity) the ratio does not
depend on ``q``, so the gain keeps every layer's variance fixed; for the others
it is exact at unit variance, the regime the rule is meant to hold.

Where this differs from torch's table (``calculate_gain``), and why:

============  ==============  ===========  ============================================
activation    torch           ``gain``     reason
============  ==============  ===========  ============================================
linear        1               1            same
relu          sqrt(2)         sqrt(2)      same (He et al. 2015)
leaky_relu    sqrt(2/(1+a²))  same         same closed form
tanh          5/3             1.59254      torch's 5/3 is a heuristic value (it keeps
                                           tanh units a little into their non-linear
                                           range); the exact second-moment gain is
                                           1/sqrt(E[tanh(z)²])
sigmoid       1               1.84623      torch applies no correction; E[σ(z)²] = 0.2934
selu          3/4             1            SELU's constants make E[selu(z)²] = 1
                                           (Klambauer et al. 2017), so SELU networks
                                           need gain 1 (lecun_normal) to self-normalize.
                                           torch's 3/4 was found empirically, for stable
                                           gradients in a deep stack of square layers
                                           (pytorch/pytorch PR 50664, after a forum
                                           suggestion); issue 24991 and PR 53694 note
                                           that the paper's fixed point needs 1, and
                                           torch's docs now say to use ``'linear'``
                                           for self-normalizing networks.
============  ==============  ===========  ============================================

The backward variant, ``gain(f, mode="backward")`` = ``1 / sqrt(E[f'(z)**2])``,
keeps the second moment of the gradients through the layer instead (He et al.
2015, section 2.2, used with ``mode="fan_out"``). It equals the forward gain for
relu, leaky_relu and identity and differs elsewhere (tanh: 1.46741..., selu:
0.96603...).

>>> from berry.gains import calculate_gain, gain
>>> calculate_gain("tanh"), round(gain("tanh"), 6)
(1.6666666666666667, 1.592537)
>>> gain("relu") == calculate_gain("relu")
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from berry._gaussian import gaussian_expectation
from berry._special import npdf_array
from berry._validation import UnknownNameError, check_choice, unknown_name
from berry.activations import Activation, get_activation

__all__ = ["calculate_gain", "gain", "gaussian_expectation", "second_moment"]

# The nonlinearity names torch.nn.init.calculate_gain knows (torch 2.13).
_TORCH_IDENTITY_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
_TORCH_NAMES = (*_TORCH_IDENTITY_NAMES, "sigmoid", "tanh", "relu", "leaky_relu", "selu")
_TORCH_DEFAULT_SLOPE = 0.01


def calculate_gain(nonlinearity: str, param: int | float | None = None) -> float:
    """The gain ``torch.nn.init.calculate_gain`` recommends, bit for bit.

    A drop-in for torch 2.13's table, which is empirical for tanh and selu (see
    the module docstring and :func:`gain` for the exact, activation-derived values):

    .. math::

        \\text{linear, conv*, conv\\_transpose*, sigmoid: } 1 \\quad
        \\text{tanh: } \\tfrac{5}{3} \\quad \\text{relu: } \\sqrt{2} \\quad
        \\text{leaky\\_relu: } \\sqrt{\\tfrac{2}{1 + a^2}} \\quad \\text{selu: } \\tfrac{3}{4}

    Same semantics as torch: names are case-sensitive; ``param`` is read only by
    ``leaky_relu`` (the negative slope ``a``, default 0.01), where it must be a
    Python ``int`` or ``float`` (not a ``bool``: ``ValueError``, like any other
    type); the identity names and sigmoid return the int ``1``, as torch does.
    One deliberate difference: a NaN or infinite slope is rejected with a
    ``ValueError`` (torch silently returns ``nan`` or ``0.0``).

    Args:
        nonlinearity: a name torch knows: ``linear``, ``conv1d``/``2d``/``3d``,
            ``conv_transpose1d``/``2d``/``3d``, ``sigmoid``, ``tanh``, ``relu``,
            ``leaky_relu``, ``selu``.
        param: ``leaky_relu``'s negative slope.

    Raises:
        ValueError: an unsupported name (an :class:`~berry._validation.UnknownNameError`,
            message starting "Unsupported nonlinearity", with a did-you-mean), or a
            slope that is not a valid number.

    >>> calculate_gain("leaky_relu", 0.2) == (2.0 / (1 + 0.2**2)) ** 0.5
    True
    >>> calculate_gain("selu"), calculate_gain("conv2d")
    (0.75, 1)
    """
    if isinstance(nonlinearity, str):
        if nonlinearity in _TORCH_IDENTITY_NAMES or nonlinearity == "sigmoid":
            return 1
        if nonlinearity == "tanh":
            return 5.0 / 3
        if nonlinearity == "relu":
            return math.sqrt(2.0)
        if nonlinearity == "leaky_relu":
            slope = _torch_slope(param)
            try:
                return math.sqrt(leaky_relu_gain_squared(slope))
            except OverflowError:  # torch raises OverflowError here too
                raise OverflowError(f"negative_slope {param!r} is too large: its square overflows float64 "
                                    "(torch raises OverflowError as well)") from None
        if nonlinearity == "selu":
            return 3.0 / 4
    hint = unknown_name("nonlinearity", nonlinearity, _TORCH_NAMES)
    raise UnknownNameError(f"Unsupported nonlinearity {nonlinearity!r}: {hint}")


def leaky_relu_gain_squared(negative_slope: float) -> float:
    """``2 / (1 + a**2)``, the squared gain of a leaky ReLU of slope ``a`` (He et al. 2015, eq. 15).

    The one place of this formula (calculate_gain, gain and the ``he`` rule use it), written as torch
    writes it, so calculate_gain stays torch's bit for bit and a slope whose square overflows raises
    ``OverflowError`` as in torch.
    """
    return 2.0 / (1 + negative_slope**2)


def _torch_slope(param: Any) -> int | float:
    """leaky_relu's slope as torch accepts it: None (0.01), or an int or float that is not a bool."""
    if param is None:
        return _TORCH_DEFAULT_SLOPE
    if isinstance(param, bool) or not isinstance(param, (int, float)):
        raise ValueError(f"negative_slope {param!r} is not a valid number: leaky_relu's param must be "
                         f"an int or a float, got type {type(param).__name__}")
    if not math.isfinite(param):
        raise ValueError(f"negative_slope {param!r} is not a valid number: it must be finite")
    return param


def second_moment(activation: str | Callable[..., Any] | Activation, param: float | None = None,
                  *, mode: str = "forward") -> float:
    """E[f(z)**2] (``mode="forward"``) or E[f'(z)**2] (``"backward"``) for z ~ N(0, 1).

    >>> round(second_moment("relu"), 12), round(second_moment("tanh", mode="backward"), 6)
    (0.5, 0.464403)
    """
    mode = check_choice("mode", mode, ("forward", "backward"))
    if isinstance(activation, str):
        name = _identity_alias(activation)
        checked = get_activation(name, param)
        return _named_second_moment(checked.name, checked.param, mode)
    return _computed_second_moment(get_activation(activation, param), mode)


def _identity_alias(name: str) -> str:
    """torch's layer names (``conv2d``...) mean 'no activation' in its gain table; accept them too."""
    return "identity" if name in _TORCH_IDENTITY_NAMES else name


@functools.lru_cache(maxsize=512)
def _named_second_moment(name: str, param: float | None, mode: str) -> float:
    closed = _closed_form(name, param, mode)
    if closed is not None:
        return closed
    return _computed_second_moment(get_activation(name, param), mode)


def _closed_form(name: str, param: float | None, mode: str) -> float | None:
    """E[f(z)**2] or E[f'(z)**2] where a closed form exists without special functions."""
    if name == "identity":
        return 1.0
    if name == "relu":
        return 0.5
    if name == "leaky_relu":
        assert param is not None
        # (1 + a²)/2, the same for f and f' (both piecewise linear): the reciprocal of
        # leaky_relu_gain_squared, kept as its own expression because 1 / (2 / (1 + a**2)) differs from
        # it in the last bit for 9% of slopes (and a**2 from a*a for 0.1%), and second_moment's values
        # must not change; tests/test_gains.py checks the two agree to 2 ulps.
        return (1 + param * param) / 2
    if name == "squared_relu":
        return 1.5 if mode == "forward" else 2.0  # E[z**4; z > 0] and E[4 z**2; z > 0]
    if name == "sin":
        assert param is not None
        two_w2 = 2.0 * param * param
        if mode == "forward":
            return -0.5 * math.expm1(-two_w2)  # E[sin(wz)**2] = (1 - exp(-2w²)) / 2
        return param * param * (1.0 + math.exp(-two_w2)) / 2  # E[w² cos(wz)**2]
    if name == "hardtanh" and mode == "forward":
        return 1.0 - 2.0 * float(npdf_array(np.array(1.0)))  # E[clip(z, -1, 1)**2] = 1 - 2 phi(1)
    return None


def _computed_second_moment(activation: Activation, mode: str) -> float:
    f = activation.fn if mode == "forward" else activation.derivative

    def squared(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return f(x) ** 2

    moment = "E[f(z)**2]" if mode == "forward" else "E[f'(z)**2]"
    return gaussian_expectation(squared, activation.kinks, what=f"{moment} of activation {activation.name!r}")


def gain(activation: str | Callable[..., Any] | Activation, param: float | None = None,
         *, mode: str = "forward") -> float:
    """The variance-preserving gain of an activation: ``1 / sqrt(E[f(z)**2])``, z ~ N(0, 1).

    Use it with a scale-1 rule, ``std = gain(f) / sqrt(fan_in)`` (``berry.lecun(shape,
    gain=gain(f))``; for relu that is He's rule), so that a layer followed by ``f``
    keeps unit second moment (He et al. 2015, "Delving deep into rectifiers",
    eq. 10, generalised from relu to any ``f``):

    .. math:: g = \\Big(\\int f(x)^2\\, \\varphi(x)\\, dx\\Big)^{-1/2}

    ``mode="backward"`` gives ``1 / sqrt(E[f'(z)**2])`` instead, which keeps the
    second moment of the backpropagated gradient (He et al. 2015, eq. 13).

    Closed forms where they exist (identity 1, relu sqrt(2), leaky_relu
    sqrt(2 / (1 + a²)), hardtanh 1/sqrt(1 - 2 phi(1)), squared_relu sqrt(2/3),
    sin(w x) sqrt(2 / (1 - exp(-2 w²)))), otherwise :func:`gaussian_expectation`
    (berry's one Gaussian quadrature, :mod:`berry._gaussian`), cut at the activation's kinks. Named gains are cached.

    Accuracy: measured worst relative errors 1.9e-16 (forward) and 8.1e-16
    (backward) over every named activation against 30-digit mpmath integration
    (``tests/test_gains.py`` asserts 1e-13), and the same order for a smooth callable
    (the derivative of a callable without ``derivative=`` is a finite difference:
    ``gain(np.tanh, mode="backward")`` is off by 2.6e-14). A callable with
    *undeclared* kinks (pass
    ``kinks=`` to :func:`berry.activations.get_activation` to declare them) is
    handled by the adaptive bisection, at some cost in evaluations: measured
    worst relative errors 2.3e-15 for ``max(z, t)``, 5.6e-15 for ``clip(z, a, b)``
    and 3.5e-14 for a discontinuous step ``1(z > t)``, over 45 random and
    adversarial kink positions (next to panel ends: 1.001, 1e-7, 1e-12...).

    This differs from torch's table for tanh, sigmoid and selu: see the table
    in :mod:`berry.gains` and :func:`calculate_gain`. For selu the exact value is
    1, since SELU is built to keep unit variance (Klambauer et al. 2017); torch's
    3/4 was an empirical choice (pytorch/pytorch PR 50664; the SNN paper's
    fixed point needs 1, as discussed in PR 53694).

    Also known as: the "gain" of ``torch.nn.init`` and of the
    orthogonal/Xavier initializers, ``scale`` in variance scaling (its square).

    Args:
        activation: a name (see :func:`berry.activations.list_activations`;
            torch's ``conv*`` layer names count as identity), a callable, or
            an :class:`~berry.activations.Activation`.
        param: the named activation's parameter (``leaky_relu``'s slope...).
        mode: ``"forward"`` (default) or ``"backward"``.

    Raises:
        UnknownNameError: unknown name; TypeError/ValueError: bad ``param``;
        ValueError: ``f(z)**2`` has infinite or zero expectation.

    >>> round(gain("gelu"), 10), round(gain("selu"), 10), round(gain("leaky_relu", 0.2), 10)
    (1.5335304412, 1.0, 1.3867504906)
    >>> import numpy as np
    >>> round(gain(np.tanh), 10) == round(gain("tanh"), 10)
    True
    """
    mode = check_choice("mode", mode, ("forward", "backward"))
    if isinstance(activation, str):
        checked = get_activation(_identity_alias(activation), param)
        return _named_gain(checked.name, checked.param, mode)
    return _gain_from_moment(_computed_second_moment(get_activation(activation, param), mode), activation)


@functools.lru_cache(maxsize=512)
def _named_gain(name: str, param: float | None, mode: str) -> float:
    # torch's expressions for the piecewise-linear cases, so that the bits agree with calculate_gain.
    if name == "identity":
        return 1.0
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        assert param is not None
        if abs(param) > 1e150:  # param**2 would overflow; sqrt(2 / (1 + a²)) = sqrt(2) / |a| there
            return math.sqrt(2.0) / abs(param)
        return math.sqrt(leaky_relu_gain_squared(param))
    return _gain_from_moment(_named_second_moment(name, param, mode), name)


def _gain_from_moment(moment: float, activation: Any) -> float:
    if not moment > 0:
        raise ValueError(f"E[f(z)**2] is {moment!r} for activation {activation!r}: a gain needs a "
                         "positive second moment (the activation is zero almost everywhere)")
    return 1.0 / math.sqrt(moment)
