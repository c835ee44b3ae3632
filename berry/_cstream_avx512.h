/*
 * The AVX-512 path of berry/_cstream.c (included once from there): Philox4x32-10 and the float32 transform
 * 16 float lanes wide. Same operations in the same order as the portable and AVX2 code, so the same bits
 * (tests/test_stream.py forces every path against the NumPy reference). Needs AVX-512F, DQ, VL and BW;
 * chosen at run time (__builtin_cpu_supports, which also checks that the OS saves the ZMM state).
 */
#ifdef BERRY_HAVE_AVX2_CLONE
#define BERRY_HAVE_AVX512_CLONE 1
#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#define ZSET(c) _mm512_set1_ps(c)
#define NZ 4 /* independent vectors in flight: the polynomials are latency-bound chains */
#define EACHZ for (int k = 0; k < NZ; k++)

/* One Philox round on 8 blocks whose words live in the low halves of 64-bit lanes (vpmuludq gives the
 * full 32 x 32 -> 64-bit products; the high halves collect garbage that the next multiply ignores). */
AVX512 static inline __attribute__((always_inline)) void philox_round_avx512(__m512i *x0, __m512i *x1, __m512i *x2,
                                                                            __m512i *x3, __m512i key0, __m512i key1) {
    const __m512i m0 = _mm512_set1_epi64(PHILOX_M0), m1 = _mm512_set1_epi64(PHILOX_M1);
    __m512i p0 = _mm512_mul_epu32(*x0, m0), p1 = _mm512_mul_epu32(*x2, m1);
    *x0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), *x1, key0, 0x96); /* a ^ b ^ c */
    *x2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), *x3, key1, 0x96);
    *x1 = p1;
    *x3 = p0;
}

/* The 10 rounds on PZ groups of 8 consecutive blocks starting at block0 (words in 64-bit lanes). */
#define PZ 4
AVX512 static inline __attribute__((always_inline)) void philox_groups_avx512(uint32_t k0, uint32_t k1,
                                                                             uint64_t block0, int groups,
                                                                             __m512i *x0, __m512i *x1,
                                                                             __m512i *x2, __m512i *x3) {
    __m512i block = _mm512_add_epi64(_mm512_set1_epi64((long long)block0), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    for (int g = 0; g < groups; g++) {
        x0[g] = block;
        x1[g] = _mm512_srli_epi64(block, 32);
        x2[g] = _mm512_setzero_si512();
        x3[g] = x2[g];
        block = _mm512_add_epi64(block, _mm512_set1_epi64(8));
    }
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
        for (int g = 0; g < groups; g++) philox_round_avx512(&x0[g], &x1[g], &x2[g], &x3[g], key0, key1);
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
}

/* Blocks 2k and 2k+1 of a group, 128 bits each, from the per-lane pairs (a, b): [b0 b1 b2 b3], [b4 b5 b6 b7]. */
AVX512 static inline __attribute__((always_inline)) void interleave_blocks(__m512i a, __m512i b, __m512i *first,
                                                                          __m512i *second) {
    *first = _mm512_permutex2var_epi64(a, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), b);
    *second = _mm512_permutex2var_epi64(a, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), b);
}

/* philox_words with AVX-512: 32 blocks (128 words) per step, then groups of 8, then the scalar code. */
AVX512 static void philox_words_avx512(uint32_t k0, uint32_t k1, uint64_t block0, int nb, uint32_t *restrict words) {
    int j = 0;
    while (j + 8 <= nb) {
        int groups = (nb - j) / 8 < PZ ? (nb - j) / 8 : PZ;
        __m512i x0[PZ], x1[PZ], x2[PZ], x3[PZ];
        philox_groups_avx512(k0, k1, block0 + (uint64_t)j, groups, x0, x1, x2, x3);
        for (int g = 0; g < groups; g++) {
            /* (x0, x1) and (x2, x3) of each block in one 64-bit lane, then the blocks in order */
            __m512i lo = _mm512_mask_blend_epi32(0xAAAA, x0[g], _mm512_slli_epi64(x1[g], 32));
            __m512i hi = _mm512_mask_blend_epi32(0xAAAA, x2[g], _mm512_slli_epi64(x3[g], 32));
            __m512i first, second;
            interleave_blocks(_mm512_unpacklo_epi64(lo, hi), _mm512_unpackhi_epi64(lo, hi), &first, &second);
            _mm512_storeu_si512((void *)(words + 4 * (j + 8 * g)), first);
            _mm512_storeu_si512((void *)(words + 4 * (j + 8 * g) + 16), second);
        }
        j += 8 * groups;
    }
    if (j < nb) philox_words(k0, k1, block0 + (uint64_t)j, nb - j, words + 4 * j);
}

