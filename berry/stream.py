"""Keyed, counter-based random numbers: the bits behind every berry sample.

A tensor's values are a pure function of ``(key, global index, law, dtype)``: element ``i``
(the C-order flat index in the global shape) of every tensor comes from Philox4x32-10
block ``i // 2`` (``i // 4`` for the float32 transform below) (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011) keyed by a 64-bit hash of the seed and the parameter name. So
any region, any partition of the work and any thread count give the same bits, and
nothing reads or advances a global random state. The key ignores the shape: the values
depend on ``(seed, name, flat index)``, so two tensors with the same seed and name share
their values and a smaller one is the C-order prefix of a larger one. That is why a keyed
draw needs a name that identifies one tensor (:func:`berry._validation.check_key`).

The stream (version :data:`STREAM_VERSION`)
-------------------------------------------
- key: ``blake2b(b"berry-stream-v1" + seed as 16 little-endian bytes + UTF-8 name)``,
  8-byte digest read little-endian; Philox key words ``(key & 0xffffffff, key >> 32)``.
- block ``n = i // 2``: Philox4x32-10 of counter ``(n mod 2**32, n >> 32, 0, 0)`` gives
  words ``(x0, x1, x2, x3)``; element ``2n`` takes ``(x0, x1)``, element ``2n+1`` takes
  ``(x2, x3)``, as the 64-bit integer ``w = x0 * 2**32 + x1``.
- uniform: ``u = ((w >> 12) + 1/2) * 2**-52``, 52 random bits, strictly inside (0, 1),
  and ``1 - u`` is exact (the tails of the normal are symmetric).
- value (float64, IEEE-exact operations only, in this order, no fused multiply-add):

  * ``Uniform(low, high)``: ``low + (high - low) * u``;
  * ``Normal(loc, scale)``: ``loc + scale * ndtri(u)`` with Wichura's AS 241
    (:func:`berry._special.ndtri_array`, logarithm from :func:`berry._special.log_array`);
  * ``TruncatedNormal(loc, scale, a, b)``: inversion, ``loc + s * ndtri(min(pa + (pb - pa) * u,
    1 - 2**-53))`` with ``pa, pb = ndtr(a'), ndtr(b')``. When ``a + b > 0`` the interval is
    mirrored (``a', b' = -b, -a``, ``s = -scale``) so the probabilities are small numbers with
    full relative precision: far tails such as [5, 6] or [8, 9] stay exact to about 1e-15, and
    every interval costs the same constant work (no rejection loop). Intervals lying entirely
    beyond about 37 standard deviations, whose mass underflows float64, are rejected.

- float32, float16 and bfloat16 outputs of ``Normal`` and ``TruncatedNormal`` use the float32
  transform instead (twice the SIMD lanes and half the Philox work; uniform keeps the recipe above):

  * element ``i`` takes word ``i % 4`` of Philox block ``i // 4`` (the same counter and key), a 32-bit ``w``;
  * ``Normal``: ``s = (float32(w & 0x7fffffff) + 1/2) * 2**-32`` in float32 (so ``0 < s <= 1/2``),
    ``z = +G(s)`` if the top bit of ``w`` is set, else ``-G(s)``, where ``G(s) = -ndtri(s)`` is
    :func:`berry._special.ndtri_half_f32`, evaluated in float32 arithmetic (error at most 3.6 float32
    ulps for s >= 2**-33, 5.8 ulps down to 2**-40, measured against SciPy, see there); ``|z| <= 6.34``
    (mass beyond: 2.3e-10); near 0 the values lie on a grid of about 7e-8 (the 2**-25 spacing of s
    near 1/2 times ``sqrt(2 pi)``), far below float32's needs for a statistic;
  * ``TruncatedNormal``: ``u = ((w >> 9) + 1/2) * 2**-23`` (exact in float32), ``p = min(pa32 + width32 *
    u, 1 - 2**-24)`` in float32 with ``pa32, width32`` the float32 roundings of ``pa`` and ``pb - pa``
    above (after mirroring), and ``z = -G(p)`` if ``p < 1/2``, else ``G(1 - p)``. Used only when every
    ``p`` lies in ``G``'s fitted range (``pa32 + width32 * 2**-24 >= 2**-40``) and float32 resolves the
    interval (``width32 >= (pa32 + width32) / 16``); otherwise (very narrow intervals, tails beyond
    about 7 standard deviations such as [8, 9]) the float64 recipe above defines the value;
  * then, in float64, ``loc + scale * z`` (``-scale`` when mirrored), clamped as below and rounded
    once to float16 or bfloat16. For float32 output the same steps run in float32 instead:
    ``float32(loc) + float32(scale) * z``, clamped into the float32 bounds below (when
    ``float32(loc)`` and ``float32(scale)`` are finite; otherwise in float64 as for float16). Either
    way a float32 value is NOT the float64 output rounded: the two come from different uniforms and
    transforms (same law, float32 accuracy: at most about 5 float32 ulps from the exact quantile).

- output: the value is clamped into ``[lo, hi]`` rounded inward to the output dtype (the
  law's support; the clamp only moves values that rounding, in Phi, ndtri or to the dtype, carried
  outside) and rounded
  ONCE to the dtype (float16 and bfloat16 straight from float64, see :mod:`berry._lowp`).

Design notes
------------
- Why two transforms: float64 output needs AS 241's float64 accuracy; for float32 and narrower
  outputs a float32 evaluation of the inverse CDF, accurate to a few float32 ulps, is within the
  dtype's own resolution and runs 8 lanes wide on AVX2 with four values per Philox block (about
  2x the throughput of the float64 transform on one core). Every operation is still IEEE-exact
  (float32 ``+ - * /``, ``sqrt``, integer ops, conversions; no FMA), so both backends and both
  code paths give the same bits.
- 52 random bits per value, not 53: ``((w >> 11) + 1/2) * 2**-53`` would need 54 significant
  bits and can round to exactly 1.0; ``((w >> 12) + 1/2) * 2**-52`` is exact, never 0 or 1, and
  makes ``1 - u`` exact, so ``|ndtri(u)| < 8.3`` always.
- Mirroring when ``a + b > 0`` (which includes every interval with ``a > 0``) keeps the
  probabilities on the side of 0 where they are small numbers with full relative precision,
  and keeps ``pa + (pb - pa) * u`` below 1.
- Low precision (torch issues 145498 and 155588): torch's ``trunc_normal_`` inverts ``erfinv``
  on uniforms in the output dtype, so in bfloat16 a uniform that rounds to -1 becomes ``-inf``
  and sticks to the lower bound, and with a small std (bounds thousands of stds away) float32
  uniforms next to +-1 give 1000-sigma outliers clamped onto the bounds. Here the whole value
  is computed in float64 from a uniform that never reaches 0 or 1, the bounds enter as
  probabilities, and the only rounding to the output dtype happens at the very end; the
  final clamp only catches values that rounding itself carried past a bound.

Backends: a C extension (``berry._cstream``: pthreads, GIL released, writes straight into the
output in blocks of 1024 with stack scratch only; an AVX2 path and a portable path, compiled with
``-ffp-contract=off``, that give the same bits) and this module's NumPy reference, which gives the
same bits and is the fallback where the extension was not built. :data:`BACKEND` says which one is active;
set ``BERRY_STREAM_BACKEND=numpy`` (or ``c``) before import to force one.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from berry import _lowp
from berry._special import F32_MIN_S, ndtr, ndtri_array, ndtri_half_f32
from berry._validation import check_finite, check_int, check_positive, check_shape

__all__ = [
    "BACKEND",
    "STREAM_VERSION",
    "Law",
    "Normal",
    "TruncatedNormal",
    "Uniform",
    "default_threads",
    "draw",
    "fill",
    "key_for",
    "region_bounds",
]

STREAM_VERSION = 1
"""Version of the bit-defining recipe above; any change to the bits bumps it.

