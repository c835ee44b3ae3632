/*
 * berry._cstream: the compiled backend of berry.stream.
 *
 * Computes exactly the recipe documented in berry/stream.py (and implemented op for op by its NumPy
 * reference, berry/_stream_numpy.py): Philox4x32-10 (Salmon et al., SC 2011) bits -> a 52-bit uniform ->
 * Wichura's AS 241 inverse normal CDF with fdlibm's logarithm -> float64 value -> one rounding to the
 * output dtype; for float32/float16/bfloat16 normal laws, the float32 transform instead: one 32-bit
 * Philox word per value -> the float32 inverse normal CDF of berry/_special.py (ndtri_half_f32) ->
 * loc + scale * z -> one rounding. Every constant comes from _cstream_recipe.h, rendered from Python.
 *
 * Only IEEE-exact operations are used (+ - * / sqrt, integer and bit operations, exact conversions);
 * the build passes -ffp-contract=off so no multiply-add is ever fused, and a build that would evaluate
 * in extended precision (x87, FLT_EVAL_METHOD != 0) refuses to load, so the bits are the same on every
 * machine and in every code path (AVX-512, AVX2 and portable agree; tests force each).
 *
 * GCC or Clang only (pthreads, target attributes, __builtin_cpu_supports); elsewhere berry uses the
 * NumPy reference. The work is handed out to threads in grains of positions; each thread streams
 * through its grains in blocks of CHUNK elements with heap scratch only, so memory use is constant, a
 * caller with a small stack is safe, and the bits never depend on the thread count. The GIL is
 * released while sampling; the calling thread looks for signals every 20 ms, so Ctrl-C stops a long
 * fill. The entry point takes named fields and validates every one of them.
 */
#if !defined(__GNUC__)
#error "berry._cstream needs GCC or Clang; other compilers use berry's NumPy reference (same bits)"
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "_cstream_recipe.h" /* every bit-defining constant, generated from berry/_recipe.py */

#define CHUNK 1024   /* elements per inner block (even) */
enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 }; /* code paths, all with the same bits */
#define MAX_OUTER 64 /* outer (non-contiguous) axes of a region */

/* Per-thread scratch, on the heap (about 70 KB): a caller's thread may have a small stack. */
typedef struct {
    double u[CHUNK + 16], v[CHUNK + 64], p[CHUNK + 16]; /* uniforms, values, probabilities (+ SIMD padding) */
    uint32_t words[CHUNK + 128];                         /* float32 transform: Philox words */
    double even[CHUNK / 2 + 8], odd[CHUNK / 2 + 8];      /* portable float64 transform */
    double tail_p[CHUNK + 16], tail_r[CHUNK + 16], tail_z[CHUNK + 16]; /* ndtri's tail lanes */
    long long tail_index[CHUNK + 16];
} scratch_t;

/* ---- Philox4x32-10 ---------------------------------------------------- */

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


/* ---- log (fdlibm e_log.c reduction and polynomial) -------------------- */

