"""JAX initializers backed by berry's keyed sampler: every name of ``jax.nn.initializers``, and berry's own.

Every factory returns an :class:`Initializer`: a callable with JAX's protocol
``init(key, shape, dtype=None, out_sharding=None) -> jax.Array``, usable as a
Flax Linen or NNX ``kernel_init``/``bias_init``. Its values are a pure function
of (key data, parameter ``name``, shape, spec): they are computed by
:func:`berry.sample` on the host, eagerly or, under ``jax.jit``/``vmap``,
through ``jax.pure_callback``, so jitted and eager calls give the same bits.
The key's data becomes berry's seed (:func:`berry.jax.seed_from_key`): for
``0 <= s < 2**32``, ``jax.random.key(s)`` gives what ``berry.sample(...,
seed=s)`` gives.

The factories named after ``jax.nn.initializers`` keep JAX's meaning and
accept what JAX accepts:

* ``glorot_normal``/``he_normal``/``lecun_normal`` and ``variance_scaling``'s
  default distribution are *truncated* normals on [-2, 2] standard units whose
  std is corrected up to the rule's std (JAX's 0.8796... constant);
* ``uniform(scale)`` is uniform on [0, scale), not symmetric;
* ``normal``/``truncated_normal`` default to ``stddev=1e-2``, and
  ``truncated_normal``'s ``stddev`` is the parent normal's (no correction);
  the values are ``stddev * z``, so a negative ``stddev`` (or ``scale``) flips
  the sign as in JAX;
* fans follow ``in_axis=-2``, ``out_axis=-1``, ``batch_axis=()``; every other
  axis is a receptive-field axis;
* complex dtypes (``complex64``, ``complex128``) for ``normal``,
  ``variance_scaling`` and its named rules, ``orthogonal`` and
  ``delta_orthogonal``, with JAX's laws (:mod:`berry.jax._complex`);
* scales as Python floats, NumPy scalars or 0-d arrays; ``constant`` takes any
  array-like value that broadcasts to the shape.

Errors begin with JAX's own wording (so code and tests matching on it keep
working) and then say what berry expected; arguments are checked when the
factory is called, the key, shape and dtype when the initializer is.

berry's own rules come from the registry (:func:`berry.list_initializations`)
through :func:`initializer`, or :func:`xavier` and :func:`deepnet` directly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

from berry._adapter import TRUNCATED_2_STD, FanReader, as_float, check_init_name, variance_rule
from berry._validation import check_int
from berry.jax._initializer import Initializer, ShapeCheck, canonical_shape, made
from berry.jax._sharding import sharded_values

__all__ = [
    "Initializer",
    "constant",
    "deepnet",
    "delta_orthogonal",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "initializer",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "sharded",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]

Axes = int | Sequence[int]
DTypeLike = Any

VARIANCE_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
VARIANCE_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def _law(distribution: str) -> dict[str, Any]:
    """The sample options of JAX's variance-scaling distributions (its normal is a truncated one)."""
    return dict(TRUNCATED_2_STD) if distribution == "truncated_normal" else {"distribution": distribution}


def _scalar(argument: str, value: Any) -> float:
    """A scale argument (Python or NumPy number, 0-d array) as a Python float; traced values are refused."""
    if any(cls.__name__.endswith("Tracer") for cls in type(value).__mro__):
        raise TypeError(
            f"{argument} must be a concrete number, got a traced value {value!r}: berry computes the values on "
            "the host, so build the initializer outside jax.jit (or pass a Python float)"
        )
    return as_float(argument, value)


def _axis_error(message: str) -> Exception:
    """JAX reports an out-of-range axis as an IndexError; NumPy's AxisError is both that and a ValueError."""
    axis_error = np.exceptions.AxisError if hasattr(np, "exceptions") else AxisError  # NumPy < 1.25
    return axis_error(message)


def _as_axes(axes: Axes) -> tuple[int, ...]:
    if isinstance(axes, Sequence):
        return tuple(int(axis) for axis in axes)
    return (int(axes),)


