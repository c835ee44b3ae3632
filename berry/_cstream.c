/*
 * berry._cstream: the compiled backend of berry.stream.
 *
 * Computes exactly the recipe documented in berry/stream.py (and implemented
 * op for op by its NumPy reference): Philox4x32-10 (Salmon et al., SC 2011)
 * bits -> a 52-bit uniform -> Wichura's AS 241 inverse normal CDF with
 * fdlibm's logarithm -> float64 value -> one rounding to the output dtype;
 * for float32/float16/bfloat16 normal and truncated normal, the float32
 * transform instead: one 32-bit Philox word per value -> the float32 inverse
 * normal CDF of berry/_special.py (ndtri_half_f32: Giles' form, a float32 log)
 * evaluated 8 lanes wide with 4 independent chains -> loc + scale * z in
 * float64 -> one rounding.
 * Only IEEE-exact operations are used (+ - * / sqrt, integer and bit
 * operations, exact conversions); the build passes -ffp-contract=off so no
 * multiply-add is ever fused, hence the same bits on every x86/ARM machine
 * and in every code path (the AVX2 clone and the generic one agree).
 *
 * Work is split over pthreads by contiguous ranges of region positions,
 * and each thread streams through its range in blocks of CHUNK elements
 * with stack scratch only, so memory use is constant and the bits never
 * depend on the thread count. The GIL is released while sampling.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define CHUNK 1024   /* elements per inner block (even) */
#define MAX_OUTER 64 /* outer (non-contiguous) axes of a region */

/* ---- Philox4x32-10 ---------------------------------------------------- */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline __attribute__((always_inline)) double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline __attribute__((always_inline)) uint64_t as_bits(double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

/* (w >> 12) + 1/2, times 2^-52, built exactly as [1, 2) minus (1 - 2^-53). */
static inline __attribute__((always_inline)) double uniform_from_words(uint32_t hi, uint32_t lo) {
    uint64_t mantissa = ((uint64_t)hi << 20) | (uint64_t)(lo >> 12);
    return as_double(mantissa | 0x3FF0000000000000ull) - (1.0 - 0x1p-53);
}

/* Philox4x32-10 of counter (block mod 2^32, block >> 32, 0, 0) under key (k0, k1): the four words. */
static inline __attribute__((always_inline)) void philox_block(uint32_t k0, uint32_t k1, uint64_t block,
                                                               uint32_t x[4]) {
    uint32_t x0 = (uint32_t)block, x1 = (uint32_t)(block >> 32), x2 = 0, x3 = 0;
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * x0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
        x1 = (uint32_t)p1;
        x3 = (uint32_t)p0;
        x0 = y0;
        x2 = y2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    x[0] = x0;
    x[1] = x1;
    x[2] = x2;
    x[3] = x3;
}

/* Uniforms of the 2*nb elements of Philox blocks block0 .. block0+nb-1. */
static inline __attribute__((always_inline)) void philox_uniforms(uint32_t k0, uint32_t k1, uint64_t block0,
                                                                  int nb, double *restrict even,
                                                                  double *restrict odd) {
    for (int j = 0; j < nb; j++) {
        uint64_t block = block0 + (uint64_t)j;
        uint32_t x[4];
        philox_block(k0, k1, block, x);
        even[j] = uniform_from_words(x[0], x[1]);
        odd[j] = uniform_from_words(x[2], x[3]);
    }
}


/* The four 32-bit words of Philox blocks block0 .. block0+nb-1, block by block (float32 transform). */
static inline __attribute__((always_inline)) void philox_words(uint32_t k0, uint32_t k1, uint64_t block0, int nb,
                                                               uint32_t *restrict words) {
    for (int j = 0; j < nb; j++) {
        uint64_t block = block0 + (uint64_t)j;
        uint32_t x[4];
        philox_block(k0, k1, block, x);
        for (int w = 0; w < 4; w++) words[4 * j + w] = x[w];
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define BERRY_HAVE_AVX2_CLONE 1
#include <immintrin.h>

/* The ten round keys of (k0, k1), broadcast to every lane. */
__attribute__((target("avx2"))) static inline void philox_keys_avx2(uint32_t k0, uint32_t k1, __m256i key0[10],
                                                                    __m256i key1[10]) {
    for (int round = 0; round < 10; round++) {
        key0[round] = _mm256_set1_epi64x(k0);
        key1[round] = _mm256_set1_epi64x(k1);
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

/* One Philox round on 4 blocks whose words live in the low halves of 64-bit lanes. */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void philox_round_avx2(
    __m256i *x0, __m256i *x1, __m256i *x2, __m256i *x3, __m256i key0, __m256i key1) {
    const __m256i m0 = _mm256_set1_epi64x(PHILOX_M0), m1 = _mm256_set1_epi64x(PHILOX_M1);
    __m256i p0 = _mm256_mul_epu32(*x0, m0), p1 = _mm256_mul_epu32(*x2, m1);
    *x0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), *x1), key0);
    *x2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), *x3), key1);
    *x1 = p1;
    *x3 = p0;
}

/* u of the 64-bit words x_hi * 2^32 + x_lo for 4 lanes. */
__attribute__((target("avx2"))) static inline __m256d uniform4(__m256i words) {
    __m256i mantissa = _mm256_or_si256(_mm256_srli_epi64(words, 12), _mm256_set1_epi64x(0x3FF0000000000000ll));
    return _mm256_sub_pd(_mm256_castsi256_pd(mantissa), _mm256_set1_pd(1.0 - 0x1p-53));
}

/* Uniforms of 4 blocks (words x0..x3 in the low halves of 64-bit lanes), interleaved even/odd. */
__attribute__((target("avx2"))) static inline void store_uniforms8(double *dst, __m256i x0, __m256i x1, __m256i x2,
                                                                   __m256i x3, __m256i low32) {
    __m256d even = uniform4(_mm256_or_si256(_mm256_slli_epi64(x0, 32), _mm256_and_si256(x1, low32)));
    __m256d odd = uniform4(_mm256_or_si256(_mm256_slli_epi64(x2, 32), _mm256_and_si256(x3, low32)));
    __m256d lo = _mm256_unpacklo_pd(even, odd), hi = _mm256_unpackhi_pd(even, odd); /* e0 o0 e2 o2 | e1 o1 e3 o3 */
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(lo, hi, 0x20));
    _mm256_storeu_pd(dst + 4, _mm256_permute2f128_pd(lo, hi, 0x31));
}

