"""Accuracy of the stream's float32 transform: the figures quoted in berry/stream.py and berry/_special.py.

    python benchmarks/accuracy.py           # exhaustive over float32 r (about 4 minutes), 2**22 draws per law
    python benchmarks/accuracy.py --quick   # every 61st float32 r, 2**18 draws per law

1. The float32 inverse CDF ``G(r) = -ndtri(r)`` (:func:`berry._special.ndtri_half_f32`) against the
   float64 AS 241 (:func:`berry._special.ndtri_array`, relative error about 1e-16, which is 1e-9 of a
   float32 ulp), on every float32 ``r`` of each range (with ``--quick``: every 61st): the largest error in
   float32 ulps of the exact value.
2. The float32 transform end to end: for the stream's own words (key_for(0, "accuracy")), ``z`` from
   the transform (the NumPy reference, bit-identical to the C kernel) against the exact quantile of
   the same draw, ``z* = sign * -ndtri(base + step * v)`` evaluated in float64 with the float64
   probabilities (not their float32 roundings). Reported: the largest error in float32 ulps of ``z*``
   where ``|z*| >= 1``, the largest absolute error where ``|z*| < 1`` (there ``r`` is nearer 1/2,
   where float32 spaces it by 2**-25, so the error floor is absolute), and both at once as the largest
   error in units of ``2**-23 * max(|z*|, 1)`` (float32 ulps of ``z*`` beyond 1, of 1 below).
3. The float64 transform end to end (``--float64-draws`` draws per law, against mpmath at 40 digits:
   ``Phi`` of the bounds, ``p = Phi(a') + (Phi(b') - Phi(a')) u`` and its quantile all exact): the largest
   error in float64 ulps of ``z*`` where ``|z*| >= 1``, and in units of ``2**-52`` below.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from berry import _recipe, stream
from berry._special import ndtri_array, ndtri_half_f32
from berry._stream_numpy import KernelParams, uniform52, values_f64, words32, z_f32

RANGES = [("2**-40 <= r < 2**-33", 2.0**-40, 2.0**-33), ("2**-33 <= r <= 1/2", 2.0**-33, 0.5), ("1/2 < r <= 3/4", 0.5, 0.75)]
LAWS = [
    stream.Normal(0.0, 1.0),
    stream.TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    stream.TruncatedNormal(0.0, 1.0, -6.0, 6.0),
    stream.TruncatedNormal(0.0, 1.0, -1.0, 0.5),
    stream.TruncatedNormal(0.0, 1.0, 2.0, math.inf),
    stream.TruncatedNormal(0.0, 1.0, -math.inf, 1.0),
    stream.TruncatedNormal(0.0, 1.0, -3.0, -2.0),
]


LAWS_F64 = [
    stream.Normal(0.0, 1.0),
    stream.TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    stream.TruncatedNormal(0.0, 1.0, -6.0, 6.0),
    stream.TruncatedNormal(0.0, 1.0, 2.0, 3.0),
    stream.TruncatedNormal(0.0, 1.0, 5.0, 6.0),
    stream.TruncatedNormal(0.0, 1.0, 8.0, 9.0),
    stream.TruncatedNormal(0.0, 1.0, -math.inf, -30.0),
]


def ulp32(x: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)


def inverse_cdf_error(low: float, high: float, stride: int) -> tuple[float, float]:
    """(largest error in float32 ulps, where) of G over the float32 r in [low, high) (every stride-th)."""
    first = int(np.float32(low).view(np.uint32))
    last = int(np.float32(high).view(np.uint32)) + (1 if high == 0.5 else 0)
    if low == 0.5:
        first += 1
        last += 1  # (1/2, 3/4]
    worst, where = 0.0, math.nan
    chunk = stride << 22
    for start in range(first, last, chunk):
        r = np.arange(start, min(start + chunk, last), stride, dtype=np.uint32).view(np.float32)
        exact = -ndtri_array(r.astype(np.float64))
        error = np.abs(ndtri_half_f32(r).astype(np.float64) - exact) / ulp32(exact)
        error[exact == 0.0] = 0.0
        i = int(np.argmax(error))
        if error[i] > worst:
            worst, where = float(error[i]), float(r[i])
    return worst, where


def transform_error(law: stream.Law, n: int) -> tuple[float, float, float]:
    """(max ulps where |z*| >= 1, max absolute error where |z*| < 1, max error / (2**-23 max(|z*|, 1)))."""
    params = stream.kernel_params(law, np.dtype("float32"))
    if params.transform != _recipe.TRANSFORM_F32:
        raise ValueError(f"{law!r} does not use the float32 transform")
    word = words32(np.arange(n, dtype=np.uint64), stream.key_for(0, "accuracy"))
    z = z_f32(word, params).astype(np.float64)
    m = (word & np.uint32(0x7FFFFFFF)).astype(np.int32).astype(np.float32)
    v = ((m + np.float32(0.5)) * np.float32(_recipe.F32_V_SCALE)).astype(np.float64)  # exact
    upper = (word >> np.uint32(31)) == 1
    if isinstance(law, stream.Normal):
        r = v
        negate = ~upper
    else:
        trunc = stream._truncation(law.a, law.b)
        if trunc.upper_positive:
            r = np.where(upper, trunc.qb + trunc.width * v, trunc.pa + trunc.width * v)
            negate = ~upper
        else:
            r = np.where(upper, trunc.pb - trunc.width * v, trunc.pa + trunc.width * v)
            negate = np.ones_like(upper)
    exact = -ndtri_array(r)
    exact = np.where(negate, -exact, exact)
    error = np.abs(z - exact)
    ulps = error / ulp32(exact)
    central = np.abs(exact) < 1.0
    combined = error / (2.0**-23 * np.maximum(np.abs(exact), 1.0))
    return float(ulps[~central].max(initial=0.0)), float(error[central].max(initial=0.0)), float(combined.max())


def prerounded_z64(u: np.ndarray, params: KernelParams) -> np.ndarray:
    """The float64 transform's z of a truncated normal (the kernel's values before loc + scale * z)."""
    unit = params._replace(offset=0.0, factor=1.0, low=-math.inf, high=math.inf)
    return values_f64(u, unit)


def float64_error(law: stream.Law, n: int) -> float:
    """Largest error of the float64 transform's z in units of 2**-52 * max(|z*|, 1), against mpmath."""
    import mpmath

    params = stream.kernel_params(law, np.dtype("float64"))
    u = uniform52(np.arange(n, dtype=np.uint64), stream.key_for(0, "accuracy64"))
    if isinstance(law, stream.Normal):
        z = ndtri_array(u)
    else:
        z = prerounded_z64(u, params)
    worst = 0.0
    with mpmath.workdps(40):
        if isinstance(law, stream.TruncatedNormal):
            trunc = stream._truncation(law.a, law.b)
            a, b = (-law.b, -law.a) if trunc.mirrored else (law.a, law.b)
            pa, pb = mpmath.ncdf(a), mpmath.ncdf(b)
        else:
            pa, pb = mpmath.mpf(0), mpmath.mpf(1)
        for zi, ui in zip(z.tolist(), u.tolist(), strict=True):
            p = pa + (pb - pa) * mpmath.mpf(ui)
            with mpmath.workdps(40 + max(0, -int(mpmath.log10(p)))):  # 2p - 1 must keep p's digits
                exact = float(mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1))
            worst = max(worst, abs(zi - exact) / (2.0**-52 * max(abs(exact), 1.0)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every 61st float32 r and 2**18 draws per law")
    parser.add_argument("--float64-draws", type=int, default=4096, help="draws per law for the float64 check")
    args = parser.parse_args()
    stride, draws = (61, 1 << 18) if args.quick else (1, 1 << 22)
    print(f"# float32 inverse CDF G(r) = -ndtri(r), {'every 61st' if args.quick else 'every'} float32 r")
    print("| range | max error (float32 ulps) | at r |\n|---|---|---|")
    for label, low, high in RANGES:
        worst, where = inverse_cdf_error(low, high, stride)
        print(f"| {label} | {worst:.3f} | {where:.6g} |")
    print(f"\n# float32 transform end to end, {draws} draws per law")
    print("| law | max ulps, abs(z) >= 1 | max abs error, abs(z) < 1 | max error / (2**-23 max(abs(z), 1)) |")
    print("|---|---|---|---|")
    for law in LAWS:
        far, near, combined = transform_error(law, draws)
        print(f"| {law!r} | {far:.2f} | {near:.3g} | {combined:.2f} |")
    print(f"\n# float64 transform end to end, {args.float64_draws} draws per law, against mpmath")
    print("| law | max error / (2**-52 max(abs(z), 1)) |\n|---|---|")
    for law in LAWS_F64:
        print(f"| {law!r} | {float64_error(law, args.float64_draws):.2f} |")


if __name__ == "__main__":
    main()
