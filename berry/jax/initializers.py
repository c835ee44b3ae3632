"""JAX initializers backed by berry's keyed sampler.

Every factory returns an :class:`Initializer`: a callable with JAX's protocol
``init(key, shape, dtype=None, out_sharding=None) -> jax.Array``, usable as a
Flax Linen or NNX ``kernel_init``/``bias_init``. Its values are a pure function
of (key data, parameter ``name``, shape, spec): they are computed by
:func:`berry.sample` on the host, eagerly or, under ``jax.jit``/``vmap``,
through ``jax.pure_callback``, so jitted and eager calls give the same bits.
The key's data becomes berry's seed (:func:`berry.jax.seed_from_key`): for
``0 <= s < 2**32``, ``jax.random.key(s)`` gives what ``berry.sample(...,
seed=s)`` gives.

The factories named after ``jax.nn.initializers`` keep JAX's meaning:

* ``glorot_normal``/``he_normal``/``lecun_normal`` and ``variance_scaling``'s
  default distribution are *truncated* normals on [-2, 2] standard units whose
  std is corrected up to the rule's std (JAX's 0.8796... constant);
* ``uniform(scale)`` is uniform on [0, scale), not symmetric;
* ``normal``/``truncated_normal`` default to ``stddev=1e-2``, and
  ``truncated_normal``'s ``stddev`` is the parent normal's (no correction);
* fans follow ``in_axis=-2``, ``out_axis=-1``, ``batch_axis=()``; every other
  axis is a receptive-field axis.

berry's own rules come from the registry (:func:`berry.list_initializations`)
through :func:`initializer`, or :func:`xavier` and :func:`deepnet` directly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from berry._adapter import TRUNCATED_2_STD, FanReader, Plan, Recipe, as_float, check_init_name, variance_rule
from berry._validation import check_choice, check_int, check_key, check_positive, check_shape, resolve_dtype
from berry.jax._keys import key_words, seed_from_words
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
Region = tuple[slice, ...]

VARIANCE_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def _law(distribution: str) -> dict[str, Any]:
    """The sample options of JAX's variance-scaling distributions (its normal is a truncated one)."""
    return dict(TRUNCATED_2_STD) if distribution == "truncated_normal" else {"distribution": distribution}


