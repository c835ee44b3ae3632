"""The stream's elementwise laws as one Triton kernel: the recipe of :mod:`berry.stream`, op for op.

This is the device twin of the NumPy reference (:mod:`berry._stream_numpy`) and of the C kernel
(``berry/_cstream.c``): the same Philox4x32-10 counters and keys, the same float64 transform (a 52-bit
uniform, Wichura's AS 241 with fdlibm's logarithm), the same float32 transform (one 32-bit word per value,
:func:`berry._special.ndtri_half_f32` with Cephes' ``logf`` reduction), the same clamp and the same single
rounding to float16/bfloat16 (integer round-to-nearest-even from the float64 bits, as :mod:`berry._lowp`).

Every constant comes from :mod:`berry._recipe`, :mod:`berry._special` and :mod:`berry._lowp` through the
``tl.constexpr`` globals below: none is spelled here. Every floating-point operation is one IEEE operation
rounded to nearest, in the reference's order:

- launched with ``enable_fp_fusion=False``, so no multiply and add are contracted into an FMA;
- float32 division and square root are ``tl.div_rn`` / ``tl.sqrt_rn`` (Triton's ``/`` and ``tl.sqrt`` are
  approximate for float32); float64 ``/`` and ``tl.sqrt`` lower to ``div.rn.f64`` / ``sqrt.rn.f64``;
- no library transcendental: the logarithms and inverse CDFs are the reference's polynomials.

``tests/test_triton_ptx.py`` compiles this kernel for a CUDA target on a machine without a GPU and checks
the PTX for fused or approximate instructions; ``tests/test_triton_kernel.py`` runs the very same source
under Triton's interpreter and compares every bit with :func:`berry.stream.fill`.

Work decomposition: a region is ``rows`` runs of ``run`` consecutive global flat indices (the
:class:`berry._stream_numpy.Layout` of :func:`berry.stream.fill`). Program ``pid`` fills chunk ``pid %
chunks`` of row ``pid // chunks``: ``BLOCK`` global indices starting at the row's first index rounded down
to a whole Philox block, so each lane computes one Philox block and uses all of its words (four values
of the float32 transform, two of the float64 one); indices outside the row are masked. Scalars travel as
int64 (float64 parameters as their IEEE bits), so the kernel's signature, and therefore its compiled
binary, never depends on their values.

This module imports Triton; :mod:`berry._device` loads it lazily (compiled, or interpreted on CPU).
"""

import triton
import triton.language as tl

from berry import _lowp, _recipe, _special


def _floats(values: tuple) -> tl.constexpr:
    return tl.constexpr(tuple(float(value) for value in values))


# --- the recipe's constants (one place each: berry._recipe / berry._special / berry._lowp) ------------
PHILOX_M0: tl.constexpr = tl.constexpr(_recipe.PHILOX_M0)
PHILOX_M1: tl.constexpr = tl.constexpr(_recipe.PHILOX_M1)
PHILOX_W0: tl.constexpr = tl.constexpr(_recipe.PHILOX_W0)
PHILOX_W1: tl.constexpr = tl.constexpr(_recipe.PHILOX_W1)
PHILOX_ROUNDS: tl.constexpr = tl.constexpr(_recipe.PHILOX_ROUNDS)
LAW_UNIFORM: tl.constexpr = tl.constexpr(_recipe.LAW_UNIFORM)
LAW_NORMAL: tl.constexpr = tl.constexpr(_recipe.LAW_NORMAL)
TRANSFORM_F32: tl.constexpr = tl.constexpr(_recipe.TRANSFORM_F32)
DT_FLOAT64: tl.constexpr = tl.constexpr(_recipe.DTYPE_CODES["float64"])
DT_FLOAT32: tl.constexpr = tl.constexpr(_recipe.DTYPE_CODES["float32"])
DT_FLOAT16: tl.constexpr = tl.constexpr(_recipe.DTYPE_CODES["float16"])


def _small_format(name: str) -> tl.constexpr:
    """(bias, smallest normal exponent, infinity's bits, NaN's bits, 52 - mantissa bits) of float16/bfloat16."""
    exponent_bits, mantissa_bits = _lowp.SMALL_FORMATS[name]
    bias = (1 << (exponent_bits - 1)) - 1
    infinity = ((1 << exponent_bits) - 1) << mantissa_bits
    return tl.constexpr((bias, 1 - bias, infinity, infinity | (1 << (mantissa_bits - 1)), 52 - mantissa_bits))


