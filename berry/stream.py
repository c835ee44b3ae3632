"""Keyed, counter-based random numbers: the bits behind every berry sample.

The contract
------------
Element ``i`` of a keyed tensor, ``i`` being its C-order flat index in the *global* shape, is a pure
function of ``(seed, name, i, law, dtype)``. It does not depend on the rest of the shape, on the
region asked for, the call order, the thread count, the backend or any global random state (berry
neither reads nor advances one). Two consequences to keep in mind:

- values depend on (seed, name, flat index) only, so a smaller tensor is a prefix (in flat C order) of
  a larger one with the same seed and name, and two layers sampled with the same seed and name get the
  same values: give every tensor its own name;
- any region, partition of the work or thread count gives the same bits, at a cost proportional to
  the region (each machine makes exactly its own shard).

Element ``i`` comes from Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011) keyed by a 64-bit hash of the seed and the name.

The recipe (stream version :data:`STREAM_VERSION`; its constants are in :mod:`berry._recipe`)
-------------------------------------------------------------------------------------------
- key: ``blake2b(KEY_DOMAIN + seed as 16 little-endian bytes + UTF-8 name)``, 8-byte digest read
  little-endian, with :data:`KEY_DOMAIN` ``= b"berry-stream-v1"`` (frozen); Philox key words
  ``(key & 0xffffffff, key >> 32)``.
- Philox block ``n``: Philox4x32-10 of counter ``(n mod 2**32, n >> 32, 0, 0)``, words ``(x0, x1, x2, x3)``.
- Every operation below is one IEEE operation, rounded to nearest even, in the order written, with no
  fused multiply-add; ``f32(x)`` is the float32 rounding of ``x``.

The float64 transform (float64 outputs, every uniform law, and the truncated normals the float32
transform does not take):

- element ``i`` takes block ``i // 2``: element ``2n`` the 64-bit ``w = x0 * 2**32 + x1``, element
  ``2n+1`` ``w = x2 * 2**32 + x3``;
- ``u = ((w >> 12) + 1/2) * 2**-52``: 52 random bits, strictly inside (0, 1), ``1 - u`` exact;
- ``Uniform(low, high)``: ``x = low + (high - low) * u``;
- ``Normal(loc, scale)``: ``x = loc + scale * ndtri(u)``, Wichura's AS 241
  (:func:`berry._special.ndtri_array`, logarithm :func:`berry._special.log_array`), so ``|z| <= 8.21``;
- ``TruncatedNormal(loc, scale, a, b)``: mirrored (``a', b' = -b, -a``, ``s = -scale``) when ``a + b > 0``,
  else ``a', b' = a, b``, ``s = scale``; ``pa = Phi(a')``, ``width = Phi(b') - Phi(a')`` and ``qb =
  Phi(-b')`` on the host (:func:`berry._special.ndtr`, full relative precision in the lower tail).
  If ``b' <= 0``: ``z = ndtri(pa + width * u)`` (every p is at most Phi(b') <= 1/2). If ``b' > 0`` (the
  interval contains 0): ``z = ndtri(pa + width * u)`` for ``u < 1/2`` and ``z = -ndtri(qb + width * (1 -
  u))`` for ``u > 1/2``, so the upper half is measured from its own end and never forms ``1 - p``.
  Then ``x = loc + s * z``. Intervals lying beyond about 37 standard deviations (their mass underflows
  float64) or holding fewer than 4096 float64 probabilities (narrower than inversion resolves) are
  rejected.

The float32 transform (float32, float16 and bfloat16 outputs of ``Normal`` and of the
``TruncatedNormal`` intervals it resolves, see below):

- element ``i`` takes word ``i % 4`` of block ``i // 4``, a 32-bit ``w``;
- ``v = (f32(w & 0x7fffffff) + 1/2) * 2**-32`` in float32 (the integer conversion rounds to nearest
  even), so ``2**-33 <= v <= 1/2`` with float32 relative precision near 0;
- ``r = base + step * v`` and ``z = sign * G(r)`` in float32, where ``G(r) = -ndtri(r)`` is
  :func:`berry._special.ndtri_half_f32` and ``(base, step, sign)`` is the *lower* triple when the top bit
  of ``w`` is clear, the *upper* triple when it is set:

  * ``Normal``: lower ``(0, 1, -1)``, upper ``(0, 1, +1)`` (so ``r = v``); ``|z| <= G(2**-33) = 6.34``,
    the two end cells of mass ``2**-32`` each sit at +-6.34 (the normal mass beyond is 2.3e-10);
  * ``TruncatedNormal``: with ``a', b', s, pa, width`` as above and ``qb = Phi(-b')``: lower
    ``(f32(pa), f32(width), -1)``; upper ``(f32(qb), f32(width), +1)`` when ``b' > 0``, else
    ``(f32(Phi(b')), -f32(width), -1)``. Each half of the uniform is measured from its own end of the
    interval, so neither tail ever forms ``1 - p`` and both keep float32 relative precision. Used when
    every ``r`` lies in ``G``'s fitted range (``base + step * 2**-33 >= 2**-40`` for the lower triple
    and for an upper ``+1`` triple) and float32 resolves the interval (``f32(width) >= (f32(pa) +
    f32(width)) / 16``); otherwise (narrow intervals, tails beyond about 7 standard deviations, one-sided
    intervals starting beyond about 2.4) the float64 transform defines the value;

- then ``x = loc + s * float64(z)`` in float64 (``s = scale`` for ``Normal``); for float32 output with
  ``f32(loc)`` and ``f32(s)`` finite, ``x = f32(loc) + f32(s) * z`` and the clamp below run in float32.

Output: ``x`` is clamped into ``[lo, hi]`` as ``x = lo if x < lo else x`` then ``x = hi if x > hi else
x`` (in that order, which fixes the sign of a clamped zero), and rounded ONCE to the output dtype
(float16 and bfloat16 straight from float64, :mod:`berry._lowp`). ``[lo, hi]`` is the law's support
rounded inward to the dtype: the closed ``[loc + a*scale, loc + b*scale]`` of a truncated normal, the
whole line for a normal, and for ``Uniform`` the open ``(low, high)`` (the largest dtype value below
``high``, the smallest above ``low``) wherever the dtype has a value strictly inside, so a uniform
value never equals an endpoint; the clamp only moves values that rounding (in Phi, ndtri, the affine
map or to the dtype) carried outside.

Accuracy (measured by ``python benchmarks/accuracy.py``; the tests check the bounds on samples)
----------------------------------------------------------------------------------------------
- float64 transform: ``z`` is within ``3.1 * 2**-52 * max(|z|, 1)`` of the exact quantile of its own
  draw, in both tails of every interval (normal; TN [-2, 2], [-6, 6], [2, 3], [5, 6], [8, 9],
  (-inf, -30]; 4096 draws each against mpmath at 40+ digits).
- float32 transform: ``G`` is within 3.646 float32 ulps of ``-ndtri`` for ``2**-33 <= r <= 1/2``, 3.43
  for ``1/2 < r <= 3/4`` and 6.10 for ``2**-40 <= r < 2**-33`` (every float32 ``r`` checked). End to end,
  a float32-transform ``z`` is within 3.42 float32 ulps of the exact quantile of its own draw where
  ``|z| >= 1``, and within 2.4e-7 (``2**-23 = 1.19e-7`` is one ulp of 1) absolutely where ``|z| < 1``
  (``r`` near 1/2 is on float32's grid of ``2**-25``, so near 0 the values lie on a grid of about 7e-8
  in units of scale); measured on ``2**22`` draws of each of seven laws (normal; TN [-2, 2], [-6, 6],
  [-1, 0.5], [2, inf), (-inf, 1], [-3, -2]). Float32 outputs are therefore NOT the float64
  output rounded: the two come from different uniforms and transforms (same law, float32 accuracy).

Design notes
------------
- Why two transforms: float64 output needs AS 241's float64 accuracy; for float32 and narrower
  outputs a float32 inverse CDF within a few float32 ulps is within the dtype's own resolution and runs
  8 (AVX2) or 16 (AVX-512) lanes wide with four values per Philox block.
- 52 random bits per value, not 53: ``((w >> 11) + 1/2) * 2**-53`` would need 54 significant bits and
  can round to exactly 1.0; ``((w >> 12) + 1/2) * 2**-52`` is exact, never 0 or 1, and makes ``1 - u``
  exact, so ``|ndtri(u)| <= 8.21`` always.
- Mirroring when ``a + b > 0`` keeps the probabilities on the side of 0 where they are small numbers
  with full relative precision; measuring the upper half of the uniform from the upper end (when the
  interval contains 0) does the same for the other tail, in both transforms.
- Low precision (torch issues 145498 and 155588): torch's ``trunc_normal_`` inverts ``erfinv`` on
  uniforms in the output dtype, so in bfloat16 a uniform that rounds to -1 becomes ``-inf`` and sticks
  to the lower bound, and with a small std float32 uniforms next to +-1 give 1000-sigma outliers
  clamped onto the bounds. Here the bounds enter as probabilities, the uniform never reaches 0 or 1,
  and the only rounding to the output dtype happens at the very end.
- Laws whose values would overflow float64 (``Uniform(-1e308, 1e308)``, ``Normal(0, 1e308)``, bounds
  times scale beyond float64) are rejected when the law is made; laws whose values would overflow the
  output dtype (``Normal(0, 1e38)`` in float32) when the stream is filled. Never an ``inf``, never a
  constant.

Backends: a C extension (``berry._cstream``: threads, GIL released, writes straight into the output in
blocks of 1024 with bounded scratch; AVX-512, AVX2 and portable code paths that give the same bits) and
the NumPy reference (:mod:`berry._stream_numpy`), which gives the same bits and is the fallback where
the extension was not built. :func:`backend_info` says which one is active, which SIMD path it runs
and why; set ``BERRY_STREAM_BACKEND=numpy`` (or ``c``: an ImportError when the extension is missing
or stale) before import to force a backend, and ``BERRY_STREAM_SIMD=avx512|avx2|generic`` to force a
path (the bits never change; it is there for tests and benchmarks).
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

from berry import _lowp, _recipe
from berry._recipe import KEY_DOMAIN, STREAM_VERSION
from berry._special import ndtr, ndtri, ndtri_half_f32
from berry._stream_numpy import KernelParams, Layout, fill_numpy
from berry._validation import (
    MAX_THREADS,
    SEED_BOUND,
    check_distinct_elements,
    check_finite,
    check_int,
    check_positive,
    check_real,
    check_seed,
    check_shape,
    name_bytes,
    shown,
)

__all__ = [
    "BACKEND",
    "KEY_DOMAIN",
    "STREAM_VERSION",
    "Law",
    "Normal",
    "TruncatedNormal",
    "Uniform",
    "backend_info",
    "default_threads",
    "draw",
    "fill",
    "kernel_params",
    "key_for",
    "region_bounds",
    "region_layout",
]

_MIN_PROBABILITIES = 4096  # a truncation interval must hold this many float64 probabilities (inversion)
_Z64_MAX = -ndtri(2.0**-53)  # largest |z| of the float64 transform's normal (8.21)
_Z32_MAX = float(ndtri_half_f32(np.array([_recipe.F32_MIN_V], dtype=np.float32))[0])  # of the float32 one (6.34)


def key_for(seed: int, name: str = "") -> int:
    """The 64-bit stream key of a seed and a parameter name (a stable hash, never ``hash()``).

    ``blake2b(KEY_DOMAIN + seed.to_bytes(16, "little") + name.encode("utf-8"))`` with an 8-byte
    digest, read little-endian (:data:`KEY_DOMAIN` is ``b"berry-stream-v1"``, frozen). Different names
    give independent streams; the same seed and name give the same stream, whatever the shape.

    >>> from berry.stream import key_for
    >>> key_for(0, "layer1.weight") == key_for(0, "layer1.weight") != key_for(0, "layer1.bias")
    True
    """
    seed = check_seed(seed)  # the one check of a seed's range, with the message every entry point gives
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} of type {type(name).__name__}")
    digest = hashlib.blake2b(KEY_DOMAIN + seed.to_bytes(16, "little") + name_bytes(name), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def _check_key(key: Any) -> int:
    if isinstance(key, bool) or not isinstance(key, numbers.Integral):
        raise TypeError(
            f"key must be an integer in [0, 2**64) (see key_for), got {key!r} of type {type(key).__name__}"
        )
    if not 0 <= int(key) < SEED_BOUND:  # a key is a 64-bit word, as a seed is
        raise ValueError(f"key must be an integer in [0, 2**64) (see key_for), got {key!r}")
    return int(key)


# --- laws ----------------------------------------------------------------------------------------------


def _overflow(law: Any, what: str) -> ValueError:
    return ValueError(f"{law!r}: {what} overflows float64; use parameters whose values stay below 1.8e308")


@dataclass(frozen=True)
class Uniform:
    """Uniform law on the open interval (low, high): ``low + (high - low) * u``.

    The value never equals ``low`` or ``high``, also after rounding to the output dtype, wherever the
    dtype has a value strictly between them (see the stream docstring).
    """

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        low = check_finite("low", self.low)
        high = check_finite("high", self.high)
        if low > high:
            raise ValueError(f"Uniform needs low <= high, got low={self.low!r}, high={self.high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if not math.isfinite(high - low):
            raise _overflow(self, f"the width high - low = {high!r} - {low!r}")


@dataclass(frozen=True)
class Normal:
    """Normal law N(loc, scale**2) by inversion: ``loc + scale * ndtri(u)``."""

    loc: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "loc", check_finite("loc", self.loc))
        object.__setattr__(self, "scale", check_positive("scale", self.scale, allow_zero=True))
        if not math.isfinite(abs(self.loc) + _Z64_MAX * self.scale):
            raise _overflow(self, f"loc +- {_Z64_MAX:.2f} * scale (the largest values)")


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
            object.__setattr__(self, arg, check_real(f"truncation bound {arg}", getattr(self, arg)))
        if not self.a < self.b or self.a == math.inf or self.b == -math.inf:
            raise ValueError(
                f"truncation interval must satisfy a < b (in units of scale), got a={self.a!r}, b={self.b!r}"
            )
        _truncation(self.a, self.b)  # rejects intervals whose mass underflows
        bounds = [self.loc + bound * self.scale for bound in (self.a, self.b) if math.isfinite(bound)]
        if not all(math.isfinite(bound) for bound in [*bounds, *_value_range(self, _Z64_MAX)]):
            raise _overflow(self, "loc + a * scale or loc + b * scale (the bounds of the support)")


Law = Uniform | Normal | TruncatedNormal


class _Truncation(NamedTuple):
    mirrored: bool
    pa: float  # Phi(a') and Phi(b') - Phi(a') of the mirrored interval [a', b'] (a' + b' <= 0)
    width: float
    pb: float
    qb: float  # Phi(-b')
    upper_positive: bool  # b' > 0


@lru_cache(maxsize=1024)
def _truncation(a: float, b: float) -> _Truncation:
    """Probabilities of the (possibly mirrored) interval, computed once on the host."""
    mirrored = a + b > 0  # NaN for (-inf, inf): not mirrored
    if mirrored:
        a, b = -b, -a
    pa, pb = ndtr(a), ndtr(b)
    if not pb >= _recipe.MIN_TAIL_MASS:
        raise ValueError(
            f"truncation interval [{-b if mirrored else a}, {-a if mirrored else b}] (in units of scale) lies "
            f"beyond about 37 standard deviations; its probability underflows float64. Use bounds with "
            f"min(|a|, |b|) <= 37 or an interval containing 0"
        )
    if pb - pa < _MIN_PROBABILITIES * math.ulp(pb):
        raise ValueError(
            f"truncation interval [{-b if mirrored else a!r}, {-a if mirrored else b!r}] (in units of scale) is too narrow "
            f"to sample by inversion: it spans {(pb - pa) / math.ulp(pb):.0f} distinct float64 probabilities, at least "
            f"{_MIN_PROBABILITIES} are needed; widen it"
        )
    return _Truncation(mirrored, pa, pb - pa, pb, ndtr(-b), b > 0)


def _value_range(law: Law, z_max: float) -> tuple[float, float]:
    """The smallest and largest value ``law`` can produce when ``|z| <= z_max`` (may overflow to inf)."""
    if isinstance(law, Uniform):
        return law.low, law.high
    if isinstance(law, Normal):
        return law.loc - z_max * law.scale, law.loc + z_max * law.scale
    # Both transforms keep p (or its complement) >= width * 2**-53, so |z| <= |ndtri(width * 2**-53)|.
    width = _truncation(law.a, law.b).width
    reach = max(z_max, -ndtri(max(width * 2.0**-53, 2.0**-1074)))
    return law.loc + max(law.a, -reach) * law.scale, law.loc + min(law.b, reach) * law.scale


def _f32(value: float) -> float:
    return float(np.float32(value)) if abs(value) <= _recipe.F32_MAX else math.inf


def _f32_triples(law: Law) -> tuple[float, float, float, float, int] | None:
    """The float32 transform's (lower base, lower step, upper base, upper step, upper sign), or None.

    None where the float32 transform does not resolve the law (the float64 transform then defines it).
    """
    if isinstance(law, Normal):
        return 0.0, 1.0, 0.0, 1.0, 1
    if not isinstance(law, TruncatedNormal):
        return None
    trunc = _truncation(law.a, law.b)
    pa32, width32 = _f32(trunc.pa), _f32(trunc.width)
    if trunc.upper_positive:
        upper = (_f32(trunc.qb), width32, 1)
    else:
        upper = (_f32(trunc.pb), -width32, -1)
    reaches = pa32 + width32 * _recipe.F32_MIN_V >= _recipe.F32_MIN_R
    if upper[2] > 0:
        reaches = reaches and upper[0] + upper[1] * _recipe.F32_MIN_V >= _recipe.F32_MIN_R
    resolved = width32 >= (pa32 + width32) / _recipe.F32_RESOLUTION
    return (pa32, width32, upper[0], upper[1], upper[2]) if reaches and resolved else None


def kernel_params(law: Law, dtype: np.dtype) -> KernelParams:
    """The kernels' named fields for ``law`` written as ``dtype`` (see the module docstring).

    What :func:`fill` hands the C kernel and the NumPy reference, and what a device kernel
    (:mod:`berry._device`) takes so that it writes the same bits; it raises for a law the dtype cannot
    hold, as :func:`fill` does.
    """
    if isinstance(law, Uniform):
        code, offset, factor, pa, width = _recipe.LAW_UNIFORM, law.low, law.high - law.low, 0.0, 1.0
        support = (law.low, law.high)
    elif isinstance(law, TruncatedNormal):
        trunc = _truncation(law.a, law.b)
        code, offset, pa, width = _recipe.LAW_TRUNCATED, law.loc, trunc.pa, trunc.width
        factor = -law.scale if trunc.mirrored else law.scale
        if law.scale == 0.0:
            support = (law.loc, law.loc)
        else:
            support = (
                law.loc + law.a * law.scale if math.isfinite(law.a) else -math.inf,
                law.loc + law.b * law.scale if math.isfinite(law.b) else math.inf,
            )
    elif isinstance(law, Normal):
        code, offset, factor, pa, width = _recipe.LAW_NORMAL, law.loc, law.scale, 0.0, 1.0
        support = (-math.inf, math.inf)
    else:
        raise TypeError(f"law must be berry.stream.Uniform, Normal or TruncatedNormal, got {law!r}")
    triples = _f32_triples(law) if dtype.name != "float64" else None
    lowest, highest = _value_range(law, _Z32_MAX if triples is not None and isinstance(law, Normal) else _Z64_MAX)
    largest = _lowp.largest_finite(dtype)
    if max(-lowest, highest) > largest:
        raise ValueError(
            f"{law!r} gives values in [{lowest:.4g}, {highest:.4g}], beyond the largest finite {dtype.name} "
            f"({largest:.4g}); use a wider dtype or a smaller scale"
        )
    low, high = _lowp.inward_bounds(*support, dtype, open_interval=code == _recipe.LAW_UNIFORM)
    if low > high:
        raise ValueError(
            f"no {dtype.name} value lies in the support [{support[0]!r}, {support[1]!r}] of {law!r}; "
            f"widen the interval or use a wider dtype"
        )
    qb, complement = 0.0, 0
    if isinstance(law, TruncatedNormal):
        trunc = _truncation(law.a, law.b)
        qb, complement = trunc.qb, int(trunc.upper_positive)
    if triples is None:
        fields = (0.0, 1.0, 0.0, 1.0, 1)
        return KernelParams(code, _recipe.TRANSFORM_F64, 0, offset, factor, low, high, pa, width, qb, complement, *fields)
    affine32 = int(dtype.name == "float32" and math.isfinite(_f32(offset)) and math.isfinite(_f32(factor)))
    return KernelParams(
        code, _recipe.TRANSFORM_F32, affine32, offset, factor, low, high, pa, width, qb, complement, *triples
    )


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
                f"region[{axis}]={shown(piece)} is outside axis {axis} of size {dim}; need 0 <= start <= stop <= {dim}"
            )
        starts.append(start)
        sizes.append(stop - start)
    return tuple(starts), tuple(sizes)


def region_layout(global_shape: tuple[int, ...], start: tuple[int, ...], shape: tuple[int, ...]) -> Layout:
    """The region ``start`` + ``shape`` of a C-order ``global_shape`` as runs of consecutive flat indices.

    :func:`fill`'s work decomposition (the :class:`~berry._stream_numpy.Layout` every kernel walks);
    the arguments are already checked (:func:`region_bounds`).
    """
    if not global_shape:
        return Layout(0, 1, (), ())
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
    return Layout(base, run, tuple(c for c, _ in outer), tuple(st for _, st in outer))



# --- backends ------------------------------------------------------------------------------------------


def default_threads() -> int:
    """All cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _load_c_backend() -> Any:
    from berry import _cstream

    return _cstream