/* u of the 64-bit words hi * 2^32 + lo for 8 lanes (the float64 transform's uniform, uniform_from_words). */
AVX512 static inline __attribute__((always_inline)) __m512d uniform8(__m512i hi, __m512i lo) {
    __m512i word = _mm512_mask_blend_epi32(0x5555, _mm512_slli_epi64(hi, 32), lo); /* hi in the high half */
    __m512i mantissa = _mm512_or_si512(_mm512_srli_epi64(word, 12), _mm512_set1_epi64(0x3FF0000000000000ll));
    return _mm512_sub_pd(_mm512_castsi512_pd(mantissa), _mm512_set1_pd(1.0 - 0x1p-53));
}

/* philox_uniforms with AVX-512, u interleaved (element 2b from (x0, x1) of block b, 2b + 1 from (x2, x3)). */
AVX512 static void philox_uniforms_avx512(uint32_t k0, uint32_t k1, uint64_t block0, int nb, double *restrict u) {
    int j = 0;
    while (j + 8 <= nb) {
        int groups = (nb - j) / 8 < PZ ? (nb - j) / 8 : PZ;
        __m512i x0[PZ], x1[PZ], x2[PZ], x3[PZ];
        philox_groups_avx512(k0, k1, block0 + (uint64_t)j, groups, x0, x1, x2, x3);
        for (int g = 0; g < groups; g++) {
            __m512d even = uniform8(x0[g], x1[g]), odd = uniform8(x2[g], x3[g]);
            __m512i a = _mm512_castpd_si512(_mm512_unpacklo_pd(even, odd));
            __m512i b = _mm512_castpd_si512(_mm512_unpackhi_pd(even, odd));
            __m512i first, second;
            interleave_blocks(a, b, &first, &second);
            _mm512_storeu_si512((void *)(u + 2 * (j + 8 * g)), first);
            _mm512_storeu_si512((void *)(u + 2 * (j + 8 * g) + 8), second);
        }
        j += 8 * groups;
    }
    for (; j < nb; j++) { /* the rest, block by block */
        uint32_t x[4];
        philox_block(k0, k1, block0 + (uint64_t)j, x);
        u[2 * j] = uniform_from_words(x[0], x[1]);
        u[2 * j + 1] = uniform_from_words(x[2], x[3]);
    }
}

/* acc = c[deg]*v + c[deg-1], then acc = acc*v + c[j]: the order of the scalar Horner, NZ vectors at once. */
AVX512 static inline __attribute__((always_inline)) void horner_z(const float *c, int deg, const __m512 *v,
                                                                 __m512 *acc) {
    EACHZ acc[k] = _mm512_add_ps(_mm512_mul_ps(ZSET(c[deg]), v[k]), ZSET(c[deg - 1]));
#pragma GCC unroll 16
    for (int j = deg - 2; j >= 0; j--) {
        __m512 cj = ZSET(c[j]);
        EACHZ acc[k] = _mm512_add_ps(_mm512_mul_ps(acc[k], v[k]), cj);
    }
}

/* berry_logf(4 y) on NZ vectors of 16, for y = s (1 - s): the same values as berry_logf of t = (4 s)(1 - s),
 * since scaling by 4 is exact (t = 4 y bit for bit but for the exponent). The exponent and mantissa come
 * from vgetexpps/vgetmantps, which extract them exactly (t is a normal float: t >= 2^-38). */
AVX512 static inline __attribute__((always_inline)) void berry_logf_4y_z(const __m512 *y, __m512 *out) {
    __m512 ef[NZ], f[NZ], f2[NZ], r[NZ];
    EACHZ {
        __m512 m = _mm512_getmant_ps(y[k], _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_src); /* [1/2, 1) */
        ef[k] = _mm512_add_ps(_mm512_getexp_ps(y[k]), ZSET(3.0f)); /* e of t = 4 y with t = 2^e m */
        __mmask16 small = _mm512_cmp_ps_mask(m, ZSET(F32_SQRTHF), _CMP_LT_OQ);
        ef[k] = _mm512_mask_sub_ps(ef[k], small, ef[k], ZSET(1.0f));
        __m512 x = _mm512_sub_ps(_mm512_mask_blend_ps(small, m, _mm512_add_ps(m, m)), ZSET(1.0f));
        f[k] = _mm512_div_ps(x, _mm512_add_ps(x, ZSET(2.0f)));
        f2[k] = _mm512_mul_ps(f[k], f[k]);
    }
    horner_z(ft_coef, 4, f2, r);
    EACHZ {
        __m512 q = _mm512_mul_ps(f[k], r[k]);
        q = _mm512_add_ps(q, _mm512_mul_ps(ZSET(F32_LOG_Q1), ef[k]));
        out[k] = _mm512_add_ps(q, _mm512_mul_ps(ZSET(F32_LOG_Q2), ef[k]));
    }
}