/* The same as philox_uniforms, 4 blocks (8 elements) per step with AVX2, u interleaved.
 * Each 32-bit Philox word lives in the low half of a 64-bit lane, so one _mm256_mul_epu32
 * gives the full 64-bit product; the high halves collect garbage that mul_epu32 ignores
 * and that is masked off when the words are assembled at the end. */
__attribute__((target("avx2"))) static void philox_uniforms_avx2(uint32_t k0, uint32_t k1, uint64_t block0, int nb,
                                                                 double *restrict u) {
    const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFll);
    __m256i key0[10], key1[10];
    philox_keys_avx2(k0, k1, key0, key1);
    const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3), four = _mm256_set1_epi64x(4);
    int j = 0;
    /* two independent groups of 4 blocks per step, so the multiplier never waits on a dependency */
    for (; j + 8 <= nb; j += 8) {
        __m256i block_a = _mm256_add_epi64(_mm256_set1_epi64x((long long)(block0 + (uint64_t)j)), lanes);
        __m256i block_b = _mm256_add_epi64(block_a, four);
        __m256i a0 = block_a, a1 = _mm256_srli_epi64(block_a, 32), a2 = _mm256_setzero_si256(), a3 = a2;
        __m256i b0 = block_b, b1 = _mm256_srli_epi64(block_b, 32), b2 = _mm256_setzero_si256(), b3 = b2;
        for (int round = 0; round < 10; round++) {
            philox_round_avx2(&a0, &a1, &a2, &a3, key0[round], key1[round]);
            philox_round_avx2(&b0, &b1, &b2, &b3, key0[round], key1[round]);
        }
        store_uniforms8(u + 2 * j, a0, a1, a2, a3, low32);
        store_uniforms8(u + 2 * j + 8, b0, b1, b2, b3, low32);
    }
    for (; j + 4 <= nb; j += 4) {
        __m256i block = _mm256_add_epi64(_mm256_set1_epi64x((long long)(block0 + (uint64_t)j)), lanes);
        __m256i x0 = block, x1 = _mm256_srli_epi64(block, 32);
        __m256i x2 = _mm256_setzero_si256(), x3 = _mm256_setzero_si256();
        for (int round = 0; round < 10; round++) {
            philox_round_avx2(&x0, &x1, &x2, &x3, key0[round], key1[round]);
        }
        store_uniforms8(u + 2 * j, x0, x1, x2, x3, low32);
    }
    if (j < nb) {
        double even[4], odd[4];
        philox_uniforms(k0, k1, block0 + (uint64_t)j, nb - j, even, odd);
        for (int t = 0; t < nb - j; t++) {
            u[2 * (j + t)] = even[t];
            u[2 * (j + t) + 1] = odd[t];
        }
    }
}

/* Words x0..x3 of 4 blocks (low halves of 64-bit lanes) stored block by block: 16 words. */
__attribute__((target("avx2"))) static inline void store_words16(uint32_t *dst, __m256i x0, __m256i x1, __m256i x2,
                                                                 __m256i x3, __m256i low32) {
    __m256i lo = _mm256_or_si256(_mm256_and_si256(x0, low32), _mm256_slli_epi64(x1, 32)); /* (x0, x1) per block */
    __m256i hi = _mm256_or_si256(_mm256_and_si256(x2, low32), _mm256_slli_epi64(x3, 32)); /* (x2, x3) */
    __m256i a = _mm256_unpacklo_epi64(lo, hi), b = _mm256_unpackhi_epi64(lo, hi); /* blocks 0 2 | 1 3 */
    _mm256_storeu_si256((__m256i *)dst, _mm256_permute2x128_si256(a, b, 0x20));
    _mm256_storeu_si256((__m256i *)(dst + 8), _mm256_permute2x128_si256(a, b, 0x31));
}

/* philox_words with AVX2: 16 blocks (64 words) per step in four independent groups of 4 (the rounds are a
 * latency-bound chain of multiplies), then single groups of 4, then the scalar code for the rest. */
#define PG 4
__attribute__((target("avx2"))) static void philox_words_avx2(uint32_t k0, uint32_t k1, uint64_t block0, int nb,
                                                              uint32_t *restrict words) {
    const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFll);
    __m256i key0[10], key1[10];
    philox_keys_avx2(k0, k1, key0, key1);
    const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3), four = _mm256_set1_epi64x(4);
    int j = 0;
    for (; j + 4 * PG <= nb; j += 4 * PG) {
        __m256i x0[PG], x1[PG], x2[PG], x3[PG];
        __m256i block = _mm256_add_epi64(_mm256_set1_epi64x((long long)(block0 + (uint64_t)j)), lanes);
        for (int g = 0; g < PG; g++) {
            x0[g] = block;
            x1[g] = _mm256_srli_epi64(block, 32);
            x2[g] = _mm256_setzero_si256();
            x3[g] = x2[g];
            block = _mm256_add_epi64(block, four);
        }
        for (int round = 0; round < 10; round++) {
            for (int g = 0; g < PG; g++) {
                philox_round_avx2(&x0[g], &x1[g], &x2[g], &x3[g], key0[round], key1[round]);
            }
        }
        for (int g = 0; g < PG; g++) store_words16(words + 4 * (j + 4 * g), x0[g], x1[g], x2[g], x3[g], low32);
    }
    for (; j + 4 <= nb; j += 4) {
        __m256i block = _mm256_add_epi64(_mm256_set1_epi64x((long long)(block0 + (uint64_t)j)), lanes);
        __m256i x0 = block, x1 = _mm256_srli_epi64(block, 32), x2 = _mm256_setzero_si256(), x3 = x2;
        for (int round = 0; round < 10; round++) {
            philox_round_avx2(&x0, &x1, &x2, &x3, key0[round], key1[round]);
        }
        store_words16(words + 4 * j, x0, x1, x2, x3, low32);
    }
    if (j < nb) philox_words(k0, k1, block0 + (uint64_t)j, nb - j, words + 4 * j);
}
#endif

/* ---- log (fdlibm e_log.c reduction and polynomial) -------------------- */
#define LN2_HI 0x1.62e42feep-1
#define LN2_LO 0x1.a39ef35793c76p-33
#define LG1 0x1.5555555555593p-1
#define LG2 0x1.999999997fa04p-2
#define LG3 0x1.2492494229359p-2
#define LG4 0x1.c71c51d8e78afp-3
#define LG5 0x1.7466496cb03dep-3
#define LG6 0x1.39a09d078c69fp-3
#define LG7 0x1.2f112df3e5244p-3

