"""A ``jax.Array`` laid out by a sharding whose shards are computed one region at a time.

Shared by ``berry.jax`` (initializers, Flax models) and ``berry.keras`` (Keras
variables on the JAX backend), which may not import each other. JAX is
imported only when an array is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["array_from_regions", "region_of_index"]

Region = tuple[slice, ...]


def region_of_index(index: Sequence[slice] | None, shape: Sequence[int]) -> Region:
    """A device's index into the global array (slices, maybe open) as explicit ``slice(start, stop)``s.

    >>> region_of_index((slice(None), slice(2, 4)), (3, 8))
    (slice(0, 3, None), slice(2, 4, None))
    """
    pieces = tuple(index or ()) + (slice(None),) * (len(shape) - len(tuple(index or ())))
    return tuple(slice(*piece.indices(dim)[:2]) for piece, dim in zip(pieces, shape, strict=True))


def array_from_regions(
    shape: tuple[int, ...], sharding: Any, values_of: Callable[[Region | None], np.ndarray]
) -> Any:
    """``jax.make_array_from_callback`` over ``values_of(region)`` (``None``: the whole tensor).

    Each addressable device's shard is computed from its own region and
    placed on that device; replicated shards (the same region on several
    devices) are computed once.
    """
    import jax

    made: dict[tuple[tuple[int, int], ...], np.ndarray] = {}

    def shard(index: tuple[slice, ...] | None) -> np.ndarray:
        region = region_of_index(index, shape)
        bounds = tuple((piece.start, piece.stop) for piece in region)
        if bounds not in made:
            whole = all(piece.start == 0 and piece.stop == dim for piece, dim in zip(region, shape, strict=True))
            made[bounds] = values_of(None if whole else region)
        return made[bounds]

    return jax.make_array_from_callback(shape, sharding, shard)
