"""One descriptor per kind of initializer: what :func:`berry.sample` and every adapter ask about it.

An :class:`InitKind` says everything berry needs to know about a kind of
initializer: its name and aliases, the :class:`berry.InitSpec` options it
uses, the shapes it accepts, how it fills a region, whether its values depend
on the whole matrix (``whole_matrix``), are exact small numbers (``exact``) or
come from the keyed stream (``keyed``), and how it describes itself and its
scale in a report. :mod:`berry.sampling` validates and dispatches through it,
``berry.torch`` picks per-gate matrices and integer tensors by its flags,
``berry.jax`` and ``berry.keras`` check names and shapes through it.

Every scale rule (``"xavier"``, ``"he"``, a callable, ... see
:mod:`berry.initializations`) is one kind, :data:`RULE`; the others are
*structural*: they fix the values' structure, not only their scale.

Adding a structural initializer
-------------------------------
Write its fill function (values of one region, see :mod:`berry.distributions`)
and register one descriptor; nothing else changes::

    import berry
    from berry.kinds import InitKind

    def fill_checkerboard(spec, out, *, shape, region, key, threads):
        rows = np.arange(region[0].start, region[0].stop)[:, None]
        cols = np.arange(region[1].start, region[1].stop)[None, :]
        out[...] = spec.gain * np.where((rows + cols) % 2 == 0, 1.0, -1.0)

    berry.register_kind(InitKind("checkerboard", fill_checkerboard, options={"gain"},
                                 min_rank=2, max_rank=2, shape_text="a 2-D shape", keyed=False))

Then ``berry.sample(shape, "checkerboard")``, ``InitSpec("checkerboard")``,
``berry.torch.init_model(model, {"Linear:weight": "checkerboard"})``,
``berry.jax.initializer("checkerboard")`` and
``berry.keras.BerryInitializer("checkerboard")`` all work
(``tests/test_kinds.py`` registers such a kind and uses it through each of
them). Before the descriptors, adding a structural initializer meant editing
nine places in five files (the reserved names, the option table, the shape
checks, the dispatch and the docs of ``berry.sampling``, torch's blockwise and
exact sets and its report's description and scale, and a tuple in the JAX
adapter). Registration is process-wide, like
:func:`berry.register_initialization`: a spec naming the kind can only be
loaded where the kind is registered.

The fill function is called as ``fill(spec, out, shape=..., region=...,
key=..., threads=...)`` with ``out`` a C-contiguous array of the region's shape
and a supported dtype, ``region`` one ``slice(start, stop)`` per axis (explicit
and in bounds), ``key`` the 64-bit stream key of ``(seed, name)``. Elementwise
values must equal the same slice of the whole tensor; a ``whole_matrix`` kind
may compute the whole tensor and slice it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from berry._validation import check_choice, shown

if TYPE_CHECKING:
    import numpy as np

    from berry.sampling import InitSpec

__all__ = [
    "ELEMENTWISE_OPTIONS",
    "NAMES",
    "RULE",
    "RULE_OPTIONS",
    "InitKind",
    "find_kind",
    "get_kind",
    "list_kinds",
]

Region = tuple[slice, ...]
FillFunction = Callable[..., None]

#: Options of an elementwise law (the rule kind and sparse's nonzeros).
ELEMENTWISE_OPTIONS = frozenset({"distribution", "mean", "std", "bounds", "correct_variance", "low", "high"})
#: Options that feed a scale rule (and that an explicit ``std`` makes meaningless).
RULE_OPTIONS = frozenset({"gain", "fan_in", "fan_out", "groups"})

#: torch.nn.init.sparse_'s default std of the nonzeros.
SPARSE_DEFAULT_STD = 0.01


@dataclasses.dataclass(frozen=True)
class InitKind:
    """What berry knows about one kind of initializer.

    Parameters
    ----------
    name:
        Canonical name (lower case), e.g. ``"orthogonal"``.
    fill:
        ``fill(spec, out, *, shape, region, key, threads)``: write the values
        of ``region`` of a tensor of global ``shape`` into ``out``.
    options:
        The :class:`berry.InitSpec` options it uses besides ``init``,
        ``dtype`` and ``layout`` (always accepted); any other option with a
        non-default value is an error.
    aliases:
        Other names (lower case).
    min_rank, max_rank, shape_text:
        The ranks it accepts and how to say so in an error ("a 2-D shape").
    check_shape:
        ``check_shape(spec, shape)`` for further shape conditions; raises ``ValueError``.
    check_spec:
        ``check_spec(spec)`` for conditions on the options alone (checked when the spec is built).
    whole_matrix:
        Its values depend on the whole matrix, not only on each element's
        index (orthogonal, eye, sparse, ...): a block of rows with its own
        fans (an LSTM gate, each of q/k/v) gets its own matrix.
    exact:
        Its values are exact small numbers (0, 1), fine for integer tensors.
    keyed:
        It draws from the keyed stream, so a call needs a parameter name.
    fill_value:
        ``fill_value(spec) -> float`` for kinds whose every element is one
        number (zeros, ones, constant): a device fills those without a kernel.
    describe:
        ``describe(spec) -> str`` for reports; default: the name.
    std:
        ``std(spec, shape, fans) -> float | None``: the values' scale for a
        report (``fans`` overrides the shape's); default ``None``.
    summary:
        One line for listings.
    """

    name: str
    fill: FillFunction
    options: Collection[str] = frozenset()
    aliases: tuple[str, ...] = ()
    min_rank: int = 0
    max_rank: int | None = None
    shape_text: str = ""
    check_shape: Callable[[InitSpec, tuple[int, ...]], None] | None = None
    check_spec: Callable[[InitSpec], None] | None = None
    whole_matrix: bool = False
    exact: bool = False
    keyed: bool = True
    fill_value: Callable[[InitSpec], float] | None = None
    describe: Callable[[InitSpec], str] | None = None
    std: Callable[[InitSpec, tuple[int, ...], tuple[int, int] | None], float | None] | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be an identifier-like string, got {self.name!r}")
        if not callable(self.fill):
            raise TypeError(f"fill must be callable, got {self.fill!r}")
        object.__setattr__(self, "name", self.name.lower())
        object.__setattr__(self, "aliases", tuple(alias.lower() for alias in self.aliases))
        object.__setattr__(self, "options", frozenset(self.options))
        unknown = set(self.options) - _SPEC_OPTIONS
        if unknown:
            raise ValueError(f"options {sorted(unknown)} are not InitSpec options; known: {sorted(_SPEC_OPTIONS)}")

    def validate_shape(self, spec: InitSpec, shape: tuple[int, ...]) -> None:
        """Raise a ``ValueError`` naming the kind and the shape if it cannot fill ``shape``."""
        rank = len(shape)
        if rank < self.min_rank or (self.max_rank is not None and rank > self.max_rank):
            text = self.shape_text or f"a shape of rank >= {self.min_rank}"
            raise ValueError(f"init={self.name!r} needs {text}, got shape={shape!r}")
        if self.check_shape is not None:
            self.check_shape(spec, shape)

    def label(self, spec: InitSpec) -> str:
        """How a report names what ``spec`` does."""
        return self.describe(spec) if self.describe is not None else self.name

    def scale_of(self, spec: InitSpec, shape: tuple[int, ...], fans: tuple[int, int] | None = None) -> float | None:
        """The values' standard deviation where one applies (for reports), else ``None``."""
        return None if self.std is None else self.std(spec, shape, fans)


# The option names of InitSpec besides init, dtype and layout (kept here so kinds can be checked alone).
_SPEC_OPTIONS = frozenset(
    {"distribution", "gain", "fan_in", "fan_out", "groups", "mean", "std", "bounds", "correct_variance",
     "low", "high", "sparsity", "value"}
)


# --- fill functions of the built-in kinds ---------------------------------------------------------


def _distributions() -> Any:
    from berry import distributions  # the kinds are read at import time; the samplers load on first use

    return distributions


def _fill_rule(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
               threads: int | None) -> None:
    _distributions().fill_elementwise(out, spec.law(shape), key=key, threads=threads, shape=shape, region=region)


def _fill_orthogonal(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
                     threads: int | None) -> None:
    distributions = _distributions()
    axis = distributions.out_axis_for(spec.layout, len(shape))
    distributions.orthogonal(out, key=key, gain=spec.gain, out_axis=axis, threads=threads, shape=shape, region=region)


def _fill_delta_orthogonal(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
                           threads: int | None) -> None:
    _distributions().delta_orthogonal(out, key=key, gain=spec.gain, layout=spec.layout, threads=threads,
                                      shape=shape, region=region)


def _fill_eye(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
              threads: int | None) -> None:
    _distributions().eye(out, gain=spec.gain, shape=shape, region=region)


def _fill_dirac(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
                threads: int | None) -> None:
    _distributions().dirac(out, groups=spec.groups, layout=spec.layout, gain=spec.gain, shape=shape, region=region)


def _fill_sparse(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
                 threads: int | None) -> None:
    _distributions().sparse(out, spec.law(shape), key=key, sparsity=spec.sparsity, threads=threads,
                            shape=shape, region=region)


def _fill_constant(spec: InitSpec, out: np.ndarray, *, shape: tuple[int, ...], region: Region, key: int,
                   threads: int | None) -> None:
    fill_value = spec.init_kind.fill_value
    assert fill_value is not None  # only the constant kinds use this fill
    _distributions().constant(out, fill_value(spec))


def _constant_value(spec: InitSpec) -> float:
    assert spec.value is not None  # "constant" without value is rejected when the spec is built
    return spec.value


# --- shape and option checks -------------------------------------------------------------------------


def _channels(spec: InitSpec, shape: tuple[int, ...]) -> tuple[int, int]:
    """(in, out) channels of a convolution kernel in the spec's layout."""
    return (shape[1], shape[0]) if spec.layout == "torch" else (shape[-2], shape[-1])


def _check_delta_orthogonal(spec: InitSpec, shape: tuple[int, ...]) -> None:
    channels_in, channels_out = _channels(spec, shape)
    if channels_in > channels_out:
        raise ValueError(
            f"init='delta_orthogonal' needs in_channels <= out_channels (an isometry from the inputs), "
            f"got in={channels_in}, out={channels_out} for shape={shape!r} in layout {spec.layout!r}"
        )


def _check_dirac(spec: InitSpec, shape: tuple[int, ...]) -> None:
    out_channels = _channels(spec, shape)[1]
    if out_channels % spec.groups:
        raise ValueError(
            f"groups={shown(spec.groups)} must divide the output channels ({out_channels}) of shape={shown(shape)} "
            f"in layout {spec.layout!r}"
        )


def _check_constant(spec: InitSpec) -> None:
    if spec.value is None:
        raise ValueError("init='constant' needs value=, the number to fill the tensor with")


# --- descriptions for reports --------------------------------------------------------------------------


def _describe_rule(spec: InitSpec) -> str:
    if spec.low is not None:
        return f"uniform({spec.low:g}, {spec.high:g})"
    law = spec.distribution
    if law == "truncated_normal":
        a, b = spec.bounds
        law += f"[{a:g}, {b:g}]" + ("" if spec.correct_variance else " parent std")
    return law if spec.std is not None else f"{spec.init_label} {law}"


def _rule_std(spec: InitSpec, shape: tuple[int, ...], fans: tuple[int, int] | None) -> float | None:
    if spec.low is not None:
        return None
    return spec.scale(shape, fans=fans)


def _sparse_std(spec: InitSpec, shape: tuple[int, ...], fans: tuple[int, int] | None) -> float | None:
    if spec.low is not None:  # absolute uniform bounds: no std to report
        return None
    return SPARSE_DEFAULT_STD if spec.std is None else spec.std


# --- the registry ----------------------------------------------------------------------------------------

#: Every scale rule (a registered name or a callable) is this kind.
RULE = InitKind(
    "rule", _fill_rule, options=ELEMENTWISE_OPTIONS | RULE_OPTIONS, describe=_describe_rule, std=_rule_std,
    summary="a scale rule's std (xavier, he, ...) under an elementwise law",
)

_BUILTIN = (
    InitKind("orthogonal", _fill_orthogonal, options={"gain"}, min_rank=2, whole_matrix=True,
             summary="(semi-)orthogonal matrix, Haar distributed, times gain (Saxe et al. 2014)"),
    InitKind("delta_orthogonal", _fill_delta_orthogonal, options={"gain"}, min_rank=3, max_rank=5,
             shape_text="a 1-, 2- or 3-D convolution kernel (rank 3, 4 or 5)", check_shape=_check_delta_orthogonal,
             whole_matrix=True, summary="orthogonal matrix at the kernel's centre, zeros elsewhere (Xiao et al. 2018)"),
    InitKind("eye", _fill_eye, options={"gain"}, aliases=("identity",), min_rank=2, whole_matrix=True, exact=True,
             keyed=False, summary="identity matrix (batched over leading axes) times gain"),
    InitKind("dirac", _fill_dirac, options={"gain", "groups"}, min_rank=3, max_rank=5,
             shape_text="a 1-, 2- or 3-D convolution kernel (rank 3, 4 or 5)", check_shape=_check_dirac,
             whole_matrix=True, exact=True, keyed=False,
             summary="Dirac delta: a convolution that passes its inputs through, times gain"),
    InitKind("sparse", _fill_sparse, options=ELEMENTWISE_OPTIONS | {"sparsity"}, min_rank=2, max_rank=2,
             shape_text="a 2-D shape", whole_matrix=True, std=_sparse_std,
             summary="a fraction of each column zero, the rest from a law (Martens 2010)"),
    InitKind("zeros", _fill_constant, exact=True, keyed=False, fill_value=lambda spec: 0.0, summary="zeros"),
    InitKind("ones", _fill_constant, exact=True, keyed=False, fill_value=lambda spec: 1.0, summary="ones"),
    InitKind("constant", _fill_constant, options={"value"}, check_spec=_check_constant, keyed=False,
             fill_value=_constant_value, describe=lambda spec: f"constant({spec.value:g})", summary="a constant value"),
)

_KINDS: dict[str, InitKind] = {}
_NAMES: dict[str, str] = {}  # every name and alias -> canonical name

#: Every structural initializer name and alias, mapped to its canonical name (read-only, live).
NAMES = MappingProxyType(_NAMES)


def find_kind(name: str) -> InitKind | None:
    """The structural kind called ``name`` (case-insensitive, aliases too), or ``None``."""
    canonical = _NAMES.get(name.lower()) if isinstance(name, str) else None
    return None if canonical is None else _KINDS[canonical]


def get_kind(name: str) -> InitKind:
    """The structural kind called ``name``; a clear error for an unknown one."""
    return _KINDS[_NAMES[check_choice("kind", name, tuple(_NAMES)).lower()]]


def list_kinds() -> dict[str, InitKind]:
    """Every structural kind by canonical name.

    >>> sorted(list_kinds())
    ['constant', 'delta_orthogonal', 'dirac', 'eye', 'ones', 'orthogonal', 'sparse', 'zeros']
    """
    return dict(_KINDS)


def _add(kind: InitKind, *, overwrite: bool = False) -> None:
    """Add ``kind`` to the registry (berry.register_kind checks names against the rules first)."""
    if not isinstance(kind, InitKind):
        raise TypeError(f"kind must be a berry.kinds.InitKind, got {kind!r}")
    if kind.name == RULE.name:
        raise ValueError(f"{kind.name!r} names every scale rule; choose another name")
    for key in (kind.name, *kind.aliases):
        taken = _NAMES.get(key)
        if taken is not None and not (overwrite and taken == kind.name):
            raise ValueError(f"{key!r} is already the kind {taken!r}; pass overwrite=True to replace it")
    _KINDS[kind.name] = kind
    for key in (kind.name, *kind.aliases):
        _NAMES[key] = kind.name


def _remove(name: str) -> None:
    kind = get_kind(name)
    if kind in _BUILTIN:
        raise ValueError(f"{kind.name!r} is built in and cannot be removed")
    del _KINDS[kind.name]
    for key in [key for key, target in _NAMES.items() if target == kind.name]:
        del _NAMES[key]


for _kind in _BUILTIN:
    _add(_kind)
