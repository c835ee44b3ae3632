"""The JAX initializer object: ``init(key, shape, dtype=None, out_sharding=None)`` over berry's values.

An :class:`Initializer` holds what a factory of :mod:`berry.jax.initializers`
decided once (a validated :class:`berry._adapter.Recipe`, or an array-valued
constant), and at each call checks the key, shape and dtype the way
``jax.nn.initializers`` does (errors begin with JAX's own wording, then say
what berry expected), fixes everything for the shape (:meth:`Initializer.prepare`)
and computes the values on the host: eagerly, or under ``jax.jit``/``vmap``
through ``jax.pure_callback`` (same bits either way), or shard by shard
(:mod:`berry.jax._sharding`).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from berry._adapter import Plan, Recipe
from berry._validation import check_key, exact_dtype, resolve_dtype
from berry.jax._complex import complex_values
from berry.jax._keys import key_words, seed_from_words
from berry.jax._sharding import sharded_values

__all__ = ["Initializer", "ShapeCheck", "canonical_shape", "made"]

DTypeLike = Any
Region = tuple[slice, ...]
#: A check of the shape with JAX's own error (rank, channels, axes), run before anything else.
ShapeCheck = Callable[[tuple[int, ...]], None]


def canonical_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` as JAX reads it (an int or a sequence of integers, each ``>= 0``), with JAX's errors."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(operator.index(dim) for dim in shape)
    except TypeError:
        raise TypeError(
            f"Shapes must be 1D sequences of concrete values of integer type, got {shape}. "
            "(berry.jax: each dimension must be an int)"
        ) from None
    if any(dim < 0 for dim in dims):
        raise TypeError(
            f"Only non-negative indices are allowed when broadcasting static shapes, but got shape {dims}. "
            "(berry.jax: dimensions must be >= 0)"
        )
    return dims


def _jax_dtype(dtype: DTypeLike) -> np.dtype:
    """The NumPy dtype JAX would use for ``dtype`` (64-bit types narrowed without ``jax_enable_x64``)."""
    import jax

    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        return resolve_dtype(dtype, floating_only=False)  # berry's table names the allowed dtypes
    return np.dtype(jax.dtypes.canonicalize_dtype(np_dtype))


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What one call computes on the host, fixed for one shape (every argument already checked)."""

    shape: tuple[int, ...]
    plan: Plan | None  #: berry's values (None for an array-valued constant)
    value: np.ndarray | None  #: the constant, before broadcasting
    complex_law: str | None
    column_axis: int
    sign: float  #: -1 for JAX's ``stddev * z`` with a negative stddev (berry draws |stddev| and negates)

    @property
    def random(self) -> bool:
        return self.plan is not None and self.plan.random

    def fill_value(self) -> Any:
        """The one value of every element (zeros, ones, a scalar constant, an empty shape), else ``None``."""
        if 0 in self.shape:
            return 0
        if self.value is not None:
            return self.value[()] if self.value.ndim == 0 else None
        assert self.plan is not None
        return None if self.plan.constant is None else self.sign * self.plan.constant

    def values(self, seed: int, name: str, dtype: np.dtype, region: Region | None = None) -> np.ndarray:
        """The values of ``region`` (or the whole tensor) for ``seed`` and ``name``, in ``dtype``."""
        if self.value is not None:
            whole = np.broadcast_to(self.value.astype(dtype), self.shape)
            part = whole if region is None else whole[region]
            return np.ascontiguousarray(part).reshape(part.shape)  # a 0-d part stays 0-d (ascontiguousarray: 1-d)
        assert self.plan is not None
        if dtype.kind == "c" and self.plan.random:
            return complex_values(
                self.complex_law or "normal", sigma=self.sign * self._sigma(), shape=self.shape, seed=seed,
                name=name, dtype=dtype, region=region, column_axis=self.column_axis,
            )
        if dtype.kind == "c":  # exact values (zeros, ones, eye, a constant): the real part
            real = self.plan.values(seed, name, np.float64, region)
            return (self.sign * real).astype(dtype)
        values = self.plan.values(seed, name, dtype, region)
        return -values if self.sign < 0 else values

    def _sigma(self) -> float:
        assert self.plan is not None
        spec = self.plan.spec
        if spec.kind in ("orthogonal", "delta_orthogonal"):
            return spec.gain
        return 0.0 if 0 in self.shape else float(spec.scale(self.shape))