static inline __attribute__((always_inline)) double berry_log(double x) {
    int subnormal = x < 0x1p-1022;
    double scaled = x * (subnormal ? 0x1p54 : 1.0);
    uint64_t bits = as_bits(scaled);
    uint64_t mantissa = bits & 0x000FFFFFFFFFFFFFull;
    int64_t big = (int64_t)mantissa > (int64_t)0x6A09E667F3BCDll;
    /* exponent field as a double, exactly: (2^52 + e) - 2^52 */
    double exponent = as_double((bits >> 52) | 0x4330000000000000ull) - 0x1p52;
    double k = exponent - 1023.0 - (subnormal ? 54.0 : 0.0) + (big ? 1.0 : 0.0);
    double f = as_double(mantissa | (big ? 0x3FE0000000000000ull : 0x3FF0000000000000ull)) - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * (LG2 + w * (LG4 + w * LG6));
    double t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    double r = t2 + t1;
    double hfsq = 0.5 * f * f;
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
}

/* ---- ndtri (Wichura 1988, AS 241 PPND16) ------------------------------ */
#define HORNER8(c, r)                                                                                      \
    ((((((((c##7) * (r) + (c##6)) * (r) + (c##5)) * (r) + (c##4)) * (r) + (c##3)) * (r) + (c##2)) * (r) + \
      (c##1)) * (r) + (c##0))
#define A0 3.3871328727963666080e0
#define A1 1.3314166789178437745e2
#define A2 1.9715909503065514427e3
#define A3 1.3731693765509461125e4
#define A4 4.5921953931549871457e4
#define A5 6.7265770927008700853e4
#define A6 3.3430575583588128105e4
#define A7 2.5090809287301226727e3
#define B0 1.0
#define B1 4.2313330701600911252e1
#define B2 6.8718700749205790830e2
#define B3 5.3941960214247511077e3
#define B4 2.1213794301586595867e4
#define B5 3.9307895800092710610e4
#define B6 2.8729085735721942674e4
#define B7 5.2264952788528545610e3
#define C0 1.42343711074968357734e0
#define C1 4.63033784615654529590e0
#define C2 5.76949722146069140550e0
#define C3 3.64784832476320460504e0
#define C4 1.27045825245236838258e0
#define C5 2.41780725177450611770e-1
#define C6 2.27238449892691845833e-2
#define C7 7.74545014278341407640e-4
#define D0 1.0
#define D1 2.05319162663775882187e0
#define D2 1.67638483018380384940e0
#define D3 6.89767334985100004550e-1
#define D4 1.48103976427480074590e-1
#define D5 1.51986665636164571966e-2
#define D6 5.47593808499534494600e-4
#define D7 1.05075007164441684324e-9
#define E0 6.65790464350110377720e0
#define E1 5.46378491116411436990e0
#define E2 1.78482653991729133580e0
#define E3 2.96560571828504891230e-1
#define E4 2.65321895265761230930e-2
#define E5 1.24266094738807843860e-3
#define E6 2.71155556874348757815e-5
#define E7 2.01033439929228813265e-7
#define F0 1.0
#define F1 5.99832206555887937690e-1
#define F2 1.36929880922735805310e-1
#define F3 1.48753612908506148525e-2
#define F4 7.86869131145613259100e-4
#define F5 1.84631831751005468180e-5
#define F6 1.42151175831644588870e-7
#define F7 2.04426310338993978564e-15

/* z[i] = ndtri(p[i]): a branch-free central pass over everything (|p - 1/2| <= 0.425 for 85 %
 * of normal draws), then the tails gathered into a dense list and fixed up in a second
 * vectorizable pass; the rare r > 5 branch is fixed up last. */
static inline __attribute__((always_inline)) void ndtri_block(const double *restrict p, double *restrict z,
                                                              int n) {
    int tail_index[CHUNK];
    double tail_p[CHUNK], tail_r[CHUNK], tail_z[CHUNK];
    for (int i = 0; i < n; i++) {
        double q = p[i] - 0.5;
        double r = 0.180625 - q * q;
        z[i] = (q * HORNER8(A, r)) / HORNER8(B, r);
    }
    int nt = 0;
    for (int i = 0; i < n; i++) {
        double q = p[i] - 0.5;
        tail_index[nt] = i;
        nt += fabs(q) > 0.425;
    }
    for (int j = 0; j < nt; j++) {
        double pi = p[tail_index[j]];
        tail_p[j] = pi < 0.5 ? pi : 1.0 - pi;
    }
    int far = 0;
    for (int j = 0; j < nt; j++) {
        double r = sqrt(-berry_log(tail_p[j]));
        double rn = r - 1.6;
        tail_r[j] = r;
        tail_z[j] = HORNER8(C, rn) / HORNER8(D, rn);
        far |= r > 5.0;
    }
    if (far) {
        for (int j = 0; j < nt; j++) {
            if (tail_r[j] > 5.0) {
                double rf = tail_r[j] - 5.0;
                tail_z[j] = HORNER8(E, rf) / HORNER8(F, rf);
            }
        }
    }
    for (int j = 0; j < nt; j++) {
        int i = tail_index[j];
        z[i] = p[i] - 0.5 < 0.0 ? -tail_z[j] : tail_z[j];
    }
}

#ifdef BERRY_HAVE_AVX2_CLONE
/* ---- AVX2 versions of berry_log and ndtri_block: the same operations in the same order ---- */
#define VSET(c) _mm256_set1_pd(c)
#define VMA(acc, r, c) _mm256_add_pd(_mm256_mul_pd((acc), (r)), VSET(c))
#define HORNER8V(c, r)                                                                                      \
    VMA(VMA(VMA(VMA(VMA(VMA(VMA(VSET(c##7), r, c##6), r, c##5), r, c##4), r, c##3), r, c##2), r, c##1), r, c##0)

__attribute__((target("avx2"))) static inline __m256d berry_log4(__m256d x) {
    __m256d subnormal = _mm256_cmp_pd(x, VSET(0x1p-1022), _CMP_LT_OQ);
    __m256d scaled = _mm256_mul_pd(x, _mm256_blendv_pd(VSET(1.0), VSET(0x1p54), subnormal));
    __m256i bits = _mm256_castpd_si256(scaled);
    __m256i mantissa = _mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFll));
    __m256i big = _mm256_cmpgt_epi64(mantissa, _mm256_set1_epi64x(0x6A09E667F3BCDll));
    __m256d exponent = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(0x4330000000000000ll))),
        VSET(0x1p52));
    __m256d k = _mm256_add_pd(_mm256_sub_pd(_mm256_sub_pd(exponent, VSET(1023.0)), _mm256_and_pd(subnormal, VSET(54.0))),
                              _mm256_and_pd(_mm256_castsi256_pd(big), VSET(1.0)));
    __m256i one_bits = _mm256_blendv_epi8(_mm256_set1_epi64x(0x3FF0000000000000ll),
                                          _mm256_set1_epi64x(0x3FE0000000000000ll), big);
    __m256d f = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(mantissa, one_bits)), VSET(1.0));
    __m256d s = _mm256_div_pd(f, _mm256_add_pd(VSET(2.0), f));
    __m256d z = _mm256_mul_pd(s, s);
    __m256d w = _mm256_mul_pd(z, z);
    __m256d t1 = _mm256_mul_pd(w, _mm256_add_pd(VSET(LG2), _mm256_mul_pd(w, _mm256_add_pd(VSET(LG4), _mm256_mul_pd(w, VSET(LG6))))));
    __m256d t2 = _mm256_mul_pd(
        z, _mm256_add_pd(VSET(LG1),
                         _mm256_mul_pd(w, _mm256_add_pd(VSET(LG3), _mm256_mul_pd(w, _mm256_add_pd(VSET(LG5), _mm256_mul_pd(w, VSET(LG7))))))));
    __m256d r = _mm256_add_pd(t2, t1);
    __m256d hfsq = _mm256_mul_pd(_mm256_mul_pd(VSET(0.5), f), f);
    __m256d inner = _mm256_add_pd(_mm256_mul_pd(s, _mm256_add_pd(hfsq, r)), _mm256_mul_pd(k, VSET(LN2_LO)));
    return _mm256_sub_pd(_mm256_mul_pd(k, VSET(LN2_HI)), _mm256_sub_pd(_mm256_sub_pd(hfsq, inner), f));
}

/* Left-packing permutations: for a 4-bit lane mask, the 32-bit lane pairs of the set lanes first. */
static int pack_table[16][8];

static void init_pack_table(void) {
    for (int mask = 0; mask < 16; mask++) {
        int out = 0;
        for (int lane = 0; lane < 4; lane++) {
            if (mask & (1 << lane)) {
                pack_table[mask][out++] = 2 * lane;
                pack_table[mask][out++] = 2 * lane + 1;
            }
        }
        while (out < 8) pack_table[mask][out++] = 0;
    }
}

/* z = ndtri(p) for n values (p padded to a multiple of 4 with 0.5). Pass 1: the central branch
 * for every lane, branch-free, while the tail lanes (|p - 1/2| > 0.425, 15 % of normal draws) are
 * left-packed into a dense list. Pass 2: the tail branch over the dense list, 4 at a time.
 * Pass 3: scatter the tails back with their signs. */
__attribute__((target("avx2"))) static void ndtri_block_avx2(const double *restrict p, double *restrict z, int n) {
    const __m256d sign = VSET(-0.0);
    double tail_p[CHUNK + 8], tail_t[CHUNK + 8];
    long long tail_index[CHUNK + 8];
    int nt = 0;
    for (int i = 0; i < n; i += 4) {
        __m256d pv = _mm256_loadu_pd(p + i);
        __m256d q = _mm256_sub_pd(pv, VSET(0.5));
        __m256d r = _mm256_sub_pd(VSET(0.180625), _mm256_mul_pd(q, q));
        _mm256_storeu_pd(z + i, _mm256_div_pd(_mm256_mul_pd(q, HORNER8V(A, r)), HORNER8V(B, r)));
    }
    for (int i = 0; i < n; i += 4) {
        __m256d pv = _mm256_loadu_pd(p + i);
        __m256d q = _mm256_sub_pd(pv, VSET(0.5));
        __m256d tail = _mm256_cmp_pd(_mm256_andnot_pd(sign, q), VSET(0.425), _CMP_GT_OQ);
        int mask = _mm256_movemask_pd(tail);
        __m256d lower = _mm256_cmp_pd(pv, VSET(0.5), _CMP_LT_OQ);
        __m256d small = _mm256_blendv_pd(_mm256_sub_pd(VSET(1.0), pv), pv, lower);
        __m256i perm = _mm256_loadu_si256((const __m256i *)pack_table[mask]);
        __m256i index = _mm256_add_epi64(_mm256_set1_epi64x(i), _mm256_setr_epi64x(0, 1, 2, 3));
        _mm256_storeu_pd(tail_p + nt, _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(small), perm)));
        _mm256_storeu_si256((__m256i *)(tail_index + nt), _mm256_permutevar8x32_epi32(index, perm));
        nt += __builtin_popcount((unsigned)mask);
    }
    for (int j = nt; j < ((nt + 3) & ~3); j++) tail_p[j] = 0.25;
    for (int j = 0; j < nt; j += 4) {
        __m256d rt = _mm256_sqrt_pd(_mm256_xor_pd(berry_log4(_mm256_loadu_pd(tail_p + j)), sign));
        __m256d rn = _mm256_sub_pd(rt, VSET(1.6));
        __m256d t = _mm256_div_pd(HORNER8V(C, rn), HORNER8V(D, rn));
        __m256d far = _mm256_cmp_pd(rt, VSET(5.0), _CMP_GT_OQ);
        if (__builtin_expect(_mm256_movemask_pd(far) != 0, 0)) {
            __m256d rf = _mm256_sub_pd(rt, VSET(5.0));
            t = _mm256_blendv_pd(t, _mm256_div_pd(HORNER8V(E, rf), HORNER8V(F, rf)), far);
        }
        _mm256_storeu_pd(tail_t + j, t);
    }
    for (int j = 0; j < nt; j++) {
        long long i = tail_index[j];
        z[i] = p[i] - 0.5 < 0.0 ? -tail_t[j] : tail_t[j];
    }
}
#endif

enum { DT_F64 = 0, DT_F32 = 1, DT_F16 = 2, DT_BF16 = 3 };
enum { LAW_UNIFORM = 0, LAW_NORMAL = 1, LAW_TRUNCATED = 2 };

/* ---- the float32 transform (float32 / float16 / bfloat16 outputs; see berry/_special.py) ---- */
#define FA0 0x1.0fc8bcp+1f
#define FA1 0x1.652c5cp-2f
#define FA2 -0x1.832b16p-8f
#define FA3 -0x1.d06b7ap-10f
#define FA4 0x1.43c992p-12f
#define FA5 -0x1.d7f9b8p-18f
#define FA6 -0x1.48ab52p-18f
#define FA7 0x1.638822p-21f
#define FA8 0x1.1a9ef0p-25f
#define FA9 -0x1.b27b34p-27f
#define FB0 0x1.00696cp+2f
#define FB1 0x1.6aa52ap+0f
#define FB2 0x1.b5a7f6p-7f
#define FB3 -0x1.62350ap-7f
#define FB4 0x1.07ef92p-7f
#define FB5 -0x1.4a4f2ap-8f
#define FB6 0x1.0d6c70p-9f
#define FB7 -0x1.6a4078p-13f
#define FB8 -0x1.758454p-12f
#define FB9 0x1.cef9b8p-13f
#define FB10 -0x1.de71dep-15f
#define FB11 0x1.821848p-18f
/* 2 atanh(f) / f = sum 2 f^(2n) / (2n + 1), rounded to float32 */
#define FT0 2.0f
#define FT1 0x1.555556p-1f
#define FT2 0x1.99999ap-2f
#define FT3 0x1.24924ap-2f
#define FT4 0x1.c71c72p-3f
#define F32_MAX_P 0x1.fffffep-1f /* largest float32 below 1 */

static inline __attribute__((always_inline)) float as_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline __attribute__((always_inline)) uint32_t as_u32(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* log of positive normal floats in float32: Cephes' reduction, 2 atanh((m-1)/(m+1)) (log_f32 in berry/_special.py). */
static inline __attribute__((always_inline)) float berry_logf(float t) {
    uint32_t bits = as_u32(t);
    int32_t e = (int32_t)(bits >> 23) - 126;
    float m = as_float((bits & 0x807FFFFFu) | 0x3F000000u);
    int small = m < 0.707106781186547524f;
    e -= small;
    float x = small ? (m + m) - 1.0f : m - 1.0f;
    float ef = (float)e;
    float f = x / (x + 2.0f);
    float f2 = f * f;
    float r = f * ((((FT4 * f2 + FT3) * f2 + FT2) * f2 + FT1) * f2 + FT0);
    return (r + -2.12194440e-4f * ef) + 0.693359375f * ef;
}

/* -ndtri(s) for 2^-40 <= s <= 1/2 (ndtri_half_f32 in berry/_special.py). */
static inline __attribute__((always_inline)) float ndtri_half_f(float s) {
    float t = (4.0f * s) * (1.0f - s);
    float w = -berry_logf(t);
    float x = 1.0f - (s + s);
    float p;
    if (w < 5.0f) {
        float v = w - 2.5f;
        p = ((((((((FA9 * v + FA8) * v + FA7) * v + FA6) * v + FA5) * v + FA4) * v + FA3) * v + FA2) * v + FA1) * v + FA0;
    } else {
        float v = sqrtf(w) - 3.0f;
        p = ((((((((((FB11 * v + FB10) * v + FB9) * v + FB8) * v + FB7) * v + FB6) * v + FB5) * v + FB4) * v + FB3) * v + FB2) * v + FB1) * v + FB0;
    }
    return x * p;
}

/* z[i] (as double) of the float32 transform from words[i], i < n. */
static inline __attribute__((always_inline)) void z32_block(const uint32_t *restrict words, double *restrict z, int n,
                                                            int law, float pa, float width) {
    for (int i = 0; i < n; i++) {
        uint32_t word = words[i];
        float g;
        if (law == LAW_NORMAL) {
            float s = ((float)(int32_t)(word & 0x7FFFFFFFu) + 0.5f) * 0x1p-32f;
            g = ndtri_half_f(s);
            g = (word >> 31) ? g : -g;
        } else {
            float u = as_float((word >> 9) | 0x3F800000u) - F32_MAX_P;
            float p = pa + width * u;
            p = p < F32_MAX_P ? p : F32_MAX_P;
            int lower = p < 0.5f;
            g = ndtri_half_f(lower ? p : 1.0f - p);
            g = lower ? -g : g;
        }
        z[i] = (double)g;
    }
}

#ifdef BERRY_HAVE_AVX2_CLONE
#define FSET(c) _mm256_set1_ps(c)
#define NV 4 /* independent vectors in flight: the polynomials are latency-bound chains */
#define EACH for (int k = 0; k < NV; k++)

static const float fa_coef[10] = {FA0, FA1, FA2, FA3, FA4, FA5, FA6, FA7, FA8, FA9};
static const float fb_coef[12] = {FB0, FB1, FB2, FB3, FB4, FB5, FB6, FB7, FB8, FB9, FB10, FB11};
static const float ft_coef[5] = {FT0, FT1, FT2, FT3, FT4};

/* acc = c[deg]*v + c[deg-1], then acc = acc*v + c[j]: the order of the scalar HORNER, NV vectors at once. */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void horner_f8(const float *c, int deg,
                                                                                           const __m256 *v,
                                                                                           __m256 *acc) {
    EACH acc[k] = _mm256_add_ps(_mm256_mul_ps(FSET(c[deg]), v[k]), FSET(c[deg - 1]));
#pragma GCC unroll 16
    for (int j = deg - 2; j >= 0; j--) {
        __m256 cj = FSET(c[j]);
        EACH acc[k] = _mm256_add_ps(_mm256_mul_ps(acc[k], v[k]), cj);
    }
}

/* berry_logf on NV vectors (same operations, same order). */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void berry_logf8(const __m256 *t,
                                                                                             __m256 *out) {
    __m256 x[NV], ef[NV], f[NV], f2[NV], y[NV];
    EACH {
        __m256i bits = _mm256_castps_si256(t[k]);
        __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126));
        __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x807FFFFF)),
                                                       _mm256_set1_epi32(0x3F000000)));
        __m256 small = _mm256_cmp_ps(m, FSET(0.707106781186547524f), _CMP_LT_OQ);
        e = _mm256_add_epi32(e, _mm256_castps_si256(small)); /* mask is -1 */
        x[k] = _mm256_sub_ps(_mm256_blendv_ps(m, _mm256_add_ps(m, m), small), FSET(1.0f)); /* (m + m) - 1 or m - 1 */
        ef[k] = _mm256_cvtepi32_ps(e);
        f[k] = _mm256_div_ps(x[k], _mm256_add_ps(x[k], FSET(2.0f)));
        f2[k] = _mm256_mul_ps(f[k], f[k]);
    }
    horner_f8(ft_coef, 4, f2, y);
    EACH {
        __m256 r = _mm256_mul_ps(f[k], y[k]);
        r = _mm256_add_ps(r, _mm256_mul_ps(FSET(-2.12194440e-4f), ef[k]));
        out[k] = _mm256_add_ps(r, _mm256_mul_ps(FSET(0.693359375f), ef[k]));
    }
}

/* ndtri_half_f on NV vectors. */
__attribute__((target("avx2"))) static inline __attribute__((always_inline)) void ndtri_half_f8(const __m256 *s,
                                                                                               __m256 *g) {
    __m256 t[NV], w[NV], v[NV], p[NV];
    EACH t[k] = _mm256_mul_ps(_mm256_mul_ps(FSET(4.0f), s[k]), _mm256_sub_ps(FSET(1.0f), s[k]));
    berry_logf8(t, w);
    int any_tail = 0;
    EACH {
        w[k] = _mm256_xor_ps(w[k], FSET(-0.0f));
        v[k] = _mm256_sub_ps(w[k], FSET(2.5f));
        any_tail |= _mm256_movemask_ps(_mm256_cmp_ps(w[k], FSET(5.0f), _CMP_NLT_UQ)); /* !(w < 5) */
    }
    horner_f8(fa_coef, 9, v, p);
    if (__builtin_expect(any_tail != 0, 0)) {
        __m256 vb[NV], pb[NV];
        EACH vb[k] = _mm256_sub_ps(_mm256_sqrt_ps(w[k]), FSET(3.0f));
        horner_f8(fb_coef, 11, vb, pb);
        EACH p[k] = _mm256_blendv_ps(p[k], pb[k], _mm256_cmp_ps(w[k], FSET(5.0f), _CMP_NLT_UQ));
    }
    EACH g[k] = _mm256_mul_ps(_mm256_sub_ps(FSET(1.0f), _mm256_add_ps(s[k], s[k])), p[k]);
}

/* z32_block with AVX2, 8 * NV values per step (words and z padded to a multiple of 8 * NV). */
/* With out32 (float32 output), whole steps of 8 * NV values are finished here (the FINISH of segment, same
 * operations: loc + scale * z in float64, clamped, rounded to float32; or with affine32 all in float32)
 * and written straight to out32; returns how many leading values were written there; z holds the others. */
__attribute__((target("avx2"))) static int z32_block_avx2(const uint32_t *restrict words, double *restrict z, int n,
                                                          int law, float pa, float width, float *restrict out32,
                                                          const double *affine, int affine32) {
    const __m256 sign = FSET(-0.0f);
    int done = 0;
    for (int i = 0; i < n; i += 8 * NV) {
        __m256i word[NV];
        __m256 s[NV], g[NV], neg[NV];
        EACH word[k] = _mm256_loadu_si256((const __m256i *)(words + i + 8 * k));
        if (law == LAW_NORMAL) {
            EACH {
                __m256 m = _mm256_cvtepi32_ps(_mm256_and_si256(word[k], _mm256_set1_epi32(0x7FFFFFFF)));
                s[k] = _mm256_mul_ps(_mm256_add_ps(m, FSET(0.5f)), FSET(0x1p-32f));
                neg[k] = _mm256_andnot_ps(_mm256_castsi256_ps(word[k]), sign); /* top bit clear: -g */
            }
        } else {
            EACH {
                __m256 u = _mm256_sub_ps(
                    _mm256_castsi256_ps(_mm256_or_si256(_mm256_srli_epi32(word[k], 9), _mm256_set1_epi32(0x3F800000))),
                    FSET(F32_MAX_P));
                __m256 p = _mm256_add_ps(FSET(pa), _mm256_mul_ps(FSET(width), u));
                p = _mm256_min_ps(p, FSET(F32_MAX_P));
                __m256 lower = _mm256_cmp_ps(p, FSET(0.5f), _CMP_LT_OQ);
                s[k] = _mm256_blendv_ps(_mm256_sub_ps(FSET(1.0f), p), p, lower);
                neg[k] = _mm256_and_ps(lower, sign);
            }
        }
        ndtri_half_f8(s, g);
        if (out32 != NULL && affine32 && i + 8 * NV <= n) {
            const __m256 offset = FSET((float)affine[0]), factor = FSET((float)affine[1]);
            const __m256 low = FSET((float)affine[2]), high = FSET((float)affine[3]);
            EACH {
                __m256 r = _mm256_add_ps(offset, _mm256_mul_ps(factor, _mm256_xor_ps(g[k], neg[k])));
                _mm256_storeu_ps(out32 + i + 8 * k, _mm256_min_ps(high, _mm256_max_ps(low, r)));
            }
            done = i + 8 * NV;
            continue;
        }
        if (out32 != NULL && i + 8 * NV <= n) {
            const __m256d offset = _mm256_set1_pd(affine[0]), factor = _mm256_set1_pd(affine[1]);
            const __m256d low = _mm256_set1_pd(affine[2]), high = _mm256_set1_pd(affine[3]);
            EACH {
                __m256 gk = _mm256_xor_ps(g[k], neg[k]);
                __m256d a = _mm256_add_pd(offset, _mm256_mul_pd(factor, _mm256_cvtps_pd(_mm256_castps256_ps128(gk))));
                __m256d b = _mm256_add_pd(offset, _mm256_mul_pd(factor, _mm256_cvtps_pd(_mm256_extractf128_ps(gk, 1))));
                a = _mm256_min_pd(high, _mm256_max_pd(low, a)); /* x < low ? low : x, then x > high ? high : x */
                b = _mm256_min_pd(high, _mm256_max_pd(low, b));
                __m256 r = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(a)), _mm256_cvtpd_ps(b), 1);
                _mm256_storeu_ps(out32 + i + 8 * k, r);
            }
            done = i + 8 * NV;
            continue;
        }
        EACH {
            __m256 gk = _mm256_xor_ps(g[k], neg[k]);
            _mm256_storeu_pd(z + i + 8 * k, _mm256_cvtps_pd(_mm256_castps256_ps128(gk)));
            _mm256_storeu_pd(z + i + 8 * k + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(gk, 1)));
        }
    }
    return done;
}
#endif

