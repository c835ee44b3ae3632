"""Output dtypes of the stream and rounding float64 into them exactly once.

float32 and float64 are plain casts (a float64 -> float32 cast is one correctly
rounded operation). float16 and bfloat16 are rounded straight from the float64
bits with integer round-to-nearest-even: never through float32, which would
round twice (the classic double-rounding error), and never through a library
conversion whose path we cannot see. The C kernel uses the same integer
routine, so both backends agree bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from berry._validation import FLOAT_DTYPES
from berry._validation import resolve_dtype as _resolve_dtype

__all__ = ["SMALL_FORMATS", "SUPPORTED_DTYPES", "inward_bounds", "largest_finite", "resolve_dtype", "round_float64"]

SUPPORTED_DTYPES = FLOAT_DTYPES

#: (exponent bits, mantissa bits) of the small formats, for the integer rounding below (and the device
#: kernel's constants, berry/_device/_kernel.py).
SMALL_FORMATS = {"float16": (5, 10), "bfloat16": (8, 7)}


def resolve_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype for ``dtype`` (a name, NumPy dtype or type), if the stream supports it.

    berry's one dtype table, :func:`berry._validation.resolve_dtype`.
    """
    return _resolve_dtype(dtype)


def small_format(dtype: np.dtype) -> tuple[int, int] | None:
    """(exponent bits, mantissa bits) for float16/bfloat16, None for float32/float64."""
    return SMALL_FORMATS.get(dtype.name)


def round_float64_to_small_bits(
    values: NDArray[np.float64], exponent_bits: int, mantissa_bits: int
) -> NDArray[np.uint16]:
    """Bit patterns of ``values`` rounded once, to nearest even, into a 16-bit binary float format.

    The float64 is rebased to the target's exponent bias and its fraction shifted right with
    round-to-nearest-even on the combined exponent|fraction integer, so a carry out of the
    fraction correctly bumps the exponent (and overflows to infinity). Values below the
    target's normal range are shifted further (subnormals); NaN stays NaN.
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    sign = ((bits >> np.uint64(63)) << np.uint64(15)).astype(np.uint16)
    magnitude = bits & np.uint64(0x7FFFFFFFFFFFFFFF)
    bias = (1 << (exponent_bits - 1)) - 1
    exponent = (magnitude >> np.uint64(52)).astype(np.int64) - 1023
    fraction = magnitude & np.uint64(0x000FFFFFFFFFFFFF)
    min_exponent = 1 - bias
    normal = exponent >= min_exponent
    # Normal targets: round ((e + bias) << 52 | fraction) >> (52 - m); subnormal targets: round
    # (1 << 52 | fraction) >> (52 - m + min_exponent - e), capped where everything rounds to 0.
    rebased = (np.maximum(exponent + bias, 0).astype(np.uint64) << np.uint64(52)) | fraction
    with_implicit = fraction | np.uint64(1 << 52)
    shift = np.where(normal, 52 - mantissa_bits, np.minimum(52 - mantissa_bits + min_exponent - exponent, 55))
    source = np.where(normal, rebased, with_implicit)
    shift_u = shift.astype(np.uint64)
    kept = source >> shift_u
    remainder = source & ((np.uint64(1) << shift_u) - np.uint64(1))
    half = np.uint64(1) << (shift_u - np.uint64(1))
    round_up = (remainder > half) | ((remainder == half) & ((kept & np.uint64(1)) == np.uint64(1)))
    rounded = kept + round_up.astype(np.uint64)
    infinity = np.uint64(((1 << exponent_bits) - 1) << mantissa_bits)
    rounded = np.minimum(rounded, infinity)
    is_nan = magnitude > np.uint64(0x7FF0000000000000)
    rounded = np.where(is_nan, infinity | np.uint64(1 << (mantissa_bits - 1)), rounded)
    return sign | rounded.astype(np.uint16)


def round_float64(values: NDArray[np.float64], dtype: np.dtype) -> NDArray[Any]:
    """``values`` (float64) rounded once to ``dtype`` (float16, bfloat16, float32 or float64).

    Values beyond the dtype's range round to infinity, silently: callers that must not produce one check
    the range first (:func:`largest_finite`).

    >>> import numpy as np
    >>> from berry._lowp import resolve_dtype, round_float64
    >>> x = np.array([1.0 + 2.0**-8 + 2.0**-30])  # just above a bfloat16 tie
    >>> float(round_float64(x, resolve_dtype("bfloat16"))[0].astype(np.float64))
    1.0078125
    """
    fmt = small_format(dtype)
    if fmt is None:
        with np.errstate(over="ignore"):  # beyond the dtype's range rounds to +-inf, as the 16-bit path does
            return np.asarray(values, dtype=np.float64).astype(dtype)
    return round_float64_to_small_bits(values, *fmt).view(dtype)


def largest_finite(dtype: np.dtype) -> float:
    """The largest finite value of ``dtype`` (float16 65504, bfloat16 3.39e38, float32 3.40e38, ...)."""
    fmt = small_format(dtype)
    if fmt is None:
        return float(np.finfo(dtype).max)
    exponent_bits, mantissa_bits = fmt
    bias = (1 << (exponent_bits - 1)) - 1
    return float((2.0 - 2.0**-mantissa_bits) * 2.0**bias)


def inward_bounds(low: float, high: float, dtype: np.dtype, *, open_interval: bool = False) -> tuple[float, float]:
    """The smallest ``dtype`` value >= ``low`` and the largest <= ``high``, as float64.

    Clamping rounded samples into these keeps every value inside [low, high] after rounding. With
    ``open_interval``: the smallest value > ``low`` and the largest < ``high`` instead, where the dtype
    has a value strictly between them (else the closed bounds). ``low`` and ``high`` must lie within
    the dtype's finite range or be infinite (callers check it first).
    """
    values = round_float64(np.array([low, high], dtype=np.float64), dtype)
    lo, hi = (float(v) for v in values.astype(np.float64))
    info_dtype = np.float64 if dtype.name == "float64" else np.float32 if dtype.name == "float32" else None
    if lo < low:
        lo = _next(lo, dtype, info_dtype, up=True)
    if hi > high:
        hi = _next(hi, dtype, info_dtype, up=False)
    if open_interval and math.isfinite(low) and math.isfinite(high):
        open_lo = _next(lo, dtype, info_dtype, up=True) if lo == low else lo
        open_hi = _next(hi, dtype, info_dtype, up=False) if hi == high else hi
        if open_lo <= open_hi:
            return open_lo, open_hi
    return lo, hi


def _next(value: float, dtype: np.dtype, native: Any, *, up: bool) -> float:
    """The neighbour of a ``dtype`` value (as float64) towards +inf (``up``) or -inf."""
    if native is not None:
        return float(np.nextafter(native(value), native(np.inf if up else -np.inf)))
    bits = int(round_float64(np.array([value]), dtype).view(np.uint16)[0])
    negative = bits & 0x8000
    magnitude = bits & 0x7FFF
    if magnitude == 0:
        result = 0x0001 if up else 0x8001
    elif bool(negative) != up:  # moving away from zero
        result = bits + 1
    else:
        result = bits - 1
    return float(np.array([result], dtype=np.uint16).view(dtype).astype(np.float64)[0])