/* ndtri_half_f on NZ vectors of 16. */
AVX512 static inline __attribute__((always_inline)) void ndtri_half_z(const __m512 *s, __m512 *g) {
    __m512 y[NZ], w[NZ], v[NZ], p[NZ];
    __mmask16 tail[NZ], any_tail = 0;
    EACHZ y[k] = _mm512_mul_ps(s[k], _mm512_sub_ps(ZSET(1.0f), s[k]));
    berry_logf_4y_z(y, w);
    EACHZ {
        w[k] = _mm512_xor_ps(w[k], ZSET(-0.0f));
        v[k] = _mm512_sub_ps(w[k], ZSET(F32_CENTER));
        tail[k] = _mm512_cmp_ps_mask(w[k], ZSET(F32_SPLIT), _CMP_NLT_UQ); /* !(w < 5) */
        any_tail |= tail[k];
    }
    horner_z(fa_coef, 9, v, p);
    if (__builtin_expect(any_tail != 0, 0)) {
        __m512 vb[NZ], pb[NZ];
        EACHZ vb[k] = _mm512_sub_ps(_mm512_sqrt_ps(w[k]), ZSET(F32_TAIL_CENTER));
        horner_z(fb_coef, 11, vb, pb);
        EACHZ p[k] = _mm512_mask_blend_ps(tail[k], p[k], pb[k]);
    }
    EACHZ g[k] = _mm512_mul_ps(_mm512_sub_ps(ZSET(1.0f), _mm512_add_ps(s[k], s[k])), p[k]);
}

/* z32_block_avx2 with AVX-512: 16 * NZ values per step (words and z padded to a multiple of 16 * NZ), and
 * with out32 whole steps finished here and written to out32; returns how many leading values it wrote. */
AVX512 static int z32_block_avx512(const uint32_t *restrict words, double *restrict z, int n, const f32_map_t *map,
                                   float *restrict out32, const double *affine, int affine32) {
    const __m512 sign = ZSET(-0.0f);
    const __m512 lower_base = ZSET(map->lower_base), lower_step = ZSET(map->lower_step);
    const __m512 upper_base = ZSET(map->upper_base), upper_step = ZSET(map->upper_step);
    int done = 0;
    for (int i = 0; i < n; i += 16 * NZ) {
        __m512 s[NZ], g[NZ], zk[NZ];
        __mmask16 negate[NZ];
        EACHZ {
            __m512i word = _mm512_loadu_si512((const void *)(words + i + 16 * k));
            __m512 m = _mm512_cvtepi32_ps(_mm512_and_si512(word, _mm512_set1_epi32(0x7FFFFFFF)));
            __m512 v = _mm512_mul_ps(_mm512_add_ps(m, ZSET(0.5f)), ZSET(F32_V_SCALE));
            __mmask16 upper = _mm512_movepi32_mask(word); /* the top bit */
            s[k] = map->normal ? v
                               : _mm512_add_ps(_mm512_mask_blend_ps(upper, lower_base, upper_base),
                                               _mm512_mul_ps(_mm512_mask_blend_ps(upper, lower_step, upper_step), v));
            negate[k] = map->upper_positive ? (__mmask16)~upper : (__mmask16)0xFFFF; /* z = -G(r) there */
        }
        ndtri_half_z(s, g);
        EACHZ zk[k] = _mm512_mask_xor_ps(g[k], negate[k], g[k], sign);
        if (out32 != NULL && affine32 && i + 16 * NZ <= n) {
            const __m512 offset = ZSET((float)affine[0]), factor = ZSET((float)affine[1]);
            const __m512 low = ZSET((float)affine[2]), high = ZSET((float)affine[3]);
            const int clamp = !((float)affine[2] == -INFINITY && (float)affine[3] == INFINITY); /* else a no-op */
            EACHZ {
                __m512 r = _mm512_add_ps(offset, _mm512_mul_ps(factor, zk[k]));
                _mm512_storeu_ps(out32 + i + 16 * k, clamp ? _mm512_min_ps(high, _mm512_max_ps(low, r)) : r);
            }
            done = i + 16 * NZ;
            continue;
        }
        if (out32 != NULL && i + 16 * NZ <= n) {
            const __m512d offset = _mm512_set1_pd(affine[0]), factor = _mm512_set1_pd(affine[1]);
            const __m512d low = _mm512_set1_pd(affine[2]), high = _mm512_set1_pd(affine[3]);
            EACHZ {
                __m512d a = _mm512_add_pd(offset, _mm512_mul_pd(factor, _mm512_cvtps_pd(_mm512_castps512_ps256(zk[k]))));
                __m512d b = _mm512_add_pd(offset, _mm512_mul_pd(factor, _mm512_cvtps_pd(_mm512_extractf32x8_ps(zk[k], 1))));
                a = _mm512_min_pd(high, _mm512_max_pd(low, a)); /* x < low ? low : x, then x > high ? high : x */
                b = _mm512_min_pd(high, _mm512_max_pd(low, b));
                __m512 r = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(a)), _mm512_cvtpd_ps(b), 1);
                _mm512_storeu_ps(out32 + i + 16 * k, r);
            }
            done = i + 16 * NZ;
            continue;
        }
        EACHZ {
            _mm512_storeu_pd(z + i + 16 * k, _mm512_cvtps_pd(_mm512_castps512_ps256(zk[k])));
            _mm512_storeu_pd(z + i + 16 * k + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(zk[k], 1)));
        }
    }
    return done;
}
#endif
