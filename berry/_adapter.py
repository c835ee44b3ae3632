"""The adapter contract: framework arguments -> one validated :class:`~berry.InitSpec` -> NumPy values.

Every framework adapter (``berry.torch``, ``berry.jax``, ``berry.keras``) reaches
the core through this module and through nothing else of another adapter. An
adapter only converts framework objects: a PRNG key or seed object into words
or an int, a dtype object into a name, a shape, and NumPy values into (device)
memory. Everything else is decided here, once:

* **what to draw**: a :class:`Recipe` holds a validated :class:`~berry.InitSpec`
  (built when the framework's initializer is *constructed*, so bad arguments
  fail there, not at the first call), plus where a scale rule's fans come from
  (a :class:`FanReader` in the framework's convention, through the one fan
  engine :func:`berry.compute_fans`) and, for orthogonal matrices, which axis
  holds the columns;
* **the shape**: :meth:`Recipe.plan` checks a shape (rank, channels, fans) and
  fixes the spec for it, in Python, before any value is drawn (JAX calls it
  while tracing, so no error is ever raised inside a host callback);
* **the values**: :meth:`Plan.values` is pure NumPy: the values of the whole
  tensor or of one region (a shard) for an integer seed and a name;
* **seeds, names, dtypes and constants**: :func:`seed_from_words` turns a key's
  or seed generator's 32-bit words into berry's 64-bit seed,
  :func:`~berry._validation.check_seed` checks an integer seed (the one bound,
  ``[0, 2**64)``), :func:`~berry._validation.check_key` says when a name is
  required, :func:`resolve_dtype` is the one dtype table (floating dtypes for
  random values, any real dtype for exact ones), and framework scalars become
  Python floats once (:func:`as_float`), so a std is computed once, in float64,
  and rounded once into the output dtype by the sampler.

Keys and names
--------------
A framework's own random state (a torch generator, a JAX key, a Keras seed or
``SeedGenerator``) follows that framework's contract: the same key gives the
same values, exactly as the framework's own initializers do (JAX and Keras also
give a smaller tensor the prefix of a larger one's values for the same key).
berry's own keyed API (an integer ``seed=`` in ``berry.torch``, or
``berry.jax``'s ``Initializer.values(seed, ...)``) needs a ``name``, as
:func:`berry.sample` does (:func:`~berry._validation.check_key`).

Adding an adapter
-----------------
Build a :class:`Recipe` per framework initializer (the helpers below cover
variance scaling with a free scale and mode, the named rules, the plain laws,
constants and orthogonal matrices), call :meth:`Recipe.plan` with the shape,
and :meth:`Plan.values` with the seed, name and NumPy dtype; convert the result.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from berry._validation import (
    check_choice,
    check_finite,
    check_int,
    check_key,
    check_seed,
    check_shape,
    exact_dtype,
    resolve_dtype,
)
from berry.fans import CONVENTIONS, Fans, compute_fans
from berry.initializations import MODES, variance_scaling
from berry.sampling import InitSpec, resolve_init

__all__ = [
    "CONVENTIONS",
    "TRUNCATED_2_STD",
    "FanReader",
    "Plan",
    "Recipe",
    "as_float",
    "check_init_name",
    "check_key",
    "check_seed",
    "resolve_dtype",
    "seed_from_words",
    "variance_rule",
]

Region = tuple[slice, ...]
Axes = int | Sequence[int]

#: The truncated normal of JAX's and Keras' variance-scaling initializers: cut at 2 standard units,
#: its std corrected to the rule's (they divide by 0.8796...; berry corrects exactly).
TRUNCATED_2_STD: dict[str, Any] = {"distribution": "truncated_normal", "bounds": (-2.0, 2.0), "correct_variance": True}


# ---------------------------------------------------------------------------- seeds, names, scalars


def seed_from_words(words: Any) -> int:
    """berry's 64-bit seed for the raw 32-bit words of a PRNG key or seed generator state.

    Two words ``[hi, lo]`` (JAX's default threefry key, a Keras ``SeedGenerator``'s
    state) become ``hi * 2**32 + lo``, so ``jax.random.key(s)`` gives berry's
    ``seed=s`` for ``0 <= s < 2**32``. Other word counts (JAX's ``rbg`` keys) are
    folded into 64 bits by a stable hash (BLAKE2b).

    >>> seed_from_words([0, 42]), seed_from_words([1, 2])
    (42, 4294967298)
    """
    data = np.asarray(words).astype(np.int64).reshape(-1) & 0xFFFFFFFF
    if data.size == 2:
        return (int(data[0]) << 32) | int(data[1])
    digest = hashlib.blake2b(data.astype("<u4").tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def as_float(argument: str, value: Any) -> float:
    """A framework scalar (Python or NumPy number, 0-d array) as one finite Python float.

    >>> as_float("stddev", np.float32(0.5)), as_float("scale", np.array(2.0))
    (0.5, 2.0)
    """
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    elif not isinstance(value, numbers.Real) and getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # a 0-d framework array (jax.Array, torch.Tensor)
    return check_finite(argument, value)


def check_init_name(init: Any) -> str | Callable[..., float]:
    """``init`` if berry knows it (a rule or a structural initializer), else a clear error; for factories."""
    return resolve_init(init)


def variance_rule(scale: float, mode: str) -> Callable[..., float]:
    """A scale rule for a free ``(scale, mode)``: :func:`berry.variance_scaling` with them fixed.

    >>> variance_rule(2.0, "fan_in")(fan_in=8, fan_out=1)
    0.5
    """
    scale = check_finite("scale", scale)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    mode = check_choice("mode", mode, MODES)
    rule = functools.partial(variance_scaling, scale, mode)
    rule.__name__ = f"variance_scaling({scale!r}, {mode!r})"  # type: ignore[attr-defined]
    return rule


# ---------------------------------------------------------------------------- fans


@dataclasses.dataclass(frozen=True)
class FanReader:
    """Where a scale rule's fans come from: axes in a framework's convention (:func:`berry.compute_fans`)."""

    convention: str = "berry"
    in_axis: Axes | None = None
    out_axis: Axes | None = None
    batch_axis: Axes = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "convention", check_choice("convention", self.convention, CONVENTIONS))
        for argument in ("in_axis", "out_axis", "batch_axis"):
            axes = getattr(self, argument)
            if axes is None:
                continue
            if isinstance(axes, Sequence) and not isinstance(axes, (str, bytes)):
                object.__setattr__(self, argument, tuple(check_int(argument, axis) for axis in axes))
            else:
                object.__setattr__(self, argument, check_int(argument, axes))

    def __call__(self, shape: tuple[int, ...]) -> Fans:
        return compute_fans(
            shape, in_axis=self.in_axis, out_axis=self.out_axis, batch_axis=self.batch_axis, convention=self.convention
        )


# ---------------------------------------------------------------------------- recipes and plans


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one call computes: a spec fixed for one global shape; :meth:`values` is pure NumPy."""

    spec: InitSpec
    shape: tuple[int, ...]
    column_axis: int | None = None  #: whole-matrix values computed with this axis moved last, then moved back

    @property
    def random(self) -> bool:
        """Whether the values come from the keyed stream (else they are exact and need no key)."""
        return self.spec.init_kind.keyed

    @property
    def constant(self) -> float | None:
        """The fill value when the values are one constant (zeros, ones, constant, any empty shape)."""
        if 0 in self.shape:
            return 0.0
        return {"zeros": 0.0, "ones": 1.0, "constant": self.spec.value}.get(self.spec.kind)

    def values(self, seed: int, name: str, dtype: Any, region: Region | None = None) -> np.ndarray:
        """The values (of ``region``, a tuple of ``slice(start, stop)``) for ``seed`` and ``name``."""
        target = resolve_dtype(dtype) if self.random else exact_dtype(dtype)
        sample_dtype = target if target.name in _FLOAT_NAMES else np.dtype(np.float64)  # exact in float64
        if self.column_axis is None:
            values = self.spec(self.shape, seed=seed, name=name, region=region, dtype=sample_dtype)
        else:  # the columns lie along another axis: the whole matrix with that axis last, moved back
            moved = (*self.shape[: self.column_axis], *self.shape[self.column_axis + 1 :], self.shape[self.column_axis])
            whole = np.moveaxis(self.spec(moved, seed=seed, name=name, dtype=sample_dtype), -1, self.column_axis)
            values = np.ascontiguousarray(whole if region is None else whole[region])
        return values if values.dtype == target else values.astype(target)


_FLOAT_NAMES = frozenset({"float16", "bfloat16", "float32", "float64"})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A framework initializer's values, validated when it is made: a spec, its fans, its column axis.

    Parameters
    ----------
    spec:
        The :class:`~berry.InitSpec` (a scale rule, a law with a fixed scale, or a structural kind).
    fans:
        For a scale rule: where its fans come from (``None``: the spec's own layout from the shape).
    column_axis:
        For orthogonal matrices: the axis that holds the columns (JAX's ``column_axis``);
        ``None`` is the spec's layout.
    label:
        How error messages name the initializer (``"he_normal()"``); default: the spec's init.
    """

    spec: InitSpec
    fans: FanReader | None = None
    column_axis: int | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.spec, InitSpec):
            raise TypeError(f"spec must be a berry.InitSpec, got {self.spec!r}")
        if self.column_axis is not None:
            object.__setattr__(self, "column_axis", check_int("column_axis", self.column_axis))
        if not self.label:
            object.__setattr__(self, "label", self.spec.init_label)

    @classmethod
    def make(
        cls, *, fans: FanReader | None = None, column_axis: int | None = None, label: str = "", **options: Any
    ) -> Recipe:
        """A recipe from :func:`berry.sample`'s options (``init``, ``distribution``, ``std``, ...)."""
        return cls(InitSpec(**options), fans=fans, column_axis=column_axis, label=label)

    @property
    def random(self) -> bool:
        return self.spec.init_kind.keyed

    def plan(self, shape: Sequence[int]) -> Plan:
        """Check ``shape`` and fix the spec for it: every error is raised here, before any value is drawn.

        A ``ValueError`` names the initializer (:attr:`label`) first.
        """
        try:
            return self._plan(shape)
        except ValueError as error:
            raise type(error)(f"{self.label}: {error}") from None

    def _plan(self, shape: Sequence[int]) -> Plan:
        dims = check_shape("shape", shape)
        spec = self.spec
        if self.fans is not None:
            fans = self.fans(dims)  # the convention's own checks run for every shape
            if spec.takes_fans and 0 not in dims:
                spec = dataclasses.replace(spec, fan_in=fans.fan_in, fan_out=fans.fan_out)
        spec.check(dims)
        column_axis = None
        if self.column_axis is not None:
            rank = len(dims)
            if not -rank <= self.column_axis < rank:
                raise ValueError(f"column_axis={self.column_axis} is out of range for shape={dims}")
            if self.column_axis % rank != rank - 1:
                column_axis = self.column_axis % rank
        return Plan(spec, dims, column_axis)

    def values(self, shape: Sequence[int], *, seed: int, name: str, dtype: Any, region: Region | None = None) -> np.ndarray:
        """:meth:`plan` then :meth:`Plan.values`."""
        return self.plan(shape).values(seed, name, dtype, region)