static inline __attribute__((always_inline)) double berry_log(double x) {
    int subnormal = x < 0x1p-1022;
    double scaled = x * (subnormal ? 0x1p54 : 1.0);
    uint64_t bits = as_bits(scaled);
    uint64_t mantissa = bits & 0x000FFFFFFFFFFFFFull;
    int64_t big = (int64_t)mantissa > (int64_t)LOG_SQRT2_MANTISSA;
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

/* z[i] = ndtri(p[i]): a branch-free central pass over everything (|p - 1/2| <= 0.425 for 85 %
 * of normal draws), then the tails gathered into a dense list and fixed up in a second
 * vectorizable pass; the rare r > 5 branch is fixed up last. */
static inline __attribute__((always_inline)) void ndtri_block(const double *restrict p, double *restrict z,
                                                              int n, scratch_t *scratch) {
    long long *tail_index = scratch->tail_index;
    double *tail_p = scratch->tail_p, *tail_r = scratch->tail_r, *tail_z = scratch->tail_z;
    for (int i = 0; i < n; i++) {
        double q = p[i] - 0.5;
        double r = NDTRI_CONST1 - q * q;
        z[i] = (q * HORNER8(A, r)) / HORNER8(B, r);
    }
    int nt = 0;
    for (int i = 0; i < n; i++) {
        double q = p[i] - 0.5;
        tail_index[nt] = i;
        nt += fabs(q) > NDTRI_SPLIT1;
    }
    for (int j = 0; j < nt; j++) {
        double pi = p[tail_index[j]];
        tail_p[j] = pi < 0.5 ? pi : 1.0 - pi;
    }
    int far = 0;
    for (int j = 0; j < nt; j++) {
        double r = sqrt(-berry_log(tail_p[j]));
        double rn = r - NDTRI_CONST2;
        tail_r[j] = r;
        tail_z[j] = HORNER8(C, rn) / HORNER8(D, rn);
        far |= r > NDTRI_SPLIT2;
    }
    if (far) {
        for (int j = 0; j < nt; j++) {
            if (tail_r[j] > NDTRI_SPLIT2) {
                double rf = tail_r[j] - NDTRI_SPLIT2;
                tail_z[j] = HORNER8(E, rf) / HORNER8(F, rf);
            }
        }
    }
    for (int j = 0; j < nt; j++) {
        long long i = tail_index[j];
        z[i] = p[i] - 0.5 < 0.0 ? -tail_z[j] : tail_z[j];
    }
}



/* ---- the float32 transform (float32 / float16 / bfloat16 outputs; see berry/_special.py) ---- */

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
    int small = m < F32_SQRTHF;
    e -= small;
    float x = small ? (m + m) - 1.0f : m - 1.0f;
    float ef = (float)e;
    float f = x / (x + 2.0f);
    float f2 = f * f;
    float r = f * ((((FT4 * f2 + FT3) * f2 + FT2) * f2 + FT1) * f2 + FT0);
    return (r + F32_LOG_Q1 * ef) + F32_LOG_Q2 * ef;
}

/* -ndtri(s) for 2^-40 <= s <= 1/2 (ndtri_half_f32 in berry/_special.py). */
static inline __attribute__((always_inline)) float ndtri_half_f(float s) {
    float t = (4.0f * s) * (1.0f - s);
    float w = -berry_logf(t);
    float x = 1.0f - (s + s);
    float p;
    if (w < F32_SPLIT) {
        float v = w - F32_CENTER;
        p = ((((((((FA9 * v + FA8) * v + FA7) * v + FA6) * v + FA5) * v + FA4) * v + FA3) * v + FA2) * v + FA1) * v + FA0;
    } else {
        float v = sqrtf(w) - F32_TAIL_CENTER;
        p = ((((((((((FB11 * v + FB10) * v + FB9) * v + FB8) * v + FB7) * v + FB6) * v + FB5) * v + FB4) * v + FB3) * v + FB2) * v + FB1) * v + FB0;
    }
    return x * p;
}

/* The float32 transform's map from a word to r = base + step * v and the sign of z (the stream docstring):
 * the lower triple (lower_base, lower_step, -1) for words whose top bit is clear, the upper one otherwise. */
typedef struct {
    int normal; /* r = v exactly (lower and upper triples (0, 1)): skip the multiply-add */
    float lower_base, lower_step, upper_base, upper_step;
    int upper_positive; /* upper sign +1 (else -1) */
} f32_map_t;

/* z[i] (as double) of the float32 transform from words[i], i < n. */
static inline __attribute__((always_inline)) void z32_block(const uint32_t *restrict words, double *restrict z, int n,
                                                            const f32_map_t *map) {
    for (int i = 0; i < n; i++) {
        uint32_t word = words[i];
        int upper = (int)(word >> 31);
        float v = ((float)(int32_t)(word & 0x7FFFFFFFu) + 0.5f) * F32_V_SCALE;
        float r = v;
        if (!map->normal) r = upper ? map->upper_base + map->upper_step * v : map->lower_base + map->lower_step * v;
        float g = ndtri_half_f(r);
        z[i] = (double)(upper && map->upper_positive ? g : -g);
    }
}