/* ---- rounding float64 once to float16 / bfloat16 (integer round-to-nearest-even) ---- */
static inline __attribute__((always_inline)) uint16_t round_small(double value, int exponent_bits,
                                                                  int mantissa_bits) {
    uint64_t bits = as_bits(value);
    uint16_t sign = (uint16_t)((bits >> 63) << 15);
    uint64_t magnitude = bits & 0x7FFFFFFFFFFFFFFFull;
    int64_t bias = (1 << (exponent_bits - 1)) - 1;
    int64_t exponent = (int64_t)(magnitude >> 52) - 1023;
    uint64_t fraction = magnitude & 0x000FFFFFFFFFFFFFull;
    int64_t min_exponent = 1 - bias;
    uint64_t infinity = (uint64_t)((1 << exponent_bits) - 1) << mantissa_bits;
    uint64_t source;
    int64_t shift;
    if (exponent >= min_exponent) {
        source = ((uint64_t)(exponent + bias) << 52) | fraction;
        shift = 52 - mantissa_bits;
    } else {
        source = fraction | (1ull << 52);
        shift = 52 - mantissa_bits + min_exponent - exponent;
        if (shift > 55) shift = 55;
    }
    uint64_t kept = source >> shift;
    uint64_t remainder = source & ((1ull << shift) - 1);
    uint64_t half = 1ull << (shift - 1);
    kept += (remainder > half) | ((remainder == half) & (kept & 1));
    if (kept > infinity) kept = infinity;
    if (magnitude > 0x7FF0000000000000ull) kept = infinity | (1ull << (mantissa_bits - 1));
    return (uint16_t)(sign | (uint16_t)kept);
}