class Initializer:
    """A JAX initializer whose values come from berry's keyed stream.

    Call it as ``init(key, shape, dtype=None, out_sharding=None)``.
    ``dtype=None`` means the factory's ``dtype``, else JAX's default float
    (float32, or float64 with ``jax_enable_x64``). ``out_sharding`` (a
    ``jax.sharding.Sharding``, or a ``PartitionSpec`` under ``jax.set_mesh``)
    makes a sharded array whose shards are each generated on their own (see
    :func:`berry.jax.sharded`). It satisfies JAX's ``Initializer`` protocol:
    ``isinstance(init, jax.nn.initializers.Initializer)`` holds.

    The key is JAX's random state: as with ``jax.nn.initializers``, the same
    key gives the same values, so give each parameter its own key (Flax does)
    or its own ``name``. ``values(seed, shape, dtype, region)`` is berry's
    keyed form on the NumPy side (an integer seed, optionally one region of the
    global tensor); like :func:`berry.sample` it needs the initializer's
    ``name`` when the values are random.

    The arguments are checked when the factory is called (the
    :class:`berry._adapter.Recipe` is built then), and the key, shape and
    dtype when the initializer is called, before any value is drawn.
    """

    def __init__(
        self,
        description: str,
        recipe: Recipe | None = None,
        *,
        dtype: DTypeLike = None,
        name: str | None = None,
        law: str = "normal",
        complex_law: str | None = None,
        value: np.ndarray | None = None,
        sign: float = 1.0,
        checks: Sequence[ShapeCheck] = (),
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string (the parameter name), got {name!r}")
        if (recipe is None) == (value is None):
            raise TypeError("an Initializer needs exactly one of a recipe and a constant value")
        self.description = description
        self.recipe = recipe
        self.name = name
        self.law = law  #: the JAX sampler its dtype errors name ("normal", "uniform", "truncated_normal")
        self.complex_law = complex_law
        self.value = value
        self.sign = sign
        self.checks = tuple(checks)
        self.random = recipe is not None and recipe.random
        self.dtype = None if dtype is None else self.resolve_dtype(dtype)

    def __repr__(self) -> str:
        extras = "" if not self.name else f", name={self.name!r}"
        return f"berry.jax.{self.description}{extras}"

    # -- checks, each with JAX's wording first --

    def resolve_dtype(self, dtype: DTypeLike) -> np.dtype:
        """``dtype`` (``None``: the factory's, else JAX's default float) as the NumPy dtype to fill."""
        if dtype is None:
            dtype = self.dtype
        if dtype is None:
            import jax.numpy as jnp

            dtype = jnp.float_
        resolved = _jax_dtype(dtype)
        floating = resolved.name in ("float16", "bfloat16", "float32", "float64")
        if not self.random:
            try:  # exact values fill any numeric dtype, float8 and int4 too (jnp.full)
                return exact_dtype(resolved)
            except ValueError:
                raise TypeError(
                    f"dtype={dtype!r} is not supported by berry.jax.{self.description}: exact values fill bool, "
                    "integer, float, complex and ml_dtypes' narrow dtypes"
                ) from None
        if floating or (resolved.kind == "c" and self.complex_law is not None):
            return resolved
        complex_too = self.law == "normal" and resolved.kind != "c"  # JAX's sampler's words
        allowed = "a float or complex dtype" if complex_too else "a float dtype"
        text = "float16, bfloat16, float32 or float64" + (", complex64 or complex128" if self.complex_law else "")
        raise ValueError(
            f"dtype argument to `{self.law}` must be {allowed}, got {resolved.name}; "
            f"berry.jax.{self.description} fills {text}"
        )

    def prepare(self, shape: Sequence[int]) -> Prepared:
        """Check ``shape`` (JAX's errors first) and fix what the host computes for it."""
        dims = canonical_shape(shape)
        for check in self.checks:
            check(dims)
        plan = None
        if self.recipe is not None:
            try:
                plan = self.recipe.plan(dims)
            except ValueError as error:
                raise type(error)(f"{error} (berry.jax.{self.description})") from None
        elif self.value is not None and not _broadcastable(self.value.shape, dims):
            raise ValueError(
                f"Incompatible types for broadcasting: input shape {self.value.shape} and requested shape {dims}; "
                f"berry.jax.{self.description}'s value must broadcast to the shape (NumPy's rules)"
            )
        column_axis = -1 if self.recipe is None or self.recipe.column_axis is None else self.recipe.column_axis
        return Prepared(dims, plan, self.value, self.complex_law, column_axis, self.sign)

    def plan(self, shape: Sequence[int]) -> Plan:
        """The :class:`berry._adapter.Plan` for ``shape`` (initializers made from a recipe)."""
        prepared = self.prepare(shape)
        if prepared.plan is None:
            raise TypeError(f"berry.jax.{self.description} is an array constant; it has no berry.InitSpec plan")
        return prepared.plan

    # -- values --

    def values(
        self, seed: int, shape: Sequence[int], dtype: DTypeLike = None, region: Region | None = None
    ) -> np.ndarray:
        """The NumPy array for an integer ``seed`` (what a key with that seed gives), optionally one region."""
        seed, name = check_key(seed, self.name, keyed=self.random, what=f"berry.jax.{self.description}.values()")
        return self.prepare(shape).values(seed, name, self.resolve_dtype(dtype), region)

    def __call__(self, key: Any, shape: Sequence[int], dtype: DTypeLike = None, out_sharding: Any = None) -> Any:
        import jax
        import jax.numpy as jnp

        np_dtype = self.resolve_dtype(dtype)
        prepared = self.prepare(shape)
        name = self.name or ""  # the JAX key is the random state; the name is optional, as in JAX
        if out_sharding is not None:
            return sharded_values(prepared, name, out_sharding, key, np_dtype, self.description)
        fill = prepared.fill_value()
        if fill is not None:  # constants (and empty shapes) need no key and no host work
            return jnp.full(prepared.shape, fill, dtype=np_dtype)
        if not prepared.random:  # an array constant: no key either
            return jnp.asarray(prepared.values(0, name, np_dtype))
        words = key_words(key, self.description)
        if not isinstance(words, jax.core.Tracer):
            return jnp.asarray(prepared.values(seed_from_words(np.asarray(words)), name, np_dtype))

        def host(data: np.ndarray) -> np.ndarray:
            return prepared.values(seed_from_words(data), name, np_dtype)

        result = jax.ShapeDtypeStruct(prepared.shape, np_dtype)
        return jax.pure_callback(host, result, words, vmap_method="sequential")


def _broadcastable(source: tuple[int, ...], target: tuple[int, ...]) -> bool:
    if len(source) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(source[::-1], target[::-1], strict=False))


def made(description: str, dtype: DTypeLike, name: str | None, *, initializer: dict[str, Any] | None = None,
         **recipe: Any) -> Initializer:
    """An :class:`Initializer` whose recipe is built (and so validated) now, naming the factory in errors."""
    try:
        built = Recipe.make(label=description, **recipe)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{error} (berry.jax.{description})") from None
    return Initializer(description, built, dtype=dtype, name=name, **(initializer or {}))
