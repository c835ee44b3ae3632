"""The NumPy reference of the stream's kernel: the recipe of :mod:`berry.stream`, op for op.

It gives the same bits as the C kernel (``berry/_cstream.c``) and is the backend where that was not
built. Everything here is vectorized NumPy on bounded chunks (:data:`CHUNK` elements), so scratch
memory stays constant whatever the size of the output.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from berry import _lowp
from berry._recipe import (
    F32_V_SCALE,
    LAW_NORMAL,
    LAW_UNIFORM,
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_ROUNDS,
    PHILOX_W0,
    PHILOX_W1,
    TRANSFORM_F64,
)
from berry._special import ndtri_array, ndtri_half_f32

__all__ = ["CHUNK", "KernelParams", "Layout", "fill_numpy", "philox4x32", "prerounded", "uniform52", "words32"]

CHUNK = 1 << 16  # elements per chunk: bounded scratch memory


class KernelParams(NamedTuple):
    """The named fields every kernel receives for one law and dtype (the C entry takes them by name).

    See the stream docstring for the formulas; the float32 transform's ``r = base + step * v`` and
    ``z = sign * G(r)`` take (``lower_base``, ``lower_step``, -1) when the word's top bit is clear and
    (``upper_base``, ``upper_step``, ``upper_sign``) when it is set.
    """

    law: int  # LAW_UNIFORM, LAW_NORMAL or LAW_TRUNCATED
    transform: int  # TRANSFORM_F64 or TRANSFORM_F32
    affine32: int  # 1: float32 output, loc + scale * z and the clamp in float32
    offset: float  # loc (low for uniform)
    factor: float  # scale, -scale when the truncation interval is mirrored (high - low for uniform)
    low: float  # clamp bounds: the support rounded inward to the output dtype
    high: float
    pa: float  # float64 transform, truncated normal: Phi(a') and Phi(b') - Phi(a')
    width: float
    qb: float  # Phi(-b'), and whether u > 1/2 is measured from b' (the mirrored interval contains 0)
    complement: int
    lower_base: float  # float32 transform: float32 values
    lower_step: float
    upper_base: float
    upper_step: float
    upper_sign: int  # +1 or -1


class Layout(NamedTuple):
    """A region as rows of contiguous runs of global flat indices."""

    base: int  # global flat index of the region's first element
    run: int  # length of each contiguous run
    counts: tuple[int, ...]  # outer axes (rows) that are not contiguous
    strides: tuple[int, ...]  # global flat-index strides of those axes


def philox4x32(
    x0: NDArray[np.uint64], x1: NDArray[np.uint64], x2: NDArray[np.uint64], x3: NDArray[np.uint64], key: int
) -> tuple[NDArray[np.uint64], ...]:
    """Philox4x32 with 10 rounds (Salmon et al. 2011) on 32-bit words held in uint64 arrays."""
    mask = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    k0, k1 = key & 0xFFFFFFFF, key >> 32
    m0, m1 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1)
    for round_ in range(PHILOX_ROUNDS):
        if round_:
            k0, k1 = (k0 + PHILOX_W0) & 0xFFFFFFFF, (k1 + PHILOX_W1) & 0xFFFFFFFF
        p0 = m0 * x0
        p1 = m1 * x2
        x0, x1, x2, x3 = (
            (p1 >> shift) ^ x1 ^ np.uint64(k0),
            p1 & mask,
            (p0 >> shift) ^ x3 ^ np.uint64(k1),
            p0 & mask,
        )
    return x0, x1, x2, x3


def _philox_words(blocks: NDArray[np.uint64], key: int) -> tuple[NDArray[np.uint64], ...]:
    """Philox4x32-10 of counters (block low, block high, 0, 0); words as uint64 holding 32 bits."""
    zeros = np.zeros_like(blocks)
    return philox4x32(blocks & np.uint64(0xFFFFFFFF), blocks >> np.uint64(32), zeros, zeros, key)


def uniform52(indices: NDArray[np.uint64], key: int) -> NDArray[np.float64]:
    """The float64 transform's u in (0, 1) for global flat indices: 52 random bits plus one half."""
    x0, x1, x2, x3 = _philox_words(indices >> np.uint64(1), key)
    odd = (indices & np.uint64(1)).astype(bool)
    word = np.where(odd, (x2 << np.uint64(32)) | x3, (x0 << np.uint64(32)) | x1)
    # (w >> 12) as the mantissa of a number in [1, 2), minus (1 - 2**-53): exactly ((w >> 12) + 1/2) * 2**-52.
    one_plus = (word >> np.uint64(12)) | np.uint64(0x3FF0000000000000)
    return one_plus.view(np.float64) - (1.0 - 2.0**-53)