#include "_cstream_avx2.h"   /* the AVX2 path */

#include "_cstream_avx512.h" /* the AVX-512 path (after the AVX2 one, whose helpers it shares) */

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
    int law, transform;
    int affine32; /* float32 output of the float32 transform: loc + scale * z and the clamp in float32 */
    double offset, factor, low, high;
    double pa, width, qb; /* float64 transform, truncated normal */
    int complement;       /* u > 1/2 from the upper end: z = -ndtri(qb + width * (1 - u)) */
    f32_map_t map;    /* float32 transform */
    uint64_t base, run;
    int n_outer;
    uint64_t counts[MAX_OUTER], strides[MAX_OUTER];
} job_t;

/* Values of global indices [index, index + n) into out positions [position, position + n). */
static inline __attribute__((always_inline)) void segment(const job_t *job, uint64_t index, int n,
                                                          uint64_t position, int isa, scratch_t *scratch) {
    double *u = scratch->u, *v = scratch->v;
    const double offset = job->offset, factor = job->factor, low = job->low, high = job->high;
    const double *z;
    int first_value = 0; /* values before it are already written */
    if (job->transform == TRANSFORM_F32) {
        uint32_t *words = scratch->words;
        uint64_t first = index >> 2;
        int nw = (int)(((index + (uint64_t)n - 1) >> 2) - first + 1);
        const uint32_t *ww = words + (index & 3);
#ifdef BERRY_HAVE_AVX2_CLONE
        if (isa != ISA_GENERIC) {
            const double affine[4] = {offset, factor, low, high};
            float *out32 = job->dtype == DT_FLOAT32 ? (float *)(job->out + position * 4) : NULL;
            if (isa == ISA_AVX512) {
                philox_words_avx512(job->k0, job->k1, first, nw, words);
                for (int i = 4 * nw; i < (int)(index & 3) + ((n + 63) & ~63); i++) words[i] = 0; /* padding lanes */
                first_value = z32_block_avx512(ww, v, n, &job->map, out32, affine, job->affine32);
            } else {
                philox_words_avx2(job->k0, job->k1, first, nw, words);
                for (int i = 4 * nw; i < (int)(index & 3) + ((n + 31) & ~31); i++) words[i] = 0; /* padding lanes */
                first_value = z32_block_avx2(ww, v, n, &job->map, out32, affine, job->affine32);
            }
        } else
#endif
        {
            philox_words(job->k0, job->k1, first, nw, words);
            z32_block(ww, v, n, &job->map);
        }
        z = v;
        goto finish;
    }
    uint64_t block0 = index >> 1;
    int nb = (int)(((index + (uint64_t)n - 1) >> 1) - block0 + 1);
#ifdef BERRY_HAVE_AVX2_CLONE
    if (isa == ISA_AVX512) {
        philox_uniforms_avx512(job->k0, job->k1, block0, nb, u);
    } else if (isa == ISA_AVX2) {
        philox_uniforms_avx2(job->k0, job->k1, block0, nb, u);
    } else
#endif
    {
        double *even = scratch->even, *odd = scratch->odd;
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
        double *pt = scratch->p;
        if (job->law == LAW_TRUNCATED) {
            const double pa = job->pa, width = job->width, qb = job->qb;
            if (job->complement) { /* u > 1/2 measured from the upper end: never 1 - p */
                for (int i = 0; i < n; i++) pt[i] = uu[i] < 0.5 ? pa + width * uu[i] : qb + width * (1.0 - uu[i]);
            } else {
                for (int i = 0; i < n; i++) pt[i] = pa + width * uu[i];
            }
            p = pt;
        }
#ifdef BERRY_HAVE_AVX2_CLONE
        if (isa != ISA_GENERIC) {
            for (int i = n; i < ((n + 3) & ~3); i++) ((double *)p)[i] = 0.5; /* padding lanes */
            ndtri_block_avx2(p, v, n, scratch);
        } else
#endif
            ndtri_block(p, v, n, scratch);
        if (job->law == LAW_TRUNCATED && job->complement)
            for (int i = 0; i < n; i++) v[i] = uu[i] < 0.5 ? v[i] : -v[i];
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
    case DT_FLOAT64: {
        double *out = (double *)(job->out + position * 8);
        FINISH(out[i] = x);
        break;
    }
    case DT_FLOAT32: {
        float *out = (float *)(job->out + position * 4);
        if (job->affine32) { /* float32 affine map and clamp (the stream docstring) */
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
    case DT_FLOAT16: {
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

/* Region positions [begin, end), segment by segment (a segment never crosses a run). */
static inline __attribute__((always_inline)) void run_range_body(const job_t *job, uint64_t begin, uint64_t end,
                                                                 int isa, scratch_t *scratch) {
    uint64_t position = begin;
    while (position < end) {
        uint64_t row = position / job->run, offset = position % job->run;
        uint64_t index = job->base + offset;
        for (int axis = job->n_outer - 1; axis >= 0; axis--) {
            index += (row % job->counts[axis]) * job->strides[axis];
            row /= job->counts[axis];
        }
        uint64_t n = job->run - offset;
        if (n > end - position) n = end - position;
        if (n > CHUNK) n = CHUNK;
        segment(job, index, (int)n, position, isa, scratch);
        position += n;
    }
}

/* One clone of the whole loop per instruction set, so the compiler may use it everywhere inside. */
#ifdef BERRY_HAVE_AVX512_CLONE
AVX512 static void run_range_avx512(const job_t *job, uint64_t begin, uint64_t end, scratch_t *scratch) {
    run_range_body(job, begin, end, ISA_AVX512, scratch);
}
#endif
#ifdef BERRY_HAVE_AVX2_CLONE
__attribute__((target("avx2"))) static void run_range_avx2(const job_t *job, uint64_t begin, uint64_t end,
                                                            scratch_t *scratch) {
    run_range_body(job, begin, end, ISA_AVX2, scratch);
}
#endif
static void run_range_generic(const job_t *job, uint64_t begin, uint64_t end, scratch_t *scratch) {
    run_range_body(job, begin, end, ISA_GENERIC, scratch);
}

static int simd_path = ISA_GENERIC; /* the best this CPU has, decided at import; set_simd() forces one (tests) */

static void run_range(const job_t *job, uint64_t begin, uint64_t end, scratch_t *scratch) {
    switch (simd_path) {
#ifdef BERRY_HAVE_AVX512_CLONE
    case ISA_AVX512:
        run_range_avx512(job, begin, end, scratch);
        return;
#endif
#ifdef BERRY_HAVE_AVX2_CLONE
    case ISA_AVX2:
        run_range_avx2(job, begin, end, scratch);
        return;
#endif
    default:
        run_range_generic(job, begin, end, scratch);
    }
}

/* ---- threads: positions handed out in grains, so every thread stays busy and the caller can stop them ---- */

#define GRAIN 65536            /* positions per claim: about 0.1 ms of work */
#define SIGNAL_CHECK_NS 20000000 /* the calling thread looks for signals (Ctrl-C) every 20 ms */

typedef struct {
    const job_t *job;
    uint64_t total;
    uint64_t next;  /* the next unclaimed position (atomic) */
    int cancelled;  /* stop claiming (atomic): an exception is pending in the calling thread */
} work_t;

/* Claim grains until none is left or the work is cancelled; false when nothing was left to claim. */
static int work_one_grain(work_t *work, scratch_t *scratch) {
    if (__atomic_load_n(&work->cancelled, __ATOMIC_RELAXED)) return 0;
    uint64_t begin = __atomic_fetch_add(&work->next, GRAIN, __ATOMIC_RELAXED);
    if (begin >= work->total) return 0;
    uint64_t end = work->total - begin < GRAIN ? work->total : begin + GRAIN;
    run_range(work->job, begin, end, scratch);
    return 1;
}

static void *worker(void *arg) {
    work_t *work = (work_t *)arg;
    scratch_t *scratch = (scratch_t *)malloc(sizeof(scratch_t));
    if (scratch == NULL) return NULL; /* the other threads take this one's share */
    while (work_one_grain(work, scratch)) {
    }
    free(scratch);
    return NULL;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Run the job on `threads` threads (the caller is one of them); -1 with an exception set if a signal
 * handler raised (KeyboardInterrupt): the workers stop after their current grain. Called with the GIL. */
static int run_job(const job_t *job, uint64_t total, int threads) {
    scratch_t *scratch = (scratch_t *)PyMem_RawMalloc(sizeof(scratch_t));
    pthread_t *workers = (pthread_t *)PyMem_RawMalloc(sizeof(pthread_t) * (size_t)threads);
    int *started = (int *)PyMem_RawCalloc((size_t)threads, sizeof(int));
    if (scratch == NULL || workers == NULL || started == NULL) {
        PyMem_RawFree(scratch);
        PyMem_RawFree(workers);
        PyMem_RawFree(started);
        PyErr_NoMemory();
        return -1;
    }
    work_t work = {job, total, 0, 0};
    int status = 0;
    PyThreadState *state = PyEval_SaveThread();
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&workers[t], NULL, worker, &work) == 0;
    uint64_t last_check = now_ns();
    while (work_one_grain(&work, scratch)) {
        if (now_ns() - last_check < SIGNAL_CHECK_NS) continue;
        PyEval_RestoreThread(state);
        status = PyErr_CheckSignals();
        state = PyEval_SaveThread();
        if (status < 0) __atomic_store_n(&work.cancelled, 1, __ATOMIC_RELAXED);
        last_check = now_ns();
    }
    for (int t = 1; t < threads; t++)
        if (started[t]) pthread_join(workers[t], NULL);
    PyEval_RestoreThread(state);
    PyMem_RawFree(scratch);
    PyMem_RawFree(workers);
    PyMem_RawFree(started);
    return status;
}

/* ---- the entry point: named fields, every one validated ------------------ */

#define MAX_THREADS 256
#define N_FIELDS 23 /* keyword fields of fill(), all required */
static const char *const field_names[N_FIELDS] = {
    "dtype", "key", "law", "transform", "affine32", "offset", "factor", "low", "high", "pa", "width", "qb",
    "complement", "lower_base", "lower_step", "upper_base", "upper_step", "upper_sign", "base", "run", "counts",
    "strides", "threads"};

static int field_error(const char *name, const char *allowed) {
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "berry._cstream.fill: field %s must be %s", name, allowed);
    }
    return -1;
}

static PyObject *get_field(PyObject *fields, const char *name) {
    PyObject *value = PyDict_GetItemString(fields, name); /* borrowed */
    if (value == NULL) PyErr_Format(PyExc_TypeError, "berry._cstream.fill: missing field %s", name);
    return value;
}

static int read_u64(PyObject *fields, const char *name, uint64_t *out, const char *allowed) {
    PyObject *value = get_field(fields, name);
    if (value == NULL) return -1;
    if (!PyLong_Check(value)) return field_error(name, allowed);
    unsigned long long x = PyLong_AsUnsignedLongLong(value); /* OverflowError below 0 or at 2^64 */
    if (PyErr_Occurred()) return field_error(name, allowed);
    *out = (uint64_t)x;
    return 0;
}

static int read_int(PyObject *fields, const char *name, int low, int high, int *out) {
    PyObject *value = get_field(fields, name);
    if (value == NULL) return -1;
    long v = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
    if (!PyLong_Check(value) || PyErr_Occurred() || v < low || v > high) {
        char allowed[96];
        snprintf(allowed, sizeof allowed, "an int in [%d, %d]", low, high);
        return field_error(name, allowed);
    }
    *out = (int)v;
    return 0;
}

/* A float field; finite unless allow_inf (NaN is never allowed). */
static int read_double(PyObject *fields, const char *name, int allow_inf, double *out) {
    PyObject *value = get_field(fields, name);
    if (value == NULL) return -1;
    double x = PyFloat_Check(value) ? PyFloat_AS_DOUBLE(value) : NAN;
    if (isnan(x) || (!allow_inf && isinf(x)))
        return field_error(name, allow_inf ? "a float (not NaN)" : "a finite float");
    *out = x;
    return 0;
}

/* A finite float field holding a float32 value exactly. */
static int read_float32(PyObject *fields, const char *name, float *out) {
    double x;
    if (read_double(fields, name, 0, &x) < 0) return -1;
    if (fabs(x) > 0x1.fffffep+127 || (double)(float)x != x) return field_error(name, "a finite float32 value");
    *out = (float)x;
    return 0;
}

/* a + b and a * b of uint64 without wrapping: -1 on overflow. */
static int add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a > UINT64_MAX - b) return -1;
    *out = a + b;
    return 0;
}

static int mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return -1;
    *out = a * b;
    return 0;
}

