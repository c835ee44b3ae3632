"""Deterministic special functions: the same bits on every machine.

The stream (:mod:`berry.stream`) turns random bits into values with these
functions only, so they are built from IEEE-exact operations (``+ - * /``,
``sqrt``, integer and bit operations, exact conversions) in a fixed order,
with no library transcendental function (whose last bits differ between
C libraries, CPUs and NumPy builds) and no fused multiply-add. The C kernel
(``berry/_cstream.c``) evaluates the very same formulas in the same order.

- :func:`log` / :func:`log_array`: natural logarithm, range reduction through
  the exponent bits and the minimax polynomial of Sun Microsystems' fdlibm
  ``e_log.c`` (error below 1 ulp).
- :func:`exp_array` / :func:`exp`: Cody-Waite range reduction and a Taylor polynomial (host side).
- :func:`ndtri_array`: the inverse normal CDF by Wichura's algorithm AS 241
  (PPND16), relative error about 1e-16.
- :func:`ndtr_array` / :func:`ndtr`: the normal CDF with full relative precision in the lower
  tail (Marsaglia's series near 0, the Laplace continued fraction of Mills' ratio in the tails),
  used on the host for truncation bounds and by the GELU activation; :func:`npdf_array` the density.
- :func:`truncnorm_std`: the standard deviation of a truncated standard normal.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "exp",
    "exp_array",
    "log",
    "log_array",
    "ndtr",
    "ndtr_array",
    "ndtri",
    "ndtri_array",
    "npdf_array",
    "truncnorm_mean_std",
    "truncnorm_std",
]


def _f(bits: int) -> float:
    """The float64 whose IEEE bit pattern is ``bits`` (constants spelled exactly)."""
    return float(np.array(bits, dtype=np.uint64).view(np.float64))


# --- log: fdlibm's reduction log(x) = k*ln2 + log(1+f), sqrt(2)/2 < 1+f < sqrt(2) ---------------------
LN2_HI = _f(0x3FE62E42FEE00000)  # ln 2 with its last 32 bits zero, so k*LN2_HI is exact for |k| < 2**20
LN2_LO = _f(0x3DEA39EF35793C76)  # ln 2 - LN2_HI
# Minimax coefficients of (log(1+f) - f + f*f/2) in s = f/(2+f) (fdlibm e_log.c).
LG1 = _f(0x3FE5555555555593)
LG2 = _f(0x3FD999999997FA04)
LG3 = _f(0x3FD2492494229359)
LG4 = _f(0x3FCC71C51D8E78AF)
LG5 = _f(0x3FC7466496CB03DE)
LG6 = _f(0x3FC39A09D078C69F)
LG7 = _f(0x3FC2F112DF3E5244)
LOG_COEFFICIENTS = (LG1, LG2, LG3, LG4, LG5, LG6, LG7)
SQRT2_MANTISSA = 0x6A09E667F3BCD  # mantissa bits of sqrt(2): above it, halve the mantissa
_TWO54 = 18014398509481984.0  # 2**54, lifts subnormal inputs into the normal range


def log_array(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Natural logarithm of positive finite float64 values, bit-identical to the C kernel.

    fdlibm's algorithm (Sun Microsystems, ``e_log.c``): write :math:`x = 2^k (1+f)` with
    :math:`\\sqrt{2}/2 < 1+f < \\sqrt{2}`, :math:`s = f/(2+f)`, and

    .. math:: \\log x = k \\ln 2 + f - \\tfrac{f^2}{2} + s\\,(\\tfrac{f^2}{2} + R(s^2)).

    Inputs must be positive and finite (callers guarantee it); zero gives ``-inf``.

    >>> import numpy as np
    >>> from berry._special import log_array
    >>> bool(abs(log_array(np.array([10.0]))[0] - 2.302585092994046) < 1e-15)
    True
    """
    x = np.asarray(x, dtype=np.float64)
    subnormal = x < 2.2250738585072014e-308
    scaled = x * np.where(subnormal, _TWO54, 1.0)
    bits = scaled.view(np.uint64)
    exponent = (bits >> np.uint64(52)).astype(np.int64) - 1023 - np.where(subnormal, 54, 0)
    mantissa = bits & np.uint64(0x000FFFFFFFFFFFFF)
    big = mantissa > np.uint64(SQRT2_MANTISSA)
    # 1+f in [sqrt(2)/2, sqrt(2)]: exponent field 1023, or 1022 (and k+1) above sqrt(2).
    m_bits = mantissa | np.where(big, np.uint64(0x3FE0000000000000), np.uint64(0x3FF0000000000000))
    k = (exponent + big).astype(np.float64)
    f = m_bits.view(np.float64) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    result = k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
    return np.where(x == 0.0, -np.inf, result)