FLOAT16: tl.constexpr = _small_format("float16")
BFLOAT16: tl.constexpr = _small_format("bfloat16")

# float64 transform: fdlibm's log and AS 241
LN2_HI: tl.constexpr = tl.constexpr(_special.LN2_HI)
LN2_LO: tl.constexpr = tl.constexpr(_special.LN2_LO)
LG: tl.constexpr = _floats((0.0, *_special.LOG_COEFFICIENTS))  # LG[1] .. LG[7], fdlibm's numbering
SQRT2_MANTISSA: tl.constexpr = tl.constexpr(_special.SQRT2_MANTISSA)
TWO54: tl.constexpr = tl.constexpr(2.0**54)  # lifts subnormal inputs into the normal range (log_array)
SMALLEST_NORMAL: tl.constexpr = tl.constexpr(2.0**-1022)
NDTRI_A: tl.constexpr = _floats(_special.NDTRI_A)
NDTRI_B: tl.constexpr = _floats(_special.NDTRI_B)
NDTRI_C: tl.constexpr = _floats(_special.NDTRI_C)
NDTRI_D: tl.constexpr = _floats(_special.NDTRI_D)
NDTRI_E: tl.constexpr = _floats(_special.NDTRI_E)
NDTRI_F: tl.constexpr = _floats(_special.NDTRI_F)
NDTRI_SPLIT1: tl.constexpr = tl.constexpr(_special.NDTRI_SPLIT1)
NDTRI_SPLIT2: tl.constexpr = tl.constexpr(_special.NDTRI_SPLIT2)
NDTRI_CONST1: tl.constexpr = tl.constexpr(_special.NDTRI_CONST1)
NDTRI_CONST2: tl.constexpr = tl.constexpr(_special.NDTRI_CONST2)
# u = bits of 1 + (w >> 12) * 2**-52, minus (1 - 2**-53): exactly ((w >> 12) + 1/2) * 2**-52 (uniform52)
ONE_BITS: tl.constexpr = tl.constexpr(0x3FF0000000000000)
U52_SHIFT: tl.constexpr = tl.constexpr(1.0 - 2.0**-53)

# float32 transform: v, then ndtri_half_f32 with log_f32
F32_V_SCALE: tl.constexpr = tl.constexpr(float(_recipe.F32_V_SCALE))
F32_NDTRI_A: tl.constexpr = _floats(_special.F32_NDTRI_A)
F32_NDTRI_B: tl.constexpr = _floats(_special.F32_NDTRI_B)
F32_ATANH: tl.constexpr = _floats(_special.F32_ATANH)
F32_SQRTHF: tl.constexpr = tl.constexpr(float(_special.F32_SQRTHF))
F32_LOG_Q1: tl.constexpr = tl.constexpr(float(_special.F32_LOG_Q1))
F32_LOG_Q2: tl.constexpr = tl.constexpr(float(_special.F32_LOG_Q2))
F32_SPLIT: tl.constexpr = tl.constexpr(float(_special.F32_SPLIT))
F32_CENTER: tl.constexpr = tl.constexpr(float(_special.F32_CENTER))
F32_TAIL_CENTER: tl.constexpr = tl.constexpr(float(_special.F32_TAIL_CENTER))


# --- building blocks ----------------------------------------------------------------------------------
@triton.jit
def _horner(x, C: tl.constexpr, DEGREE: tl.constexpr):
    """C[DEGREE] * x + C[DEGREE - 1], then acc * x + C[j] down to C[0]: the reference's order."""
    acc = x * C[DEGREE] + C[DEGREE - 1]
    for j in tl.static_range(DEGREE - 2, -1, -1):
        acc = acc * x + C[j]
    return acc


@triton.jit
def _philox(c0, c1, k0, k1):
    """Philox4x32-10 (Salmon et al., SC 2011) of the counters (c0, c1, 0, 0) under the key (k0, k1)."""
    x0 = c0
    x1 = c1
    x2 = tl.full(c0.shape, 0, tl.uint32)  # tl.full, not tl.zeros_like: a builtin in both flavours (see _device)
    x3 = tl.full(c0.shape, 0, tl.uint32)
    for _ in tl.static_range(PHILOX_ROUNDS):
        hi0 = tl.umulhi(x0, PHILOX_M0)
        lo0 = x0 * PHILOX_M0
        hi1 = tl.umulhi(x2, PHILOX_M1)
        lo1 = x2 * PHILOX_M1
        x0 = hi1 ^ x1 ^ k0
        x1 = lo1
        x2 = hi0 ^ x3 ^ k1
        x3 = lo0
        k0 = k0 + PHILOX_W0
        k1 = k1 + PHILOX_W1
    return x0, x1, x2, x3