/* The job of a fill() call from its fields (validated), and its element count. */
static int parse_job(PyObject *fields, job_t *job, uint64_t *total, int *threads) {
    uint64_t key;
    float lower_base, lower_step, upper_base, upper_step;
    int upper_sign;
    if (fields == NULL || !PyDict_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "berry._cstream.fill: the fields are keyword arguments");
        return -1;
    }
    if (read_int(fields, "dtype", 0, 3, &job->dtype) < 0 || read_u64(fields, "key", &key, "an int in [0, 2**64)") < 0 ||
        read_int(fields, "law", LAW_UNIFORM, LAW_TRUNCATED, &job->law) < 0 ||
        read_int(fields, "transform", TRANSFORM_F64, TRANSFORM_F32, &job->transform) < 0 ||
        read_int(fields, "affine32", 0, 1, &job->affine32) < 0 || read_double(fields, "offset", 0, &job->offset) < 0 ||
        read_double(fields, "factor", 0, &job->factor) < 0 || read_double(fields, "low", 1, &job->low) < 0 ||
        read_double(fields, "high", 1, &job->high) < 0 || read_double(fields, "pa", 0, &job->pa) < 0 ||
        read_double(fields, "width", 0, &job->width) < 0 || read_double(fields, "qb", 0, &job->qb) < 0 ||
        read_int(fields, "complement", 0, 1, &job->complement) < 0 || read_float32(fields, "lower_base", &lower_base) < 0 ||
        read_float32(fields, "lower_step", &lower_step) < 0 || read_float32(fields, "upper_base", &upper_base) < 0 ||
        read_float32(fields, "upper_step", &upper_step) < 0 || read_int(fields, "upper_sign", -1, 1, &upper_sign) < 0 ||
        read_u64(fields, "base", &job->base, "an int in [0, 2**64)") < 0 ||
        read_u64(fields, "run", &job->run, "an int in [1, 2**64)") < 0 ||
        read_int(fields, "threads", 1, INT_MAX, threads) < 0)
        return -1;
    if (PyDict_Size(fields) != N_FIELDS) {
        PyErr_Format(PyExc_TypeError, "berry._cstream.fill: takes exactly %d named fields, got %zd", N_FIELDS,
                     PyDict_Size(fields));
        return -1;
    }
    job->k0 = (uint32_t)key;
    job->k1 = (uint32_t)(key >> 32);
    if (upper_sign == 0) return field_error("upper_sign", "-1 or +1");
    if (job->run == 0) return field_error("run", "an int in [1, 2**64)");
    if (!(job->low <= job->high)) return field_error("low", "<= high");
    if (job->law != LAW_TRUNCATED && job->factor < 0) return field_error("factor", ">= 0 for uniform and normal laws");
    if (!(job->pa >= 0 && job->width >= 0 && job->pa + job->width <= 1.0 + 0x1p-52))
        return field_error("pa", "in [0, 1] with pa + width <= 1 (width >= 0)");
    if (!(job->qb >= 0 && job->qb <= 1)) return field_error("qb", "in [0, 1]");
    if (job->complement && job->law != LAW_TRUNCATED) return field_error("complement", "0 unless the law is truncated");
    if (job->transform == TRANSFORM_F32 && (job->law == LAW_UNIFORM || job->dtype == DT_FLOAT64))
        return field_error("transform", "TRANSFORM_F64 for uniform laws and float64 outputs");
    if (job->affine32 && (job->transform != TRANSFORM_F32 || job->dtype != DT_FLOAT32))
        return field_error("affine32", "0 unless the float32 transform writes float32");
    job->map.normal = job->law == LAW_NORMAL;
    if (job->map.normal && !(lower_base == 0.0f && lower_step == 1.0f && upper_base == 0.0f && upper_step == 1.0f &&
                             upper_sign == 1))
        return field_error("lower_base", "(0, 1, 0, 1, +1) for the normal law (r = v)");
    job->map.lower_base = lower_base;
    job->map.lower_step = lower_step;
    job->map.upper_base = upper_base;
    job->map.upper_step = upper_step;
    job->map.upper_positive = upper_sign > 0;

    /* the region: rows of runs; every global index it touches must fit in 64 bits */
    PyObject *counts = get_field(fields, "counts"), *strides = get_field(fields, "strides");
    if (counts == NULL || strides == NULL) return -1;
    if (!PyTuple_Check(counts) || !PyTuple_Check(strides) || PyTuple_GET_SIZE(counts) != PyTuple_GET_SIZE(strides) ||
        PyTuple_GET_SIZE(counts) > MAX_OUTER) {
        PyErr_Format(PyExc_ValueError, "berry._cstream.fill: counts and strides must be tuples of equal length <= %d",
                     MAX_OUTER);
        return -1;
    }
    job->n_outer = (int)PyTuple_GET_SIZE(counts);
    uint64_t rows = 1, last;
    if (add_u64(job->base, job->run - 1, &last) < 0) return field_error("run", "such that base + run - 1 < 2**64");
    for (int axis = 0; axis < job->n_outer; axis++) {
        PyObject *count = PyTuple_GET_ITEM(counts, axis), *stride = PyTuple_GET_ITEM(strides, axis);
        job->counts[axis] = PyLong_Check(count) ? PyLong_AsUnsignedLongLong(count) : 0;
        job->strides[axis] = PyLong_Check(stride) ? PyLong_AsUnsignedLongLong(stride) : 0;
        if (!PyLong_Check(count) || !PyLong_Check(stride) || PyErr_Occurred())
            return field_error("counts", "tuples of ints in [0, 2**64)");
        if (job->counts[axis] == 0) {
            *total = 0;
            return 0;
        }
        uint64_t reach;
        if (mul_u64(rows, job->counts[axis], &rows) < 0 ||
            mul_u64(job->counts[axis] - 1, job->strides[axis], &reach) < 0 || add_u64(last, reach, &last) < 0)
            return field_error("counts", "a region whose size and global indices fit in 64 bits");
    }
    if (mul_u64(rows, job->run, total) < 0 || *total > (UINT64_MAX >> 1))
        return field_error("counts", "a region of fewer than 2**63 elements");
    return 0;
}