def _select_backend() -> tuple[str, Any, str]:
    """(name, C module or None, why) from ``BERRY_STREAM_BACKEND`` and whether the extension loads."""
    wanted = os.environ.get("BERRY_STREAM_BACKEND", "auto").strip().lower() or "auto"
    if wanted not in ("auto", "c", "numpy"):
        raise ValueError(f"BERRY_STREAM_BACKEND={wanted!r} is not supported; supported: auto, c, numpy")
    if wanted == "numpy":
        return "numpy", None, "BERRY_STREAM_BACKEND=numpy"
    try:
        module = _load_c_backend()
    except ImportError as error:
        if wanted == "c":
            raise ImportError(
                f"BERRY_STREAM_BACKEND=c but the C extension berry._cstream cannot be loaded ({error}); "
                "build it with `pip install -e .` or `python setup.py build_ext --inplace`, or unset the variable "
                "to use the NumPy reference (same bits, slower)"
            ) from None
        return "numpy", None, f"the C extension berry._cstream is not available ({error})"
    fields = {"dtype", "key", *KernelParams._fields, *Layout._fields, "threads"}
    if module.STREAM_VERSION != STREAM_VERSION or set(module.FIELDS) != fields:
        message = (
            f"the C extension berry._cstream implements stream version {module.STREAM_VERSION} with the fields "
            f"{sorted(module.FIELDS)}, not version {STREAM_VERSION} with {sorted(fields)}; rebuild it "
            "(`python setup.py build_ext --inplace`)"
        )
        if wanted == "c":
            raise ImportError(message)
        return "numpy", None, message
    simd = os.environ.get("BERRY_STREAM_SIMD", "auto").strip().lower() or "auto"
    if simd != "auto" and simd not in module.simd_paths():
        raise ValueError(
            f"BERRY_STREAM_SIMD={simd!r} is not supported on this CPU; supported: auto, {', '.join(module.simd_paths())}"
        )
    module.set_simd(simd)
    return "c", module, "compiled extension loaded" if wanted == "auto" else "BERRY_STREAM_BACKEND=c"