def _fan_checks(description: str, in_axis: Axes, out_axis: Axes, batch_axis: Axes) -> list[ShapeCheck]:
    """JAX's ``_compute_fans`` errors for a shape: the rank without ``in_axis``, then axes out of range."""

    def check(shape: tuple[int, ...]) -> None:
        rank = len(shape)
        if isinstance(in_axis, numbers.Integral) and in_axis == -2 and rank <= 1:
            raise ValueError(
                f"Can't compute input and output sizes of a {rank}-dimensional weights tensor with default "
                "in_axis. Must be at least 2D or specify in_axis explicitly. "
                f"(berry.jax.{description} got shape={shape})"
            )
        for argument, axes in (("in_axis", in_axis), ("out_axis", out_axis), ("batch_axis", batch_axis)):
            for axis in _as_axes(axes):
                if not -rank <= axis < rank:
                    raise _axis_error(
                        f"tuple index out of range: berry.jax.{description} has {argument}={axes!r}, "
                        f"out of range for shape={shape} of rank {rank}"
                    )

    return [check]


def _check_choice(value: Any, choices: Sequence[str], what: str, description: str) -> str:
    if isinstance(value, str) and value in choices:
        return value
    allowed = ", ".join(repr(choice) for choice in choices)
    raise ValueError(f"invalid {what} for variance scaling initializer: {value}; berry.jax.{description} accepts {allowed}")


# ---------------------------------------------------------------- variance scaling


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    *,
    name: str | None = None,
) -> Initializer:
    r"""Variance scaling: std from a scale and a fan, with JAX's meaning.

    From ``jax.nn.initializers.variance_scaling`` (itself after Glorot & Bengio
    2010, He et al. 2015 and LeCun et al. 1998).

    .. math::

        \sigma = \sqrt{\text{scale} / n}, \qquad
        n \in \{fan_{in},\ fan_{out},\ (fan_{in}+fan_{out})/2,\ \sqrt{fan_{in}\,fan_{out}}\}

    ``"truncated_normal"`` draws a normal truncated to [-2, 2] standard units
    whose std is corrected to exactly :math:`\sigma`; ``"normal"`` draws
    :math:`N(0, \sigma^2)`; ``"uniform"`` draws
    :math:`U(-\sqrt{3}\sigma, \sqrt{3}\sigma)`. For complex dtypes
    :math:`E|w|^2 = \sigma^2` with JAX's complex laws (:mod:`berry.jax._complex`).

    Parameters
    ----------
    scale : float
        Scale of the variance, ``>= 0`` (0 gives zeros, as in JAX).
    mode : {"fan_in", "fan_out", "fan_avg", "fan_geo_avg"}
    distribution : {"truncated_normal", "normal", "uniform"}
    in_axis, out_axis, batch_axis : int or sequence of ints
        Axes of the input, output and batch dimensions of the kernel.
    dtype : dtype, optional
        Default dtype of the arrays (float32 unless given at call time).
    name : str
        The parameter name, hashed into the key with the seed.

    Examples
    --------
    >>> import jax
    >>> import berry.jax
    >>> init = berry.jax.variance_scaling(2.0, "fan_in", "normal")
    >>> w = init(jax.random.key(0), (256, 512))
    >>> w.shape, w.dtype, round(float(w.std()) * 16, 1)
    ((256, 512), dtype('float32'), 1.4)
    """
    scale = _scalar("scale", scale)
    description = f"variance_scaling({scale!r}, {mode!r}, {distribution!r})"
    mode = _check_choice(mode, VARIANCE_MODES, "mode", description)
    distribution = _check_choice(distribution, VARIANCE_DISTRIBUTIONS, "distribution", description)
    if scale < 0:
        raise ValueError(
            f"scale must be >= 0, got {scale!r}: the variance scale / n is negative "
            f"(jax.nn.initializers returns NaNs; berry.jax.{description} refuses)"
        )
    rule: Any = _zero_scale if scale == 0 else variance_rule(scale, mode)
    return _variance(description, rule, distribution, in_axis, out_axis, batch_axis, dtype, name)


def _zero_scale(**_: Any) -> float:
    """The rule of ``variance_scaling(0.0, ...)``: a std of 0 (zeros), whatever the fans."""
    return 0.0