static PyObject *stream_fill(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    job_t job;
    uint64_t total = 0, bytes = 0;
    int threads;
    if (PyTuple_GET_SIZE(args) != 1) {
        PyErr_SetString(PyExc_TypeError, "berry._cstream.fill takes one positional argument (out)");
        return NULL;
    }
    if (parse_job(kwargs, &job, &total, &threads) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(args, 0), &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    static const uint64_t item_size[4] = {8, 4, 2, 2};
    if (mul_u64(total, item_size[job.dtype], &bytes) < 0 || view.len < 0 || (uint64_t)view.len != bytes) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError,
                     "berry._cstream.fill: out has %zd bytes but the region needs %llu elements of %llu bytes", view.len,
                     (unsigned long long)total, (unsigned long long)item_size[job.dtype]);
        return NULL;
    }
    if (total == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    job.out = (char *)view.buf;
    /* at least 64 Ki elements per thread: threads cost more than they save below that */
    uint64_t useful = total / GRAIN + 1;
    if ((uint64_t)threads > useful) threads = (int)useful;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    int status = run_job(&job, total, threads);
    PyBuffer_Release(&view);
    if (status < 0) return NULL;
    Py_RETURN_NONE;
}

static const char *const isa_names[] = {"generic", "avx2", "avx512"};

