"""Sharded arrays from a plan: each device's shard is computed from its own region of the global tensor.

Outside ``jax.jit`` any ``Sharding`` works (``jax.make_array_from_callback``:
each distinct shard is made once, on the host, and placed on its devices);
inside ``jit`` a ``NamedSharding`` whose dimensions split evenly, each device's
host callback making its own block (``jax.shard_map``). The values are those of
:meth:`berry._adapter.Plan.values`, so the global array is the same for every
mesh and ``PartitionSpec``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from berry._adapter import Plan, seed_from_words
from berry.jax._keys import key_words

__all__ = ["sharded_values"]

Region = tuple[slice, ...]


def _region_of_index(index: tuple[slice, ...], shape: tuple[int, ...]) -> Region:
    return tuple(slice(*s.indices(dim)[:2]) for s, dim in zip(index, shape, strict=True))


def sharded_values(plan: Plan, name: str, shape: tuple[int, ...], sharding: Any, key: Any, dtype: np.dtype) -> Any:
    """A sharded ``jax.Array`` of ``plan``'s values, each addressable shard computed from its own region."""
    import jax

    if not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError(f"sharding must be a jax.sharding.Sharding, got {sharding!r}")
    words = None if not plan.random else key_words(key)
    if isinstance(words, jax.core.Tracer):
        return _traced_sharded(plan, name, shape, sharding, words, dtype)
    seed = 0 if words is None else seed_from_words(np.asarray(words))
    made: dict[tuple[tuple[int, int], ...], np.ndarray] = {}  # replicated shards are generated once

    def shard(index: tuple[slice, ...] | None) -> np.ndarray:
        region = _region_of_index(index or tuple(slice(None) for _ in shape), shape)
        bounds = tuple((s.start, s.stop) for s in region)
        if bounds not in made:
            whole = all(s.start == 0 and s.stop == dim for s, dim in zip(region, shape, strict=True))
            made[bounds] = plan.values(seed, name, dtype, None if whole else region)
        return made[bounds]

    return jax.make_array_from_callback(shape, sharding, shard)


def _traced_sharded(
    plan: Plan, name: str, shape: tuple[int, ...], sharding: Any, words: Any, dtype: np.dtype
) -> Any:
    """Under ``jit``: each device's callback makes its own block (``shard_map``), for a ``NamedSharding``."""
    import jax
    import jax.numpy as jnp

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
            raise ValueError(
                f"dimension {dim} of shape={shape} ({size}) does not split evenly over {parts} devices"
            )
        block.append(size // parts)
        axes_of_dim.append(axes)

    def host(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
        region = tuple(
            slice(int(start), int(start) + size) for start, size in zip(starts, block, strict=True)
        )
        whole = tuple(block) == shape
        return plan.values(seed_from_words(data), name, dtype, None if whole else region)

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