def _variance(
    description: str,
    rule: Any,
    distribution: str,
    in_axis: Axes,
    out_axis: Axes,
    batch_axis: Axes,
    dtype: DTypeLike,
    name: str | None,
) -> Initializer:
    for argument, axes in (("in_axis", in_axis), ("out_axis", out_axis), ("batch_axis", batch_axis)):
        if axes is None:  # FanReader reads None as "the default axes"; JAX fails on it at the first call
            raise TypeError(
                f"'NoneType' object is not iterable: berry.jax.{description} takes {argument} as an int or a "
                f"sequence of ints, got None"
            )
    fans = FanReader("jax", in_axis, out_axis, batch_axis)
    law = "normal" if distribution == "normal" else "uniform"  # the jax.random sampler JAX's dtype errors name
    options = {"law": law, "complex_law": distribution, "checks": _fan_checks(description, in_axis, out_axis, batch_axis)}
    return made(description, dtype, name, initializer=options, init=rule, fans=fans, **_law(distribution))


def _rule_initializer(
    description: str,
    rule: str,
    distribution: str,
    in_axis: Axes,
    out_axis: Axes,
    batch_axis: Axes,
    dtype: DTypeLike,
    name: str | None,
) -> Initializer:
    """A JAX-named factory as berry's registry rule ``rule``, so it equals ``berry.sample(shape, rule, ...)``."""
    return _variance(description, rule, distribution, in_axis, out_axis, batch_axis, dtype, name)


