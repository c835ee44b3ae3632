"""berry's front door: :func:`sample` and its object form :class:`InitSpec`.

A weight tensor's values are a pure function of ``(seed, name, global shape,
spec)``: the seed and the parameter name are hashed into a 64-bit key
(:func:`berry.stream.key_for`), a scale rule turns the shape into a standard
deviation, and the keyed stream turns the key into values. Nothing depends on
call order, thread count, other tensors or any global random state.

Regions
-------
``region`` is a box of the global tensor: a tuple of ``slice`` objects with
step 1 (or ``None``), one per leading axis. Fewer slices than axes leave the
remaining axes whole (as NumPy indexing does); a bare ``slice`` is a 1-tuple.
``None`` bounds mean the axis' start or end; explicit bounds must be integers
with ``0 <= start <= stop <= size`` (no negative indices, no clipping: an
out-of-bounds region is a bug in sharding code, so it is an error). Integers
are rejected (they would drop an axis; write ``slice(i, i + 1)``).
For elementwise distributions ``sample(shape, ..., region=r)`` equals
``sample(shape, ...)[r]`` bit for bit at a cost proportional to the region;
whole-matrix initializers compute the full matrix and slice it (see
:mod:`berry.distributions` for what their last bits guarantee).

Which options go with which ``init``
------------------------------------
============================  ==================================================================
``init``                      options it uses (others must keep their defaults)
============================  ==================================================================
a rule (name or callable)     distribution, gain, fan_in, fan_out, layout, groups, mean, std,
                              bounds + correct_variance (truncated_normal), low + high (uniform)
``"orthogonal"``              gain, layout
``"delta_orthogonal"``        gain, layout
``"eye"``/``"identity"``      gain
``"dirac"``                   gain, layout, groups
``"sparse"``                  sparsity, distribution, mean, std (default 0.01), bounds,
                              correct_variance, low, high
``"zeros"``, ``"ones"``       nothing
``"constant"``                value (required)
============================  ==================================================================

Each row is the kind's ``options`` in :mod:`berry.kinds`, which decides (``layout`` is
accepted by every kind; tests/test_kinds.py checks that this table agrees). A
non-default value for an option the initializer does not use is an error,
never silently ignored. With a rule, ``std=`` (or ``low``/``high`` for the
uniform) replaces the rule's scale, so the rule's own options (gain, fans,
groups) must then stay at their defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from berry import distributions, kinds, stream
from berry._validation import (
    MAX_THREADS,
    check_choice,
    check_distinct_elements,
    check_finite,
    check_int,
    check_key,
    check_positive,
    check_real,
    check_shape,
    resolve_dtype,
    shown,
    unknown_name,
)
from berry.fans import LAYOUTS, fans_for
from berry.initializations import STRUCTURAL_INITIALIZERS, get_initialization, list_initializations
from berry.kinds import RULE_OPTIONS, InitKind

__all__ = [
    "STRUCTURAL_INITIALIZERS",
    "InitSpec",
    "register_kind",
    "resolve_init",
    "resolve_region",
    "sample",
    "unregister_kind",
]

_DISTRIBUTION_ALIASES = {"trunc_normal": "truncated_normal", "truncnorm": "truncated_normal"}


def resolve_init(init: Any) -> str | Callable[..., float]:
    """``init`` as a canonical structural name, a lower-case registered rule name, or a rule callable.

    Unknown names raise an error listing every rule and structural initializer.
    """
    if isinstance(init, str):
        kind = kinds.find_kind(init)
        if kind is not None:
            return kind.name
        lowered = init.lower()
        try:
            get_initialization(lowered)
        except ValueError:
            raise unknown_name("init", init, [*list_initializations(), *STRUCTURAL_INITIALIZERS]) from None
        return lowered
    if callable(init):
        return init
    raise TypeError(
        f"init must be a rule name, a rule callable or a structural initializer name, "
        f"got {init!r} of type {type(init).__name__}"
    )


def _check_bounds(bounds: Any) -> tuple[float, float]:
    """Truncation bounds: two reals ``a < b`` in units of the std, each possibly infinite."""
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise TypeError(f"bounds must be a pair (a, b) of numbers in units of the std, got {bounds!r}")
    pair = []
    for position, bound in enumerate(bounds):
        if isinstance(bound, str) and bound.strip().lower() in ("inf", "+inf", "-inf", "infinity", "-infinity"):
            bound = float(bound)
        if isinstance(bound, bool) or not isinstance(bound, numbers.Real):
            raise TypeError(f"bounds[{position}] must be a real number, got {bound!r} (in bounds={bounds!r})")
        if bound != bound:  # NaN, found without converting (an integer may not fit a float)
            raise ValueError(f"bounds[{position}] must not be NaN, got bounds={bounds!r}")
        pair.append(check_real(f"bounds[{position}]", bound))  # a clear error beyond float64
    low, high = pair
    if not low < high:
        raise ValueError(f"bounds={bounds!r} is an empty truncation interval; need a < b, e.g. (-2.0, 2.0)")
    return low, high


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """How to initialize a tensor: everything but the shape, seed, name and region.

    An ``InitSpec`` is validated when it is built, is callable as
    ``spec(shape, *, seed=0, name=None, region=None, dtype=None, out=None,
    threads=None)`` (with :func:`sample`'s meaning of each argument), and
    round-trips through a plain dict and JSON, so a model's initialization can
    live in a config file. :func:`sample` builds one and calls it.

    The dict form holds every field plus ``"berry_version"`` (informational)
    and ``"stream_version"``: :meth:`from_dict` warns when a spec written under
    another stream version is loaded, because its values will differ. Infinite
    truncation bounds are written as the strings ``"inf"``/``"-inf"``, so the
    JSON is standard. A rule callable serializes by its registered name; an
    unregistered callable cannot be serialized.

    Parameters are those of :func:`sample` (see there); ``dtype=None`` is float32.

    Examples
    --------
    >>> spec = InitSpec("he", distribution="truncated_normal")
    >>> w = spec((256, 128), seed=1, name="layer1.weight")
    >>> w.shape, w.dtype.name
    ((256, 128), 'float32')
    >>> InitSpec.from_json(spec.to_json()) == spec
    True
    >>> bool((InitSpec.from_json(spec.to_json())((256, 128), seed=1, name="layer1.weight") == w).all())
    True
    """

    init: str | Callable[..., float] = "xavier"
    distribution: str = "normal"
    dtype: Any = None
    gain: float = 1.0
    fan_in: int | None = None
    fan_out: int | None = None
    layout: str = "channels_last"
    groups: int = 1
    mean: float = 0.0
    std: float | None = None
    bounds: tuple[float, float] = (-2.0, 2.0)
    correct_variance: bool = True
    low: float | None = None
    high: float | None = None
    sparsity: float = 0.1
    value: float | None = None

    def __post_init__(self) -> None:

        def normalize(field: str, value: Any) -> None:
            object.__setattr__(self, field, value)

        normalize("init", resolve_init(self.init))
        distribution = self.distribution
        if isinstance(distribution, str):
            distribution = _DISTRIBUTION_ALIASES.get(distribution.lower(), distribution)
        normalize("distribution", check_choice("distribution", distribution, distributions.DISTRIBUTIONS))
        normalize("dtype", resolve_dtype("float32" if self.dtype is None else self.dtype).name)
        normalize("gain", check_finite("gain", self.gain))
        for fan in ("fan_in", "fan_out"):
            if getattr(self, fan) is not None:
                value = check_int(fan, getattr(self, fan))
                if value <= 0:
                    raise ValueError(f"{fan} must be a positive integer, got {getattr(self, fan)!r}")
                normalize(fan, value)
        normalize("layout", LAYOUTS[check_choice("layout", self.layout, tuple(LAYOUTS))])
        normalize("groups", check_int("groups", self.groups, minimum=1))
        normalize("mean", check_finite("mean", self.mean))
        if self.std is not None:
            normalize("std", check_positive("std", self.std, allow_zero=True))
        normalize("bounds", _check_bounds(self.bounds))
        if not isinstance(self.correct_variance, (bool, np.bool_)):
            raise TypeError(f"correct_variance must be True or False, got {self.correct_variance!r}")
        normalize("correct_variance", bool(self.correct_variance))
        for bound in ("low", "high"):
            if getattr(self, bound) is not None:
                normalize(bound, check_finite(bound, getattr(self, bound)))
        if (self.low is None) != (self.high is None):
            raise ValueError(f"give both low and high (absolute uniform bounds) or neither, got low={self.low!r}, high={self.high!r}")
        if self.low is not None and self.high is not None and not self.low <= self.high:
            raise ValueError(f"low must be <= high, got low={self.low!r}, high={self.high!r}")
        sparsity = check_finite("sparsity", self.sparsity)
        if not 0.0 <= sparsity <= 1.0:
            raise ValueError(f"sparsity must be in [0, 1] (the fraction of zeros in each column), got {self.sparsity!r}")
        normalize("sparsity", sparsity)
        if self.value is not None:
            normalize("value", check_finite("value", self.value))
        self._check_options()
        if self.init_kind.check_spec is not None:
            self.init_kind.check_spec(self)

    # -- which kind of initializer, and which options apply ---------------------------------------

    @property
    def init_kind(self) -> InitKind:
        """The descriptor of this spec's kind (:mod:`berry.kinds`): a scale rule or a structural initializer."""
        if isinstance(self.init, str):
            kind = kinds.find_kind(self.init)
            if kind is not None:
                return kind
        return kinds.RULE

    @property
    def kind(self) -> str:
        """``"rule"`` for a scale rule, else the structural initializer's name."""
        return self.init_kind.name

    @property
    def init_label(self) -> str:
        """The initializer's name, for messages and reports (a callable's ``__name__``)."""
        return self.init if isinstance(self.init, str) else getattr(self.init, "__name__", repr(self.init))

    @property
    def takes_fans(self) -> bool:
        """Whether a layer's fans reach this spec (a scale rule whose scale no ``std``/``low`` replaces)."""
        return self.init_kind is kinds.RULE and self.std is None and self.low is None

    def _changed(self) -> list[str]:
        """Fields (besides init, dtype and layout) that differ from their defaults."""
        return [
            field.name
            for field in dataclasses.fields(self)
            if field.name not in ("init", "dtype", "layout") and getattr(self, field.name) != field.default
        ]

    def _check_options(self) -> None:
        kind = self.init_kind
        is_rule = kind is kinds.RULE
        draws_law = "distribution" in kind.options
        uses = set(kind.options)
        if draws_law:
            if self.distribution != "truncated_normal":
                uses -= {"bounds", "correct_variance"}
            if self.distribution != "uniform":
                uses -= {"low", "high"}
        absolute_bounds = self.low is not None and self.distribution == "uniform"
        scale_given = self.std is not None or absolute_bounds
        if is_rule and scale_given:
            uses -= RULE_OPTIONS  # the rule is replaced, so its options would do nothing
        if absolute_bounds:
            uses -= {"std", "mean"}
        for option in self._changed():
            if option in uses:
                continue
            value = getattr(self, option)
            if is_rule and option in RULE_OPTIONS and scale_given:
                given = "std" if self.std is not None else "low/high"
                why = f"{given} replaces the rule's scale, so {option} would do nothing"
            elif option in ("bounds", "correct_variance") and draws_law:
                why = "it applies only to distribution='truncated_normal'"
            elif option in ("low", "high") and draws_law:
                why = "it applies only to distribution='uniform'"
            elif option in ("std", "mean") and absolute_bounds:
                why = "low/high give the uniform's bounds directly"
            elif option == "distribution":
                why = f"init={self.init!r} draws no elementwise distribution; leave distribution='normal'"
            else:
                why = f"init={self.init_label!r} does not use it"
            raise ValueError(f"{option}={value!r} does not apply here: {why}")

    # -- sampling ------------------------------------------------------------------------------

    def __call__(
        self,
        shape: int | Sequence[int],
        *,
        seed: int = 0,
        name: str | None = None,
        region: Any = None,
        dtype: Any = None,
        out: np.ndarray | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """Sample a tensor of global shape ``shape`` (or its ``region``); see :func:`sample`."""

        dims = check_shape("shape", shape)
        seed, name = check_key(seed, name, keyed=self.init_kind.keyed, what=f"berry.sample(init={self.init_label!r})")
        if threads is not None:
            threads = check_int("threads", threads, minimum=1, maximum=MAX_THREADS)
        box = resolve_region(region, dims)
        box_shape = distributions.region_shape(box)
        target_dtype = self._output_dtype(dtype, out)
        self.init_kind.validate_shape(self, dims)
        if out is None:
            try:
                out = np.empty(box_shape, dtype=target_dtype)
            except ValueError:  # NumPy's "array is too big" or "Maximum allowed dimension exceeded"
                what = f"shape={shown(dims)}" if box_shape == dims else f"the region {shown(box_shape)} of shape={shown(dims)}"
                raise ValueError(
                    f"{what} has {shown(math.prod(box_shape))} elements, more than a NumPy array of "
                    f"{target_dtype.name} can hold; sample a smaller region of it (region=)"
                ) from None
        else:
            _check_out(out, box_shape, target_dtype)
        if out.size == 0:
            return out
        # Fill a contiguous buffer; a strided view is filled through a region-sized copy.
        target = out if out.flags.c_contiguous else np.empty(box_shape, dtype=target_dtype)
        key = stream.key_for(seed, name)
        self.init_kind.fill(self, target, shape=dims, region=box, key=key, threads=threads)
        if target is not out:
            out[...] = target
        return out

    def _output_dtype(self, dtype: Any, out: np.ndarray | None) -> np.dtype:
        if out is not None and not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
        if dtype is not None:
            resolved = resolve_dtype(dtype)
            if out is not None and out.dtype.newbyteorder("=") == resolved.newbyteorder("="):
                return out.dtype  # the same type in out's byte order, which the fill writes (dtype=None does too)
            if out is not None and out.dtype != resolved:
                raise ValueError(f"out has dtype {out.dtype.name} but dtype={dtype!r} was asked for; they must agree")
            return resolved
        if out is not None:
            return resolve_dtype(out.dtype)
        return resolve_dtype(self.dtype)

    def check(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Raise the error a call with ``shape`` would raise, without drawing anything; return the shape.

        Adapters call it when an initializer meets its shape (for JAX, while
        tracing), so that errors never surface inside a callback.
        """
        dims = check_shape("shape", shape)
        self.init_kind.validate_shape(self, dims)
        if self.takes_fans and 0 not in dims:
            self.scale(dims)
        return dims

    def scale(self, shape: Sequence[int], *, fans: tuple[int, int] | None = None) -> float:
        """The standard deviation this spec's rule gives a tensor of ``shape`` (or ``std`` if set).

        ``fans`` replaces the fans read from ``shape`` (a block of rows with its
        own fans, such as an LSTM gate); the spec's explicit ``fan_in``/``fan_out`` still win.

        Examples
        --------
        >>> InitSpec("xavier").scale((1500, 500)) == (2 / 2000) ** 0.5
        True
        """
        if self.std is not None:
            return self.std
        if self.kind == "sparse":
            return kinds.SPARSE_DEFAULT_STD
        if self.init_kind is not kinds.RULE:
            raise ValueError(f"init={self.kind!r} is not a scale rule, so it has no standard deviation")

        dims = check_shape("shape", shape)
        rule = self.init if callable(self.init) else get_initialization(self.init)
        fan_in = self.fan_in if self.fan_in is not None or fans is None else fans[0]
        fan_out = self.fan_out if self.fan_out is not None or fans is None else fans[1]
        found = fans_for(dims, fan_in, fan_out, layout=self.layout, groups=self.groups)
        std = rule(shape=dims, fan_in=found.fan_in, fan_out=found.fan_out, gain=self.gain)
        return check_positive(f"the std returned by init={self.init_label!r}", std, allow_zero=True)

    def std_for(self, shape: Sequence[int], *, fans: tuple[int, int] | None = None) -> float | None:
        """The values' standard deviation for a report, or ``None`` where none applies (orthogonal, ...)."""
        return self.init_kind.scale_of(self, tuple(shape), fans)

    def describe(self) -> str:
        """A short description for reports, e.g. ``"xavier normal"`` or ``"constant(0.5)"``."""
        return self.init_kind.label(self)

    def law(self, shape: tuple[int, ...]) -> Any:
        """The elementwise law of this spec for a tensor of ``shape`` (:func:`berry.distributions.elementwise_law`)."""
        std = 0.0 if self.low is not None else self.scale(shape)
        return distributions.elementwise_law(
            self.distribution,
            mean=self.mean,
            std=std,
            bounds=self.bounds,
            correct_variance=self.correct_variance,
            low=self.low,
            high=self.high,
        )

    # -- serialization -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready Python values, plus the berry and stream versions.

        Raises ``ValueError`` for a rule callable that is not registered.
        """
        from berry._version import __version__

        data: dict[str, Any] = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["init"] = self._init_name()
        data["bounds"] = [bound if math.isfinite(bound) else ("inf" if bound > 0 else "-inf") for bound in self.bounds]
        data["berry_version"] = __version__
        data["stream_version"] = stream.STREAM_VERSION
        return data

    def _init_name(self) -> str:
        if isinstance(self.init, str):
            return self.init
        names = [name for name, rule in list_initializations().items() if rule is self.init]
        if not names:
            raise ValueError(
                f"init={self.init!r} is a callable that is not registered, so the spec cannot be serialized; "
                "register it first with berry.register_initialization(name, rule)"
            )
        own_name = getattr(self.init, "__name__", None)
        return own_name if own_name in names else names[0]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitSpec:
        """The spec written by :meth:`to_dict` (missing fields take their defaults)."""

        if not isinstance(data, Mapping):
            raise TypeError(f"InitSpec.from_dict needs a mapping, got {type(data).__name__}")
        fields = {field.name for field in dataclasses.fields(cls)}
        for key in data:
            if key not in fields and key not in ("berry_version", "stream_version"):
                raise unknown_name("InitSpec field", key, sorted(fields))
        version = check_int("stream_version", data.get("stream_version", stream.STREAM_VERSION), minimum=0)
        if version != stream.STREAM_VERSION:
            if version > stream.STREAM_VERSION:  # written by a newer berry: not "then" but elsewhere
                message = (
                    f"this spec was written with stream version {version}, newer than this berry's "
                    f"({stream.STREAM_VERSION}), so the values sampled here differ from the writer's; upgrade berry"
                )
            else:
                message = (
                    f"this spec was written with stream version {version}; berry now uses stream version "
                    f"{stream.STREAM_VERSION}, so the sampled values differ from those it gave then"
                )
            warnings.warn(message, UserWarning, stacklevel=2)
        kwargs = {key: value for key, value in data.items() if key in fields}
        if "bounds" in kwargs and isinstance(kwargs["bounds"], list):
            kwargs["bounds"] = tuple(kwargs["bounds"])
        return cls(**kwargs)

    def to_json(self, **json_options: Any) -> str:
        """:meth:`to_dict` as standard JSON (``json.dumps`` options pass through)."""
        return json.dumps(self.to_dict(), allow_nan=False, **json_options)

    @classmethod
    def from_json(cls, text: str) -> InitSpec:
        """The spec written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def resolve_region(region: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``region`` as one ``slice(start, stop)`` per axis with explicit in-bounds integers.

    ``None`` is the whole tensor; see the module documentation for the rules.

    Examples
    --------
    >>> resolve_region((slice(2, None),), (5, 4))
    (slice(2, 5, None), slice(0, 4, None))
    """
    from berry import stream

    starts, sizes = stream.region_bounds(shape, region)
    return tuple(slice(start, start + size) for start, size in zip(starts, sizes, strict=True))


def _check_out(out: np.ndarray, box_shape: tuple[int, ...], dtype: np.dtype) -> None:
    if type(out) not in (np.ndarray, np.memmap):  # np.matrix stays 2-D when flattened, a mask would hide values
        raise TypeError(
            f"out must be a numpy.ndarray or numpy.memmap, got the subclass {type(out).__module__}.{type(out).__name__}; "
            "pass out.view(numpy.ndarray)"
        )
    if out.shape != box_shape:
        raise ValueError(f"out has shape {out.shape} but the region to fill has shape {box_shape}")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype.name}; expected {dtype.name}")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writable array")
    check_distinct_elements("out", out)


def sample(
    shape: int | Sequence[int],
    init: str | Callable[..., float] = "xavier",
    *,
    distribution: str = "normal",
    seed: int = 0,
    name: str | None = None,
    region: Any = None,
    dtype: Any = None,
    gain: float = 1.0,
    fan_in: int | None = None,
    fan_out: int | None = None,
    layout: str = "channels_last",
    groups: int = 1,
    mean: float = 0.0,
    std: float | None = None,
    bounds: tuple[float, float] = (-2.0, 2.0),
    correct_variance: bool = True,
    low: float | None = None,
    high: float | None = None,
    sparsity: float = 0.1,
    value: float | None = None,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Sample a weight tensor from a scale rule or a structural initializer, reproducibly.

    The seed's ``W ~ N(0, sigma)`` with ``sigma = rule(shape)``, generalized:

    .. math::

        W = \\mu + \\sigma \\cdot Z, \\qquad Z \\sim N(0,1),\\ U(-\\sqrt{3}, \\sqrt{3})
        \\text{ or a truncated normal (std 1 when corrected)}

    The values are a pure function of ``(seed, name, shape, spec)``: never of
    call order, other tensors, thread count or any global random state. The
    elementwise laws' bits depend on ``(seed, name, flat index)`` only, so a
    name must identify one tensor: a call that draws random values needs
    ``name=`` (the same seed without a name would give two tensors the same
    values, and a smaller one would be a prefix of a larger one).

    Parameters
    ----------
    shape:
        The global shape of the tensor (an int is 1-D). Zero-size shapes
        return an empty array.
    init:
        A registered rule name (``"xavier"``, ``"he"``, ... see
        :func:`berry.list_initializations`), a rule callable returning a std,
        or a structural initializer (:mod:`berry.kinds`): ``"orthogonal"``,
        ``"delta_orthogonal"``, ``"eye"`` (alias ``"identity"``), ``"dirac"``,
        ``"sparse"``, ``"zeros"``, ``"ones"``, ``"constant"``.
    distribution:
        ``"normal"``, ``"truncated_normal"`` (alias ``"trunc_normal"``) or
        ``"uniform"`` (``+-sqrt(3) * std``).
    seed, name:
        The key: ``seed`` in ``[0, 2**64)`` and the parameter's name (hashed
        stably; different names give independent streams). ``name`` is
        required when random values are drawn; ``name=""`` chooses the shared
        anonymous stream on purpose. Deterministic initializers (zeros, eye,
        dirac, ...) need no name.
    region:
        A tuple of slices (step 1) selecting a box of the global tensor; the
        result equals ``sample(shape, ...)[region]`` bit for bit.
    dtype:
        ``float32`` (default, or ``out``'s dtype), ``float64``, ``float16``
        or ``bfloat16`` (needs ``ml_dtypes``: ``pip install 'berry[bfloat16]'``).
        float16 and bfloat16 are computed at higher precision and rounded once; float32 normal and
        truncated normal come from the stream's float32 transform (within about 5 float32 ulps of
        the exact quantile; see :mod:`berry.stream`).
    gain:
        Multiplier of the rule's std, or of the orthogonal/eye/dirac values.
    fan_in, fan_out, layout, groups:
        Explicit fans, or how to read them from the shape (see
        :func:`berry.compute_fans`); ``layout`` also places the axes of the
        structural initializers.
    mean, std:
        Location, and a std that replaces the rule's.
    bounds, correct_variance:
        Truncation bounds ``(a, b)`` in units of the parent normal's std
        (either may be infinite); with ``correct_variance`` (default) the
        sampled std equals the rule's, else the parent normal has the rule's
        std (torch's ``trunc_normal_``, TensorFlow).
    low, high:
        Absolute bounds of the uniform, replacing the rule.
    sparsity:
        Fraction of zeros in each column for ``init="sparse"``.
    value:
        The fill value of ``init="constant"``.
    out:
        An array of the region's shape to fill and return (a strided view
        is filled through a temporary of its size).
    threads:
        Threads for the stream (default: all cores); the bits do not depend on it.

    Returns
    -------
    numpy.ndarray
        The tensor (or its region).

    Examples
    --------
    >>> import berry
    >>> w = berry.sample((784, 256), "he", seed=0, name="fc1.weight")
    >>> w.shape, w.dtype.name, round(float(w.std()) * (784 / 2) ** 0.5, 1)
    ((784, 256), 'float32', 1.0)
    >>> block = berry.sample((784, 256), "he", seed=0, name="fc1.weight", region=(slice(None), slice(64, 128)))
    >>> bool((block == w[:, 64:128]).all())
    True
    >>> q = berry.sample((64, 32), "orthogonal", name="q", dtype="float64")
    >>> bool(np.allclose(q.T @ q, np.eye(32)))
    True
    """
    given = locals()
    spec = InitSpec(**{field: given[field] for field in _SPEC_FIELDS})
    return spec(shape, seed=seed, name=name, region=region, dtype=dtype, out=out, threads=threads)


#: InitSpec's fields, which sample() spells out once more for IDEs (tests/test_sampling.py checks they agree).
_SPEC_FIELDS = tuple(field.name for field in dataclasses.fields(InitSpec))


def register_kind(kind: InitKind, *, overwrite: bool = False) -> InitKind:
    """Register a structural initializer (:class:`berry.kinds.InitKind`) for sample, InitSpec and the adapters.

    Its name and aliases must be free among both the kinds and the scale
    rules. Returns ``kind``. See :mod:`berry.kinds` for an example.
    """
    if not isinstance(kind, InitKind):
        raise TypeError(f"kind must be a berry.kinds.InitKind, got {kind!r} of type {type(kind).__name__}")
    for key in (kind.name, *kind.aliases):
        try:
            get_initialization(key)
        except ValueError:
            continue
        raise ValueError(f"{key!r} is already a scale rule (berry.list_initializations()); choose another name")
    kinds._add(kind, overwrite=overwrite)
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind registered with :func:`register_kind` (built-in kinds stay)."""
    kinds._remove(name)