@triton.jit
def _from_bits(bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (how float64 parameters reach the kernel)."""
    return bits.to(tl.int64).to(tl.float64, bitcast=True)


@triton.jit
def _uniform52(hi, lo):
    """The float64 transform's u in (0, 1) from the 64-bit word hi * 2**32 + lo (uniform52)."""
    word = (hi.to(tl.uint64) << 32) | lo.to(tl.uint64)
    one_plus = (word >> 12) | ONE_BITS
    return one_plus.to(tl.float64, bitcast=True) - U52_SHIFT


@triton.jit
def _log64(x):
    """fdlibm's natural logarithm of positive float64 values (log_array)."""
    subnormal = x < SMALLEST_NORMAL
    scaled = tl.where(subnormal, x * TWO54, x)
    bits = scaled.to(tl.uint64, bitcast=True)
    exponent = (bits >> 52).to(tl.int64) - 1023 - tl.where(subnormal, 54, 0).to(tl.int64)
    mantissa = bits & 0x000FFFFFFFFFFFFF
    big = mantissa > SQRT2_MANTISSA
    m_bits = mantissa | tl.where(big, 0x3FE0000000000000, 0x3FF0000000000000).to(tl.uint64)
    k = (exponent + big.to(tl.int64)).to(tl.float64)
    f = m_bits.to(tl.float64, bitcast=True) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG[2] + w * (LG[4] + w * LG[6]))
    t2 = z * (LG[1] + w * (LG[3] + w * (LG[5] + w * LG[7])))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)


@triton.jit
def _ndtri64(p):
    """Wichura's AS 241 (PPND16) inverse normal CDF of 0 < p < 1 (ndtri_array)."""
    q = p - 0.5
    r = NDTRI_CONST1 - q * q
    central = (q * _horner(r, NDTRI_A, 7)) / _horner(r, NDTRI_B, 7)
    lower = q < 0.0
    rt = tl.sqrt(-_log64(tl.where(lower, p, 1.0 - p)))
    rn = rt - NDTRI_CONST2
    rf = rt - NDTRI_SPLIT2
    near = _horner(rn, NDTRI_C, 7) / _horner(rn, NDTRI_D, 7)
    far = _horner(rf, NDTRI_E, 7) / _horner(rf, NDTRI_F, 7)
    magnitude = tl.where(rt <= NDTRI_SPLIT2, near, far)
    return tl.where(tl.abs(q) > NDTRI_SPLIT1, tl.where(lower, -magnitude, magnitude), central)


@triton.jit
def _log32(t):
    """Cephes' logf reduction and 2 atanh((m-1)/(m+1)) in float32 (log_f32)."""
    bits = t.to(tl.uint32, bitcast=True)
    exponent = (bits >> 23).to(tl.int32) - 126
    m = ((bits & 0x807FFFFF) | 0x3F000000).to(tl.uint32).to(tl.float32, bitcast=True)
    small = m < F32_SQRTHF
    exponent = exponent - small.to(tl.int32)
    x = tl.where(small, (m + m) - 1.0, m - 1.0)
    e = exponent.to(tl.float32)
    f = tl.div_rn(x, x + 2.0)
    f2 = f * f
    r = f * _horner(f2, F32_ATANH, 4)
    return (r + F32_LOG_Q1 * e) + F32_LOG_Q2 * e


@triton.jit
def _ndtri_half32(s):
    """-ndtri(s) in float32 for 2**-40 <= s <= 3/4 (ndtri_half_f32)."""
    t = (4.0 * s) * (1.0 - s)
    w = -_log32(t)
    x = 1.0 - (s + s)
    central = _horner(w - F32_CENTER, F32_NDTRI_A, 9)
    tail = _horner(tl.sqrt_rn(w) - F32_TAIL_CENTER, F32_NDTRI_B, 11)
    return x * tl.where(w < F32_SPLIT, central, tail)