def glorot_normal(
    in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""Glorot (Xavier) truncated normal, JAX's ``glorot_normal``: berry's ``"xavier"`` rule.

    Glorot & Bengio (2010). Truncated to [-2, 2] standard units, std corrected.

    .. math:: \sigma = \sqrt{2 / (fan_{in} + fan_{out})}

    Also known as ``xavier_normal`` (JAX/Flax meaning: truncated).

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.glorot_normal()(jax.random.key(0), (3, 4))
    >>> w.shape, bool(abs(w).max() <= 2 * (2 / 7) ** 0.5 / 0.8796)
    ((3, 4), True)
    """
    return _rule_initializer(
        "glorot_normal()", "xavier", "truncated_normal", in_axis, out_axis, batch_axis, dtype, name
    )


def glorot_uniform(
    in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""Glorot (Xavier) uniform, JAX's ``glorot_uniform``: berry's ``"xavier"`` rule.

    Glorot & Bengio (2010).

    .. math:: W \sim U(-a, a), \quad a = \sqrt{6 / (fan_{in} + fan_{out})}

    Also known as ``xavier_uniform``.

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.glorot_uniform()(jax.random.key(0), (3, 4))
    >>> bool(abs(w).max() <= (6 / 7) ** 0.5)
    True
    """
    return _rule_initializer(
        "glorot_uniform()", "xavier", "uniform", in_axis, out_axis, batch_axis, dtype, name
    )


def he_normal(
    in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""He (Kaiming) truncated normal, JAX's ``he_normal``: berry's ``"he"`` rule.

    He et al. (2015), "Delving Deep into Rectifiers". Truncated to [-2, 2]
    standard units, std corrected.

    .. math:: \sigma = \sqrt{2 / fan_{in}}

    Also known as ``kaiming_normal``.

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.he_normal()(jax.random.key(0), (512, 512))
    >>> round(float(w.std()) * 16, 1)
    1.0
    """
    return _rule_initializer(
        "he_normal()", "he", "truncated_normal", in_axis, out_axis, batch_axis, dtype, name
    )


def he_uniform(
    in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""He (Kaiming) uniform, JAX's ``he_uniform``: berry's ``"he"`` rule.

    He et al. (2015).

    .. math:: W \sim U(-a, a), \quad a = \sqrt{6 / fan_{in}}

    Also known as ``kaiming_uniform``.

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.he_uniform()(jax.random.key(0), (6, 4))
    >>> bool(abs(w).max() <= 1.0)
    True
    """
    return _rule_initializer("he_uniform()", "he", "uniform", in_axis, out_axis, batch_axis, dtype, name)


def lecun_normal(
    in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""LeCun truncated normal, JAX's ``lecun_normal`` (Flax's default kernel init): berry's ``"lecun"`` rule.

    LeCun et al. (1998), "Efficient BackProp"; Klambauer et al. (2017) for SELU.

    .. math:: \sigma = \sqrt{1 / fan_{in}}

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.lecun_normal()(jax.random.key(0), (256, 256))
    >>> round(float(w.std()) * 16, 1)
    1.0
    """
    return _rule_initializer(
        "lecun_normal()", "lecun", "truncated_normal", in_axis, out_axis, batch_axis, dtype, name
    )


def lecun_uniform(
    in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""LeCun uniform, JAX's ``lecun_uniform``: berry's ``"lecun"`` rule.

    LeCun et al. (1998).

    .. math:: W \sim U(-a, a), \quad a = \sqrt{3 / fan_{in}}

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.lecun_uniform()(jax.random.key(0), (3, 4))
    >>> bool(abs(w).max() <= 1.0)
    True
    """
    return _rule_initializer(
        "lecun_uniform()", "lecun", "uniform", in_axis, out_axis, batch_axis, dtype, name
    )


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform


# ---------------------------------------------------------------- plain distributions


def _signed(argument: str, value: Any) -> tuple[float, float]:
    """JAX draws ``value * z``: berry draws ``|value| * z`` and flips the sign of a negative value (exact)."""
    number = _scalar(argument, value)
    return abs(number), (-1.0 if number < 0 else 1.0)


def normal(stddev: float = 1e-2, dtype: DTypeLike = None, *, name: str | None = None) -> Initializer:
    r"""Normal with a fixed std, JAX's ``normal``.

    .. math:: W = \text{stddev} \cdot z, \quad z \sim N(0, 1)

    For complex dtypes the real and imaginary parts are independent
    :math:`N(0, \text{stddev}^2/2)` (:math:`E|w|^2 = \text{stddev}^2`), as in JAX.

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.normal(0.5)(jax.random.key(0), (100, 100))
    >>> round(float(w.std()), 1)
    0.5
    """
    stddev, sign = _signed("stddev", stddev)
    options = {"law": "normal", "complex_law": "normal", "sign": sign}
    return made(f"normal({sign * stddev!r})", dtype, name, initializer=options, distribution="normal", std=stddev)


def truncated_normal(
    stddev: float = 1e-2,
    dtype: DTypeLike = None,
    lower: float = -2.0,
    upper: float = 2.0,
    *,
    name: str | None = None,
) -> Initializer:
    r"""Truncated normal, JAX's ``truncated_normal``: ``stddev`` is the parent normal's.

    As in JAX (and TensorFlow), the std is *not* corrected for the truncation:
    values are :math:`\text{stddev}\cdot z` with :math:`z \sim N(0, 1)`
    conditioned on ``lower <= z <= upper``.

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.truncated_normal(1.0)(jax.random.key(0), (1000,))
    >>> bool(abs(w).max() <= 2.0)
    True
    """
    stddev, sign = _signed("stddev", stddev)
    lower = _scalar("lower", lower) if not _is_neg_inf(lower) else -math.inf
    upper = _scalar("upper", upper) if not _is_pos_inf(upper) else math.inf
    description = f"truncated_normal({sign * stddev!r}, lower={lower!r}, upper={upper!r})"
    if not lower < upper:
        raise ValueError(
            f"lower must be < upper, got lower={lower!r}, upper={upper!r} (jax.nn.initializers returns meaningless "
            f"values for an empty interval; berry.jax.{description} refuses)"
        )
    return made(
        description, dtype, name, initializer={"law": "truncated_normal", "sign": sign},
        distribution="truncated_normal", std=stddev, bounds=(lower, upper), correct_variance=False,
    )


def _is_neg_inf(value: Any) -> bool:
    return isinstance(value, numbers.Real) and value == -math.inf


def _is_pos_inf(value: Any) -> bool:
    return isinstance(value, numbers.Real) and value == math.inf


def uniform(scale: float = 1e-2, dtype: DTypeLike = None, *, name: str | None = None) -> Initializer:
    r"""Uniform on [0, scale), JAX's ``uniform`` (note: not symmetric around 0).

    .. math:: W = \text{scale} \cdot u, \quad u \sim U[0, 1)

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.uniform(2.0)(jax.random.key(0), (1000,))
    >>> bool(w.min() >= 0), bool(w.max() < 2.0)
    (True, True)
    """
    scale, sign = _signed("scale", scale)
    options = {"law": "uniform", "sign": sign}
    return made(f"uniform({sign * scale!r})", dtype, name, initializer=options, distribution="uniform", low=0.0, high=scale)


# ---------------------------------------------------------------- structural


def _column_axis_check(description: str, column_axis: int, matrix_rank: int | None = None) -> ShapeCheck:
    def check(shape: tuple[int, ...]) -> None:
        rank = len(shape) if matrix_rank is None else matrix_rank
        if not -rank <= column_axis < rank:
            raise _axis_error(
                f"tuple index out of range: berry.jax.{description} has column_axis={column_axis}, "
                f"out of range for a matrix of rank {rank} (shape={shape})"
            )

    return check


def orthogonal(
    scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""A (semi-)orthogonal matrix, JAX's ``orthogonal``.

    Saxe, McClelland & Ganguli (2014). The tensor is seen as a matrix with
    ``shape[column_axis]`` columns and the product of the other dimensions as
    rows; its rows or columns (whichever are fewer) are orthonormal, times
    ``scale``. Complex dtypes give a Haar (semi-)unitary matrix, as in JAX.

    .. math:: W^\top W = \text{scale}^2 I \ \ (\text{rows} \ge \text{columns})

    Examples
    --------
    >>> import jax, numpy as np, berry.jax
    >>> w = np.asarray(berry.jax.orthogonal()(jax.random.key(0), (6, 4)))
    >>> bool(np.allclose(w.T @ w, np.eye(4), atol=1e-5))
    True
    """
    scale = _scalar("scale", scale)
    column_axis = check_int("column_axis", column_axis)
    description = f"orthogonal({scale!r}, column_axis={column_axis})"

    def rank_check(shape: tuple[int, ...]) -> None:
        if len(shape) < 2:
            raise ValueError(
                f"orthogonal initializer requires at least a 2D shape; berry.jax.{description} got shape={shape}"
            )

    options = {
        "law": "normal", "complex_law": "orthogonal", "checks": [rank_check, _column_axis_check(description, column_axis)]
    }
    return made(description, dtype, name, initializer=options, init="orthogonal", gain=scale, column_axis=column_axis)


def delta_orthogonal(
    scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""Delta-orthogonal convolution kernel, JAX's ``delta_orthogonal``.

    Xiao et al. (2018), "Dynamical Isometry and a Mean Field Theory of CNNs".
    The kernel (3-D, 4-D or 5-D, channels last, ``in <= out``) is zero except
    at the spatial centre, which holds an orthogonal ``(in, out)`` matrix with
    orthonormal rows (unitary for complex dtypes). ``column_axis`` (an axis of
    that matrix) is accepted as in JAX; the law does not depend on it.

    Examples
    --------
    >>> import jax, numpy as np, berry.jax
    >>> w = np.asarray(berry.jax.delta_orthogonal()(jax.random.key(0), (3, 3, 4, 4)))
    >>> bool(np.allclose(w[1, 1].T @ w[1, 1], np.eye(4), atol=1e-5)), float(abs(w[0]).sum())
    (True, 0.0)
    """
    scale = _scalar("scale", scale)
    column_axis = check_int("column_axis", column_axis)
    description = f"delta_orthogonal({scale!r}, column_axis={column_axis})"

    def shape_check(shape: tuple[int, ...]) -> None:
        if len(shape) not in (3, 4, 5):
            raise ValueError(
                f"Delta orthogonal initializer requires a 3D, 4D or 5D shape. (berry.jax.{description} got "
                f"shape={shape})"
            )
        if shape[-1] < shape[-2]:
            raise ValueError(
                f"`fan_in` must be less or equal than `fan_out`. (berry.jax.{description} got in_channels="
                f"{shape[-2]} > out_channels={shape[-1]} for shape={shape})"
            )

    options = {
        "law": "normal", "complex_law": "delta_orthogonal",
        "checks": [shape_check, _column_axis_check(description, column_axis, matrix_rank=2)],
    }
    return made(description, dtype, name, initializer=options, init="delta_orthogonal", gain=scale,
                layout="channels_last")


def zeros(key: Any, shape: Sequence[int], dtype: DTypeLike = None, out_sharding: Any = None) -> Any:
    """Zeros, like ``jax.nn.initializers.zeros`` (an initializer itself, not a factory; any dtype).

    Examples
    --------
    >>> import jax, berry.jax
    >>> berry.jax.zeros(jax.random.key(0), (2, 3)).sum().item()
    0.0
    """
    return made("zeros", None, None, init="zeros")(key, shape, dtype, out_sharding)


def ones(key: Any, shape: Sequence[int], dtype: DTypeLike = None, out_sharding: Any = None) -> Any:
    """Ones, like ``jax.nn.initializers.ones`` (an initializer itself, not a factory; any dtype).

    Examples
    --------
    >>> import jax, berry.jax
    >>> berry.jax.ones(jax.random.key(0), (2, 3)).sum().item()
    6.0
    """
    return made("ones", None, None, init="ones")(key, shape, dtype, out_sharding)


def constant(value: Any, dtype: DTypeLike = None) -> Initializer:
    """A constant, like ``jax.nn.initializers.constant``: any array-like ``value`` broadcast to the shape.

    The value is cast to the dtype once (as ``jnp.full`` does) and broadcast
    with NumPy's rules; complex and integer dtypes work as in JAX.

    Examples
    --------
    >>> import jax, berry.jax
    >>> berry.jax.constant(-7.0)(jax.random.key(0), (2,)).tolist()
    [-7.0, -7.0]
    >>> berry.jax.constant([1.0, 2.0])(jax.random.key(0), (2, 2)).tolist()
    [[1.0, 2.0], [1.0, 2.0]]
    """
    if any(cls.__name__.endswith("Tracer") for cls in type(value).__mro__):
        raise TypeError(f"value must be a concrete array or number, got a traced value {value!r}")
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"value must be a number or an array of numbers, got {value!r} (berry.jax.constant)")
    description = f"constant({array.item()!r})" if array.ndim == 0 else f"constant(<array of shape {array.shape}>)"
    return Initializer(description, dtype=dtype, value=array)


# ---------------------------------------------------------------- berry's registry


def initializer(
    init: str,
    /,
    distribution: str = "normal",
    *,
    gain: float = 1.0,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
    dtype: DTypeLike = None,
    name: str | None = None,
    **options: Any,
) -> Initializer:
    r"""Any of berry's rules (or structural initializers) as a JAX initializer.

    The values are exactly ``berry.sample(shape, init, distribution=...,
    seed=seed_from_key(key), name=name, layout="channels_last", **options)``:
    berry's meaning, not JAX's (``"normal"`` is a plain normal here, and a
    ``"truncated_normal"`` has its std corrected unless
    ``correct_variance=False``). Fans follow the channels-last layout unless
    ``in_axis``/``out_axis`` are given (then JAX's axis convention).
    Complex dtypes are not offered here (JAX has no such laws for berry's rules).

    Parameters
    ----------
    init : str
        A registry name (:func:`berry.list_initializations`) or a structural
        initializer name (``"orthogonal"``, ``"delta_orthogonal"``, ...).
    distribution : str
        ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
    gain : float
        Multiplies the rule's std.
    name : str
        The parameter name, hashed into the key with the seed.
    **options
        Further keyword arguments of :func:`berry.sample` (``mean``, ``std``,
        ``bounds``, ``correct_variance``, ``low``, ``high``, ``sparsity``, ...).

    Examples
    --------
    >>> import jax, numpy as np, berry, berry.jax
    >>> init = berry.jax.initializer("he", name="conv1")
    >>> w = init(jax.random.key(3), (3, 3, 16, 32))
    >>> bool((np.asarray(w) == berry.sample((3, 3, 16, 32), "he", seed=3, name="conv1")).all())
    True
    """
    if not isinstance(init, str):
        raise TypeError(f"init must be the name of a berry initializer, got {init!r}")
    check_init_name(init)
    reserved = {"seed", "region", "out", "dtype", "shape", "fan_in", "fan_out", "layout", "threads"} & set(options)
    if reserved:
        raise TypeError(f"initializer() does not take {sorted(reserved)}: they come from the call or the axes")
    axes_given = in_axis is not None or out_axis is not None or batch_axis != ()
    fans = FanReader("jax", in_axis, out_axis, batch_axis) if axes_given else None
    law = {"uniform": "uniform", "truncated_normal": "truncated_normal"}.get(str(distribution).lower(), "normal")
    return made(
        f"initializer({init!r}, {distribution!r})", dtype, name, initializer={"law": law},
        init=init, distribution=distribution, gain=_scalar("gain", gain), layout="channels_last", fans=fans, **options,
    )


def xavier(
    distribution: str = "normal", *, gain: float = 1.0, dtype: DTypeLike = None, name: str | None = None
) -> Initializer:
    r"""berry's seed rule ``xavier`` as a JAX initializer (a plain normal by default).

    Glorot & Bengio (2010).

    .. math:: \sigma = \text{gain}\sqrt{2 / (fan_{in} + fan_{out})}, \quad W \sim N(0, \sigma^2)

    Also known as Glorot normal, but untruncated (compare :func:`glorot_normal`,
    JAX's truncated variant).

    Examples
    --------
    >>> import jax, numpy as np, berry, berry.jax
    >>> w = berry.jax.xavier(name="w")(jax.random.key(7), (64, 32))
    >>> bool((np.asarray(w) == berry.sample((64, 32), "xavier", seed=7, name="w")).all())
    True
    """
    return initializer("xavier", distribution, gain=gain, dtype=dtype, name=name)


def deepnet(
    distribution: str = "normal", *, gain: float = 1.0, dtype: DTypeLike = None, name: str | None = None
) -> Initializer:
    r"""berry's seed rule ``deepnet`` as a JAX initializer.

    He et al. (2015), "Delving Deep into Rectifiers", with the fan of the seed
    module (:func:`berry.deepnet`, He's fan-out rule; not the DeepNet/DeepNorm
    transformer scheme of Wang et al. 2022, :func:`berry.torch.schemes.deepnet`).

    Examples
    --------
    >>> import jax, numpy as np, berry, berry.jax
    >>> w = berry.jax.deepnet(name="conv1")(jax.random.key(7), (64, 32))
    >>> bool((np.asarray(w) == berry.sample((64, 32), "deepnet", seed=7, name="conv1")).all())
    True
    """
    return initializer("deepnet", distribution, gain=gain, dtype=dtype, name=name)


def sharded(init: Initializer, shape: Sequence[int], sharding: Any, key: Any, dtype: Any = None) -> Any:
    """A sharded ``jax.Array`` whose shards are each generated from their own region.

    Each addressable device's shard is computed on the host from its region
    of the global tensor (``berry.sample(..., region=...)``) and placed
    straight on that device: no gather, no scatter, and memory per process
    proportional to its shards. The global array is bit-identical for every
    mesh and ``PartitionSpec`` (and equals the unsharded call). Whole-matrix
    initializers (orthogonal) compute the full matrix for each distinct shard.
    Outside ``jax.jit`` any ``Sharding`` works (``jax.make_array_from_callback``);
    inside, a ``NamedSharding`` whose dimensions split evenly, each device's
    host callback making its own block (``jax.shard_map``). The initializers'
    ``out_sharding=`` argument does the same.

    Parameters
    ----------
    init : Initializer
        A berry JAX initializer.
    shape : sequence of int
        The global shape.
    sharding : jax.sharding.Sharding or PartitionSpec
        For example ``NamedSharding(mesh, PartitionSpec("x", None))``; a bare
        ``PartitionSpec`` takes the mesh of ``jax.set_mesh``.
    key : jax.Array
        The PRNG key, as for the unsharded call.
    dtype : dtype, optional

    Examples
    --------
    >>> import jax, numpy as np, berry.jax
    >>> from jax.sharding import Mesh, NamedSharding, PartitionSpec
    >>> mesh = Mesh(np.array(jax.devices()[:1]), ("x",))
    >>> init = berry.jax.he_normal()
    >>> w = berry.jax.sharded(init, (8, 4), NamedSharding(mesh, PartitionSpec("x")), jax.random.key(0))
    >>> bool((w == init(jax.random.key(0), (8, 4))).all())
    True
    """
    if not isinstance(init, Initializer):
        raise TypeError(f"init must be a berry.jax initializer, got {init!r}")
    prepared = init.prepare(canonical_shape(shape))
    return sharded_values(prepared, init.name or "", sharding, key, init.resolve_dtype(dtype), init.description)
