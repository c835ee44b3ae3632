/*
 * The AVX2 path of berry/_cstream.c (included once from there, after the portable code it mirrors):
 * Philox4x32-10 four blocks per register, the float64 transform's log and AS 241 four lanes wide, and the
 * float32 transform eight lanes wide. Same operations in the same order as the portable code, so the
 * same bits; chosen at run time (__builtin_cpu_supports).
 */
#if defined(__x86_64__) || defined(__i386__)
#define BERRY_HAVE_AVX2_CLONE 1
#include <immintrin.h>

/* ---- Philox ---- */

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

/* ---- the float64 transform: berry_log and ndtri_block ---- */
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
    __m256i big = _mm256_cmpgt_epi64(mantissa, _mm256_set1_epi64x(LOG_SQRT2_MANTISSA));
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
__attribute__((target("avx2"))) static void ndtri_block_avx2(const double *restrict p, double *restrict z, int n,
                                                            scratch_t *scratch) {
    const __m256d sign = VSET(-0.0);
    double *tail_p = scratch->tail_p, *tail_t = scratch->tail_z;
    long long *tail_index = scratch->tail_index;
    int nt = 0;
    for (int i = 0; i < n; i += 4) {
        __m256d pv = _mm256_loadu_pd(p + i);
        __m256d q = _mm256_sub_pd(pv, VSET(0.5));
        __m256d r = _mm256_sub_pd(VSET(NDTRI_CONST1), _mm256_mul_pd(q, q));
        _mm256_storeu_pd(z + i, _mm256_div_pd(_mm256_mul_pd(q, HORNER8V(A, r)), HORNER8V(B, r)));
    }
    for (int i = 0; i < n; i += 4) {
        __m256d pv = _mm256_loadu_pd(p + i);
        __m256d q = _mm256_sub_pd(pv, VSET(0.5));
        __m256d tail = _mm256_cmp_pd(_mm256_andnot_pd(sign, q), VSET(NDTRI_SPLIT1), _CMP_GT_OQ);
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
        __m256d rn = _mm256_sub_pd(rt, VSET(NDTRI_CONST2));
        __m256d t = _mm256_div_pd(HORNER8V(C, rn), HORNER8V(D, rn));
        __m256d far = _mm256_cmp_pd(rt, VSET(NDTRI_SPLIT2), _CMP_GT_OQ);
        if (__builtin_expect(_mm256_movemask_pd(far) != 0, 0)) {
            __m256d rf = _mm256_sub_pd(rt, VSET(NDTRI_SPLIT2));
            t = _mm256_blendv_pd(t, _mm256_div_pd(HORNER8V(E, rf), HORNER8V(F, rf)), far);
        }
        _mm256_storeu_pd(tail_t + j, t);
    }
    for (int j = 0; j < nt; j++) {
        long long i = tail_index[j];
        z[i] = p[i] - 0.5 < 0.0 ? -tail_t[j] : tail_t[j];
    }
}

/* ---- the float32 transform ---- */
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
        __m256 small = _mm256_cmp_ps(m, FSET(F32_SQRTHF), _CMP_LT_OQ);
        e = _mm256_add_epi32(e, _mm256_castps_si256(small)); /* mask is -1 */
        x[k] = _mm256_sub_ps(_mm256_blendv_ps(m, _mm256_add_ps(m, m), small), FSET(1.0f)); /* (m + m) - 1 or m - 1 */
        ef[k] = _mm256_cvtepi32_ps(e);
        f[k] = _mm256_div_ps(x[k], _mm256_add_ps(x[k], FSET(2.0f)));
        f2[k] = _mm256_mul_ps(f[k], f[k]);
    }
    horner_f8(ft_coef, 4, f2, y);
    EACH {
        __m256 r = _mm256_mul_ps(f[k], y[k]);
        r = _mm256_add_ps(r, _mm256_mul_ps(FSET(F32_LOG_Q1), ef[k]));
        out[k] = _mm256_add_ps(r, _mm256_mul_ps(FSET(F32_LOG_Q2), ef[k]));
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
        v[k] = _mm256_sub_ps(w[k], FSET(F32_CENTER));
        any_tail |= _mm256_movemask_ps(_mm256_cmp_ps(w[k], FSET(F32_SPLIT), _CMP_NLT_UQ)); /* !(w < 5) */
    }
    horner_f8(fa_coef, 9, v, p);
    if (__builtin_expect(any_tail != 0, 0)) {
        __m256 vb[NV], pb[NV];
        EACH vb[k] = _mm256_sub_ps(_mm256_sqrt_ps(w[k]), FSET(F32_TAIL_CENTER));
        horner_f8(fb_coef, 11, vb, pb);
        EACH p[k] = _mm256_blendv_ps(p[k], pb[k], _mm256_cmp_ps(w[k], FSET(F32_SPLIT), _CMP_NLT_UQ));
    }
    EACH g[k] = _mm256_mul_ps(_mm256_sub_ps(FSET(1.0f), _mm256_add_ps(s[k], s[k])), p[k]);
}

/* z32_block with AVX2, 8 * NV values per step (words and z padded to a multiple of 8 * NV). */
/* With out32 (float32 output), whole steps of 8 * NV values are finished here (the FINISH of segment, same
 * operations: loc + scale * z in float64, clamped, rounded to float32; or with affine32 all in float32)
 * and written straight to out32; returns how many leading values were written there; z holds the others. */
__attribute__((target("avx2"))) static int z32_block_avx2(const uint32_t *restrict words, double *restrict z, int n,
                                                          const f32_map_t *map, float *restrict out32,
                                                          const double *affine, int affine32) {
    const __m256 sign = FSET(-0.0f);
    const __m256 lower_base = FSET(map->lower_base), lower_step = FSET(map->lower_step);
    const __m256 upper_base = FSET(map->upper_base), upper_step = FSET(map->upper_step);
    int done = 0;
    for (int i = 0; i < n; i += 8 * NV) {
        __m256i word[NV];
        __m256 s[NV], g[NV], neg[NV];
        EACH word[k] = _mm256_loadu_si256((const __m256i *)(words + i + 8 * k));
        EACH {
            __m256 m = _mm256_cvtepi32_ps(_mm256_and_si256(word[k], _mm256_set1_epi32(0x7FFFFFFF)));
            __m256 v = _mm256_mul_ps(_mm256_add_ps(m, FSET(0.5f)), FSET(F32_V_SCALE));
            __m256 upper = _mm256_castsi256_ps(_mm256_srai_epi32(word[k], 31)); /* all ones where the top bit is set */
            s[k] = map->normal ? v
                               : _mm256_add_ps(_mm256_blendv_ps(lower_base, upper_base, upper),
                                               _mm256_mul_ps(_mm256_blendv_ps(lower_step, upper_step, upper), v));
            neg[k] = map->upper_positive ? _mm256_andnot_ps(upper, sign) : sign; /* the lanes whose z is -G(r) */
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