def log(x: float) -> float:
    """Natural logarithm of one positive float, bit-identical to :func:`log_array`.

    >>> from berry._special import log
    >>> log(1.0)
    0.0
    """
    return float(log_array(np.array([x], dtype=np.float64))[0])


# --- exp (host side only): exp(x) = 2^k exp(r), r = x - k ln2 with |r| <= ln2/2 -----------------------
_INV_LN2 = 1.4426950408889634
_EXP_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(18))  # exact-enough reciprocals, fixed


def exp_array(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exponential with IEEE operations in a fixed order (error about 1 ulp), the same bits everywhere.

    Cody-Waite reduction :math:`x = k\\ln 2 + r` (with ``LN2_HI`` exact in ``k*LN2_HI``), a degree-17
    Taylor polynomial for :math:`e^r`, and an exact scaling by :math:`2^k` (rounded once where the
    result is subnormal).

    >>> import numpy as np
    >>> from berry._special import exp_array
    >>> exp_array(np.array([0.0, -800.0, 800.0])).tolist()
    [1.0, 0.0, inf]
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.clip(x, -746.0, 710.0)  # keeps k an exact small integer; the ends are fixed below
    k = np.floor(finite * _INV_LN2 + 0.5)
    r = (finite - k * LN2_HI) - k * LN2_LO
    poly = np.zeros_like(r)
    for coefficient in reversed(_EXP_TAYLOR):
        poly = poly * r + coefficient
    with np.errstate(over="ignore", under="ignore"):
        result = np.ldexp(poly, k.astype(np.int64))
    result = np.where(x > 709.8, np.inf, np.where(x < -745.2, 0.0, result))
    return np.where(np.isnan(x), x, result)


def exp(x: float) -> float:
    """Exponential of one float, bit-identical to :func:`exp_array`.

    >>> from berry._special import exp
    >>> exp(0.0), abs(exp(1.0) - 2.718281828459045) < 1e-15
    (1.0, True)
    """
    return float(exp_array(np.array([x], dtype=np.float64))[0])


_INV_SQRT_2PI = 0.3989422804014327
# |x| beyond this: the density is 0 and Phi is 0 or 1 in float64 (phi(38.5) < 2**-1074).
_NORMAL_CUTOFF = 40.0


def _exp_minus_half_square(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """exp(-x*x/2) without the rounding error of x*x: Dekker's split x = hi + lo, hi*hi exact."""
    c = 134217729.0 * x  # 2**27 + 1
    hi = c - (c - x)
    lo = x - hi
    return exp_array(-0.5 * (hi * hi)) * exp_array(-(hi * lo + 0.5 * (lo * lo)))


def npdf_array(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The standard normal density :math:`\\varphi(x) = e^{-x^2/2}/\\sqrt{2\\pi}`, deterministic.

    >>> import numpy as np
    >>> from berry._special import npdf_array
    >>> [round(float(v), 15) for v in npdf_array(np.array([0.0, 1.0, 50.0]))]
    [0.398942280401433, 0.241970724519143, 0.0]
    """
    x = np.asarray(x, dtype=np.float64)
    inside = np.abs(x) <= _NORMAL_CUTOFF  # beyond, x*x/2 would only overflow the split
    return np.where(inside, _INV_SQRT_2PI * _exp_minus_half_square(np.where(inside, x, 0.0)), 0.0)


def _pdf(x: float) -> float:
    return float(npdf_array(np.array([x], dtype=np.float64))[0])


def _mills_ratio(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Q(x)/phi(x) for x >= 1.5 by Laplace's continued fraction x + 1/(x + 2/(x + 3/(x + ...))).

    Evaluated backwards from a fixed depth (enough for 1e-17 relative accuracy at x = 1.5).
    """
    tail = x.copy()
    step = np.empty_like(x)
    for n in range(600, 0, -1):  # tail = x + n / tail, in place (the loop dominates ndtr's cost)
        np.divide(float(n), tail, out=step)
        np.add(x, step, out=tail)
    return 1.0 / tail


def _marsaglia_sum(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """sum_n x^(2n+1) / (1*3*5*...*(2n+1)), so that Phi(x) = 1/2 + phi(x) * sum (Marsaglia 2004).

    Each entry stops adding at the first term that no longer changes its sum.
    """
    total = x.copy()
    term = x.copy()
    x2 = x * x
    active = np.arange(x.size)
    n = 1
    while active.size:
        term_active = term[active] * x2[active] / (2 * n + 1)
        new_total = total[active] + term_active
        moving = new_total != total[active]
        term[active] = term_active
        total[active[moving]] = new_total[moving]
        active = active[moving]
        n += 1
    return total


def ndtr_array(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standard normal CDF :math:`\\Phi(x)`, vectorized, deterministic, full relative precision for x < 0.

    .. math:: \\Phi(x) = \\tfrac12 \\operatorname{erfc}(-x/\\sqrt2)

    For :math:`|x| < 1.5`, Marsaglia's series (Marsaglia, "Evaluating the normal distribution",
    J. Stat. Softw. 2004); beyond, Laplace's continued fraction for Mills' ratio, so lower-tail
    values such as :math:`\\Phi(-30) \\approx 4.9\\times10^{-198}` keep about 15 correct digits
    (relative error below 2e-15 against mpmath on [-37, 8], ``tests/test_activations.py``).
    IEEE operations only, in a fixed order: the same bits on every machine. The one normal CDF of
    berry: the stream's truncation bounds and the GELU activation both use it.
    Also known as the Gaussian CDF, ``scipy.special.ndtr``.

    >>> import numpy as np
    >>> from berry._special import ndtr_array
    >>> [float(f"{v:.6e}") for v in ndtr_array(np.array([0.0, -2.0, -30.0, 50.0]))]
    [0.5, 0.02275013, 4.906714e-198, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    result = np.where(flat > 0, 1.0, 0.0)  # |x| > 40 and the infinities; NaN below
    near = np.abs(flat) < 1.5
    if near.any():
        xn = flat[near]
        result[near] = 0.5 + npdf_array(xn) * _marsaglia_sum(xn)
    tails = (np.abs(flat) >= 1.5) & (np.abs(flat) <= _NORMAL_CUTOFF)
    if tails.any():
        xt = flat[tails]
        lower = npdf_array(xt) * _mills_ratio(np.abs(xt))  # Phi(-|x|)
        result[tails] = np.where(xt < 0, lower, 1.0 - lower)
    result = np.where(np.isnan(flat), flat, result)
    return result.reshape(x.shape)


@lru_cache(maxsize=4096)
def ndtr(x: float) -> float:
    """Standard normal CDF of one float, bit-identical to :func:`ndtr_array`.

    >>> from berry._special import ndtr
    >>> ndtr(0.0), round(ndtr(-2.0), 12), f"{ndtr(-30.0):.6e}"
    (0.5, 0.022750131948, '4.906714e-198')
    """
    return float(ndtr_array(np.array([x], dtype=np.float64))[0])


# --- ndtri: Wichura (1988), Algorithm AS 241, PPND16 -------------------------------------------------
# |p - 1/2| <= 0.425: q * A(r)/B(r) with r = 0.180625 - q^2.
NDTRI_A = (
    3.3871328727963666080e0,
    1.3314166789178437745e2,
    1.9715909503065514427e3,
    1.3731693765509461125e4,
    4.5921953931549871457e4,
    6.7265770927008700853e4,
    3.3430575583588128105e4,
    2.5090809287301226727e3,
)
NDTRI_B = (
    1.0,
    4.2313330701600911252e1,
    6.8718700749205790830e2,
    5.3941960214247511077e3,
    2.1213794301586595867e4,
    3.9307895800092710610e4,
    2.8729085735721942674e4,
    5.2264952788528545610e3,
)
# r = sqrt(-log(min(p, 1-p))) <= 5: C(r-1.6)/D(r-1.6).
NDTRI_C = (
    1.42343711074968357734e0,
    4.63033784615654529590e0,
    5.76949722146069140550e0,
    3.64784832476320460504e0,
    1.27045825245236838258e0,
    2.41780725177450611770e-1,
    2.27238449892691845833e-2,
    7.74545014278341407640e-4,
)
NDTRI_D = (
    1.0,
    2.05319162663775882187e0,
    1.67638483018380384940e0,
    6.89767334985100004550e-1,
    1.48103976427480074590e-1,
    1.51986665636164571966e-2,
    5.47593808499534494600e-4,
    1.05075007164441684324e-9,
)
# r > 5: E(r-5)/F(r-5).
NDTRI_E = (
    6.65790464350110377720e0,
    5.46378491116411436990e0,
    1.78482653991729133580e0,
    2.96560571828504891230e-1,
    2.65321895265761230930e-2,
    1.24266094738807843860e-3,
    2.71155556874348757815e-5,
    2.01033439929228813265e-7,
)
NDTRI_F = (
    1.0,
    5.99832206555887937690e-1,
    1.36929880922735805310e-1,
    1.48753612908506148525e-2,
    7.86869131145613259100e-4,
    1.84631831751005468180e-5,
    1.42151175831644588870e-7,
    2.04426310338993978564e-15,
)
NDTRI_COEFFICIENTS = (NDTRI_A, NDTRI_B, NDTRI_C, NDTRI_D, NDTRI_E, NDTRI_F)
NDTRI_SPLIT1 = 0.425
NDTRI_SPLIT2 = 5.0
NDTRI_CONST1 = 0.180625
NDTRI_CONST2 = 1.6


def _horner(coefficients: tuple[float, ...], r: NDArray[np.float64]) -> NDArray[np.float64]:
    """c7*r^7 + ... + c0 as (((c7*r + c6)*r + c5)...)*r + c0, the order the C kernel uses."""
    acc = coefficients[-1] * r + coefficients[-2]
    for c in coefficients[-3::-1]:
        acc = acc * r + c
    return acc


def ndtri_tail(p_small: NDArray[np.float64]) -> NDArray[np.float64]:
    """-ndtri(p) for 0 < p <= 0.075 (the magnitude of the normal quantile, AS 241's tail branches)."""
    r = np.sqrt(-log_array(p_small))
    near = r <= NDTRI_SPLIT2
    rn = r - NDTRI_CONST2
    rf = r - NDTRI_SPLIT2
    return np.where(
        near,
        _horner(NDTRI_C, rn) / _horner(NDTRI_D, rn),
        _horner(NDTRI_E, rf) / _horner(NDTRI_F, rf),
    )


def ndtri_array(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of the standard normal CDF for 0 < p < 1, bit-identical to the C kernel.

    Wichura, "Algorithm AS 241: The percentage points of the normal distribution",
    Applied Statistics 37 (1988): three rational approximations of degree 7,

    .. math:: \\Phi^{-1}(p) = q\\,\\frac{A(r)}{B(r)},\\; q = p-\\tfrac12,\\; r = 0.180625 - q^2
              \\quad (|q| \\le 0.425),

    and in the tails :math:`\\pm C(r-1.6)/D(r-1.6)` or :math:`\\pm E(r-5)/F(r-5)` with
    :math:`r = \\sqrt{-\\log\\min(p, 1-p)}` (relative error about 1e-16).
    Also known as the probit function, PPND16, ``scipy.special.ndtri``.

    >>> import numpy as np
    >>> from berry._special import ndtri_array
    >>> np.round(ndtri_array(np.array([0.025, 0.5, 0.975])), 6).tolist()
    [-1.959964, 0.0, 1.959964]
    """
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    r = NDTRI_CONST1 - q * q
    result = (q * _horner(NDTRI_A, r)) / _horner(NDTRI_B, r)
    tails = np.flatnonzero(np.abs(q) > NDTRI_SPLIT1)
    if tails.size:
        qt = q.reshape(-1)[tails]
        pt = p.reshape(-1)[tails]
        small = np.where(qt < 0.0, pt, 1.0 - pt)
        magnitude = ndtri_tail(small)
        result = result.reshape(-1).copy()
        result[tails] = np.where(qt < 0.0, -magnitude, magnitude)
        result = result.reshape(p.shape)
    return result


def ndtri(p: float) -> float:
    """Inverse normal CDF of one probability (see :func:`ndtri_array`).

    >>> from berry._special import ndtri
    >>> round(ndtri(0.8413447460685429), 12)
    1.0
    """
    p = float(p)
    if not 0.0 < p < 1.0:
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return float(ndtri_array(np.array([p]))[0])


# --- moments of the truncated standard normal ----------------------------------------------------------
# Gauss-Legendre rule of 20 points on [-1, 1]: the positive nodes and their weights (the rule is symmetric),
# the float64 roundings of values computed with mpmath at 50 digits (tests/test_special.py recomputes them).
_GL_NODES = tuple(
    float.fromhex(h)
    for h in (
        "0x1.3973df98b86b0p-4", "0x1.d281636928bc0p-3", "0x1.7eaccf15652c4p-2", "0x1.05905c13f7ff7p-1",
        "0x1.45a8d3fa710dbp-1", "0x1.7e1f37346a54ep-1", "0x1.ada0bd5efd6e7p-1", "0x1.d31064173fd92p-1",
        "0x1.ed8dba7bd769fp-1", "0x1.fc7b5a0c71ce0p-1",
    )
)  # fmt: skip
_GL_WEIGHTS = tuple(
    float.fromhex(h)
    for h in (
        "0x1.38d6c490a3370p-3", "0x1.31819b52c5992p-3", "0x1.230348f34a535p-3", "0x1.0db2c5db26dffp-3",
        "0x1.e41ff31573b48p-4", "0x1.a1817a317a821p-4", "0x1.5519fe196e24ap-4", "0x1.00b467df7e475p-4",
        "0x1.4c9b5ea53b67fp-5", "0x1.209680274e8afp-6",
    )
)  # fmt: skip
_TILT_CUTOFF = 60.0  # exp(-60) ~ 9e-27: the density beyond is negligible against the integral's first panel
_TILT_PANEL = 10.0  # the exponent changes by at most this much across one panel
_CLOSED_FORM_MAX_AMPLIFICATION = 16.0  # the closed form's rounding error, in ulps of the variance, at most ~this
_MAX_TAIL_BOUND = 1e150  # keeps c * c finite in the quadrature


def _tilted_moments(c: float, length: float) -> tuple[float, float, float]:
    """``I_k = integral_0^length s^k exp(-(c s + s^2/2)) ds`` for k = 0, 1, 2 (``c >= 0``, ``length`` may be inf).

    Composite Gauss-Legendre (20 points per panel) on panels across which the exponent grows by at most
    :data:`_TILT_PANEL`, cut where it reaches :data:`_TILT_CUTOFF`. Every term is positive, so each
    moment keeps full relative precision (measured: 2.5e-15 against mpmath, see tests/test_special.py).
    """

    def exponent_at(s: float) -> float:
        return c * s + 0.5 * s * s

    def point_at(q: float) -> float:  # the s where the exponent equals q, without cancellation
        return 2.0 * q / (c + math.sqrt(c * c + 2.0 * q))

    q_length = exponent_at(length) if math.isfinite(length) else math.inf
    q_end = min(q_length, _TILT_CUTOFF)
    end = length if q_length <= _TILT_CUTOFF else point_at(_TILT_CUTOFF)
    panels = max(1, math.ceil(q_end / _TILT_PANEL))
    m0 = m1 = m2 = 0.0
    left = 0.0
    for j in range(1, panels + 1):
        right = end if j == panels else point_at(q_end * j / panels)
        half, mid = 0.5 * (right - left), 0.5 * (right + left)
        for node, weight in zip(_GL_NODES, _GL_WEIGHTS, strict=True):
            for s in (mid - half * node, mid + half * node):
                f = weight * half * exp(-exponent_at(s))
                m0 += f
                m1 += f * s
                m2 += f * s * s
        left = right
    return m0, m1, m2


def _truncnorm_closed_form(a: float, b: float) -> tuple[float, float, float]:
    """(mean, variance, amplification) of N(0, 1) on [a, b] (a + b <= 0) by the textbook formula.

    ``amplification`` bounds the formula's rounding error in units of float64 epsilon relative to the
    variance (the terms it subtracts, times the relative error of Z, over the result).
    """
    z = ndtr(b) - ndtr(a)
    if not z > 0:  # the mass underflows: the quadrature below has no such limit
        return math.nan, math.nan, math.inf
    pdf_a = 0.0 if math.isinf(a) else _pdf(a)
    pdf_b = 0.0 if math.isinf(b) else _pdf(b)
    mean = (pdf_a - pdf_b) / z
    a_term = 0.0 if math.isinf(a) else a * pdf_a
    b_term = 0.0 if math.isinf(b) else b * pdf_b
    t1 = (a_term - b_term) / z
    variance = 1.0 + t1 - mean * mean
    terms = (abs(t1) + 2.0 * mean * mean) * ndtr(b) / z + 1.0 + abs(t1) + mean * mean
    return mean, variance, terms / variance if variance > 0 else math.inf


@lru_cache(maxsize=4096)
def truncnorm_mean_std(a: float, b: float) -> tuple[float, float]:
    """Mean and standard deviation of a standard normal truncated to [a, b], accurate for any interval.

    .. math:: \\mu = \\frac{\\varphi(a)-\\varphi(b)}{Z},\\quad
              \\sigma^2 = 1 + \\frac{a\\varphi(a) - b\\varphi(b)}{Z} - \\mu^2,\\quad Z = \\Phi(b)-\\Phi(a)

    That closed form (Johnson, Kotz and Balakrishnan, *Continuous Univariate Distributions* vol. 1,
    ch. 13) cancels catastrophically for narrow intervals and far tails (it returns 0 for [1, 1 + 1e-5]).
    It is used only where its rounding error, estimated from its terms, stays below about 16 ulps
    (intervals such as [-2, 2], [-3, 3], [0, inf)). Elsewhere the moments come from the density's
    shape itself: with ``c`` the point of [a, b] nearest 0 and ``s = x - c``, the density is
    proportional to :math:`e^{-(cs + s^2/2)}`, and :math:`E[s^k]` (k = 0, 1, 2) are integrated by
    Gauss-Legendre quadrature (:func:`_tilted_moments`). Since the density of :math:`|s|` decreases,
    :math:`E[s]^2 \\le \\tfrac34 E[s^2]` (Khinchine), so :math:`\\sigma^2 = E[s^2] - E[s]^2` loses at
    most two bits. Measured against mpmath (tests/test_special.py): relative error of the std below
    3e-15 for widths from 1e-12 to infinite and intervals from the centre to 37 standard deviations.
    Deterministic: IEEE operations in a fixed order and :func:`exp` only.

    >>> from berry._special import truncnorm_mean_std
    >>> [round(v, 12) for v in truncnorm_mean_std(1.0, 1.0 + 1e-6)]  # std: width / sqrt(12)
    [1.0000005, 2.88675e-07]
    """
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b) or not a < b:
        raise ValueError(f"truncation bounds must satisfy a < b, got a={a!r}, b={b!r}")
    sign = 1.0
    if a + b < 0:  # mirror onto the upper side (the law is symmetric)
        a, b, sign = -b, -a, -1.0
    if a > _MAX_TAIL_BOUND:
        raise ValueError(f"the truncation interval [{a}, {b}] lies beyond 1e150 standard deviations")
    mean, variance, amplification = _truncnorm_closed_form(-b, -a)
    if amplification <= _CLOSED_FORM_MAX_AMPLIFICATION:
        return -sign * mean, math.sqrt(variance)
    c = max(a, 0.0)  # b >= -a, so 0 lies in [a, b] whenever a < 0
    m0, m1, m2 = _tilted_moments(c, b - c)
    if a < 0.0:
        l0, l1, l2 = _tilted_moments(0.0, -a)  # s in [a, 0]: odd moments change sign
        m0, m1, m2 = m0 + l0, m1 - l1, m2 + l2
    if m0 == 0.0:  # a subnormal width (b - a = 5e-324): half a panel rounds to 0, and so do the mean shift and the std
        return sign * c, 0.0
    shift = m1 / m0
    return sign * (c + shift), math.sqrt(m2 / m0 - shift * shift)


def truncnorm_std(a: float, b: float) -> float:
    """Standard deviation of a standard normal truncated to [a, b] (bounds may be infinite).

    .. math:: \\sigma^2 = 1 + \\frac{a\\varphi(a) - b\\varphi(b)}{\\Phi(b)-\\Phi(a)}
              - \\Big(\\frac{\\varphi(a)-\\varphi(b)}{\\Phi(b)-\\Phi(a)}\\Big)^2

    evaluated without cancellation for every width and tail (see :func:`truncnorm_mean_std`).
    Used for the variance correction of truncated-normal initializers: dividing the
    parent std by this factor makes the sampled std equal the rule's std.

    >>> from berry._special import truncnorm_std
    >>> round(truncnorm_std(-2.0, 2.0), 9)
    0.879625661
    """
    return truncnorm_mean_std(a, b)[1]


# --- float32 transform of the stream's float32 / float16 / bfloat16 outputs ----------------------------
# G(s) = -ndtri(s) for 0 < s <= 1/2, evaluated in float32 arithmetic (IEEE-exact operations in a fixed
# order, no FMA): the form of Giles ("Approximating the erfinv function", GPU Computing Gems, 2011),
#     w = -log(4 s (1 - s)),  x = 1 - 2 s,  G = x * P(w),
# with P a polynomial in w - 2.5 for w < 5 (degree 9) and in sqrt(w) - 3 beyond (degree 11), here
# fitted (relative least squares at Chebyshev nodes) to sqrt(2) erfinv(x) / x for 2**-40 <= s <= 1/2;
# the logarithm (:func:`log_f32`) is also in float32. Accuracy, measured on EVERY float32 s against the
# float64 AS 241 (benchmarks/accuracy.py): at most 3.646 float32 ulps for 2**-33 <= s <= 1/2 (the range
# of the normal law), 6.10 ulps for 2**-40 <= s < 2**-33, and 3.43 ulps for 1/2 < s <= 3/4 (where
# G(s) = -G(1 - s) < 0, reached by truncated normals whose interval contains 0).
F32_NDTRI_A = tuple(
    np.float32(float.fromhex(h))
    for h in (
        "0x1.0fc8bcp+1", "0x1.652c5cp-2", "-0x1.832b16p-8", "-0x1.d06b7ap-10", "0x1.43c992p-12",
        "-0x1.d7f9b8p-18", "-0x1.48ab52p-18", "0x1.638822p-21", "0x1.1a9ef0p-25", "-0x1.b27b34p-27",
    )
)  # fmt: skip
F32_NDTRI_B = tuple(
    np.float32(float.fromhex(h))
    for h in (
        "0x1.00696cp+2", "0x1.6aa52ap+0", "0x1.b5a7f6p-7", "-0x1.62350ap-7", "0x1.07ef92p-7",
        "-0x1.4a4f2ap-8", "0x1.0d6c70p-9", "-0x1.6a4078p-13", "-0x1.758454p-12", "0x1.cef9b8p-13",
        "-0x1.de71dep-15", "0x1.821848p-18",
    )
)  # fmt: skip
F32_ATANH = tuple(np.float32(2.0 / (2 * n + 1)) for n in range(5))  # 2 atanh(f) / f = sum 2 f^(2n) / (2n + 1)
F32_SQRTHF = np.float32(0.707106781186547524)
F32_LOG_Q1 = np.float32(-2.12194440e-4)
F32_LOG_Q2 = np.float32(0.693359375)
F32_SPLIT = np.float32(5.0)  # w below it: the central polynomial in w - F32_CENTER
F32_CENTER = np.float32(2.5)
F32_TAIL_CENTER = np.float32(3.0)  # the tail polynomial is in sqrt(w) - F32_TAIL_CENTER
F32_MIN_S = 2.0**-40  # smallest s the fit covers


def log_f32(t: NDArray[np.float32]) -> NDArray[np.float32]:
    r"""Natural logarithm of positive normal float32 values in float32, bit-identical to the C kernel.

    Cephes' ``logf`` reduction (Moshier) :math:`t = 2^e m`, :math:`\sqrt{2}/2 \le m < \sqrt{2}`, then
    :math:`\log m = 2\,\operatorname{atanh} f`, :math:`f = (m-1)/(m+1)`, by its Taylor series to
    :math:`f^9` (:math:`|f| \le 0.172`), and :math:`e \ln 2` in two parts. Absolute error below 1.1e-6
    (about 1 ulp of the result for :math:`|\log t| \ge 8`), measured on :math:`[2^{-38}, 1]`.

    >>> import numpy as np
    >>> from berry._special import log_f32
    >>> bool(abs(float(log_f32(np.array([10.0], dtype=np.float32))[0]) - 2.302585) < 1e-6)
    True
    """
    one = np.float32(1.0)
    bits = np.ascontiguousarray(t, dtype=np.float32).view(np.uint32)
    exponent = (bits >> np.uint32(23)).astype(np.int32) - 126
    m = ((bits & np.uint32(0x807FFFFF)) | np.uint32(0x3F000000)).view(np.float32)  # [1/2, 1)
    small = m < F32_SQRTHF
    exponent = exponent - small.astype(np.int32)
    x = np.where(small, (m + m) - one, m - one)  # exact
    e = exponent.astype(np.float32)
    f = x / (x + np.float32(2.0))
    f2 = f * f
    r = f * _horner_f32(F32_ATANH, f2)
    return (r + F32_LOG_Q1 * e) + F32_LOG_Q2 * e


def _horner_f32(coefficients: tuple[np.float32, ...], v: NDArray[np.float32]) -> NDArray[np.float32]:
    acc = coefficients[-1] * v + coefficients[-2]
    for c in coefficients[-3::-1]:
        acc = acc * v + c
    return acc


def ndtri_half_f32(s: NDArray[np.float32]) -> NDArray[np.float32]:
    """``-ndtri(s)`` for float32 ``2**-40 <= s <= 3/4`` in float32 arithmetic, bit-identical to the C kernel.

    See the comment above :data:`F32_NDTRI_A` for the method and the measured accuracy (<= 3.646 float32 ulps
    for 2**-33 <= s <= 1/2, 6.10 below; every float32 s checked by benchmarks/accuracy.py).

    >>> import numpy as np
    >>> from berry._special import ndtri_half_f32
    >>> round(float(ndtri_half_f32(np.array([0.025], dtype=np.float32))[0]), 5)
    1.95996
    """
    s = np.asarray(s, dtype=np.float32)
    one = np.float32(1.0)
    t = (np.float32(4.0) * s) * (one - s)
    w = -log_f32(t)
    x = one - (s + s)
    central = _horner_f32(F32_NDTRI_A, w - F32_CENTER)
    tail = _horner_f32(F32_NDTRI_B, np.sqrt(w) - F32_TAIL_CENTER)
    return x * np.where(w < F32_SPLIT, central, tail)