@triton.jit
def _clamp(x, low, high):
    """``low if x < low else x``, then ``high if x > high else x`` (the reference's order: signed zeros)."""
    x = tl.where(x < low, low, x)
    return tl.where(x > high, high, x)


@triton.jit
def _round_small(x, FORMAT: tl.constexpr):
    """The 16 bits of float64 ``x`` rounded once to nearest even (round_float64_to_small_bits)."""
    BIAS: tl.constexpr = FORMAT[0]
    MIN_EXPONENT: tl.constexpr = FORMAT[1]
    INFINITY: tl.constexpr = FORMAT[2]
    NAN: tl.constexpr = FORMAT[3]
    NORMAL_SHIFT: tl.constexpr = FORMAT[4]
    bits = x.to(tl.uint64, bitcast=True)
    sign = (bits >> 63) << 15
    magnitude = bits & 0x7FFFFFFFFFFFFFFF
    exponent = (magnitude >> 52).to(tl.int64) - 1023
    fraction = magnitude & 0x000FFFFFFFFFFFFF
    normal = exponent >= MIN_EXPONENT
    one = tl.full(bits.shape, 1, tl.uint64)
    rebased = (tl.maximum(exponent + BIAS, 0).to(tl.uint64) << 52) | fraction
    with_implicit = fraction | (one << 52)
    shift = tl.where(normal, NORMAL_SHIFT, tl.minimum(NORMAL_SHIFT + MIN_EXPONENT - exponent, 55))
    source = tl.where(normal, rebased, with_implicit)
    shift_u = shift.to(tl.uint64)
    kept = source >> shift_u
    remainder = source & ((one << shift_u) - one)
    half = one << (shift_u - one)
    round_up = (remainder > half) | ((remainder == half) & ((kept & one) == one))
    rounded = tl.minimum(kept + round_up.to(tl.uint64), INFINITY)
    rounded = tl.where(magnitude > 0x7FF0000000000000, NAN, rounded)
    return (sign | rounded).to(tl.uint16).to(tl.int16, bitcast=True)


@triton.jit
def _store(out_ptr, position, valid, x, DTYPE: tl.constexpr):
    """Round the float64 (or, for float32 output, float32) ``x`` once to the output dtype and store it."""
    if DTYPE == DT_FLOAT64:
        tl.store(out_ptr + position, x, mask=valid)
    elif DTYPE == DT_FLOAT32:
        tl.store(out_ptr + position, x.to(tl.float32), mask=valid)
    elif DTYPE == DT_FLOAT16:
        tl.store(out_ptr + position, _round_small(x, FLOAT16), mask=valid)
    else:
        tl.store(out_ptr + position, _round_small(x, BFLOAT16), mask=valid)


