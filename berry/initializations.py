"""Methods for weight initialization: scale rules and their registry.

This is the seed module of berry. Each *rule* turns a layer's fans into the
standard deviation ``sigma`` of the distribution its weights are drawn from
(the seed's ``W ~ N(0, sigma)``); the samplers in :func:`berry.sample` turn
``sigma`` into values.

Weights that are too large make the signal and its gradients explode (NaN
losses); weights that are too small make them vanish, so the network does not
learn. The right scale depends on the layer's fans and on its activation.

Every named rule is a thin layer over one core, :func:`variance_scaling`:

.. math::

    \\sigma = g \\sqrt{\\frac{s}{n}}, \\qquad
    n \\in \\{fan_{in},\\ fan_{out},\\ \\tfrac{fan_{in}+fan_{out}}{2},\\ \\sqrt{fan_{in}\\,fan_{out}}\\}

with scale ``s``, gain ``g`` and the fan ``n`` chosen by ``mode``.

The seed's API keeps working verbatim:

>>> from berry.initializations import get_initialzation
>>> func = get_initialzation("deepnet")
>>> params = {'shape': [1500, 500], 'fan_out': 500}
>>> stddev = func(**params)

>>> from berry.initializations import xavier
>>> params = {'shape': [1500, 500], 'fan_out': 500, 'fan_in': 1500}
>>> stddev = xavier(**params)

Change from the seed: where ``fan_in``/``fan_out`` are not passed but
``shape`` is, the fans come from the shape (layout ``(..., in, out)``, see
:mod:`berry.fans`) instead of the seed's default of 1. Explicit fans always
win; with neither, the default of 1 stands.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from berry import kinds
from berry._validation import check_choice, check_finite, check_positive, shown, unknown_name
from berry.fans import fans_for

__all__ = [
    "MODES",
    "STRUCTURAL_INITIALIZERS",
    "ScaleRule",
    "aliases_of",
    "deepnet",
    "fan_geo_avg",
    "geometric",
    "get_initialization",
    "get_initialzation",
    "glorot",
    "he",
    "he_fan_out",
    "kaiming",
    "kaiming_fan_out",
    "lecun",
    "list_initializations",
    "msra",
    "register_initialization",
    "selu",
    "small_init",
    "unregister_initialization",
    "variance_scaling",
    "xavier",
]

#: The fan that divides the variance, by mode (JAX, Keras and Haiku name the same modes).
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")

# Options that pick the fans out of a shape; every other keyword a rule gets is ignored, as in the seed.
_FAN_OPTIONS = ("layout", "in_axis", "out_axis", "batch_axis", "groups", "transposed")


class ScaleRule(Protocol):
    """A scale rule: the standard deviation for a weight tensor (``xavier``, ``he``, ...).

    Not to be confused with :class:`berry.torch.Rule`, which says which
    parameters of a model get which initializer.
    """

    def __call__(
        self,
        shape: Sequence[int] | None = None,
        fan_in: int | None = None,
        fan_out: int | None = None,
        **kwargs: Any,
    ) -> float: ...


#: The former name of :class:`ScaleRule`, kept so that existing imports keep working.
Rule = ScaleRule


def variance_scaling(
    scale: float = 1.0,
    mode: str = "fan_in",
    *,
    shape: Sequence[int] | None = None,
    fan_in: int | None = None,
    fan_out: int | None = None,
    gain: float = 1.0,
    **kwargs: Any,
) -> float:
    """Standard deviation that scales the weights' variance by a fan.

    The one core behind every named rule (as JAX's ``variance_scaling`` and
    Keras' ``VarianceScaling``; ``fan_geo_avg`` is Haiku's).

    .. math::

        \\sigma = g \\sqrt{s / n}, \\quad n = fan_{in},\\ fan_{out},\\
        \\tfrac{1}{2}(fan_{in} + fan_{out}) \\text{ or } \\sqrt{fan_{in} fan_{out}}

    Parameters
    ----------
    scale:
        Variance multiplier ``s`` (> 0).
    mode:
        ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` or ``"fan_geo_avg"``.
    shape, fan_in, fan_out:
        The weight's shape and/or explicit fans; explicit fans win, fans
        missing from both default to 1 (the seed's default).
    gain:
        Multiplier ``g`` of the standard deviation (> 0), e.g. from
        :func:`berry.gain`.
    **kwargs:
        Layout options for :func:`berry.compute_fans` (``layout``,
        ``in_axis``, ``out_axis``, ``batch_axis``, ``groups``,
        ``transposed``); anything else is ignored, as the seed's rules do.

    Examples
    --------
    >>> variance_scaling(2.0, "fan_in", shape=(784, 256))
    0.050507627227610534
    """
    scale = check_positive("scale", scale)
    gain = check_positive("gain", gain)
    mode = check_choice("mode", mode, MODES)
    fan_options = {key: kwargs[key] for key in _FAN_OPTIONS if key in kwargs}
    fans = fans_for(shape, fan_in, fan_out, **fan_options)
    used = {"fan_in": (fans.fan_in,), "fan_out": (fans.fan_out,)}.get(mode, fans)
    if 0 in used:
        raise ValueError(
            f"{fans} of shape={None if shape is None else tuple(shape)!r} has a zero fan, so no standard "
            "deviation exists; a zero-size tensor needs no initialization"
        )
    # Each variance is written as the seed writes it, so the named rules equal the seed's bits.
    try:
        if mode == "fan_in":
            variance = scale / fans.fan_in
        elif mode == "fan_out":
            variance = scale / fans.fan_out
        elif mode == "fan_avg":
            variance = 2 * scale / (fans.fan_in + fans.fan_out)
        else:
            variance = scale / math.sqrt(fans.fan_in * fans.fan_out)
    except OverflowError:  # an integer fan (or their sum or product) beyond float64: Python cannot divide by it
        given = " and ".join(f"{fan}={shown(getattr(fans, fan))}" for fan in ("fan_in", "fan_out") if mode in (fan, "fan_avg", "fan_geo_avg"))
        raise ValueError(
            f"{given} (mode={mode!r}) is beyond float64's range (|x| < 1.8e308), so no standard deviation "
            "can be computed from it"
        ) from None
    return gain * math.sqrt(variance)


def _named(scale: float, mode: str, shape: Any, fan_in: Any, fan_out: Any, gain: float, kwargs: dict) -> float:
    """A named rule's std: keep the layout options of ``kwargs`` and ignore the rest, as the seed did."""
    fan_options = {key: kwargs[key] for key in _FAN_OPTIONS if key in kwargs}
    return variance_scaling(scale, mode, shape=shape, fan_in=fan_in, fan_out=fan_out, gain=gain, **fan_options)


def xavier(
    shape: Sequence[int] | None = None,
    fan_in: int | None = None,
    fan_out: int | None = None,
    *,
    gain: float = 1.0,
    **kwargs: Any,
) -> float:
    """Xavier weight initialization.

    Also known as Glorot initialization (Glorot & Bengio 2010, "Understanding
    the difficulty of training deep feedforward neural networks", AISTATS).
    Keeps the variance of activations and of gradients roughly constant for
    linear, tanh and sigmoid units. ``fan_avg`` with scale 1.

    .. math::

        \\sigma = g \\sqrt{\\frac{2}{fan_{in} + fan_{out}}}, \\qquad W \\sim N(0, \\sigma)

    Parameters
    ----------
    shape:
        Shape of the weight tensor, layout ``(..., in, out)`` unless a
        ``layout`` keyword says otherwise.
    fan_in, fan_out:
        Units connected at the layer's input and output. Default: taken from
        ``shape`` when it is given (a change from the seed, whose default was
        1 whatever the shape), else 1.
    gain:
        Multiplier of the standard deviation.
    **kwargs:
        Layout options for :func:`berry.compute_fans`; others are ignored.

    Returns
    -------
    float
        Standard deviation of the normal distribution for weight initialization.

    Examples
    --------
    >>> xavier(shape=[1500, 500], fan_in=1500, fan_out=500) == (2 / (1500 + 500)) ** 0.5
    True
    >>> xavier(shape=[1500, 500])     # fans from the shape
    0.03162277660168379
    """
    return _named(1.0, "fan_avg", shape, fan_in, fan_out, gain, kwargs)


def deepnet(
    shape: Sequence[int] | None = None,
    fan_out: int | None = None,
    *,
    gain: float = 1.0,
    **kwargs: Any,
) -> float:
    """This initialization gives good performance with deep nets, e.g.: VGG-16.

    He et al. 2015 ("Delving Deep into Rectifiers: Surpassing Human-Level
    Performance on ImageNet Classification", ICCV) derived it for ReLU/PReLU
    networks. The seed uses the paper's backward-pass form, which preserves
    the gradients' variance: ``fan_out`` with scale 2. Also known as
    ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` in PyTorch, the
    default of torchvision's ResNets, and registered as ``he_fan_out`` and
    ``kaiming_fan_out``. For the forward form see :func:`he`.

    Not the DeepNet/DeepNorm *scheme* of Wang et al. 2022 ("DeepNet: Scaling
    Transformers to 1,000 Layers"), which is :func:`berry.torch.schemes.deepnet`:
    that one rescales Xavier-initialized transformer sublayers and residuals;
    this one is the seed's name for He's fan-out rule.

    .. math::

        \\sigma = g \\sqrt{\\frac{2}{fan_{out}}}

    Parameters
    ----------
    shape:
        Shape of the weight tensor, layout ``(..., in, out)``.
    fan_out:
        Units connected at the layer's output. Default: taken from ``shape``
        when it is given (a change from the seed, whose default was 1), else 1.
    gain:
        Multiplier of the standard deviation.
    **kwargs:
        Layout options for :func:`berry.compute_fans`; others (such as the
        ``fan_in`` the seed's layers pass) are ignored.

    Returns
    -------
    float
        Standard deviation of the normal distribution for weight initialization.

    Examples
    --------
    >>> deepnet(shape=[1500, 500], fan_out=500) == (2 / 500) ** 0.5
    True
    """
    return _named(2.0, "fan_out", shape, None, fan_out, gain, kwargs)


def he(
    shape: Sequence[int] | None = None,
    fan_in: int | None = None,
    fan_out: int | None = None,
    *,
    gain: float = 1.0,
    negative_slope: float = 0.0,
    **kwargs: Any,
) -> float:
    """He (Kaiming) initialization, forward form, for ReLU-family units.

    He et al. 2015, "Delving Deep into Rectifiers" (ICCV), eq. (10): keeps
    the pre-activations' variance constant through ReLU layers. With a leaky
    ReLU or PReLU of slope ``a`` the scale is ``2 / (1 + a^2)``. Also known
    as ``kaiming``, ``msra``, and ``kaiming_normal_(mode="fan_in")`` /
    ``HeNormal`` in PyTorch and Keras.

    .. math::

        \\sigma = g \\sqrt{\\frac{2}{(1 + a^2)\\, fan_{in}}}

    Examples
    --------
    >>> round(he(shape=(784, 256)), 6)
    0.050508
    """
    from berry.gains import leaky_relu_gain_squared  # the formula's one home (imports NumPy, so on use)

    slope = check_finite("negative_slope", negative_slope)
    return _named(leaky_relu_gain_squared(slope), "fan_in", shape, fan_in, fan_out, gain, kwargs)


def lecun(
    shape: Sequence[int] | None = None,
    fan_in: int | None = None,
    fan_out: int | None = None,
    *,
    gain: float = 1.0,
    **kwargs: Any,
) -> float:
    """LeCun initialization: unit variance through linear and SELU layers.

    LeCun et al. 1998, "Efficient BackProp"; the initialization of
    self-normalizing networks (Klambauer et al. 2017). Also known as
    ``LecunNormal`` (Keras), Caffe's ``xavier`` filler (whose default is
    ``fan_in``), and TensorFlow's former ``UniformUnitScaling``.

    .. math::

        \\sigma = g \\sqrt{\\frac{1}{fan_{in}}}

    Examples
    --------
    >>> lecun(shape=(400, 100))
    0.05
    """
    return _named(1.0, "fan_in", shape, fan_in, fan_out, gain, kwargs)


def small_init(
    shape: Sequence[int] | None = None,
    fan_in: int | None = None,
    fan_out: int | None = None,
    *,
    gain: float = 1.0,
    **kwargs: Any,
) -> float:
    """Small initialization for transformers: variance ``2 / (5 d)``.

    Nguyen & Salazar 2019, "Transformers without Tears: Improving the
    Normalization of Self-Attention"; the default of GPT-NeoX
    (``small_init``). ``d`` is the fan-in (the model width for a projection
    out of the residual stream).

    .. math::

        \\sigma = g \\sqrt{\\frac{2}{5\\, fan_{in}}}

    Examples
    --------
    >>> round(small_init(fan_in=1024), 6)
    0.019764
    """
    return _named(0.4, "fan_in", shape, fan_in, fan_out, gain, kwargs)


def geometric(
    shape: Sequence[int] | None = None,
    fan_in: int | None = None,
    fan_out: int | None = None,
    *,
    gain: float = 1.0,
    **kwargs: Any,
) -> float:
    """Variance scaled by the geometric mean of the fans.

    Haiku's ``VarianceScaling(mode="fan_geo_avg")``: between Xavier's
    arithmetic mean and the fan-in rule, and symmetric in the fans.

    .. math::

        \\sigma = g \\sqrt{\\frac{1}{\\sqrt{fan_{in}\\, fan_{out}}}}

    Examples
    --------
    >>> geometric(fan_in=400, fan_out=100)
    0.07071067811865475
    """
    return _named(1.0, "fan_geo_avg", shape, fan_in, fan_out, gain, kwargs)


# --- the registry ------------------------------------------------------------------------------

#: Names of the initializers that are not scale rules (orthogonal, eye, ...), each mapped to its
#: canonical name: a live read-only view of :data:`berry.kinds.NAMES`, which describes them.
STRUCTURAL_INITIALIZERS = kinds.NAMES


_RULES: dict[str, Callable[..., float]] = {
    "xavier": xavier,
    "deepnet": deepnet,
    "he": he,
    "lecun": lecun,
    "small_init": small_init,
    "geometric": geometric,
}
_ALIASES: dict[str, str] = {
    "glorot": "xavier",
    "kaiming": "he",
    "msra": "he",
    "selu": "lecun",
    "fan_geo_avg": "geometric",
    "he_fan_out": "deepnet",
    "kaiming_fan_out": "deepnet",
}

# Every alias is also an attribute (berry.glorot is berry.xavier), so the names in the docs all work.
glorot = xavier
kaiming = he
msra = he
selu = lecun
fan_geo_avg = geometric
he_fan_out = deepnet
kaiming_fan_out = deepnet


def _canonical(key: str) -> str | None:
    lowered = key.lower()
    if lowered in _RULES:
        return lowered
    return _ALIASES.get(lowered)


def get_initialization(key: str) -> Callable[..., float]:
    """Helper function to retrieve the appropriate initialization function.

    Parameters
    ----------
    key:
        Name of the type of initialization - "xavier", "deepnet", etc.
        (case-insensitive; aliases such as "glorot" and "kaiming" work too).

    Returns
    -------
    function
        The appropriate function given the key.

    Raises
    ------
    UnknownNameError
        For an unknown key: both a ``NotImplementedError`` (as the seed
        raised) and a ``ValueError``, with the supported names and the
        closest one.

    Examples
    --------
    >>> get_initialization("glorot") is xavier
    True
    >>> get_initialization("xavir")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    berry._validation.UnknownNameError: initialization key='xavir' is not supported; supported: ... Did you mean 'xavier'?
    """
    name = _canonical(key) if isinstance(key, str) else None
    if name is None:
        raise unknown_name("initialization key", key, sorted([*_RULES, *_ALIASES]))
    return _RULES[name]


#: The seed's spelling, kept so code written for the seed keeps working.
get_initialzation = get_initialization


def list_initializations(*, aliases: bool = True) -> dict[str, Callable[..., float]]:
    """Every registered rule by name (aliases included unless ``aliases=False``).

    Examples
    --------
    >>> sorted(list_initializations(aliases=False))
    ['deepnet', 'geometric', 'he', 'lecun', 'small_init', 'xavier']
    """
    rules = dict(_RULES)
    if aliases:
        rules.update({alias: _RULES[target] for alias, target in _ALIASES.items()})
    return rules


def aliases_of(name: str) -> list[str]:
    """The aliases of a registered rule, e.g. ``["glorot"]`` for ``"xavier"``."""
    canonical = _canonical(name)
    return sorted(alias for alias, target in _ALIASES.items() if target == canonical)


def register_initialization(
    name: str,
    rule: Callable[..., float],
    *,
    aliases: Sequence[str] = (),
    overwrite: bool = False,
) -> Callable[..., float]:
    """Register a rule under a name (and aliases), so every part of berry can find it.

    A rule is called as ``rule(shape=..., fan_in=..., fan_out=..., gain=..., **kwargs)`` and
    returns a standard deviation; it should accept and ignore keywords it does not use.
    Returns ``rule``, so it can decorate a function.

    Examples
    --------
    >>> def tiny(shape=None, fan_in=None, fan_out=None, gain=1.0, **kwargs):
    ...     return 1e-3 * gain
    >>> _ = register_initialization("tiny", tiny)
    >>> get_initialization("tiny")(fan_in=10)
    0.001
    >>> unregister_initialization("tiny")
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like string, got {name!r}")
    if not callable(rule):
        raise TypeError(f"rule must be callable, got {rule!r} of type {type(rule).__name__}")
    for key in (name, *aliases):
        if not isinstance(key, str) or not key:
            raise ValueError(f"aliases must be non-empty strings, got {key!r}")
        if kinds.find_kind(key) is not None or key.lower() == kinds.RULE.name:
            raise ValueError(f"{key!r} names a structural initializer of berry.sample; choose another name")
        if _canonical(key) is not None and not overwrite:
            raise ValueError(f"{key!r} is already registered; pass overwrite=True to replace it")
    _RULES[name.lower()] = rule
    for alias in aliases:
        _ALIASES[alias.lower()] = name.lower()
    return rule


def unregister_initialization(name: str) -> None:
    """Remove a rule registered with :func:`register_initialization`, and its aliases."""
    canonical = _canonical(name)
    if canonical is None:
        raise unknown_name("name", name, sorted(_RULES))
    del _RULES[canonical]
    for alias in [a for a, target in _ALIASES.items() if target == canonical]:
        del _ALIASES[alias]
