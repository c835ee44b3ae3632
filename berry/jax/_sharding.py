"""Sharded ``jax.Array``s whose shards are each generated from their own region of the global tensor."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from berry._jax_arrays import array_from_regions
from berry.jax._keys import key_words, seed_from_words

if TYPE_CHECKING:
    from berry.jax._initializer import Prepared

__all__ = ["sharded_values"]


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
