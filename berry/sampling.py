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
``"orthogonal"``              gain, layout (distribution must stay ``"normal"``)
``"delta_orthogonal"``        gain, layout (distribution must stay ``"normal"``)
``"eye"``/``"identity"``      gain
``"dirac"``                   gain, layout, groups
``"sparse"``                  sparsity, distribution, mean, std (default 0.01), bounds,
                              correct_variance, low, high
``"zeros"``, ``"ones"``       nothing
``"constant"``                value (required)
============================  ==================================================================

A non-default value for an option the initializer does not use is an error,
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

from berry import _lowp, distributions, stream
from berry._validation import check_choice, check_finite, check_int, check_positive, check_shape, unknown_name
from berry.fans import LAYOUTS, fans_for
from berry.initializations import STRUCTURAL_INITIALIZERS, get_initialization, list_initializations

__all__ = ["STRUCTURAL_INITIALIZERS", "InitSpec", "resolve_region", "sample"]

#: Initializers that are not scale rules, by name (aliases map to the canonical name).
_DISTRIBUTION_ALIASES = {"trunc_normal": "truncated_normal", "truncnorm": "truncated_normal"}

_SUPPORTED_DTYPES = _lowp.SUPPORTED_DTYPES

# Options each kind of initializer uses; "rule" is any scale rule. dtype and layout are always accepted.
_ELEMENTWISE_OPTIONS = frozenset({"distribution", "mean", "std", "bounds", "correct_variance", "low", "high"})
_RULE_OPTIONS = frozenset({"gain", "fan_in", "fan_out", "groups"})
_USES: dict[str, frozenset[str]] = {
    "rule": _ELEMENTWISE_OPTIONS | _RULE_OPTIONS,
    "orthogonal": frozenset({"gain"}),
    "delta_orthogonal": frozenset({"gain"}),
    "eye": frozenset({"gain"}),
    "dirac": frozenset({"gain", "groups"}),
    "sparse": _ELEMENTWISE_OPTIONS | {"sparsity"},
    "zeros": frozenset(),
    "ones": frozenset(),
    "constant": frozenset({"value"}),
}

_SPARSE_DEFAULT_STD = 0.01  # torch.nn.init.sparse_'s default