class Initializer:
    """A JAX initializer whose values come from berry's keyed stream.

    Call it as ``init(key, shape, dtype=None, out_sharding=None)``.
    ``dtype=None`` means the factory's ``dtype``, else JAX's default float
    (float32, or float64 with ``jax_enable_x64``). ``out_sharding`` (a
    ``jax.sharding.Sharding``) makes a sharded array whose shards are each
    generated on their own (see :func:`sharded`).

    The key is JAX's random state: as with ``jax.nn.initializers``, the same
    key gives the same values, so give each parameter its own key (Flax does)
    or its own ``name``. ``values(seed, shape, dtype, region)`` is berry's
    keyed form on the NumPy side (an integer seed, optionally one region of the
    global tensor); like :func:`berry.sample` it needs the initializer's
    ``name`` when the values are random.

    The arguments are checked when the factory is called (the
    :class:`berry._adapter.Recipe` is built then), and the shape when the
    initializer is called, before any value is drawn.
    """

    def __init__(
        self, description: str, recipe: Recipe, *, dtype: DTypeLike = None, name: str | None = None
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string (the parameter name), got {name!r}")
        self.description = description
        self.recipe = recipe
        self.name = name
        self.random = recipe.random
        self.dtype = None if dtype is None else _numpy_dtype(dtype, random=self.random)

    def __repr__(self) -> str:
        extras = "" if not self.name else f", name={self.name!r}"
        return f"berry.jax.{self.description}{extras}"

    def plan(self, shape: Sequence[int]) -> Plan:
        """Check ``shape`` against the arguments and return what the host computes (:class:`berry._adapter.Plan`)."""
        return self.recipe.plan(shape)  # a ValueError names the factory (the recipe's label)

    def values(
        self,
        seed: int,
        shape: Sequence[int],
        dtype: DTypeLike = None,
        region: Region | None = None,
    ) -> np.ndarray:
        """The NumPy array for an integer ``seed`` (what a key with that seed gives), optionally one region."""
        seed, name = check_key(seed, self.name, keyed=self.random, what=f"berry.jax.{self.description}.values()")
        return self.plan(shape).values(seed, name, self._dtype(dtype), region)

    def _dtype(self, dtype: DTypeLike) -> np.dtype:
        if dtype is None:
            dtype = self.dtype
        if dtype is None:
            import jax.numpy as jnp

            dtype = jnp.float_
        return _numpy_dtype(dtype, random=self.random)

    def __call__(
        self,
        key: Any,
        shape: Sequence[int],
        dtype: DTypeLike = None,
        out_sharding: Any = None,
    ) -> Any:
        import jax
        import jax.numpy as jnp

        shape = check_shape("shape", shape)
        np_dtype = self._dtype(dtype)
        plan = self.plan(shape)
        name = self.name or ""  # the JAX key is the random state; the name is optional, as in JAX
        if out_sharding is not None:
            return sharded_values(plan, name, shape, out_sharding, key, np_dtype)
        if plan.constant is not None:  # constants (and empty shapes) need no key and no host work
            return jnp.full(shape, plan.constant, dtype=np_dtype)
        words = key_words(key)
        if not isinstance(words, jax.core.Tracer):
            return jnp.asarray(plan.values(seed_from_words(np.asarray(words)), name, np_dtype))

        def host(data: np.ndarray) -> np.ndarray:
            return plan.values(seed_from_words(data), name, np_dtype)

        result = jax.ShapeDtypeStruct(shape, np_dtype)
        return jax.pure_callback(host, result, words, vmap_method="sequential")


def _numpy_dtype(dtype: DTypeLike, *, random: bool) -> np.dtype:
    """``dtype`` as the NumPy dtype JAX would use (float64 becomes float32 without x64), from berry's table."""
    import jax

    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        return resolve_dtype(dtype, floating_only=random)  # the table's error names the allowed dtypes
    return resolve_dtype(np.dtype(jax.dtypes.canonicalize_dtype(np_dtype)), floating_only=random)


def _made(description: str, dtype: DTypeLike, name: str | None, **recipe: Any) -> Initializer:
    """An :class:`Initializer` whose recipe is built (and so validated) now, naming the factory in errors."""
    try:
        built = Recipe.make(label=description, **recipe)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{description}: {error}") from None
    return Initializer(description, built, dtype=dtype, name=name)


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
    :math:`U(-\sqrt{3}\sigma, \sqrt{3}\sigma)`.

    Parameters
    ----------
    scale : float
        Positive scale of the variance.
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
    rule = variance_rule(scale, mode)
    distribution = check_choice("distribution", distribution, VARIANCE_DISTRIBUTIONS)
    description = f"variance_scaling({float(scale)!r}, {mode!r}, {distribution!r})"
    fans = FanReader("jax", in_axis, out_axis, batch_axis)
    return _made(description, dtype, name, init=rule, fans=fans, **_law(distribution))


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
    fans = FanReader("jax", in_axis, out_axis, batch_axis)
    return _made(description, dtype, name, init=rule, fans=fans, **_law(distribution))


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


def normal(stddev: float = 1e-2, dtype: DTypeLike = None, *, name: str | None = None) -> Initializer:
    r"""Normal with a fixed std, JAX's ``normal``.

    .. math:: W \sim N(0, \text{stddev}^2)

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.normal(0.5)(jax.random.key(0), (100, 100))
    >>> round(float(w.std()), 1)
    0.5
    """
    stddev = check_positive("stddev", as_float("stddev", stddev), allow_zero=True)
    return _made(f"normal({stddev!r})", dtype, name, distribution="normal", std=stddev)


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
    stddev = check_positive("stddev", as_float("stddev", stddev), allow_zero=True)
    lower = as_float("lower", lower) if not _is_neg_inf(lower) else -math.inf
    upper = as_float("upper", upper) if not _is_pos_inf(upper) else math.inf
    if not lower < upper:
        raise ValueError(f"lower must be < upper, got lower={lower!r}, upper={upper!r}")
    description = f"truncated_normal({stddev!r}, lower={lower!r}, upper={upper!r})"
    return _made(
        description, dtype, name,
        distribution="truncated_normal", std=stddev, bounds=(lower, upper), correct_variance=False,
    )


def _is_neg_inf(value: Any) -> bool:
    return isinstance(value, numbers.Real) and value == -math.inf


def _is_pos_inf(value: Any) -> bool:
    return isinstance(value, numbers.Real) and value == math.inf


def uniform(scale: float = 1e-2, dtype: DTypeLike = None, *, name: str | None = None) -> Initializer:
    r"""Uniform on [0, scale), JAX's ``uniform`` (note: not symmetric around 0).

    .. math:: W \sim U[0, \text{scale})

    Examples
    --------
    >>> import jax, berry.jax
    >>> w = berry.jax.uniform(2.0)(jax.random.key(0), (1000,))
    >>> bool(w.min() >= 0), bool(w.max() < 2.0)
    (True, True)
    """
    scale = check_positive("scale", as_float("scale", scale))
    return _made(f"uniform({scale!r})", dtype, name, distribution="uniform", low=0.0, high=scale)


# ---------------------------------------------------------------- structural


def orthogonal(
    scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""A (semi-)orthogonal matrix, JAX's ``orthogonal``.

    Saxe, McClelland & Ganguli (2014). The tensor is seen as a matrix with
    ``shape[column_axis]`` columns and the product of the other dimensions as
    rows; its rows or columns (whichever are fewer) are orthonormal, times
    ``scale``.

    .. math:: W^\top W = \text{scale}^2 I \ \ (\text{rows} \ge \text{columns})

    Examples
    --------
    >>> import jax, numpy as np, berry.jax
    >>> w = np.asarray(berry.jax.orthogonal()(jax.random.key(0), (6, 4)))
    >>> bool(np.allclose(w.T @ w, np.eye(4), atol=1e-5))
    True
    """
    scale = as_float("scale", scale)
    column_axis = check_int("column_axis", column_axis)
    description = f"orthogonal({scale!r}, column_axis={column_axis})"
    return _made(description, dtype, name, init="orthogonal", gain=scale, column_axis=column_axis)


def delta_orthogonal(
    scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike = None, *, name: str | None = None
) -> Initializer:
    r"""Delta-orthogonal convolution kernel, JAX's ``delta_orthogonal``.

    Xiao et al. (2018), "Dynamical Isometry and a Mean Field Theory of CNNs".
    The kernel (3-D, 4-D or 5-D, channels last, ``in <= out``) is zero except
    at the spatial centre, which holds an orthogonal ``(in, out)`` matrix.

    Examples
    --------
    >>> import jax, numpy as np, berry.jax
    >>> w = np.asarray(berry.jax.delta_orthogonal()(jax.random.key(0), (3, 3, 4, 4)))
    >>> bool(np.allclose(w[1, 1].T @ w[1, 1], np.eye(4), atol=1e-5)), float(abs(w[0]).sum())
    (True, 0.0)
    """
    scale = as_float("scale", scale)
    column_axis = check_int("column_axis", column_axis)
    if column_axis not in (-1, 1):
        raise ValueError(
            f"column_axis={column_axis} is not supported by delta_orthogonal; supported: -1 (or 1), "
            "the out axis of the (in, out) centre matrix"
        )
    description = f"delta_orthogonal({scale!r}, column_axis={column_axis})"
    return _made(description, dtype, name, init="delta_orthogonal", gain=scale, layout="channels_last")


def zeros(
    key: Any = None, shape: Sequence[int] = (), dtype: DTypeLike = None, out_sharding: Any = None
) -> Any:
    """Zeros, like ``jax.nn.initializers.zeros`` (an initializer itself, not a factory).

    Examples
    --------
    >>> import jax, berry.jax
    >>> berry.jax.zeros(jax.random.key(0), (2, 3)).sum().item()
    0.0
    """
    return _made("zeros", None, None, init="zeros")(key, shape, dtype, out_sharding)


def ones(
    key: Any = None, shape: Sequence[int] = (), dtype: DTypeLike = None, out_sharding: Any = None
) -> Any:
    """Ones, like ``jax.nn.initializers.ones`` (an initializer itself, not a factory).

    Examples
    --------
    >>> import jax, berry.jax
    >>> berry.jax.ones(jax.random.key(0), (2, 3)).sum().item()
    6.0
    """
    return _made("ones", None, None, init="ones")(key, shape, dtype, out_sharding)


def constant(value: float, dtype: DTypeLike = None) -> Initializer:
    """A constant, like ``jax.nn.initializers.constant``.

    Examples
    --------
    >>> import jax, berry.jax
    >>> berry.jax.constant(-7.0)(jax.random.key(0), (2,)).tolist()
    [-7.0, -7.0]
    """
    value = as_float("value", value)
    return _made(f"constant({value!r})", dtype, None, init="constant", value=value)


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
    return _made(
        f"initializer({init!r}, {distribution!r})", dtype, name,
        init=init, distribution=distribution, gain=as_float("gain", gain), layout="channels_last", fans=fans, **options,
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


# ---------------------------------------------------------------- sharding


def sharded(
    init: Initializer,
    shape: Sequence[int],
    sharding: Any,
    key: Any,
    dtype: DTypeLike = None,
) -> Any:
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
    sharding : jax.sharding.Sharding
        For example ``NamedSharding(mesh, PartitionSpec("x", None))``.
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
    shape = check_shape("shape", shape)
    return sharded_values(init.plan(shape), init.name or "", shape, sharding, key, init._dtype(dtype))
