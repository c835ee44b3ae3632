"""Sharded ``jax.Array``s whose shards are each generated from their own region of the global tensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from berry._jax_arrays import array_from_regions
from berry.jax._initializer import Initializer, Prepared, canonical_shape
from berry.jax._keys import key_words, seed_from_words

__all__ = ["sharded", "sharded_values"]


def _named_sharding(sharding: Any) -> Any:
    """A ``Sharding``, or a ``PartitionSpec`` completed with the mesh of ``jax.set_mesh`` (as JAX does)."""
    import jax

    if isinstance(sharding, jax.sharding.PartitionSpec):
        mesh = jax.sharding.get_mesh()
        if mesh.empty:
            raise ValueError(
                "Using PartitionSpec when you are not under a mesh context is not allowed. Please pass a "
                f"NamedSharding instance or enter into a mesh context via `jax.set_mesh`. Got {sharding}"
            )
        return jax.sharding.NamedSharding(mesh, sharding)
    if not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError(
            f"out_sharding must be a jax.sharding.Sharding or a PartitionSpec (under jax.set_mesh), got {sharding!r}"
        )
    return sharding


def sharded_values(prepared: Prepared, name: str, sharding: Any, key: Any, dtype: np.dtype, caller: str) -> Any:
    """The array of ``prepared`` for ``key``, laid out by ``sharding``, each shard made from its region."""
    import jax

    sharding = _named_sharding(sharding)
    words = None if not prepared.random else key_words(key, caller)
    if isinstance(words, jax.core.Tracer):
        return _traced_sharded(prepared, name, sharding, words, dtype)
    seed = 0 if words is None else seed_from_words(np.asarray(words))
    return array_from_regions(prepared.shape, sharding, lambda region: prepared.values(seed, name, dtype, region))


def _traced_sharded(prepared: Prepared, name: str, sharding: Any, words: Any, dtype: np.dtype) -> Any:
    """Under ``jit``: each device's callback makes its own block (``shard_map``), for a ``NamedSharding``."""
    import jax
    import jax.numpy as jnp

    shape = prepared.shape
    if not isinstance(sharding, jax.sharding.NamedSharding):
        raise TypeError(
            f"inside jax.jit, out_sharding must be a jax.sharding.NamedSharding, got {type(sharding).__name__}; "
            "call outside jit (berry.jax.sharded) for other shardings"
        )
    mesh, spec = sharding.mesh, tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    block, axes_of_dim = [], []
    for dim, (size, entry) in enumerate(zip(shape, spec, strict=True)):
        axes = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        parts = math.prod(mesh.shape[axis] for axis in axes)
        if size % parts:
            raise ValueError(f"dimension {dim} of shape={shape} ({size}) does not split evenly over {parts} devices")
        block.append(size // parts)
        axes_of_dim.append(axes)

    def host(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
        region = tuple(slice(int(start), int(start) + size) for start, size in zip(starts, block, strict=True))
        whole = tuple(block) == shape
        return prepared.values(seed_from_words(data), name, dtype, None if whole else region)

    def local(data: Any) -> Any:
        starts = [
            jnp.asarray(0, jnp.int32) if not axes else jax.lax.axis_index(axes).astype(jnp.int32) * size
            for axes, size in zip(axes_of_dim, block, strict=True)
        ]
        result = jax.ShapeDtypeStruct(tuple(block), dtype)
        return jax.pure_callback(host, result, data, jnp.stack(starts), vmap_method="sequential")

    run = jax.shard_map(
        local, mesh=mesh, in_specs=jax.sharding.PartitionSpec(), out_specs=sharding.spec, check_vma=False
    )
    return run(words)


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