/* ---- a job: one law, one output region --------------------------------- */

typedef struct {
    char *out;
    int dtype;
    uint32_t k0, k1;
    int law;
    double offset, factor, pa, width, low, high;
    int fast; /* 1: the float32 transform, 2: also its float32 affine map (float32 output) */
    uint64_t base, run;
    int n_outer;
    uint64_t counts[MAX_OUTER], strides[MAX_OUTER];
} job_t;

typedef struct {
    const job_t *job;
    uint64_t begin, end; /* region positions */
} slice_t;

/* Values of global indices [index, index + n) into out positions [position, position + n). */
static inline __attribute__((always_inline)) void segment(const job_t *job, uint64_t index, int n,
                                                          uint64_t position, int avx2) {
    double u[CHUNK + 8], v[CHUNK + 32];
    const double offset = job->offset, factor = job->factor, low = job->low, high = job->high;
    const double *z;
    int first_value = 0; /* values before it are already written */
    if (job->fast) {
        uint32_t words[CHUNK + 40];
        uint64_t first = index >> 2;
        int nw = (int)(((index + (uint64_t)n - 1) >> 2) - first + 1);
        const uint32_t *ww = words + (index & 3);
#ifdef BERRY_HAVE_AVX2_CLONE
        if (avx2) {
            philox_words_avx2(job->k0, job->k1, first, nw, words);
            for (int i = 4 * nw; i < (int)(index & 3) + ((n + 31) & ~31); i++) words[i] = 0; /* padding lanes */
            const double affine[4] = {offset, factor, low, high};
            float *out32 = job->dtype == DT_F32 ? (float *)(job->out + position * 4) : NULL;
            first_value = z32_block_avx2(ww, v, n, job->law, (float)job->pa, (float)job->width, out32, affine, job->fast == 2);
        } else
#endif
        {
            philox_words(job->k0, job->k1, first, nw, words);
            z32_block(ww, v, n, job->law, (float)job->pa, (float)job->width);
        }
        z = v;
        goto finish;
    }
    uint64_t block0 = index >> 1;
    int nb = (int)(((index + (uint64_t)n - 1) >> 1) - block0 + 1);
#ifdef BERRY_HAVE_AVX2_CLONE
    if (avx2) {
        philox_uniforms_avx2(job->k0, job->k1, block0, nb, u);
    } else
#endif
    {
        double even[CHUNK / 2 + 1], odd[CHUNK / 2 + 1];
        philox_uniforms(job->k0, job->k1, block0, nb, even, odd);
        for (int j = 0; j < nb; j++) {
            u[2 * j] = even[j];
            u[2 * j + 1] = odd[j];
        }
    }
    const double *uu = u + (index & 1);
    z = uu; /* uniform: the value is affine in u itself */
    if (job->law != LAW_UNIFORM) {
        const double *p = uu;
        double pt[CHUNK + 4];
        if (job->law == LAW_TRUNCATED) {
            const double pa = job->pa, width = job->width, p_max = 1.0 - 0x1p-53;
            for (int i = 0; i < n; i++) {
                double pi = pa + width * uu[i];
                pt[i] = pi < p_max ? pi : p_max;
            }
            p = pt;
        }
#ifdef BERRY_HAVE_AVX2_CLONE
        if (avx2) {
            for (int i = n; i < ((n + 3) & ~3); i++) ((double *)p)[i] = 0.5; /* padding lanes */
            ndtri_block_avx2(p, v, n);
        } else
#endif
            ndtri_block(p, v, n);
        z = v;
    }
finish:
    /* value = offset + factor * z, clamped into the support (rounded inward), rounded once */
#define FINISH(store)                                                                                      \
    for (int i = first_value; i < n; i++) {                                                                \
        double x = offset + factor * z[i];                                                                 \
        x = x < low ? low : x;                                                                             \
        x = x > high ? high : x;                                                                           \
        store;                                                                                             \
    }
    switch (job->dtype) {
    case DT_F64: {
        double *out = (double *)(job->out + position * 8);
        FINISH(out[i] = x);
        break;
    }
    case DT_F32: {
        float *out = (float *)(job->out + position * 4);
        if (job->fast == 2) { /* float32 affine map and clamp (the stream docstring) */
            const float off32 = (float)offset, fac32 = (float)factor, low32 = (float)low, high32 = (float)high;
            for (int i = first_value; i < n; i++) {
                float x = off32 + fac32 * (float)z[i];
                x = x < low32 ? low32 : x;
                x = x > high32 ? high32 : x;
                out[i] = x;
            }
            break;
        }
        FINISH(out[i] = (float)x);
        break;
    }
    case DT_F16: {
        uint16_t *out = (uint16_t *)(job->out + position * 2);
        FINISH(out[i] = round_small(x, 5, 10));
        break;
    }
    default: {
        uint16_t *out = (uint16_t *)(job->out + position * 2);
        FINISH(out[i] = round_small(x, 8, 7));
        break;
    }
    }
#undef FINISH
}