BACKEND, _CSTREAM, _BACKEND_REASON = _select_backend()
"""Active backend: ``"c"`` (compiled, threaded) or ``"numpy"`` (the reference)."""


def backend_info() -> dict[str, Any]:
    """Which backend fills the stream, which SIMD path it runs, and why (for ``berry info`` and bug reports).

    ``simd`` is ``"avx512"``, ``"avx2"`` or ``"generic"`` for the C backend (every path gives the same
    bits) and ``None`` for the NumPy reference.

    >>> from berry.stream import backend_info
    >>> sorted(backend_info())
    ['backend', 'reason', 'simd', 'stream_version']
    """
    return {
        "backend": BACKEND,
        "simd": _CSTREAM.simd() if _CSTREAM is not None else None,
        "reason": _BACKEND_REASON,
        "stream_version": STREAM_VERSION,
    }


def _fill_c(flat: np.ndarray, params: KernelParams, key: int, layout: Layout, threads: int) -> None:
    _CSTREAM.fill(
        flat.view(np.uint8),
        dtype=_recipe.DTYPE_CODES[flat.dtype.name],
        key=key,
        **params._asdict(),
        base=layout.base,
        run=layout.run,
        counts=layout.counts,
        strides=layout.strides,
        threads=threads,
    )


def _plain_out(out: Any) -> np.ndarray:
    """``out`` as the array the kernels write into, or a clear error for anything else."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if type(out) not in (np.ndarray, np.memmap):
        raise TypeError(
            f"out must be a numpy.ndarray or numpy.memmap, got the subclass {type(out).__module__}.{type(out).__name__} "
            "(its indexing or mask would not receive the values as written); pass out.view(numpy.ndarray)"
        )
    if not out.flags.writeable:
        raise ValueError("out must be writable, got a read-only array")
    check_distinct_elements("out", out)
    return out


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

    ``out`` (a ``numpy.ndarray`` or ``numpy.memmap``, any strides or byte order) has the region's shape
    and dtype float16, bfloat16 (ml_dtypes), float32 or float64.
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
    out = _plain_out(out)
    dtype = _lowp.resolve_dtype(out.dtype).newbyteorder("=")
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
            f"out of shape {out.shape} at region_start={start} does not fit inside global_shape={shown(gshape)}"
        )
    if math.prod(gshape) >= 2**63:
        raise ValueError(f"global_shape={shown(gshape)} has more than 2**63 elements")
    if threads is None:
        threads = default_threads()
    else:
        threads = check_int("threads", threads, minimum=1, maximum=MAX_THREADS)
    params = kernel_params(law, dtype)
    if out.size == 0:
        return
    which = BACKEND if backend is None else backend
    if which not in ("c", "numpy"):
        raise ValueError(f"backend={backend!r} is not supported; supported: 'c', 'numpy'")
    if which == "c" and _CSTREAM is None:
        raise ImportError("the C stream backend is not built; see berry.stream.BACKEND")
    layout = region_layout(gshape, start, tuple(out.shape))
    # The kernels write native-endian C-order memory; anything else goes through a temporary copy.
    direct = out.flags.c_contiguous and out.dtype.isnative
    target = out if direct else np.empty(out.shape, dtype=dtype)
    flat = target.reshape(-1)
    if which == "c":
        _fill_c(flat, params, key, layout, threads)
    else:
        fill_numpy(flat, params, key, layout)  # single-threaded; the bits never depend on threads anyway
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
