"""Host-side plans: what NumPy computes for one initializer call, region by region.

A plan is made once per call, at trace time, from the static shape: every
argument check happens then, so that errors surface in Python and never inside
a host callback. Its ``values`` method is pure NumPy and is what runs on the
host (eagerly, inside ``jax.pure_callback`` under ``jit``, or once per shard
in ``jax.make_array_from_callback``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

Region = tuple[slice, ...]


def region_shape(shape: tuple[int, ...], region: Region | None) -> tuple[int, ...]:
    if region is None:
        return shape
    return tuple(s.stop - s.start for s in region)


@dataclasses.dataclass(frozen=True)
class SamplePlan:
    """Values from :func:`berry.sample` with fixed keyword arguments."""

    shape: tuple[int, ...]
    options: dict[str, Any]

    def values(self, seed: int, name: str, dtype: np.dtype, region: Region | None = None) -> np.ndarray:
        from berry.sampling import sample

        return sample(self.shape, seed=seed, name=name, region=region, dtype=dtype.name, **self.options)


@dataclasses.dataclass(frozen=True)
class FullPlan:
    """A constant array (no randomness, so no key is read)."""

    shape: tuple[int, ...]
    value: Any

    def values(self, seed: int, name: str, dtype: np.dtype, region: Region | None = None) -> np.ndarray:
        return np.full(region_shape(self.shape, region), self.value, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class MovedAxisPlan:
    """A whole-tensor plan computed with ``axis`` moved last, then moved back and cut to the region.

    Used for orthogonal matrices whose columns lie along another axis than the
    last: the matrix is a whole-tensor object anyway, so each region costs the
    full tensor.
    """

    inner: SamplePlan
    axis: int

    def values(self, seed: int, name: str, dtype: np.dtype, region: Region | None = None) -> np.ndarray:
        full = np.moveaxis(self.inner.values(seed, name, dtype), -1, self.axis)
        return np.ascontiguousarray(full if region is None else full[region])