static inline __attribute__((always_inline)) void run_slice_body(const slice_t *slice, int avx2) {
    const job_t *job = slice->job;
    uint64_t position = slice->begin;
    while (position < slice->end) {
        uint64_t row = position / job->run, offset = position % job->run;
        uint64_t index = job->base + offset;
        for (int axis = job->n_outer - 1; axis >= 0; axis--) {
            index += (row % job->counts[axis]) * job->strides[axis];
            row /= job->counts[axis];
        }
        uint64_t n = job->run - offset;
        if (n > slice->end - position) n = slice->end - position;
        if (n > CHUNK) n = CHUNK;
        segment(job, index, (int)n, position, avx2);
        position += n;
    }
}

#ifdef BERRY_HAVE_AVX2_CLONE
__attribute__((target("avx2"))) static void run_slice_avx2(const slice_t *slice) { run_slice_body(slice, 1); }
#endif
static void run_slice_generic(const slice_t *slice) { run_slice_body(slice, 0); }

static int use_avx2 = 0; /* decided at import; "generic" forces the portable path (tests) */

static void *run_slice(void *arg) {
#ifdef BERRY_HAVE_AVX2_CLONE
    if (use_avx2) {
        run_slice_avx2((const slice_t *)arg);
        return NULL;
    }
#endif
    run_slice_generic((const slice_t *)arg);
    return NULL;
}