/* Whether this CPU (and OS) can run a path. */
static int cpu_has(int isa) {
#ifdef BERRY_HAVE_AVX2_CLONE
    __builtin_cpu_init();
    if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2") ? 1 : 0;
    if (isa == ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#endif
    return isa == ISA_GENERIC;
}

static int best_path(void) {
    for (int isa = ISA_AVX512; isa > ISA_GENERIC; isa--)
        if (cpu_has(isa)) return isa;
    return ISA_GENERIC;
}

static const char *simd_name(void) { return isa_names[simd_path]; }

static PyObject *stream_simd(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(simd_name());
}

static PyObject *stream_simd_paths(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *paths = PyList_New(0);
    for (int isa = ISA_GENERIC; paths != NULL && isa <= ISA_AVX512; isa++) {
        if (!cpu_has(isa)) continue;
        PyObject *name = PyUnicode_FromString(isa_names[isa]);
        if (name == NULL || PyList_Append(paths, name) < 0) Py_CLEAR(paths);
        Py_XDECREF(name);
    }
    if (paths == NULL) return NULL;
    PyObject *result = PyList_AsTuple(paths);
    Py_DECREF(paths);
    return result;
}

static PyObject *stream_set_simd(PyObject *self, PyObject *args) {
    (void)self;
    const char *mode;
    if (!PyArg_ParseTuple(args, "s", &mode)) return NULL;
    if (strcmp(mode, "auto") == 0) {
        simd_path = best_path();
        return PyUnicode_FromString(simd_name());
    }
    for (int isa = ISA_GENERIC; isa <= ISA_AVX512; isa++) {
        if (strcmp(mode, isa_names[isa]) == 0 && cpu_has(isa)) {
            simd_path = isa;
            return PyUnicode_FromString(simd_name());
        }
    }
    PyErr_Format(PyExc_ValueError, "simd mode must be 'auto' or one of simd_paths() on this CPU, got %R",
                 PyTuple_GET_ITEM(args, 0));
    return NULL;
}

static PyMethodDef methods[] = {
    {"fill", (PyCFunction)(void (*)(void))stream_fill, METH_VARARGS | METH_KEYWORDS,
     "fill(out, *, dtype, key, law, transform, affine32, offset, factor, low, high, pa, width, qb, complement, lower_base, "
     "lower_step, upper_base, upper_step, upper_sign, base, run, counts, strides, threads): write the keyed "
     "stream into out, a writable C-contiguous buffer (see berry.stream; every field is required and checked)."},
    {"simd", stream_simd, METH_NOARGS, "simd() -> the code path in use: 'avx512', 'avx2' or 'generic'."},
    {"simd_paths", stream_simd_paths, METH_NOARGS, "simd_paths() -> the code paths this CPU can run."},
    {"set_simd", stream_set_simd, METH_VARARGS,
     "set_simd('auto' | path) -> the code path now used (a test switch; every path gives the same bits)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "berry._cstream",
                                    "Compiled backend of berry.stream (same bits as the NumPy reference).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cstream(void) {
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    /* x87 and other excess-precision builds round differently (61 % of float64 normals differ) */
    PyErr_SetString(PyExc_ImportError,
                    "berry._cstream was built to evaluate floating point in extended precision (FLT_EVAL_METHOD != 0, "
                    "e.g. x87), which would change the stream's bits; berry uses its NumPy reference instead");
    return NULL;
#endif
#ifdef BERRY_HAVE_AVX2_CLONE
    init_pack_table();
#endif
    simd_path = best_path();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *fields = PyTuple_New(N_FIELDS);
    for (int i = 0; fields != NULL && i < N_FIELDS; i++) {
        PyObject *name = PyUnicode_FromString(field_names[i]);
        if (name == NULL) Py_CLEAR(fields);
        else PyTuple_SET_ITEM(fields, i, name);
    }
    if (fields == NULL || PyModule_AddObject(m, "FIELDS", fields) < 0 ||
        PyModule_AddIntConstant(m, "STREAM_VERSION", STREAM_VERSION) < 0) {
        Py_XDECREF(fields);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