Still 1 because nothing has been released: before the first release the float32 transform (float32,
float16 and bfloat16 normal and truncated normal) replaced the float64 one for those dtypes, and the
golden values in tests/test_stream.py were updated deliberately with it."""

_KEY_TAG = b"berry-stream-v1"
_MAX_SEED = 2**64
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85
_P_MAX = 1.0 - 2.0**-53  # largest float64 below 1: keeps truncated inversion off p == 1
_MIN_TAIL_MASS = 2.0**-1000  # smallest usable Phi of the interval's near bound (|x| ~ 37)
_CHUNK = 1 << 16  # elements per NumPy-reference chunk: bounded scratch memory


def key_for(seed: int, name: str = "") -> int:
    """The 64-bit stream key of a seed and a parameter name (a stable hash, never ``hash()``).

    ``blake2b(b"berry-stream-v1" + seed.to_bytes(16, "little") + name.encode("utf-8"))``
    with an 8-byte digest, read little-endian. Different names give independent streams.

    >>> from berry.stream import key_for
    >>> key_for(0, "layer1.weight") == key_for(0, "layer1.weight") != key_for(0, "layer1.bias")
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer in [0, 2**64), got {seed!r} of type {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} of type {type(name).__name__}")
    digest = hashlib.blake2b(_KEY_TAG + seed.to_bytes(16, "little") + name.encode("utf-8"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def _check_key(key: Any) -> int:
    if isinstance(key, bool) or not isinstance(key, numbers.Integral):
        raise TypeError(
            f"key must be an integer in [0, 2**64) (see key_for), got {key!r} of type {type(key).__name__}"
        )
    if not 0 <= int(key) < _MAX_SEED:
        raise ValueError(f"key must be an integer in [0, 2**64) (see key_for), got {key!r}")
    return int(key)


# --- laws ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uniform:
    """Uniform law on the open interval (low, high): ``low + (high - low) * u``."""

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        low = check_finite("low", self.low)
        high = check_finite("high", self.high)
        if low > high:
            raise ValueError(f"Uniform needs low <= high, got low={self.low!r}, high={self.high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)


@dataclass(frozen=True)
class Normal:
    """Normal law N(loc, scale**2) by inversion: ``loc + scale * ndtri(u)``."""

    loc: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "loc", check_finite("loc", self.loc))
        object.__setattr__(self, "scale", check_positive("scale", self.scale, allow_zero=True))


@dataclass(frozen=True)
class TruncatedNormal:
    """Normal N(loc, scale**2) restricted to [loc + a*scale, loc + b*scale] (a, b in units of scale).

    ``a`` may be ``-inf`` and ``b`` ``+inf`` (one-sided truncation). Sampled by inversion with
    constant work per element for every interval, far tails included.
    """

    loc: float = 0.0
    scale: float = 1.0
    a: float = -2.0
    b: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "loc", check_finite("loc", self.loc))
        object.__setattr__(self, "scale", check_positive("scale", self.scale, allow_zero=True))
        for arg in ("a", "b"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
                raise ValueError(f"truncation bound {arg} must be a real number or +-inf, got {value!r}")
            object.__setattr__(self, arg, float(value))
        if not self.a < self.b or self.a == math.inf or self.b == -math.inf:
            raise ValueError(
                f"truncation interval must satisfy a < b (in units of scale), got a={self.a!r}, b={self.b!r}"
            )
        _truncation(self.a, self.b)  # rejects intervals whose mass underflows


Law = Uniform | Normal | TruncatedNormal


class _Truncation(NamedTuple):
    mirrored: bool
    pa: float
    width: float


@lru_cache(maxsize=1024)
def _truncation(a: float, b: float) -> _Truncation:
    """Probabilities of the (possibly mirrored) interval, computed once on the host."""
    mirrored = a + b > 0  # NaN for (-inf, inf): not mirrored
    if mirrored:
        a, b = -b, -a
    pa, pb = ndtr(a), ndtr(b)
    if not pb >= _MIN_TAIL_MASS:
        raise ValueError(
            f"truncation interval [{-b if mirrored else a}, {-a if mirrored else b}] (in units of scale) lies "
            f"beyond about 37 standard deviations; its probability underflows float64. Use bounds with "
            f"min(|a|, |b|) <= 37 or an interval containing 0"
        )
    return _Truncation(mirrored, pa, pb - pa)


class _Params(NamedTuple):
    """Everything the kernel needs about a law: see the module docstring for the formulas."""

    law_code: int  # 0 uniform, 1 normal, 2 truncated normal
    offset: float
    factor: float
    pa: float
    width: float
    low: float  # clamp bounds: the support rounded inward to the output dtype
    high: float
    fast: int  # 0: the float64 transform; 1: the float32 one (4 values per Philox block); 2: 1 + float32 affine


_F32_MAX_P = float(np.float32(1.0 - 2.0**-24))  # largest float32 below 1


def _fast_path(code: int, dtype: np.dtype, pa: float, width: float) -> int:
    """Whether the float32 transform defines this law's values (see the module docstring)."""
    if dtype.name == "float64" or code == 0:
        return 0
    if code == 1:
        return 1
    pa32, width32 = float(np.float32(pa)), float(np.float32(width))
    # every p = pa + width * u (u >= 2**-24) inside the fitted range, and p resolved finely in the interval
    return int(pa32 + width32 * 2.0**-24 >= F32_MIN_S and width32 >= (pa32 + width32) / 16.0)


def _params(law: Law, dtype: np.dtype) -> _Params:
    if isinstance(law, Uniform):
        code, offset, factor, pa, width = 0, law.low, law.high - law.low, 0.0, 1.0
        support = (law.low, law.high)
    elif isinstance(law, TruncatedNormal):
        trunc = _truncation(law.a, law.b)
        code, offset, pa, width = 2, law.loc, trunc.pa, trunc.width
        factor = -law.scale if trunc.mirrored else law.scale
        if law.scale == 0.0:
            support = (law.loc, law.loc)
        else:
            support = (
                law.loc + law.a * law.scale if math.isfinite(law.a) else -math.inf,
                law.loc + law.b * law.scale if math.isfinite(law.b) else math.inf,
            )
    elif isinstance(law, Normal):
        code, offset, factor, pa, width = 1, law.loc, law.scale, 0.0, 1.0
        support = (-math.inf, math.inf)
    else:
        raise TypeError(f"law must be berry.stream.Uniform, Normal or TruncatedNormal, got {law!r}")
    low, high = _lowp.inward_bounds(support[0], support[1], dtype)
    if low > high:
        raise ValueError(
            f"no {dtype.name} value lies in the support [{support[0]!r}, {support[1]!r}] of {law!r}; "
            f"widen the interval or use a wider dtype"
        )
    fast = _fast_path(code, dtype, pa, width)
    if fast:
        pa, width = float(np.float32(pa)), float(np.float32(width))
        if dtype.name == "float32" and all(math.isfinite(float(np.float32(c))) for c in (offset, factor)):
            fast = 2  # float32 output: loc + scale * z and the clamp in float32
    return _Params(code, offset, factor, pa, width, low, high, fast)


# --- regions -------------------------------------------------------------------------------------------


def region_bounds(global_shape: Sequence[int], region: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(start, shape) of ``region``, a tuple of step-1 slices over ``global_shape`` (None: everything).

    Missing trailing slices mean whole axes. Slices must lie inside the shape: negative or
    out-of-range ends, steps other than 1 and non-slice entries are errors, not clipped.

    >>> from berry.stream import region_bounds
    >>> region_bounds((4, 6), (slice(1, 3), slice(None, 2)))
    ((1, 0), (2, 2))
    """
    shape = check_shape("shape", global_shape)
    if region is None:
        return (0,) * len(shape), shape
    if isinstance(region, slice):
        region = (region,)
    if not isinstance(region, tuple):
        raise TypeError(f"region must be a tuple of slices (step 1), got {region!r}")
    if len(region) > len(shape):
        raise ValueError(
            f"region {region!r} has {len(region)} slices but the shape {shape} has {len(shape)} axes"
        )
    starts, sizes = [], []
    for axis, dim in enumerate(shape):
        piece = region[axis] if axis < len(region) else slice(None)
        if not isinstance(piece, slice):
            raise TypeError(
                f"region[{axis}] must be a slice, got {piece!r} (use slice(i, i + 1) for one index)"
            )
        if piece.step not in (None, 1):
            raise ValueError(f"region[{axis}]={piece!r}: only step 1 is supported")
        start = 0 if piece.start is None else check_int(f"region[{axis}].start", piece.start)
        stop = dim if piece.stop is None else check_int(f"region[{axis}].stop", piece.stop)
        if not 0 <= start <= stop <= dim:
            raise ValueError(
                f"region[{axis}]={piece!r} is outside axis {axis} of size {dim}; need 0 <= start <= stop <= {dim}"
            )
        starts.append(start)
        sizes.append(stop - start)
    return tuple(starts), tuple(sizes)


class _Layout(NamedTuple):
    """A region as rows of contiguous runs of global flat indices."""

    base: int  # global flat index of the region's first element
    run: int  # length of each contiguous run
    counts: tuple[int, ...]  # outer axes (rows) that are not contiguous
    strides: tuple[int, ...]  # global flat-index strides of those axes


def _layout(global_shape: tuple[int, ...], start: tuple[int, ...], shape: tuple[int, ...]) -> _Layout:
    if not global_shape:
        return _Layout(0, 1, (), ())
    strides = [1] * len(global_shape)
    for axis in range(len(global_shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * global_shape[axis + 1]
    # Trailing axes the region covers whole merge into the run with the last partial axis.
    split = len(global_shape) - 1
    while split > 0 and start[split] == 0 and shape[split] == global_shape[split]:
        split -= 1
    base = sum(s * st for s, st in zip(start, strides, strict=True))
    run = shape[split] * strides[split]
    outer = [(c, st) for c, st in zip(shape[:split], strides[:split], strict=True) if c != 1]
    return _Layout(base, run, tuple(c for c, _ in outer), tuple(st for _, st in outer))


# --- backends ------------------------------------------------------------------------------------------


def default_threads() -> int:
    """All cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _philox_words(blocks: NDArray[np.uint64], key: int) -> tuple[NDArray[np.uint64], ...]:
    """Philox4x32-10 of counters (block low, block high, 0, 0); words as uint64 holding 32 bits."""
    zeros = np.zeros_like(blocks)
    return _philox4x32(blocks & np.uint64(0xFFFFFFFF), blocks >> np.uint64(32), zeros, zeros, key)


def _philox4x32(
    x0: NDArray[np.uint64], x1: NDArray[np.uint64], x2: NDArray[np.uint64], x3: NDArray[np.uint64], key: int
) -> tuple[NDArray[np.uint64], ...]:
    """Philox4x32 with 10 rounds (Salmon et al. 2011) on 32-bit words held in uint64 arrays."""
    mask = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    k0, k1 = key & 0xFFFFFFFF, key >> 32
    m0, m1 = np.uint64(_PHILOX_M0), np.uint64(_PHILOX_M1)
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + _PHILOX_W0) & 0xFFFFFFFF, (k1 + _PHILOX_W1) & 0xFFFFFFFF
        p0 = m0 * x0
        p1 = m1 * x2
        x0, x1, x2, x3 = (
            (p1 >> shift) ^ x1 ^ np.uint64(k0),
            p1 & mask,
            (p0 >> shift) ^ x3 ^ np.uint64(k1),
            p0 & mask,
        )
    return x0, x1, x2, x3


def _uniform53(indices: NDArray[np.uint64], key: int) -> NDArray[np.float64]:
    """u in (0, 1) for global flat indices (the reference of the kernel's bit-to-float step)."""
    x0, x1, x2, x3 = _philox_words(indices >> np.uint64(1), key)
    odd = (indices & np.uint64(1)).astype(bool)
    word = np.where(odd, (x2 << np.uint64(32)) | x3, (x0 << np.uint64(32)) | x1)
    # (w >> 12) as the mantissa of a number in [1, 2), minus (1 - 2**-53): exactly ((w >> 12) + 1/2) * 2**-52.
    one_plus = (word >> np.uint64(12)) | np.uint64(0x3FF0000000000000)
    return one_plus.view(np.float64) - (1.0 - 2.0**-53)


def _words32(indices: NDArray[np.uint64], key: int) -> NDArray[np.uint32]:
    """Word ``i % 4`` of Philox block ``i // 4`` for global flat indices (the float32 transform's bits)."""
    words = _philox_words(indices >> np.uint64(2), key)
    lane = (indices & np.uint64(3)).astype(np.intp)
    return np.choose(lane, words).astype(np.uint32)


def _z_f32(word: NDArray[np.uint32], params: _Params) -> NDArray[np.float32]:
    """Standard normal quantiles (float32 arithmetic) of the float32 transform, as the C kernel."""
    one = np.float32(1.0)
    if params.law_code == 1:
        # sign bit and s = (m + 1/2) * 2**-32 from the other 31 bits: 0 < s <= 1/2
        m = (word & np.uint32(0x7FFFFFFF)).astype(np.int32).astype(np.float32)
        g = ndtri_half_f32((m + np.float32(0.5)) * np.float32(2.0**-32))
        return np.where(word >> np.uint32(31) == 1, g, -g)
    # u = ((word >> 9) + 1/2) * 2**-23, exactly, built as [1, 2) minus (1 - 2**-24)
    u = ((word >> np.uint32(9)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(_F32_MAX_P)
    p = np.minimum(np.float32(params.pa) + np.float32(params.width) * u, np.float32(_F32_MAX_P))
    lower = p < np.float32(0.5)
    g = ndtri_half_f32(np.where(lower, p, one - p))
    return np.where(lower, -g, g)


def _values(u: NDArray[np.float64], params: _Params) -> NDArray[np.float64]:
    """float64 values from uniforms, in the kernel's exact operation order, clamped to the support."""
    if params.law_code == 0:
        values = params.offset + params.factor * u
    elif params.law_code == 1:
        values = params.offset + params.factor * ndtri_array(u)
    else:
        p = np.minimum(params.pa + params.width * u, _P_MAX)
        values = params.offset + params.factor * ndtri_array(p)
    return np.minimum(np.maximum(values, params.low), params.high)


def _global_indices(layout: _Layout, begin: int, end: int) -> NDArray[np.uint64]:
    """Global flat indices of region positions [begin, end) (region C order)."""
    positions = np.arange(begin, end, dtype=np.int64)
    row, offset = np.divmod(positions, layout.run)
    index = layout.base + offset
    for count, stride in zip(reversed(layout.counts), reversed(layout.strides), strict=True):
        row, axis_index = np.divmod(row, count)
        index = index + axis_index * stride
    return index.astype(np.uint64)


def _prerounded(indices: NDArray[np.uint64], key: int, params: _Params) -> NDArray[np.float64]:
    """The float64 values (clamped, before the one rounding to the output dtype) of global indices."""
    if not params.fast:
        return _values(_uniform53(indices, key), params)
    z32 = _z_f32(_words32(indices, key), params)
    if params.fast == 2:
        v32 = np.float32(params.offset) + np.float32(params.factor) * z32
        v32 = np.minimum(np.maximum(v32, np.float32(params.low)), np.float32(params.high))
        return v32.astype(np.float64)
    z = z32.astype(np.float64)
    values = params.offset + params.factor * z
    return np.minimum(np.maximum(values, params.low), params.high)


def _fill_numpy(flat: NDArray[Any], params: _Params, key: int, layout: _Layout, threads: int) -> None:
    del threads  # the reference is single-threaded; the bits never depend on threads anyway
    total = flat.shape[0]
    for begin in range(0, total, _CHUNK):
        end = min(begin + _CHUNK, total)
        values = _prerounded(_global_indices(layout, begin, end), key, params)
        flat[begin:end] = _lowp.round_float64(values, flat.dtype)


_DTYPE_CODES = {"float64": 0, "float32": 1, "float16": 2, "bfloat16": 3}


def _load_c_backend() -> Any:
    from berry import _cstream

    return _cstream


def _select_backend() -> tuple[str, Any]:
    wanted = os.environ.get("BERRY_STREAM_BACKEND", "auto").strip().lower() or "auto"
    if wanted not in ("auto", "c", "numpy"):
        raise ValueError(f"BERRY_STREAM_BACKEND={wanted!r} is not supported; supported: auto, c, numpy")
    if wanted == "numpy":
        return "numpy", None
    try:
        return "c", _load_c_backend()
    except ImportError:
        if wanted == "c":
            raise ImportError(
                "BERRY_STREAM_BACKEND=c but the C extension berry._cstream is not built; "
                "run `pip install -e .` or `python setup.py build_ext --inplace`"
            ) from None
        return "numpy", None


BACKEND, _CSTREAM = _select_backend()
"""Active backend: ``"c"`` (compiled, threaded) or ``"numpy"`` (the reference)."""


def _fill_c(flat: NDArray[Any], params: _Params, key: int, layout: _Layout, threads: int) -> None:
    _CSTREAM.fill(
        flat.view(np.uint8),
        _DTYPE_CODES[flat.dtype.name],
        key & 0xFFFFFFFF,
        key >> 32,
        *params,
        layout.base,
        layout.run,
        layout.counts,
        layout.strides,
        threads,
    )


def fill(
    out: np.ndarray,
    law: Law,
    *,
    key: int,
    global_shape: Sequence[int],
    region_start: Sequence[int] | None = None,
    threads: int | None = None,
    backend: str | None = None,
) -> None:
    """Write into ``out`` the values of the keyed tensor of ``global_shape`` at ``region_start + index``.

    ``out`` has the region's shape and dtype float16, bfloat16 (ml_dtypes), float32 or float64.
    Element ``i`` (C-order flat index in ``global_shape``) is a pure function of ``(key, i, law)``
    (see the module docstring), so the result is identical for any region, partition or thread
    count. ``threads`` defaults to all cores; ``backend`` (``"c"``/``"numpy"``) overrides
    :data:`BACKEND` for this call. Scratch memory is bounded by a constant when ``out`` is
    C-contiguous and native-endian (otherwise the values go through one temporary array).

    >>> import numpy as np
    >>> from berry.stream import Normal, fill, key_for
    >>> out = np.empty((2, 3), dtype=np.float32)
    >>> fill(out, Normal(0.0, 1.0), key=key_for(0, "w"), global_shape=(4, 3), region_start=(1, 0))
    >>> full = np.empty((4, 3), dtype=np.float32)
    >>> fill(full, Normal(0.0, 1.0), key=key_for(0, "w"), global_shape=(4, 3))
    >>> bool(np.array_equal(out, full[1:3]))
    True
    """
    key = _check_key(key)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    dtype = _lowp.resolve_dtype(out.dtype)
    if not out.flags.writeable:
        raise ValueError("out must be writable, got a read-only array")
    gshape = check_shape("global_shape", global_shape)
    if region_start is None:
        start = (0,) * len(gshape)
    else:
        start = check_shape("region_start", region_start)
        if len(start) != len(gshape):
            raise ValueError(
                f"region_start={tuple(region_start)!r} must have {len(gshape)} entries like global_shape"
            )
    if out.ndim != len(gshape) or any(s + n > g for s, n, g in zip(start, out.shape, gshape, strict=False)):
        raise ValueError(
            f"out of shape {out.shape} at region_start={start} does not fit inside global_shape={gshape}"
        )
    if math.prod(gshape) >= 2**63:
        raise ValueError(f"global_shape={gshape} has more than 2**63 elements")
    if threads is None:
        threads = default_threads()
    else:
        threads = check_int("threads", threads, minimum=1)
    params = _params(law, dtype)
    if out.size == 0:
        return
    which = BACKEND if backend is None else backend
    if which not in ("c", "numpy"):
        raise ValueError(f"backend={backend!r} is not supported; supported: 'c', 'numpy'")
    if which == "c" and _CSTREAM is None:
        raise ImportError("the C stream backend is not built; see berry.stream.BACKEND")
    layout = _layout(gshape, start, tuple(out.shape))
    # The kernels write native-endian C-order memory; anything else goes through a temporary copy.
    direct = out.flags.c_contiguous and out.dtype.isnative
    target = out if direct else np.empty(out.shape, dtype=dtype.newbyteorder("="))
    flat = target.reshape(-1)
    (_fill_c if which == "c" else _fill_numpy)(flat, params, key, layout, threads)
    if target is not out:
        out[...] = target


def draw(
    shape: Sequence[int] | int,
    law: Law,
    *,
    key: int,
    region: Any = None,
    dtype: Any = "float32",
    threads: int | None = None,
) -> np.ndarray:
    """A new array: the keyed tensor of ``shape`` (or its ``region``, a tuple of step-1 slices).

    >>> from berry.stream import TruncatedNormal, draw, key_for
    >>> x = draw((1000,), TruncatedNormal(0.0, 0.02, -2.0, 2.0), key=key_for(7, "w"), dtype="float16")
    >>> x.dtype.name, bool(abs(x.astype(float)).max() <= 0.04)
    ('float16', True)
    """
    gshape = check_shape("shape", shape)
    start, rshape = region_bounds(gshape, region)
    out = np.empty(rshape, dtype=_lowp.resolve_dtype(dtype))
    fill(out, law, key=key, global_shape=gshape, region_start=start, threads=threads)
    return out