#define MAX_THREADS 256

static PyObject *stream_fill(PyObject *self, PyObject *args) {
    PyObject *out_obj, *counts_obj, *strides_obj;
    job_t job;
    unsigned int k0, k1;
    unsigned long long base, run;
    int threads;
    if (!PyArg_ParseTuple(args, "OiIIiddddddiKKOOi", &out_obj, &job.dtype, &k0, &k1, &job.law, &job.offset,
                          &job.factor, &job.pa, &job.width, &job.low, &job.high, &job.fast, &base, &run, &counts_obj,
                          &strides_obj, &threads))
        return NULL;
    job.k0 = k0;
    job.k1 = k1;
    job.base = base;
    job.run = run;
    if (job.dtype < 0 || job.dtype > 3 || job.law < 0 || job.law > 2 || run == 0) {
        PyErr_SetString(PyExc_ValueError, "berry._cstream.fill: bad dtype, law or run");
        return NULL;
    }
    if (!PyTuple_Check(counts_obj) || !PyTuple_Check(strides_obj) ||
        PyTuple_GET_SIZE(counts_obj) != PyTuple_GET_SIZE(strides_obj) || PyTuple_GET_SIZE(counts_obj) > MAX_OUTER) {
        PyErr_SetString(PyExc_ValueError, "berry._cstream.fill: counts and strides must be tuples of equal length");
        return NULL;
    }
    job.n_outer = (int)PyTuple_GET_SIZE(counts_obj);
    uint64_t rows = 1;
    for (int axis = 0; axis < job.n_outer; axis++) {
        job.counts[axis] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(counts_obj, axis));
        job.strides[axis] = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(strides_obj, axis));
        if (PyErr_Occurred()) return NULL;
        if (job.counts[axis] == 0) Py_RETURN_NONE;
        rows *= job.counts[axis];
    }
    Py_buffer view;
    if (PyObject_GetBuffer(out_obj, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    static const int item_size[4] = {8, 4, 2, 2};
    uint64_t total = rows * run;
    if ((uint64_t)view.len != total * (uint64_t)item_size[job.dtype]) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "berry._cstream.fill: output buffer size does not match the region");
        return NULL;
    }
    job.out = (char *)view.buf;
    /* at least 64 Ki elements per thread: threads cost more than they save below that */
    uint64_t useful = total / 65536 + 1;
    if (threads < 1) threads = 1;
    if ((uint64_t)threads > useful) threads = (int)useful;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    slice_t slices[MAX_THREADS];
    pthread_t workers[MAX_THREADS];
    int started[MAX_THREADS];
    Py_BEGIN_ALLOW_THREADS;
    for (int t = 0; t < threads; t++) {
        slices[t].job = &job;
        slices[t].begin = total * (uint64_t)t / (uint64_t)threads;
        slices[t].end = total * (uint64_t)(t + 1) / (uint64_t)threads;
        started[t] = 0;
    }
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&workers[t], NULL, run_slice, &slices[t]) == 0;
    run_slice(&slices[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(workers[t], NULL);
        else
            run_slice(&slices[t]); /* could not start a thread: do its share here */
    }
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *stream_set_simd(PyObject *self, PyObject *args) {
    const char *mode;
    if (!PyArg_ParseTuple(args, "s", &mode)) return NULL;
    if (strcmp(mode, "generic") == 0) {
        use_avx2 = 0;
    } else if (strcmp(mode, "auto") == 0) {
#ifdef BERRY_HAVE_AVX2_CLONE
        __builtin_cpu_init();
        use_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#else
        use_avx2 = 0;
#endif
    } else {
        PyErr_Format(PyExc_ValueError, "simd mode must be 'auto' or 'generic', got %R", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    return PyUnicode_FromString(use_avx2 ? "avx2" : "generic");
}

static PyMethodDef methods[] = {
    {"fill", stream_fill, METH_VARARGS,
     "fill(out, dtype_code, k0, k1, law, offset, factor, pa, width, low, high, base, run, counts, strides, "
     "threads): write the keyed stream into out (see berry.stream)."},
    {"set_simd", stream_set_simd, METH_VARARGS,
     "set_simd('auto' | 'generic') -> the code path now used ('avx2' or 'generic'); both give the same bits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "berry._cstream",
                                    "Compiled backend of berry.stream (same bits as the NumPy reference).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cstream(void) {
#ifdef BERRY_HAVE_AVX2_CLONE
    init_pack_table();
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
    return PyModule_Create(&module);
}