# --- the kernel ---------------------------------------------------------------------------------------
@triton.jit(
    do_not_specialize=[
        "pid_base", "base", "run", "chunks", "count0", "stride0", "count1", "stride1", "count2", "stride2",
        "count3", "stride3", "key_lo", "key_hi", "offset", "factor", "low", "high", "pa", "width", "qb",
        "lower_base", "lower_step", "upper_base", "upper_step",
    ],
)  # fmt: skip
def fill_kernel(
    out_ptr,
    pid_base: tl.int64,
    base: tl.int64,
    run: tl.int64,
    chunks: tl.int64,
    count0: tl.int64,
    stride0: tl.int64,
    count1: tl.int64,
    stride1: tl.int64,
    count2: tl.int64,
    stride2: tl.int64,
    count3: tl.int64,
    stride3: tl.int64,
    key_lo: tl.int64,
    key_hi: tl.int64,
    offset: tl.int64,
    factor: tl.int64,
    low: tl.int64,
    high: tl.int64,
    pa: tl.int64,
    width: tl.int64,
    qb: tl.int64,
    lower_base: tl.int64,
    lower_step: tl.int64,
    upper_base: tl.int64,
    upper_step: tl.int64,
    DTYPE: tl.constexpr,
    LAW: tl.constexpr,
    TRANSFORM: tl.constexpr,
    AFFINE32: tl.constexpr,
    COMPLEMENT: tl.constexpr,
    UPPER_POSITIVE: tl.constexpr,
    N_OUTER: tl.constexpr,
    WORDS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Fill ``BLOCK`` positions of one row of the region (see the module docstring).

    ``count0/stride0`` is the innermost of the (at most four) outer axes; the float64 parameters
    (``offset`` ... ``upper_step``) are IEEE bits; ``WORDS`` is the number of values per Philox block
    (4 for the float32 transform, 2 for the float64 one).
    """
    pid = tl.program_id(0).to(tl.int64) + pid_base.to(tl.int64)
    chunks = chunks.to(tl.int64)
    run = run.to(tl.int64)
    row = pid // chunks
    chunk = pid - row * chunks
    start = base.to(tl.int64)  # global flat index of the row's first element
    rest = row
    if N_OUTER > 0:
        start += (rest % count0.to(tl.int64)) * stride0.to(tl.int64)
        rest = rest // count0.to(tl.int64)
    if N_OUTER > 1:
        start += (rest % count1.to(tl.int64)) * stride1.to(tl.int64)
        rest = rest // count1.to(tl.int64)
    if N_OUTER > 2:
        start += (rest % count2.to(tl.int64)) * stride2.to(tl.int64)
        rest = rest // count2.to(tl.int64)
    if N_OUTER > 3:
        start += (rest % count3.to(tl.int64)) * stride3.to(tl.int64)
    first = (start // WORDS) * WORDS + chunk * BLOCK  # a whole Philox block
    lane = tl.arange(0, BLOCK // WORDS).to(tl.int64)
    block = first // WORDS + lane
    x0, x1, x2, x3 = _philox(
        (block & 0xFFFFFFFF).to(tl.uint32),
        (block >> 32).to(tl.uint32),
        key_lo.to(tl.int64).to(tl.uint32),
        key_hi.to(tl.int64).to(tl.uint32),
    )
    # Lane l, word j holds global index first + WORDS * l + j.
    local = first - start + lane[:, None] * WORDS + tl.arange(0, WORDS).to(tl.int64)[None, :]
    valid = (local >= 0) & (local < run)
    position = row * run + local
    offset_f = _from_bits(offset)
    factor_f = _from_bits(factor)
    low_f = _from_bits(low)
    high_f = _from_bits(high)
    if TRANSFORM == TRANSFORM_F32:
        word = tl.reshape(tl.join(tl.join(x0, x2), tl.join(x1, x3)), [BLOCK // WORDS, WORDS])  # x0 x1 x2 x3
        m = (word & 0x7FFFFFFF).to(tl.int32).to(tl.float32)  # rounds to nearest even
        v = (m + 0.5) * F32_V_SCALE
        upper = (word >> 31) == 1
        r_base = tl.where(upper, _from_bits(upper_base).to(tl.float32), _from_bits(lower_base).to(tl.float32))
        r_step = tl.where(upper, _from_bits(upper_step).to(tl.float32), _from_bits(lower_step).to(tl.float32))
        g = _ndtri_half32(r_base + r_step * v)
        if UPPER_POSITIVE:
            z = tl.where(upper, g, -g)
        else:
            z = -g
        if AFFINE32:
            x32 = offset_f.to(tl.float32) + factor_f.to(tl.float32) * z
            x32 = _clamp(x32, low_f.to(tl.float32), high_f.to(tl.float32))
            tl.store(out_ptr + position, x32, mask=valid)
        else:
            x = _clamp(offset_f + factor_f * z.to(tl.float64), low_f, high_f)
            _store(out_ptr, position, valid, x, DTYPE)
    else:
        u = _uniform52(tl.join(x0, x2), tl.join(x1, x3))  # words (x0, x1), then (x2, x3)
        if LAW == LAW_UNIFORM:
            x = offset_f + factor_f * u
        elif LAW == LAW_NORMAL:
            x = offset_f + factor_f * _ndtri64(u)
        elif COMPLEMENT:  # u > 1/2 measured from the upper end: z = -ndtri(qb + width * (1 - u)), never 1 - p
            upper = u > 0.5
            width_f = _from_bits(width)
            z = _ndtri64(tl.where(upper, _from_bits(qb) + width_f * (1.0 - u), _from_bits(pa) + width_f * u))
            x = offset_f + factor_f * tl.where(upper, -z, z)
        else:
            x = offset_f + factor_f * _ndtri64(_from_bits(pa) + _from_bits(width) * u)
        _store(out_ptr, position, valid, _clamp(x, low_f, high_f), DTYPE)