def words32(indices: NDArray[np.uint64], key: int) -> NDArray[np.uint32]:
    """Word ``i % 4`` of Philox block ``i // 4`` for global flat indices (the float32 transform's bits)."""
    words = _philox_words(indices >> np.uint64(2), key)
    lane = (indices & np.uint64(3)).astype(np.intp)
    return np.choose(lane, words).astype(np.uint32)


def z_f32(word: NDArray[np.uint32], params: KernelParams) -> NDArray[np.float32]:
    """Standard normal quantiles of the float32 transform (float32 arithmetic), as the C kernel."""
    m = (word & np.uint32(0x7FFFFFFF)).astype(np.int32).astype(np.float32)  # rounds to nearest even
    v = (m + np.float32(0.5)) * np.float32(F32_V_SCALE)
    upper = (word >> np.uint32(31)) == 1
    base = np.where(upper, np.float32(params.upper_base), np.float32(params.lower_base))
    step = np.where(upper, np.float32(params.upper_step), np.float32(params.lower_step))
    g = ndtri_half_f32(base + step * v)
    return np.where(upper & (params.upper_sign > 0), g, -g)


def clamp(values: NDArray[Any], low: Any, high: Any) -> NDArray[Any]:
    """``low if x < low else x``, then ``high if x > high else x``: the kernels' order (signed zeros)."""
    values = np.where(values < low, low, values)
    return np.where(values > high, high, values)


def values_f64(u: NDArray[np.float64], params: KernelParams) -> NDArray[np.float64]:
    """float64 values from uniforms, in the kernel's exact operation order, clamped to the support."""
    if params.law == LAW_UNIFORM:
        values = params.offset + params.factor * u
    elif params.law == LAW_NORMAL:
        values = params.offset + params.factor * ndtri_array(u)
    elif params.complement:  # u > 1/2 from the upper end: z = -ndtri(qb + width * (1 - u)), never 1 - p
        upper = u > 0.5
        z = ndtri_array(np.where(upper, params.qb + params.width * (1.0 - u), params.pa + params.width * u))
        values = params.offset + params.factor * np.where(upper, -z, z)
    else:
        values = params.offset + params.factor * ndtri_array(params.pa + params.width * u)
    return clamp(values, params.low, params.high)


def global_indices(layout: Layout, begin: int, end: int) -> NDArray[np.uint64]:
    """Global flat indices of region positions [begin, end) (region C order)."""
    positions = np.arange(begin, end, dtype=np.int64)
    row, offset = np.divmod(positions, layout.run)
    index = layout.base + offset
    for count, stride in zip(reversed(layout.counts), reversed(layout.strides), strict=True):
        row, axis_index = np.divmod(row, count)
        index = index + axis_index * stride
    return index.astype(np.uint64)


def prerounded(indices: NDArray[np.uint64], key: int, params: KernelParams) -> NDArray[np.float64]:
    """The float64 values (clamped, before the one rounding to the output dtype) of global indices."""
    if params.transform == TRANSFORM_F64:
        return values_f64(uniform52(indices, key), params)
    z32 = z_f32(words32(indices, key), params)
    if params.affine32:
        v32 = np.float32(params.offset) + np.float32(params.factor) * z32
        return clamp(v32, np.float32(params.low), np.float32(params.high)).astype(np.float64)
    values = params.offset + params.factor * z32.astype(np.float64)
    return clamp(values, params.low, params.high)


def fill_numpy(flat: NDArray[Any], params: KernelParams, key: int, layout: Layout) -> None:
    """Write the region's values into the 1-D, C-contiguous, native-endian ``flat``."""
    total = flat.shape[0]
    for begin in range(0, total, CHUNK):
        end = min(begin + CHUNK, total)
        values = prerounded(global_indices(layout, begin, end), key, params)
        flat[begin:end] = _lowp.round_float64(values, flat.dtype)