def _resolve_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of a supported output dtype (float16, bfloat16, float32, float64)."""
    is_bfloat16 = (isinstance(dtype, str) and dtype.lower() == "bfloat16") or getattr(dtype, "__name__", "") == "bfloat16"
    if is_bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            raise ImportError(
                "dtype='bfloat16' needs the ml_dtypes package; install it with: pip install 'berry[bfloat16]'"
            ) from None
        return np.dtype(ml_dtypes.bfloat16)
    if dtype is None or isinstance(dtype, bool):
        raise TypeError(f"dtype must be one of {', '.join(_SUPPORTED_DTYPES)}, got {dtype!r}")
    return _lowp.resolve_dtype(dtype)


def _resolve_init(init: Any) -> str | Callable[..., float]:
    """A canonical structural name, a lower-case registered rule name, or a rule callable."""

    if isinstance(init, str):
        lowered = init.lower()
        if lowered in STRUCTURAL_INITIALIZERS:
            return STRUCTURAL_INITIALIZERS[lowered]
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
        if math.isnan(bound):
            raise ValueError(f"bounds[{position}] must not be NaN, got bounds={bounds!r}")
        pair.append(float(bound))
    low, high = pair
    if not low < high:
        raise ValueError(f"bounds={bounds!r} is an empty truncation interval; need a < b, e.g. (-2.0, 2.0)")
    return low, high


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """How to initialize a tensor: everything but the shape, seed, name and region.

    An ``InitSpec`` is validated when it is built, is callable as
    ``spec(shape, *, seed=0, name="", region=None, dtype=None, out=None,
    threads=None)`` (with :func:`sample`'s meaning of each argument), and
    round-trips through a plain dict and JSON, so a model's initialization can
    live in a config file. :func:`sample` builds one and calls it.

    The dict form holds every field plus ``"berry_version"`` (informational)
    and ``"stream_version"``: :meth:`from_dict` warns when a spec written under
    another stream version is loaded, because its values will differ. Infinite
    truncation bounds are written as the strings ``"inf"``/``"-inf"``, so the
    JSON is standard. A rule callable serializes by its registered name; an
    unregistered callable cannot be serialized.

    Parameters are those of :func:`sample` (see there).

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
    dtype: Any = "float32"
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

        normalize("init", _resolve_init(self.init))
        distribution = self.distribution
        if isinstance(distribution, str):
            distribution = _DISTRIBUTION_ALIASES.get(distribution.lower(), distribution)
        normalize("distribution", check_choice("distribution", distribution, distributions.DISTRIBUTIONS))
        normalize("dtype", _resolve_dtype(self.dtype).name)
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

    # -- which options apply ------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"rule"`` for a scale rule, else the structural initializer's name."""
        return self.init if isinstance(self.init, str) and self.init in _USES else "rule"

    def _changed(self) -> list[str]:
        """Fields (besides init, dtype and layout) that differ from their defaults."""
        return [
            field.name
            for field in dataclasses.fields(self)
            if field.name not in ("init", "dtype", "layout") and getattr(self, field.name) != field.default
        ]

    def _check_options(self) -> None:
        kind = self.kind
        uses = set(_USES[kind])
        if "distribution" in uses:
            if self.distribution != "truncated_normal":
                uses -= {"bounds", "correct_variance"}
            if self.distribution != "uniform":
                uses -= {"low", "high"}
        absolute_bounds = self.low is not None and self.distribution == "uniform"
        scale_given = self.std is not None or absolute_bounds
        if kind == "rule" and scale_given:
            uses -= _RULE_OPTIONS  # the rule is replaced, so its options would do nothing
        if absolute_bounds:
            uses -= {"std", "mean"}
        for option in self._changed():
            if option in uses:
                continue
            value = getattr(self, option)
            if kind == "rule" and option in _RULE_OPTIONS and scale_given:
                given = "std" if self.std is not None else "low/high"
                why = f"{given} replaces the rule's scale, so {option} would do nothing"
            elif option in ("bounds", "correct_variance") and "distribution" in _USES[kind]:
                why = "it applies only to distribution='truncated_normal'"
            elif option in ("low", "high") and "distribution" in _USES[kind]:
                why = "it applies only to distribution='uniform'"
            elif option in ("std", "mean") and absolute_bounds:
                why = "low/high give the uniform's bounds directly"
            elif option == "distribution":
                why = f"init={self.init!r} draws no elementwise distribution; leave distribution='normal'"
            else:
                why = f"init={self._init_label()!r} does not use it"
            raise ValueError(f"{option}={value!r} does not apply here: {why}")
        if kind == "constant" and self.value is None:
            raise ValueError("init='constant' needs value=, the number to fill the tensor with")

    def _init_label(self) -> str:
        return self.init if isinstance(self.init, str) else getattr(self.init, "__name__", repr(self.init))

    # -- sampling ------------------------------------------------------------------------------

    def __call__(
        self,
        shape: int | Sequence[int],
        *,
        seed: int = 0,
        name: str = "",
        region: Any = None,
        dtype: Any = None,
        out: np.ndarray | None = None,
        threads: int | None = None,
    ) -> np.ndarray:
        """Sample a tensor of global shape ``shape`` (or its ``region``); see :func:`sample`."""

        dims = check_shape("shape", shape)
        seed = check_int("seed", seed)
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str (the parameter's name), got {name!r} of type {type(name).__name__}")
        if threads is not None:
            threads = check_int("threads", threads, minimum=1)
        box = resolve_region(region, dims)
        box_shape = distributions.region_shape(box)
        target_dtype = self._output_dtype(dtype, out)
        self._check_shape_for_kind(dims)
        if out is None:
            out = np.empty(box_shape, dtype=target_dtype)
        else:
            _check_out(out, box_shape, target_dtype)
        if out.size == 0:
            return out
        # Fill a contiguous buffer; a strided view is filled through a region-sized copy.
        target = out if out.flags.c_contiguous else np.empty(box_shape, dtype=target_dtype)
        self._fill(target, dims, box, stream.key_for(seed, name), threads)
        if target is not out:
            out[...] = target
        return out

    def _output_dtype(self, dtype: Any, out: np.ndarray | None) -> np.dtype:
        if out is not None and not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
        if dtype is not None:
            resolved = _resolve_dtype(dtype)
            if out is not None and out.dtype != resolved:
                raise ValueError(f"out has dtype {out.dtype.name} but dtype={dtype!r} was asked for; they must agree")
            return resolved
        if out is not None:
            return _resolve_dtype(out.dtype)
        return _resolve_dtype(self.dtype)

    def _check_shape_for_kind(self, dims: tuple[int, ...]) -> None:
        kind, rank = self.kind, len(dims)
        if kind in ("orthogonal", "eye") and rank < 2:
            raise ValueError(f"init={kind!r} needs a shape of rank >= 2, got shape={dims!r}")
        if kind in ("delta_orthogonal", "dirac") and rank not in (3, 4, 5):
            raise ValueError(
                f"init={kind!r} needs a 1-, 2- or 3-D convolution kernel (rank 3, 4 or 5), got shape={dims!r}"
            )
        if kind == "sparse" and rank != 2:
            raise ValueError(f"init='sparse' needs a 2-D shape, got shape={dims!r}")
        if kind == "delta_orthogonal":
            channels_in, channels_out = (dims[1], dims[0]) if self.layout == "torch" else (dims[-2], dims[-1])
            if channels_in > channels_out:
                raise ValueError(
                    f"init='delta_orthogonal' needs in_channels <= out_channels (an isometry from the inputs), "
                    f"got in={channels_in}, out={channels_out} for shape={dims!r} in layout {self.layout!r}"
                )
        if kind == "dirac":
            out_channels = dims[0] if self.layout == "torch" else dims[-1]
            if out_channels % self.groups:
                raise ValueError(
                    f"groups={self.groups} must divide the output channels ({out_channels}) of shape={dims!r} "
                    f"in layout {self.layout!r}"
                )

    def scale(self, shape: Sequence[int]) -> float:
        """The standard deviation this spec's rule gives a tensor of ``shape`` (or ``std`` if set).

        Examples
        --------
        >>> InitSpec("xavier").scale((1500, 500)) == (2 / 2000) ** 0.5
        True
        """
        if self.std is not None:
            return self.std
        if self.kind == "sparse":
            return _SPARSE_DEFAULT_STD
        if self.kind != "rule":
            raise ValueError(f"init={self.kind!r} is not a scale rule, so it has no standard deviation")

        dims = check_shape("shape", shape)
        rule = self.init if callable(self.init) else get_initialization(self.init)
        fans = fans_for(dims, self.fan_in, self.fan_out, layout=self.layout, groups=self.groups)
        std = rule(shape=dims, fan_in=fans.fan_in, fan_out=fans.fan_out, gain=self.gain)
        return check_positive(f"the std returned by init={self._init_label()!r}", std, allow_zero=True)

    def _law(self, shape: tuple[int, ...]) -> Any:
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

    def _fill(
        self, out: np.ndarray, shape: tuple[int, ...], box: tuple[slice, ...], key: int, threads: int | None
    ) -> None:
        kind = self.kind
        where: dict[str, Any] = {"shape": shape, "region": box}
        if kind == "rule":
            distributions.fill_elementwise(out, self._law(shape), key=key, threads=threads, **where)
        elif kind == "orthogonal":
            axis = distributions.out_axis_for(self.layout, len(shape))
            distributions.orthogonal(out, key=key, gain=self.gain, out_axis=axis, threads=threads, **where)
        elif kind == "delta_orthogonal":
            distributions.delta_orthogonal(out, key=key, gain=self.gain, layout=self.layout, threads=threads, **where)
        elif kind == "eye":
            distributions.eye(out, gain=self.gain, **where)
        elif kind == "dirac":
            distributions.dirac(out, groups=self.groups, layout=self.layout, gain=self.gain, **where)
        elif kind == "sparse":
            distributions.sparse(out, self._law(shape), key=key, sparsity=self.sparsity, threads=threads, **where)
        else:
            fill_value = {"zeros": 0.0, "ones": 1.0}.get(kind, self.value)
            assert fill_value is not None  # "constant" without value is rejected at construction
            distributions.constant(out, fill_value)

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
        from berry.initializations import list_initializations

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
        version = data.get("stream_version", stream.STREAM_VERSION)
        if version != stream.STREAM_VERSION:
            warnings.warn(
                f"this spec was written with stream version {version!r}; berry now uses stream version "
                f"{stream.STREAM_VERSION}, so the sampled values differ from those it gave then",
                UserWarning,
                stacklevel=2,
            )
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


def sample(
    shape: int | Sequence[int],
    init: str | Callable[..., float] = "xavier",
    *,
    distribution: str = "normal",
    seed: int = 0,
    name: str = "",
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
    call order, other tensors, thread count or any global random state.

    Parameters
    ----------
    shape:
        The global shape of the tensor (an int is 1-D). Zero-size shapes
        return an empty array.
    init:
        A registered rule name (``"xavier"``, ``"he"``, ... see
        :func:`berry.list_initializations`), a rule callable returning a std,
        or a structural initializer: ``"orthogonal"``, ``"delta_orthogonal"``,
        ``"eye"`` (alias ``"identity"``), ``"dirac"``, ``"sparse"``,
        ``"zeros"``, ``"ones"``, ``"constant"``.
    distribution:
        ``"normal"``, ``"truncated_normal"`` (alias ``"trunc_normal"``) or
        ``"uniform"`` (``+-sqrt(3) * std``).
    seed, name:
        The key: ``seed`` in ``[0, 2**64)`` and the parameter's name (hashed
        stably; different names give independent streams).
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
    >>> q = berry.sample((64, 32), "orthogonal", dtype="float64")
    >>> bool(np.allclose(q.T @ q, np.eye(32)))
    True
    """
    spec = InitSpec(
        init=init,
        distribution=distribution,
        dtype="float32" if dtype is None else dtype,
        gain=gain,
        fan_in=fan_in,
        fan_out=fan_out,
        layout=layout,
        groups=groups,
        mean=mean,
        std=std,
        bounds=bounds,
        correct_variance=correct_variance,
        low=low,
        high=high,
        sparsity=sparsity,
        value=value,
    )
    return spec(shape, seed=seed, name=name, region=region, dtype=dtype, out=out, threads=threads)
