/*
 * target_body.h: the code that is compiled once per instruction set: the GEMM
 * micro-kernel, the small-product kernel and the vectorised sigmoid, written once in
 * plain C with GCC vector types (vector_size) and branch-free loops. Each
 * microkernel_<isa>.c defines ISA(name), VEC_BYTES (the register width), MR and ROWS
 * (the micro-tile's rows), KC and MC (cache blocks), then includes this file under its
 * own -m flags: the same source becomes AVX-512, AVX2+FMA or SSE2 code. This file
 * instantiates itself for float and for double, like the kernel .c files.
 */
#ifndef TARGET_BODY_PASS
#include <stdint.h>
#include <string.h>

#define TARGET_BODY_PASS
/* float: e^-104 is below half the smallest subnormal, so it rounds to 0 as in libm. */
#define REAL float
#define T(name) FN_CAT(name, f32)
#define UINT uint32_t
#define EXP_LO -104.0f
#define SHIFTER 12582912.0f /* 1.5 * 2^23 */
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define MANT_BITS 23
#define EXP_BIAS 127
#define SCALE_K 32 /* n >= -150 */
#define SCALE_DOWN 0x1p-32f
#define SMALL_VL 16
/* e^-r, |r| <= ln2/2: Taylor to r^7, relative error < 6e-9 (Horner: for floats, the
 * extra multiplies of Estrin's scheme, as used for doubles below, cost more in
 * throughput than its shorter chain saves). */
#define EXP_NEG_REST(r) /* the polynomial past its 1 - r ... */                       \
    (1 - (r) * (0.5f - (r) * (1.66666667e-1f - (r) * (4.16666667e-2f - (r) *              \
     (8.33333333e-3f - (r) * (1.38888889e-3f - (r) * 1.98412698e-4f))))))
#define EXP_NEG_POLY(r) (1 - (r) * EXP_NEG_REST(r))
/* The same terms by Estrin's scheme, for the tiny trainer (tiny_body.h), whose step
 * waits on each sigmoid's latency: a chain of 4 operations instead of Horner's 8 (XOR
 * float32 in C, medians of 21 alternating rounds: 138 -> 132 ns an epoch). The small
 * terms are summed first and the 1 added last, so one rounding falls on the result, as
 * in Horner's last FMA: over a dense sweep the sigmoid's largest error is 2.28 ulps
 * (Horner's 2.25), its mean 0.323 (0.318); 4% of the values round differently, by 2
 * ulps at most. ((1 - r) + r^2 p23) + r^4 q, a chain of 3 (149 -> 138 ns in a slower
 * spell), had 2.97 and 0.385. */
#define EXP_NEG_POLY_SHORT(r) exp_poly_short_f32(r)
typedef float fn_exp_reg_f32 __attribute__((vector_size(VEC_BYTES)));
static inline fn_exp_reg_f32 exp_poly_short_f32(fn_exp_reg_f32 r)
{
    typedef fn_exp_reg_f32 V;
    const V r2 = r * r, r4 = r2 * r2;
    const V p23 = 0.5f - r * 1.66666667e-1f, p45 = 4.16666667e-2f - r * 8.33333333e-3f;
    const V p67 = 1.38888889e-3f - r * 1.98412698e-4f;
    return 1 + ((r2 * p23 - r) + r4 * (p45 + r2 * p67));
}
/* e^-r - 1: the same terms without the 1 (for tanh, where the 1 cancels) */
#define EXPM1_NEG_POLY(r) (-(r) * EXP_NEG_REST(r))
#include "target_body.h"
#undef REAL
#undef T
#undef UINT
#undef EXP_LO
#undef SHIFTER
#undef LN2_HI
#undef LN2_LO
#undef MANT_BITS
#undef EXP_BIAS
#undef SCALE_K
#undef SCALE_DOWN
#undef EXP_NEG_POLY
#undef EXP_NEG_POLY_SHORT
#undef EXPM1_NEG_POLY
#undef EXP_NEG_REST
#undef SMALL_VL

#define REAL double
#define T(name) FN_CAT(name, f64)
#define UINT uint64_t
#define EXP_LO -746.0
#define SHIFTER 6755399441055744.0 /* 1.5 * 2^52 */
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define MANT_BITS 52
#define EXP_BIAS 1023
#define SCALE_K 64 /* n >= -1077 */
#define SCALE_DOWN 0x1p-64
#define SMALL_VL 8
/* e^-r, |r| <= ln2/2: Taylor to r^13, relative error < 5e-18, by Estrin's scheme: pairs,
 * then powers r^2, r^4, r^8, a chain 4 FMAs deep instead of Horner's 13. Small networks
 * wait on each sigmoid's latency (XOR float64: 0.29 -> 0.28 us an epoch), and the
 * sigmoid's throughput improves too (2560 values: 3.7 -> 3.3 us). */
#define EXP_NEG_POLY(r) exp_poly_f64(r, 0)
#define EXP_NEG_POLY_SHORT(r) exp_poly_f64(r, 0) /* already short */
/* e^-r - 1, the same terms without the 1 (for tanh, where the 1 cancels) */
#define EXPM1_NEG_POLY(r) exp_poly_f64(r, 1)
typedef double fn_exp_reg_f64 __attribute__((vector_size(VEC_BYTES)));
static inline fn_exp_reg_f64 exp_poly_f64(fn_exp_reg_f64 r, const int minus_one)
{
    typedef fn_exp_reg_f64 V;
    const V r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const V p23 = 1.0 / 2 - r * (1.0 / 6);
    const V p45 = 1.0 / 24 - r * (1.0 / 120), p67 = 1.0 / 720 - r * (1.0 / 5040);
    const V p89 = 1.0 / 40320 - r * (1.0 / 362880);
    const V p1011 = 1.0 / 3628800 - r * (1.0 / 39916800);
    const V p1213 = 1.0 / 479001600 - r * (1.0 / 6227020800.0);
    const V q0 = minus_one ? r2 * p23 - r : (1 - r) + r2 * p23;
    const V q1 = p45 + r2 * p67, q2 = p89 + r2 * p1011;
    return (q0 + r4 * q1) + r8 * (q2 + r4 * p1213);
}
#include "target_body.h"
#undef REAL
#undef T
#undef UINT
#undef EXP_LO
#undef SHIFTER
#undef LN2_HI
#undef LN2_LO
#undef MANT_BITS
#undef EXP_BIAS
#undef SCALE_K
#undef SCALE_DOWN
#undef EXP_NEG_POLY
#undef EXP_NEG_POLY_SHORT
#undef EXPM1_NEG_POLY
#undef SMALL_VL
#undef TARGET_BODY_PASS

#else /* the body, compiled once per REAL */

/* This target's registers: V holds LANES values (one zmm, ymm or xmm), U the same bits
 * as unsigned integers. Every per-target kernel below is written on them: GCC vectors
 * wider than the target's were split through the stack, and scalar loops with a select
 * in them were left scalar on AVX2 (no masked operations), 9x slower than on AVX-512. */
typedef REAL T(ISA(reg)) __attribute__((vector_size(VEC_BYTES)));
typedef UINT T(ISA(ureg)) __attribute__((vector_size(VEC_BYTES)));
#define LANES ((int64_t)(VEC_BYTES / sizeof(REAL)))
#define SV (SMALL_VL / LANES) /* registers per SMALL_VL values */
/* m ? x : y lane by lane, m a comparison's result (all ones or zero), on the bits */
#define SELECT(m, x, y) ((V)(((U)(m) & (U)(x)) | (~(U)(m) & (U)(y))))

/* Three steps of the sigmoid in one AVX-512 instruction each, where GCC's generic vectors
 * took three or four (a compare into a mask, a zeroing move and a bit blend; the exponent
 * built by an add and a shift, then two products): the sigmoid's 28 vector operations a
 * register are on the two 512-bit ports, so each one counts. The same values:
 *   MIN_NAN(c, a)    = c < a ? c : a, NaN a passing (vminps returns its second operand
 *                      when either is NaN);
 *   BLEND_NEG(v, x, y) = v < 0 ? x : y (NaN v: y);
 *   SCALE2(p, f)     = p 2^f for integral f, rounded once (into the subnormals too), as
 *                      p 2^(f + K) 2^-K is. */
#if VEC_BYTES == 64
#include <immintrin.h>
#define FN_AVX512_SIGMOID 1
#define MIN_NAN(c, a)                                                                    \
    (sizeof(REAL) == 4 ? (V)_mm512_min_ps((__m512)(c), (__m512)(a))                      \
                       : (V)_mm512_min_pd((__m512d)(c), (__m512d)(a)))
#define BLEND_NEG(v, x, y)                                                               \
    (sizeof(REAL) == 4                                                                   \
         ? (V)_mm512_mask_blend_ps(_mm512_cmp_ps_mask((__m512)(v), _mm512_setzero_ps(),   \
                                                      _CMP_LT_OQ),                        \
                                   (__m512)(y), (__m512)(x))                              \
         : (V)_mm512_mask_blend_pd(_mm512_cmp_pd_mask((__m512d)(v), _mm512_setzero_pd(),  \
                                                      _CMP_LT_OQ),                        \
                                   (__m512d)(y), (__m512d)(x)))
#define SCALE2(p, f)                                                                     \
    (sizeof(REAL) == 4 ? (V)_mm512_scalef_ps((__m512)(p), (__m512)(f))                   \
                       : (V)_mm512_scalef_pd((__m512d)(p), (__m512d)(f)))
#else
#define FN_AVX512_SIGMOID 0
#endif
#if VEC_BYTES == 32 && defined(__AVX2__)
#include <immintrin.h>
#endif

/* The first n values of a register at p, 0 <= n <= LANES, by masked loads and stores
 * (AVX-512, AVX2; memcpy elsewhere): a row narrower than a register, such as the 10
 * outputs of a digits network in rows of 10, without a scalar loop. load_first gives 0
 * past n; store_first leaves the memory past n untouched.
 * AVX-512's masks suppress faults on the lanes they leave out, on every x86-64 CPU. AVX2's
 * vmaskmov does on Intel's, but AMD's manual leaves it to the implementation whether a
 * masked-out lane may fault, and QEMU's does fault: its AVX2 kernels crashed reading the
 * last row of B or of X at the end of an array whose next page was unmapped. So AVX2
 * masks only a register within one 4 KiB page (the smallest x86-64 page: if p is mapped,
 * so is every lane), and copies the n values (load_across, store_across) where the
 * register would cross a page's end: one test, and a branch that goes the other way for
 * 7 of a page's 1024 float addresses (3 of 512 double ones). */
#if VEC_BYTES == 32 && defined(__AVX2__)
static inline __m256i T(ISA(first_lanes))(int64_t n) /* all ones in lanes below n */
{
    return sizeof(REAL) == 4 ? _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
                                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
                             : _mm256_cmpgt_epi64(_mm256_set1_epi64x(n),
                                                  _mm256_setr_epi64x(0, 1, 2, 3));
}

static inline int T(ISA(in_one_page))(const void *p) /* a register's bytes at p */
{
    return __builtin_expect(((uintptr_t)p & (FN_PAGE_BYTES - 1)) <= FN_PAGE_BYTES - VEC_BYTES,
                            1);
}

/* Across a page's end: out of line, so the loops around the masked loads keep their
 * registers (AVX2 digits epochs, one thread, against no test at all: inline, float32 +3%,
 * float64 +4%; out of line +1% and +3%). */
static __attribute__((noinline, cold)) T(ISA(reg))
    T(ISA(load_across))(const REAL *p, int64_t n)
{
    T(ISA(reg)) v = {0};
    memcpy(&v, p, sizeof(REAL) * (size_t)n);
    return v;
}

static __attribute__((noinline, cold)) void T(ISA(store_across))(REAL *p, const REAL *v,
                                                                  int64_t n)
{
    memcpy(p, v, sizeof(REAL) * (size_t)n);
}
#endif

static inline T(ISA(reg)) T(ISA(load_first))(const REAL *p, int64_t n)
{
    typedef T(ISA(reg)) V;
    V v = {0};
    if (n >= LANES)
        memcpy(&v, p, sizeof v);
    if (n >= LANES || n <= 0)
        return v;
#if VEC_BYTES == 64
    const uint32_t mask = (1u << n) - 1;
    if (sizeof(REAL) == 4)
        v = (V)_mm512_maskz_loadu_ps((__mmask16)mask, p);
    else
        v = (V)_mm512_maskz_loadu_pd((__mmask8)mask, p);
#elif VEC_BYTES == 32 && defined(__AVX2__)
    if (!T(ISA(in_one_page))(p))
        v = T(ISA(load_across))(p, n);
    else if (sizeof(REAL) == 4)
        v = (V)_mm256_maskload_ps((const float *)p, T(ISA(first_lanes))(n));
    else
        v = (V)_mm256_maskload_pd((const double *)p, T(ISA(first_lanes))(n));
#else
    memcpy(&v, p, sizeof(REAL) * (size_t)n);
#endif
    return v;
}

static inline void T(ISA(store_first))(REAL *p, T(ISA(reg)) v, int64_t n)
{
    if (n >= LANES)
        memcpy(p, &v, sizeof v);
    if (n >= LANES || n <= 0)
        return;
#if VEC_BYTES == 64
    const uint32_t mask = (1u << n) - 1;
    if (sizeof(REAL) == 4)
        _mm512_mask_storeu_ps(p, (__mmask16)mask, (__m512)v);
    else
        _mm512_mask_storeu_pd(p, (__mmask8)mask, (__m512d)v);
#elif VEC_BYTES == 32 && defined(__AVX2__)
    if (!T(ISA(in_one_page))(p))
        T(ISA(store_across))(p, (const REAL *)&v, n);
    else if (sizeof(REAL) == 4)
        _mm256_maskstore_ps((float *)p, T(ISA(first_lanes))(n), (__m256)v);
    else
        _mm256_maskstore_pd((double *)p, T(ISA(first_lanes))(n), (__m256d)v);
#else
    memcpy(p, &v, sizeof(REAL) * (size_t)n);
#endif
}

/* The range reduction of e^-a, a >= 0: -a = n ln2 - r, |r| <= ln2/2, n rounded by the
 * 1.5 * 2^mantissa shifter (n as the bits of a signed integer); r with ln2 in two parts
 * (n ln2_hi is exact). */
static inline T(ISA(reg)) T(ISA(exp_reduce))(T(ISA(reg)) a, T(ISA(ureg)) *n,
                                              T(ISA(reg)) *n_real)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const REAL log2e = (REAL)1.44269504088896340736;
    const V shifter = (V){0} + (REAL)SHIFTER;
    const V t = a * -log2e + (REAL)SHIFTER;
    const V fn = t - (REAL)SHIFTER;
    *n = (U)t - (U)shifter;
    *n_real = fn; /* n as a value */
    return (a + fn * (REAL)LN2_HI) + fn * (REAL)LN2_LO;
}

/* e^-a for a >= 0 (the sigmoid only needs non-positive exponents): e^-r by its Taylor
 * polynomial in r (odd terms negative; by Estrin's scheme if short_chain, a constant);
 * 2^n built from the exponent bits in two factors so that results in the subnormal
 * range come out as libm's exp gives them. No conversions, no branches; NaN stays NaN. */
static inline T(ISA(reg)) T(ISA(exp_neg))(T(ISA(reg)) a, const int short_chain)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const V cap = (V){0} + (REAL)-EXP_LO;
    U n;
    V fn;
#if FN_AVX512_SIGMOID
    const V r = T(ISA(exp_reduce))(MIN_NAN(cap, a), &n, &fn);
    const V p = short_chain ? EXP_NEG_POLY_SHORT(r) : EXP_NEG_POLY(r);
    (void)n;
    return SCALE2(p, fn);
#else
    const V r = T(ISA(exp_reduce))(SELECT(cap < a, cap, a), &n, &fn); /* NaN passes */
    const V p = short_chain ? EXP_NEG_POLY_SHORT(r) : EXP_NEG_POLY(r);
    /* 2^n = 2^(n + SCALE_K) 2^-SCALE_K, the first factor normal for every n here: p times
     * it is exact and the second product rounds once, into the subnormals if need be. */
    const U b = (n + (UINT)(EXP_BIAS + SCALE_K)) << MANT_BITS;
    (void)fn;
    return p * (V)b * (REAL)SCALE_DOWN;
#endif
}

/* 1 / (1 + e^-v), from e = e^-|v| <= 1 so nothing overflows. |v| by clearing the sign
 * bit, and e^-a computed from a itself: the compare, blend and negation that -|x| took
 * are gone (float64 1.28 -> 1.08 ns a value, float32 0.40 -> 0.39; the same values). */
static inline T(ISA(reg)) T(ISA(sigmoid_reg))(T(ISA(reg)) v, const int short_chain)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const U magnitude = (U){0} + ~((UINT)1 << (8 * sizeof(REAL) - 1));
    const V zero = {0}, one = zero + 1;
    const V e = T(ISA(exp_neg))((V)((U)v & magnitude), short_chain);
#if FN_AVX512_SIGMOID
    (void)zero;
    return BLEND_NEG(v, e, one) / (1 + e); /* NaN: e is NaN, and so is this */
#else
    return SELECT(v < zero, e, one) / (1 + e);
#endif
}

/* out = sigmoid(x) on SMALL_VL values (short_chain: exp_neg's) */
static inline void T(ISA(sigmoid_block))(const REAL *x, REAL *out, const int short_chain)
{
    for (int k = 0; k < SV; k++) {
        T(ISA(reg)) v;
        memcpy(&v, x + k * LANES, sizeof v);
        v = T(ISA(sigmoid_reg))(v, short_chain);
        memcpy(out + k * LANES, &v, sizeof v);
    }
}

/* e^-a - 1 (into *m) and e^-a (returned) for 0 <= a <= 64 (larger a, and +inf, are
 * taken as 64: e^-a - 1 is -1 in both precisions already, and e^-64 is normal in
 * both): the reduction of exp_neg, then 2^n (1 + pm) - 1 as (2^n - 1) + 2^n pm, where
 * 2^n - 1 is exact while 2^n is at least the precision's epsilon and pm = e^-r - 1 has
 * no 1 to cancel: accurate where e^-a is close to 1; e^-a as 2^n + 2^n pm. NaN stays
 * NaN. */
static inline T(ISA(reg)) T(ISA(exp_expm1_neg))(T(ISA(reg)) a, T(ISA(reg)) *m)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const V cap = (V){0} + 64;
    U n; /* 0 >= n >= -93: 2^n is normal */
    V fn;
    const V r = T(ISA(exp_reduce))(SELECT(cap < a, cap, a), &n, &fn);
    (void)fn;
    const V pm = EXPM1_NEG_POLY(r);
    const V s = (V)((n + (UINT)EXP_BIAS) << MANT_BITS);
    *m = (s - 1) + s * pm;
    return s + s * pm;
}

/* out = tanh(x) on SMALL_VL values, from u = e^-2|x| and m = u - 1, in two forms that
 * are the same function:
 *   |x| < atanh(1/2):  tanh|x| = -m / (2 + m), where m is accurate and nothing cancels;
 *   above:             tanh|x| = 1 - 2u / (1 + u), where 2u / (1 + u) <= 1/2, so the
 *                      subtraction is exact but for its one rounding.
 * The first form alone, near saturation, divided m's error by 2 + m ~ 1 and kept it:
 * 2.5 ulps against NumPy's 0.75 for |x| in [2, 4], and the 1 - t^2 of tanh' cancels
 * there, so a fit with tanh outputs strayed from the exact one by up to 15x more than
 * the NumPy reference did (float64, one row a batch). One division either way; the sign
 * of x is put back on the result (tanh(-0) = -0, NaN stays NaN: it takes the first
 * form). */
static inline void T(ISA(tanh_block))(const REAL *x, REAL *out)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const U sign = (U){0} + ((UINT)1 << (8 * sizeof(REAL) - 1));
    const V cut = (V){0} + (REAL)0.549306144334054845697622618461; /* atanh(1/2) */
    for (int k = 0; k < SV; k++) {
        V v, m;
        memcpy(&v, x + k * LANES, sizeof v);
        const V a = (V)((U)v & ~sign);
        const V u = T(ISA(exp_expm1_neg))(a + a, &m);
        const V q = SELECT(cut <= a, u + u, -m) / SELECT(cut <= a, 1 + u, 2 + m);
        const V t = SELECT(cut <= a, 1 - q, q); /* >= 0, but -0 when m = +0 */
        const V o = (V)(((U)t & ~sign) | ((U)v & sign));
        memcpy(out + k * LANES, &o, sizeof o);
    }
}

/* out[0:n] = f(x[0:n]) for a block function f of SMALL_VL values; the last, partial
 * block goes through a padded copy rather than a scalar loop (tiles and rows are often
 * shorter than one block). */
#define BLOCKWISE(block, n, x, out)                                                      \
    do {                                                                                 \
        int64_t i_ = 0;                                                                  \
        for (; i_ + SMALL_VL <= (n); i_ += SMALL_VL)                                     \
            block((x) + i_, (out) + i_);                                                 \
        if (i_ < (n)) {                                                                  \
            REAL in_[SMALL_VL] = {0}, res_[SMALL_VL];                                    \
            memcpy(in_, (x) + i_, sizeof(REAL) * (size_t)((n) - i_));                    \
            block(in_, res_);                                                            \
            memcpy((out) + i_, res_, sizeof(REAL) * (size_t)((n) - i_));                 \
        }                                                                                \
    } while (0)

/* the sigmoid for throughput: exp_neg's long chain (fewer operations) */
static inline void T(ISA(sigmoid_block_long))(const REAL *x, REAL *out)
{
    T(ISA(sigmoid_block))(x, out, 0);
}

static void T(ISA(sigmoid))(int64_t n, const REAL *x, REAL *out)
{
    BLOCKWISE(T(ISA(sigmoid_block_long)), n, x, out);
}

static inline void T(ISA(sigmoid_block_short))(const REAL *x, REAL *out)
{
    T(ISA(sigmoid_block))(x, out, 1);
}

static void T(ISA(sigmoid_short))(int64_t n, const REAL *x, REAL *out)
{
    BLOCKWISE(T(ISA(sigmoid_block_short)), n, x, out);
}

static void T(ISA(tanh))(int64_t n, const REAL *x, REAL *out)
{
    BLOCKWISE(T(ISA(tanh_block)), n, x, out);
}

/* The sums of R rows of op(A) (op(A)[i, p] = A[i * rs_a + p * cs_a], or with G the
 * gathered rows of small_gemm_g, fastnet.h: cs_a 1, op(A)'s rows are G[i] + g_col; cs_a
 * 0, its columns, G[p] + g_col; rows past m repeat the last one) against W registers of
 * B's rows (rs_b apart; only their first nb values read, the rest taken as 0: a row of B
 * read in place, not padded) over kc steps, into sums[0:R][0:W]: each element one FMA chain in
 * p order, the micro-kernel's, so every path gives the same values. For the small
 * product and the micro-kernel's edges. The accumulators are arrays indexed by constants
 * only, unrolled in full, which the compiler keeps in registers (left rolled, GCC put B
 * and the sums on the stack in the AVX2 build: one mnist row took 17.7 us instead of 5). */
static inline __attribute__((always_inline)) void
T(ISA(row_sums))(const int R, const int W, int64_t m, int64_t kc, const REAL *A,
                 int64_t rs_a, int64_t cs_a, const REAL *const *G, int64_t g_col,
                 const REAL *B, int64_t rs_b, int64_t nb, T(ISA(reg)) sums[MR][16])
{
    typedef T(ISA(reg)) V;
    const REAL *a[MR];
    V c[MR][16];
    const int g_rows = G && cs_a == 1; /* op(A)'s rows gathered: a[i] from G */
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
        const int64_t r = i < m ? i : m - 1;
        a[i] = !G ? A + r * rs_a : g_rows ? G[r] + g_col : NULL;
#pragma GCC unroll 16
        for (int v = 0; v < W; v++)
            c[i][v] = (V){0};
    }
    for (int64_t p = 0, q = 0; p < kc; p++, q += cs_a) {
        V b[16];
#pragma GCC unroll 16
        for (int v = 0; v < W; v++)
            if (nb >= (v + 1) * LANES)
                memcpy(&b[v], B + v * LANES, sizeof b[v]);
            else /* masked: no read past B's row */
                b[v] = T(ISA(load_first))(B + v * LANES, nb - v * LANES);
        /* op(A)'s columns gathered: step p reads the batch's row p */
        const REAL *ap = G && !g_rows ? G[p] + g_col : NULL;
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            const REAL ai = ap ? ap[i < m ? i : m - 1] : a[i][q];
#pragma GCC unroll 16
            for (int v = 0; v < W; v++)
                c[i][v] += ai * b[v];
        }
        B += rs_b;
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; i++)
#pragma GCC unroll 16
        for (int v = 0; v < W; v++)
            sums[i][v] = c[i][v];
}

/* The small product's rows: R of them (constant), op(A) with constant strides */
#define SMALL_BLOCK(R, W, trans_a, m, K, A, lda, Bp, NP, nb, acc)                         \
    ((trans_a) ? T(ISA(row_sums))(R, W, m, K, A, 1, Gi ? 0 : lda, Gi, g_col, Bp, NP, nb, acc) \
               : T(ISA(row_sums))(R, W, m, K, A, lda, 1, Gi, g_col, Bp, NP, nb, acc))
/* Blocks of SMALL_VL columns the small product takes at once: two where 32 registers hold
 * MR rows of both (AVX-512: 16 accumulators, as in the micro-kernel), else one. One block
 * of 16 floats gave each step 8 FMAs for 9 loads, bound by the loads. */
#define SMALL_WIDE (VEC_BYTES == 64 ? 2 : 1)

/* The small-problem product: C (M x N) = alpha op(A) Bp + beta C, without packing A.
 * Bp is op(B) in rows NP >= N apart: B read in place, a copy of B^T, or padded weights;
 * no value past N of a row is read (row_sums' masked loads). MR rows of C at a time (the
 * micro-tile's rows: 8 on AVX-512, whose 32 registers hold them, so batches of 16, 32,
 * 64 rows waste nothing) against SMALL_VL columns, held in SV registers of the target's
 * own width (one zmm, two ymm or four xmm), summed over p in order (the micro-kernel's
 * order, row_sums); a last group of fewer rows runs as 4, 2 or 1 (one row of a digits
 * network did the FMAs of 8), rows past M repeating the last one, not stored. Vectors
 * wider than the target's (SMALL_VL lanes as one GCC vector) were split by the compiler
 * through the stack, 9x slower on AVX2 than on AVX-512 for a digits epoch. */
static void T(ISA(microkernel))(int64_t kc, const REAL *A, int64_t rs_a, int64_t cs_a,
                               const REAL *B, int64_t rs_b, REAL *C, int64_t ldc, REAL alpha,
                               REAL beta);
static void T(ISA(narrow_tile))(int64_t kc, const REAL *A, int64_t rs_a, int64_t cs_a,
                                const REAL *B, int64_t rs_b, REAL *C, int64_t ldc, REAL alpha,
                                REAL beta);

static void T(ISA(tile_g))(int two, int64_t kc, const REAL *const *G, int64_t g_col,
                           int64_t cs, const REAL *B, int64_t rs_b, REAL *C, int64_t ldc,
                           REAL alpha, REAL beta);

/* The body of small_gemm and small_gemm_g: A strided (G NULL), or A the rows G[r] */
static inline __attribute__((always_inline)) void
T(ISA(small_body))(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha, const REAL *A,
                   int64_t lda, const REAL *const *G, int64_t col, const REAL *Bp, int64_t NP,
                   REAL beta, REAL *C, int64_t ldc)
{
    typedef T(ISA(reg)) V;
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
        const int64_t m = M - i0 < MR ? M - i0 : MR;
        const REAL *Ai = G ? NULL : trans_a ? A + i0 : A + i0 * lda;
        /* gathered: op(A)'s rows i0.. are G[i0..]; or its columns, G's rows from i0 on */
        const REAL *const *Gi = G && !trans_a ? G + i0 : G;
        const int64_t g_col = col + (G && trans_a ? i0 : 0);
        for (int64_t j0 = 0; j0 < N;) {
            /* SMALL_WIDE blocks of SMALL_VL columns at once while whole ones remain */
            const int wide = SMALL_WIDE > 1 && N - j0 >= SMALL_WIDE * SMALL_VL;
            const int64_t n = wide ? SMALL_WIDE * SMALL_VL : N - j0 < SMALL_VL ? N - j0 : SMALL_VL;
            if (m == MR && (wide || (SV == 1 && n == SMALL_VL)) && (beta != 0 || alpha == 1)) {
                /* MR rows by two registers (a whole micro-tile: the micro-kernel) or one
                 * (narrow_tile), which keep their accumulators in named registers and
                 * store them straight into C, where row_sums' went through the acc array
                 * on the stack (digits' X W1, 32 x 32 x 64: 2207 -> 2077 cycles of the
                 * time-stamp counter; H W2, 32 x 16 x 32: 734 -> 650). The same FMA
                 * chains; alpha c is c + 0 for alpha 1, as c, summed from +0, is never -0. */
                if (G)
                    T(ISA(tile_g))(wide, K, Gi, g_col, trans_a ? 0 : 1, Bp + j0, NP,
                                   C + i0 * ldc + j0, ldc, alpha, beta);
                else
                    (wide ? T(ISA(microkernel)) : T(ISA(narrow_tile)))(
                        K, Ai, trans_a ? 1 : lda, trans_a ? lda : 1, Bp + j0, NP,
                        C + i0 * ldc + j0, ldc, alpha, beta);
                j0 += n;
                continue;
            }
            V acc[MR][16];
            /* MR rows; a short last group: 4, 2 or 1 (W registers of columns, a constant) */
#define SMALL_ROWS(W, NB)                                                                \
    do {                                                                                 \
        if (m > 4)                                                                       \
            SMALL_BLOCK(MR, W, trans_a, m, K, Ai, lda, Bp + j0, NP, NB, acc);             \
        else if (m > 2)                                                                  \
            SMALL_BLOCK(4, W, trans_a, m, K, Ai, lda, Bp + j0, NP, NB, acc);              \
        else if (m == 2)                                                                 \
            SMALL_BLOCK(2, W, trans_a, m, K, Ai, lda, Bp + j0, NP, NB, acc);              \
        else                                                                             \
            SMALL_BLOCK(1, W, trans_a, m, K, Ai, lda, Bp + j0, NP, NB, acc);              \
    } while (0)
            if (wide)
                SMALL_ROWS(SMALL_WIDE * SV, SMALL_WIDE * SMALL_VL);
            else if (n == SMALL_VL)
                SMALL_ROWS(SV, SMALL_VL);
            else /* the last columns: B's values past N not read (rows read in place) */
                SMALL_ROWS(SV, n);
#undef SMALL_ROWS
            /* whole registers, and a last one of the block's first n columns (masked) */
            const V zero = {0};
            for (int r = 0; r < m; r++)
                for (int v = 0; v * LANES < n; v++) {
                    REAL *c = C + (i0 + r) * ldc + j0 + v * LANES;
                    const int64_t w = n - v * LANES;
                    V x;
                    if (beta == 0) { /* + 0: -0 becomes +0 */
                        x = alpha * acc[r][v] + zero;
                    } else {
                        const V old = T(ISA(load_first))(c, w);
                        FN_SCALE_ADD(x, alpha, acc[r][v], beta, old);
                    }
                    T(ISA(store_first))(c, x, w);
                }
            j0 += n;
        }
    }
}

static void T(ISA(small_gemm))(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,
                              const REAL *A, int64_t lda, const REAL *Bp, int64_t NP,
                              REAL beta, REAL *C, int64_t ldc)
{
    T(ISA(small_body))(trans_a, M, N, K, alpha, A, lda, NULL, 0, Bp, NP, beta, C, ldc);
}

static void T(ISA(small_gemm_g))(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,
                                const REAL *const *G, int64_t col, const REAL *Bp, int64_t NP,
                                REAL beta, REAL *C, int64_t ldc)
{
    T(ISA(small_body))(trans_a, M, N, K, alpha, NULL, 0, G, col, Bp, NP, beta, C, ldc);
}

/* 1 if x[0:n] are all finite. x * 0 is +-0 for every finite x and NaN for NaN and
 * infinity, and a sum of zeros stays 0 while a NaN stays NaN: so the sums below are 0
 * exactly when every value is finite. One multiply-add per vector into four independent
 * sums (the plain loop, ok &= x - x == 0, took five instructions a vector on one chain:
 * 13 us from Python for the 115,000 values of the digits inputs, now 5.4, about what
 * L2 delivers). */
static int T(ISA(all_finite))(int64_t n, const REAL *x)
{
    typedef T(ISA(reg)) V;
    const V zero = {0};
    V s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    int64_t i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        V v0, v1, v2, v3;
        memcpy(&v0, x + i, sizeof v0);
        memcpy(&v1, x + i + LANES, sizeof v1);
        memcpy(&v2, x + i + 2 * LANES, sizeof v2);
        memcpy(&v3, x + i + 3 * LANES, sizeof v3);
        s0 += v0 * zero, s1 += v1 * zero, s2 += v2 * zero, s3 += v3 * zero;
    }
    const V s = (s0 + s1) + (s2 + s3);
    int ok = 1;
    for (int j = 0; j < LANES; j++)
        ok &= s[j] == 0;
    for (; i < n; i++)
        ok &= x[i] - x[i] == 0;
    return ok;
}

/* row[0:n] *= out[0:n] (1 - out[0:n]), the sigmoid's derivative from its stored output
 * times the incoming delta, in this target's vectors: compiled once for the baseline it
 * ran 4 floats at a time. The same two multiplies and one subtraction on every target:
 * the same values. */
static void T(ISA(sigmoid_deriv_mul))(int64_t n, const REAL *out, REAL *row)
{
    for (int64_t i = 0; i < n; i++)
        row[i] *= out[i] * (1 - out[i]);
}

/* row[0:n] *= 1 - out[0:n]^2, tanh's derivative from its stored output, in this target's
 * registers: the square rounded before the subtraction (FN_ROUNDED), as the baseline's
 * loop (no FMA) computes it, not fused with it: the same values. */
static void T(ISA(tanh_deriv_mul))(int64_t n, const REAL *out, REAL *row)
{
    typedef T(ISA(reg)) V;
    for (int64_t i = 0; i < n; i += LANES) {
        const V o = T(ISA(load_first))(out + i, n - i);
        V sq = o * o;
        FN_ROUNDED(sq);
        T(ISA(store_first))(row + i, T(ISA(load_first))(row + i, n - i) * (1 - sq), n - i);
    }
}

/* Relu and its derivative from its stored output, by masks on the bits in this target's
 * vectors, not by a branch on each value's sign: on random signs that branch missed half
 * the time, and a digits network with a relu hidden layer trained 1.7x slower than one
 * with the sigmoid (GCC kept relu' a scalar loop of branches, as it may not compute the
 * row * 0 of lanes that take the other side under -ftrapping-math). The same values as
 * the scalar definitions:
 *   relu(z)         = z where z > 0 or z is NaN, else +0;
 *   relu'(out) row  = row * 1 where out > 0, else row * 0 (NaN and infinity stay visible).
 * relu: out[0:n] = relu(x[0:n]) (may alias). */
static inline T(ISA(reg)) T(ISA(relu_reg))(T(ISA(reg)) z)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const V zero = {0};
    return (V)((U)((z > zero) | (z != z)) & (U)z);
}

static void T(ISA(relu))(int64_t n, const REAL *x, REAL *out)
{
    for (int64_t i = 0; i < n; i += LANES)
        T(ISA(store_first))(out + i, T(ISA(relu_reg))(T(ISA(load_first))(x + i, n - i)), n - i);
}

/* act'(o) from the output o, for the activations in registers (FN_ACT_IN_REGISTERS; act a
 * constant where it is inlined): the sigmoid's o (1 - o), relu's 1 where o > 0, else 0,
 * the identity's 1 (a product by it leaves every value as it is). */
static inline __attribute__((always_inline)) T(ISA(reg))
    T(ISA(act_deriv_reg))(const int act, T(ISA(reg)) o)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    const V zero = {0}, one = zero + 1;
    if (act == FN_SIGMOID)
        return o * (1 - o);
    if (act == FN_RELU)
        return (V)((U)(o > zero) & (U)one);
    return one;
}

/* row[0:n] *= relu'(out[0:n]) */
static void T(ISA(relu_deriv_mul))(int64_t n, const REAL *out, REAL *row)
{
    for (int64_t i = 0; i < n; i += LANES) {
        const T(ISA(reg)) o = T(ISA(load_first))(out + i, n - i);
        T(ISA(store_first))(row + i,
                            T(ISA(load_first))(row + i, n - i) * T(ISA(act_deriv_reg))(FN_RELU, o),
                            n - i);
    }
}

/* C[i, 0:n] += b[0:n] for rows [0, m) (ldc apart): a bias on a finished tile, a register
 * of columns at a time with b's in a register, where the baseline's loop ran 4 floats at
 * a time. The same sums. */
static void T(ISA(add_bias))(int64_t m, int64_t n, REAL *C, int64_t ldc, const REAL *b)
{
    typedef T(ISA(reg)) V;
    for (int64_t j = 0; j < n; j += LANES) {
        const V g = T(ISA(load_first))(b + j, n - j);
        for (int64_t i = 0; i < m; i++) {
            REAL *c = C + i * ldc + j;
            T(ISA(store_first))(c, T(ISA(load_first))(c, n - j) + g, n - j);
        }
    }
}

/* db[0:n] = alpha * (column sums of delta's m rows, ld apart) (+ db with accumulate): each
 * column summed over the rows in order, alpha times the sum rounded before the addition,
 * as backprop.c's loop computes them (the same values), in this target's registers. */
static void T(ISA(bias_grad))(int64_t m, int64_t n, const REAL *delta, int64_t ld, REAL *db,
                              REAL alpha, int accumulate)
{
    typedef T(ISA(reg)) V;
    enum { R = 4 }; /* registers of columns at once: independent chains */
    for (int64_t j = 0; j < n; j += R * LANES) {
        V sum[R] = {{0}};
        for (int64_t e = 0; e < m; e++)
            for (int r = 0; r < R; r++)
                sum[r] += T(ISA(load_first))(delta + e * ld + j + r * LANES,
                                             n - j - r * LANES);
        for (int r = 0; r < R && j + r * LANES < n; r++) {
            const int64_t w = n - j - r * LANES;
            V d = alpha * sum[r];
            FN_ROUNDED(d);
            if (accumulate)
                d += T(ISA(load_first))(db + j + r * LANES, w);
            T(ISA(store_first))(db + j + r * LANES, d, w);
        }
    }
}

/* An output layer of the sigmoid, the identity or relu (act), rows [0, m), all rows ld
 * apart (ld a multiple of SMALL_VL):
 *   O = act(((P_0 + P_1) + ...) + b)       (groups parts P_g, part_stride apart; b or NULL)
 *   delta_O = scale (O - Y) act'(O) in the first n columns, 0 past them: the sigmoid's
 *              scale (O - Y) (O (1 - O)), the identity's scale (O - Y), relu's
 *              (scale (O - Y)) [O > 0], as loss.c's fn_output_delta_rows computes them
 *   row_loss = sum_n (O - Y)^2 in double, as loss.c's row_losses sums it: four partial
 *              sums (columns mod 4, each in column order), then (s0 + s1) + (s2 + s3),
 *              each square rounded before its sum, not fused into it: the same values.
 * Y's rows zero-padded to ld, or ld_y apart (packed: n values read). One pass in
 * registers; the padding columns of O are act(0), as the tile epilogue leaves them,
 * except with packed parts (ld_part == n) and no b: then O's rows are packed too, n
 * apart. Digits' 32 x 10 output: the fold, the
 * sigmoid over the tile and loss.c's delta took 2,000 cycles a batch. The identity and
 * relu took the generic steps (the parts' sum, the tile epilogue, loss.c's delta) until
 * this pass was made theirs too. Compiled once for each act (a constant here). */
static inline __attribute__((always_inline)) T(ISA(reg))
    T(ISA(output_act))(const int act, T(ISA(reg)) x)
{
    if (act == FN_SIGMOID)
        return T(ISA(sigmoid_reg))(x, 0);
    if (act == FN_RELU)
        return T(ISA(relu_reg))(x);
    return x;
}

static inline __attribute__((always_inline)) void
    T(ISA(output_pass))(const int act, int64_t m, int64_t n, int64_t ld, int64_t groups,
                        const REAL *parts, int64_t part_stride, int64_t ld_part,
                        const REAL *b, const REAL *Y, int64_t ld_y, REAL scale, REAL *O,
                        REAL *dO, double *row_loss)
{
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    typedef double D4 __attribute__((vector_size(32)));
    typedef REAL R4 __attribute__((vector_size(4 * sizeof(REAL))));
#define WIDE_LOSS (VEC_BYTES == 64) /* LANES 16 or 8: whole groups of 8 */
    const V zero = {0}, width = zero + (REAL)n;
    /* O first, over the whole tile: independent vectors, so the sigmoid's long chain and
     * its division overlap from one vector to the next (row by row, with the deltas and
     * the loss in the same pass, took 1.4x as long). Packed parts without a bias: the
     * tile's m n values in one flat pass, O packed as they are (rows of n), so no
     * padding column goes through the sigmoid (digits: 20 registers of floats or 40 of
     * doubles, not 32 or 64). The same values: each lane's sum and sigmoid are its own. */
    const int flat = ld_part != ld && !b;
    for (int64_t i = 0; flat && i < m * n; i += LANES) {
        const int64_t w = m * n - i;
        V x = T(ISA(load_first))(parts + i, w);
        for (int64_t k = 1; k < groups; k++)
            x += T(ISA(load_first))(parts + i + k * part_stride, w);
        T(ISA(store_first))(O + i, T(ISA(output_act))(act, x), w);
    }
    for (int64_t r = 0; !flat && r < m; r++)
        for (int64_t j = 0; j < ld; j += LANES) {
            const int64_t at = r * ld + j;
            const REAL *p = parts + r * ld_part + j; /* ld_part == n: up to n, then 0 */
            const int64_t w = ld_part == ld ? LANES : n - j;
            V x = T(ISA(load_first))(p, w), g;
            for (int64_t k = 1; k < groups; k++)
                x += T(ISA(load_first))(p + k * part_stride, w);
            if (b) {
                memcpy(&g, b + j, sizeof g);
                x += g;
            }
            x = T(ISA(output_act))(act, x);
            memcpy(O + at, &x, sizeof x);
        }
    V lane;
    for (int64_t j = 0; j < LANES; j++)
        lane[j] = (REAL)j;
    for (int64_t r = 0; r < m; r++) {
        D4 s = {0};
        V col = lane; /* the columns j .. j + LANES - 1 */
        for (int64_t j = 0; j < ld; j += LANES, col += (REAL)LANES) {
            const int64_t at = r * ld + j;
            V o, y;
            if (flat) /* up to n, then 0 */
                o = T(ISA(load_first))(O + r * n + j, n - j);
            else
                memcpy(&o, O + at, sizeof o);
            if (ld_y == ld) /* padded as O */
                memcpy(&y, Y + at, sizeof y);
            else /* packed: up to n, then 0 (nothing read past the row's n values) */
                y = T(ISA(load_first))(Y + r * ld_y + j, n - j);
            const U real = (U)(col < width); /* all ones in a real column */
            const V diff = SELECT(real, o - y, zero);
            const V d = SELECT(real, scale * (o - y) * T(ISA(act_deriv_reg))(act, o), zero);
            memcpy(dO + at, &d, sizeof d);
            /* 8 columns at a time on zmm registers: one conversion to a register of
             * doubles, its halves added in column order (4 at a time took 19 shuffles
             * a row, all on one port: 26 cycles a row). In intrinsics: GCC's generic
             * vectors took the halves through the stack and converted 4 at a time (the
             * digits output layer, 32 rows from two groups' parts: 934 -> 845 cycles of
             * the time-stamp counter; the same sums). */
#if WIDE_LOSS
            for (int64_t c = 0; c < LANES; c += 8) {
                __m512d q8;
                if (sizeof(REAL) == 4)
                    q8 = _mm512_cvtps_pd(c == 0 ? _mm512_castps512_ps256((__m512)diff)
                                                : _mm512_extractf32x8_ps((__m512)diff, 1));
                else
                    q8 = (__m512d)diff;
                q8 = _mm512_mul_pd(q8, q8);
                s = (D4)_mm256_add_pd((__m256d)s, _mm512_castpd512_pd256(q8));
                s = (D4)_mm256_add_pd((__m256d)s, _mm512_extractf64x4_pd(q8, 1));
            }
#endif
            for (int64_t c = 0; !WIDE_LOSS && LANES % 4 == 0 && c < LANES; c += 4) {
                R4 q4;
                memcpy(&q4, (const REAL *)&diff + c, sizeof q4);
                const D4 q = __builtin_convertvector(q4, D4);
                D4 q2 = q * q;
#ifdef __FMA__
                FN_ROUNDED(q2); /* rounded, as loss.c's (no FMA there), not fused into s */
#endif
                s += q2;
            }
            for (int64_t c = 0; LANES % 4 != 0 && c < LANES; c++) /* 2 doubles a register */
                s[(j + c) % 4] += (double)diff[c] * (double)diff[c];
        }
        row_loss[r] = (s[0] + s[1]) + (s[2] + s[3]);
    }
#undef WIDE_LOSS
}

static void T(ISA(output_layer))(int act, int64_t m, int64_t n, int64_t ld, int64_t groups,
                                 const REAL *parts, int64_t part_stride, int64_t ld_part,
                                 const REAL *b, const REAL *Y, int64_t ld_y, REAL scale,
                                 REAL *O, REAL *dO, double *row_loss)
{
#define OUTPUT_PASS(a)                                                                   \
    T(ISA(output_pass))(a, m, n, ld, groups, parts, part_stride, ld_part, b, Y, ld_y, scale, \
                        O, dO, row_loss)
    if (act == FN_SIGMOID)
        OUTPUT_PASS(FN_SIGMOID);
    else if (act == FN_RELU)
        OUTPUT_PASS(FN_RELU);
    else
        OUTPUT_PASS(FN_IDENTITY);
#undef OUTPUT_PASS
}

/* The micro-kernel: C[0:MR, 0:NR] = alpha * op(A) B + beta * C over kc steps, where
 * op(A)[i, p] = A[i * rs_a + p * cs_a] is read in place (no packing: rs_a = lda, cs_a = 1
 * for A, rs_a = 1, cs_a = lda for A^T) and B is kc rows of NR = two registers' worth of
 * contiguous values, rs_b apart (a packed panel: rs_b = NR; B itself: rs_b = ldb). Each
 * accumulator is a named variable (c<i>a, c<i>b: row i, first and second register), not
 * an array, so the compiler keeps all 2 * MR of them in registers; MR rows give 2 * MR
 * independent FMA chains, enough to hide the FMA latency. beta == 0: C is only written.
 * With `two` 0 (a constant), the same on one register of columns and without the
 * prefetches: the small product's one-register blocks (narrow_tile). With G (tile_g),
 * op(A) is read through row pointers as in row_sums, A and rs_a unused. */
static inline __attribute__((always_inline)) void
T(ISA(tile_body))(const int two, int64_t kc, const REAL *A, int64_t rs_a, int64_t cs_a,
                  const REAL *const *G, int64_t g_col, const REAL *B, int64_t rs_b, REAL *C,
                  int64_t ldc, REAL alpha, REAL beta)
{
    typedef T(ISA(reg)) V;
#define DECLARE(i)                                                                       \
    V c##i##a = {0}, c##i##b = {0};                                                      \
    const REAL *a##i = !G ? A + i * rs_a : cs_a == 1 ? G[i] + g_col : NULL;
/* One k step: B's row, PREFETCH, and each row's FMAs on op(A)[i, p] = A_AT(i), which
 * each branch below defines (the same FMAs in the same order in every branch). */
#define UPDATE(i)                                                                        \
    {                                                                                    \
        const REAL a = A_AT(i);                                                          \
        c##i##a += a * b0;                                                               \
        if (two)                                                                         \
            c##i##b += a * b1;                                                           \
    }
#define K_STEP(PREFETCH)                                                                 \
    {                                                                                    \
        V b0, b1 = {0};                                                                  \
        memcpy(&b0, B, sizeof b0);                                                       \
        if (two) {                                                                       \
            memcpy(&b1, B + LANES, sizeof b1);                                           \
            PREFETCH;                                                                    \
        }                                                                                \
        ROWS(UPDATE)                                                                     \
        B += rs_b;                                                                       \
    }
#define STORE_NEW(i)                                                                     \
    {                                                                                    \
        V x = alpha * c##i##a, y = alpha * c##i##b;                                      \
        memcpy(C + i * ldc, &x, sizeof x);                                               \
        if (two)                                                                         \
            memcpy(C + i * ldc + LANES, &y, sizeof y);                                   \
    }
#define STORE_ADD(i)                                                                     \
    {                                                                                    \
        V x, y = {0}, sx, sy = {0};                                                      \
        memcpy(&x, C + i * ldc, sizeof x);                                               \
        if (two)                                                                         \
            memcpy(&y, C + i * ldc + LANES, sizeof y);                                   \
        FN_SCALE_ADD(sx, alpha, c##i##a, beta, x);                                       \
        if (two)                                                                         \
            FN_SCALE_ADD(sy, alpha, c##i##b, beta, y);                                   \
        memcpy(C + i * ldc, &sx, sizeof sx);                                             \
        if (two)                                                                         \
            memcpy(C + i * ldc + LANES, &sy, sizeof sy);                                 \
    }
    ROWS(DECLARE)
    if (G && cs_a == 1) {
        /* op(A)'s rows gathered (small_gemm_g): as A's rows in place below, each row's
         * line asked for ahead through its pointer */
#define ROW_PF_STEP (64 / (int)sizeof(REAL) / MR > 1 ? 64 / (int)sizeof(REAL) / MR : 1)
#define A_AT(i) a##i[p]
        for (int64_t p = 0; p < kc; p++)
            K_STEP(if (p % ROW_PF_STEP == 0) __builtin_prefetch(
                       G[p / ROW_PF_STEP % MR] + g_col + p + FN_PREFETCH_ROW))
#undef A_AT
#undef ROW_PF_STEP
    } else if (G) {
        /* op(A)'s columns gathered (small_gemm_g): step p reads MR values of the batch's
         * row p (asked for a batch ahead: train_small.c's prefetch_next) */
#define A_AT(i) ap[i]
        for (int64_t p = 0; p < kc; p++) {
            const REAL *ap = G[p] + g_col;
            K_STEP((void)0)
        }
#undef A_AT
    } else if (rs_a == 1 && cs_a == MR) {
        /* A packed (the packed path's micro-panels: MR values a step, contiguous), read
         * from L2 as the panels stream past the B panel held in L1. The prefetchers left
         * it late: asking for the line FN_PREFETCH_A steps on took wide's float64
         * products from 66-70 to 73-80 GFLOP/s on one core (floats: within noise). */
#define A_AT(i) A[p * MR + i]
        for (int64_t p = 0; p < kc; p++)
            K_STEP(__builtin_prefetch(A + (p + FN_PREFETCH_A) * MR))
#undef A_AT
    } else if (cs_a == 1) {
        /* A's rows read in place, lda apart (the batch's rows of X on mnist's shape): one
         * row's line FN_PREFETCH_ROW values on every ROW_PF_STEP steps, the rows in turn,
         * so that each row is asked for once per line it crosses. Unshuffled mnist, both
         * dtypes: 2-3% an epoch. (Prefetching row 0 alone, as for packed A, slowed it:
         * 2 threads, 122 -> 131 ms.) */
#define ROW_PF_STEP (64 / (int)sizeof(REAL) / MR > 1 ? 64 / (int)sizeof(REAL) / MR : 1)
#define A_AT(i) a##i[p]
        for (int64_t p = 0; p < kc; p++)
            K_STEP(if (p % ROW_PF_STEP == 0) __builtin_prefetch(
                       A + p / ROW_PF_STEP % MR * rs_a + p + FN_PREFETCH_ROW))
#undef A_AT
#undef ROW_PF_STEP
    } else {
        /* A's columns read in place (op(A) = A^T, the update products' X^T): MR values a
         * row, the row FN_PREFETCH_COL steps on asked for. Floats only, where a line
         * holds two micro-panels' rows: unshuffled mnist's epoch 2-3% faster on one and
         * two threads (C, three times 7-9 rounds); doubles' lines one micro-panel's row
         * each: within noise or 1% slower. */
#define A_AT(i) a##i[q]
        for (int64_t p = 0, q = 0; p < kc; p++, q += cs_a)
            K_STEP(if (sizeof(REAL) == 4) __builtin_prefetch(A + q + FN_PREFETCH_COL * cs_a))
#undef A_AT
    }
    if (beta == 0) {
        ROWS(STORE_NEW)
    } else {
        ROWS(STORE_ADD)
    }
#undef DECLARE
#undef UPDATE
#undef K_STEP
#undef STORE_NEW
#undef STORE_ADD
}

static void T(ISA(microkernel))(int64_t kc, const REAL *A, int64_t rs_a, int64_t cs_a,
                               const REAL *B, int64_t rs_b, REAL *C, int64_t ldc, REAL alpha,
                               REAL beta)
{
    T(ISA(tile_body))(1, kc, A, rs_a, cs_a, NULL, 0, B, rs_b, C, ldc, alpha, beta);
}

/* The small product's whole tiles on gathered rows: two registers of columns or one */
static void T(ISA(tile_g))(int two, int64_t kc, const REAL *const *G, int64_t g_col,
                           int64_t cs, const REAL *B, int64_t rs_b, REAL *C, int64_t ldc,
                           REAL alpha, REAL beta)
{
    if (two)
        T(ISA(tile_body))(1, kc, NULL, 0, cs, G, g_col, B, rs_b, C, ldc, alpha, beta);
    else
        T(ISA(tile_body))(0, kc, NULL, 0, cs, G, g_col, B, rs_b, C, ldc, alpha, beta);
}

/* MR rows by one register of columns (the micro-kernel's body with `two` 0). */
static void T(ISA(narrow_tile))(int64_t kc, const REAL *A, int64_t rs_a, int64_t cs_a,
                                const REAL *B, int64_t rs_b, REAL *C, int64_t ldc, REAL alpha,
                                REAL beta)
{
    T(ISA(tile_body))(0, kc, A, rs_a, cs_a, NULL, 0, B, rs_b, C, ldc, alpha, beta);
}

/* The micro-kernel's edges: C[0:m, 0:W LANES] = op(A) B over kc steps (alpha 1, beta 0:
 * the general path's edge tiles go through a scratch tile), B's rows W registers wide,
 * rs_b apart. Two cases: fewer rows than MR (m < MR, W = 2 per column panel, panels
 * side by side), and a last, partial panel of at most LANES columns (W = 1, m <= MR).
 * Before, short rows were copied zero-padded and the MR-row micro-kernel ran one panel
 * at a time: predicting one row of mnist's shape did the FMAs of eight rows plus the
 * copies, 27 us in C; and a partial panel of 4 columns cost a whole one (mnist with 100
 * hidden units trained as slowly as with 128). Here R rows (4, 2 or 1; rows past m
 * repeat the last one and are not stored) go through each step against up to 16 / R
 * registers at once (8 / R where there are 16 registers), so that one row has up to 16
 * independent FMA chains, to hide their latency and stream long runs of B's rows. Each
 * element has the micro-kernel's FMA chain: the same values. */
#define EDGE_ACC (VEC_BYTES == 64 ? 16 : 8)
static inline __attribute__((always_inline)) void
T(ISA(edge_block))(const int R, const int W, int64_t m, int64_t kc, const REAL *A,
                   int64_t rs_a, int64_t cs_a, const REAL *const *G, int64_t g_col,
                   const REAL *B, int64_t rs_b, REAL *C, int64_t ldc)
{
    T(ISA(reg)) sums[MR][16];
    T(ISA(row_sums))(R, W, m, kc, A, rs_a, cs_a, G, g_col, B, rs_b, W * LANES, sums);
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 16
        for (int v = 0; v < W; v++)
            if (i < m)
                memcpy(C + i * ldc + v * LANES, &sums[i][v], sizeof sums[i][v]);
}

/* BODY(w) on runs of registers g .. regs - 1 of a row, w (a constant) at a time: WMAX (at
 * least 2) while they last, then 8, 4, 2, 1, never more than WMAX; g ends at regs. For the
 * kernels unrolled over their registers (edge_group, fused_rows). */
#define REG_RUNS(WMAX, regs, g, BODY)                                                    \
    do {                                                                                 \
        for (; (g) + (WMAX) <= (regs); (g) += (WMAX))                                    \
            BODY(WMAX);                                                                  \
        if ((WMAX) > 8 && (g) + 8 <= (regs))                                             \
            BODY(8), (g) += 8;                                                           \
        if ((WMAX) > 4 && (g) + 4 <= (regs))                                             \
            BODY(4), (g) += 4;                                                           \
        if ((WMAX) > 2 && (g) + 2 <= (regs))                                             \
            BODY(2), (g) += 2;                                                           \
        if ((g) < (regs))                                                                \
            BODY(1), (g) += 1;                                                           \
    } while (0)

/* R rows against all the registers' worth of columns, as many at a time as the budget
 * allows, the rest 8, 4, 2, 1 at a time (never more than the budget). */
static inline __attribute__((always_inline)) void
T(ISA(edge_group))(const int R, int64_t m, int64_t regs, int64_t kc, const REAL *A,
                   int64_t rs_a, int64_t cs_a, const REAL *const *G, int64_t g_col,
                   const REAL *B, int64_t rs_b, REAL *C, int64_t ldc)
{
    const int W = EDGE_ACC / R;
    int64_t g = 0;
#define EDGE_REGS(WW)                                                                    \
    T(ISA(edge_block))(R, WW, m, kc, A, rs_a, cs_a, G, g_col, B + g * LANES, rs_b,        \
                       C + g * LANES, ldc)
    REG_RUNS(W, regs, g, EDGE_REGS);
#undef EDGE_REGS
}

/* The body of edge_rows and edge_rows_g: A strided (G NULL), or gathered as in row_sums
 * (cs_a 1: op(A)'s rows G[i] + g_col; 0: its columns, G[p] + g_col) */
static inline __attribute__((always_inline)) void
T(ISA(edge_body))(int64_t m, int64_t regs, int64_t kc, const REAL *A, int64_t rs_a,
                  int64_t cs_a, const REAL *const *G, int64_t g_col, const REAL *B,
                  int64_t rs_b, REAL *C, int64_t ldc)
{
    for (; m > 0; m -= 4, C += 4 * ldc) {
        if (m >= 3)
            T(ISA(edge_group))(4, m, regs, kc, A, rs_a, cs_a, G, g_col, B, rs_b, C, ldc);
        else if (m == 2)
            T(ISA(edge_group))(2, m, regs, kc, A, rs_a, cs_a, G, g_col, B, rs_b, C, ldc);
        else
            T(ISA(edge_group))(1, m, regs, kc, A, rs_a, cs_a, G, g_col, B, rs_b, C, ldc);
        if (!G) /* the next 4 rows of op(A) */
            A += 4 * rs_a;
        else if (cs_a == 1)
            G += 4;
        else
            g_col += 4;
    }
}

static void T(ISA(edge_rows))(int64_t m, int64_t regs, int64_t kc, const REAL *A,
                              int64_t rs_a, int64_t cs_a, const REAL *B, int64_t rs_b,
                              REAL *C, int64_t ldc)
{
    T(ISA(edge_body))(m, regs, kc, A, rs_a, cs_a, NULL, 0, B, rs_b, C, ldc);
}

static void T(ISA(edge_rows_g))(int64_t m, int64_t regs, int64_t kc, const REAL *const *G,
                                int64_t g_col, int64_t cs, const REAL *B, int64_t rs_b,
                                REAL *C, int64_t ldc)
{
    T(ISA(edge_body))(m, regs, kc, NULL, 0, cs, G, g_col, B, rs_b, C, ldc);
}

/* One step of gradient descent on a layer's weights fused with the next batch's product
 * through them, for batches of at most FUSE_ROWS rows (stochastic gradient descent and
 * its small minibatches), on n columns of W (K x n, rows ldw apart; columns j to j + nr
 * (nr = 2 LANES) ps elements after columns j - nr to j: nr for a row-major W, the panel
 * stride for a panel-major one):
 *     W := alpha * Ap^T D + beta * W      Ap: kp rows of the last batch's inputs (ldap
 *                                         apart, K each), D: its kp rows of deltas (ldd)
 *     H  = X W                            X: m rows of the next batch (ldx), H: m x n (ldh)
 * in one pass over W instead of two (a batch of one read W for the product, then read and
 * wrote it for the update, each time from L2). Every element gets the values the two
 * products give apart: the update's chain over the kp rows and its alpha * c + beta * w,
 * then H summed in blocks of kc within super-blocks of ks (the GEMM's blocking of K), each
 * block an FMA chain from zero, added to the total so far (edge_rows' sums). */
#define FUSE_ACC (VEC_BYTES == 64 ? 16 : 8) /* accumulator registers */
#define FUSE_COLS (FUSE_ACC / 2)            /* registers of W at a time */
/* Rows of X at most: two registers of W at a time or more (one, with AVX2's 16 registers
 * for 5 rows, ran 40% slower than the two passes). */
#define FUSE_ROWS (FUSE_ACC / 2 < MR - 1 ? FUSE_ACC / 2 : MR - 1)
/* The end of the K block that starts at `start`: blocks of kc within super-blocks of ks,
 * as the GEMM's loops cut K; *super is the current super-block's start. */
static inline int64_t T(ISA(block_end))(int64_t start, int64_t *super, int64_t kc, int64_t ks,
                                        int64_t K)
{
    if (start == *super + ks)
        *super = start;
    const int64_t end = start + kc < *super + ks ? start + kc : *super + ks;
    return end < K ? end : K;
}

static inline __attribute__((always_inline)) void
T(ISA(fused_block))(const int R, const int G, int64_t m, int64_t K, int64_t kc, int64_t ks,
                    REAL *W, int64_t ldw, int64_t ps, int64_t g0, int64_t kp, const REAL *Ap,
                    int64_t ldap, const REAL *D, int64_t ldd, REAL alpha, REAL beta,
                    const REAL *X, int64_t ldx, REAL *H, int64_t ldh)
{
    typedef T(ISA(reg)) V;
    const REAL *x[MR];
    V acc[MR][FUSE_COLS];
    int64_t off[FUSE_COLS]; /* register g0 + g of W: in panel (g0 + g) / 2, half (g0 + g) % 2 */
#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
        off[g] = (g0 + g) / 2 * ps + (g0 + g) % 2 * LANES;
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
        x[i] = X + (i < m ? i : m - 1) * ldx;
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
            acc[i][g] = (V){0};
    }
    int64_t super = 0, end = T(ISA(block_end))(0, &super, kc, ks, K), first = 1;
    for (int64_t p = 0; p < K; p++, W += ldw) {
        V w[FUSE_COLS], c[FUSE_COLS];
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) {
            memcpy(&w[g], W + off[g], sizeof w[g]);
            c[g] = (V){0};
        }
        for (int64_t r = 0; r < kp; r++) {
            const REAL a = Ap[r * ldap + p];
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
                V d;
                memcpy(&d, D + r * ldd + g * LANES, sizeof d);
                c[g] += a * d;
            }
        }
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) {
            V t;
            FN_SCALE_ADD(t, alpha, c[g], beta, w[g]); /* as the GEMM rounds it */
            w[g] = t;
            memcpy(W + off[g], &w[g], sizeof w[g]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            const REAL xi = x[i][p];
#pragma GCC unroll 8
            for (int g = 0; g < G; g++)
                acc[i][g] += xi * w[g];
        }
        if (p + 1 == end) { /* a block of K ends: add its sums to H */
#pragma GCC unroll 8
            for (int i = 0; i < R; i++)
#pragma GCC unroll 8
                for (int g = 0; g < G; g++) {
                    if (i < m) {
                        V h = acc[i][g];
                        if (!first) {
                            memcpy(&h, H + i * ldh + g * LANES, sizeof h);
                            h = acc[i][g] + h;
                        }
                        memcpy(H + i * ldh + g * LANES, &h, sizeof h);
                    }
                    acc[i][g] = (V){0};
                }
            first = 0;
            end = T(ISA(block_end))(end, &super, kc, ks, K);
        }
    }
}

/* The same on the last n < LANES columns, one value at a time. */
static void T(ISA(fused_tail))(int64_t n, int64_t m, int64_t K, int64_t kc, int64_t ks,
                              REAL *W, int64_t ldw, int64_t kp, const REAL *Ap, int64_t ldap,
                              const REAL *D, int64_t ldd, REAL alpha, REAL beta,
                              const REAL *X, int64_t ldx, REAL *H, int64_t ldh)
{
    REAL acc[MR][LANES] = {{0}};
    int64_t super = 0, end = T(ISA(block_end))(0, &super, kc, ks, K), first = 1;
    for (int64_t p = 0; p < K; p++, W += ldw) { /* (n < LANES: columns of one panel) */
        for (int64_t j = 0; j < n; j++) {
            REAL c = 0, w = W[j];
            for (int64_t r = 0; r < kp; r++)
                c += Ap[r * ldap + p] * D[r * ldd + j];
            REAL t;
            FN_SCALE_ADD(t, alpha, c, beta, w);
            w = t;
            W[j] = w;
            for (int64_t i = 0; i < m; i++)
                acc[i][j] += X[i * ldx + p] * w;
        }
        if (p + 1 == end) {
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    H[i * ldh + j] = first ? acc[i][j] : acc[i][j] + H[i * ldh + j];
                    acc[i][j] = 0;
                }
            first = 0;
            end = T(ISA(block_end))(end, &super, kc, ks, K);
        }
    }
}

/* R rows (a constant) against the n columns: FUSE_ACC / R registers at a time (at most
 * FUSE_COLS), the rest in smaller runs (REG_RUNS), then the tail. */
static inline __attribute__((always_inline)) void
T(ISA(fused_rows))(const int R, int64_t n, int64_t m, int64_t K, int64_t kc, int64_t ks,
                   REAL *W, int64_t ldw, int64_t ps, int64_t kp, const REAL *Ap, int64_t ldap,
                   const REAL *D, int64_t ldd, REAL alpha, REAL beta, const REAL *X,
                   int64_t ldx, REAL *H, int64_t ldh)
{
    const int G = FUSE_ACC / R < FUSE_COLS ? FUSE_ACC / R : FUSE_COLS;
    const int64_t regs = n / LANES;
    int64_t g = 0;
#define FUSE_REGS(GG)                                                                    \
    T(ISA(fused_block))(R, GG, m, K, kc, ks, W, ldw, ps, g, kp, Ap, ldap, D + g * LANES, ldd, \
                        alpha, beta, X, ldx, H + g * LANES, ldh)
    REG_RUNS(G, regs, g, FUSE_REGS);
#undef FUSE_REGS
    if (g * LANES < n)
        T(ISA(fused_tail))(n - g * LANES, m, K, kc, ks, W + g / 2 * ps + g % 2 * LANES, ldw, kp,
                           Ap, ldap, D + g * LANES, ldd, alpha, beta, X, ldx, H + g * LANES,
                           ldh);
}

static void T(ISA(fused_step))(int64_t n, int64_t K, int64_t kc, int64_t ks, REAL *W,
                              int64_t ldw, int64_t ps, int64_t kp, const REAL *Ap,
                              int64_t ldap, const REAL *D, int64_t ldd, REAL alpha, REAL beta,
                              int64_t m, const REAL *X, int64_t ldx, REAL *H, int64_t ldh)
{
#define FUSE_ARGS n, m, K, kc, ks, W, ldw, ps, kp, Ap, ldap, D, ldd, alpha, beta, X, ldx, H, ldh
    if (MR > 6 && m == 7 && FUSE_ROWS >= 7) /* (the conditions drop code never run) */
        T(ISA(fused_rows))(7, FUSE_ARGS);
    else if (MR > 5 && m == 6 && FUSE_ROWS >= 6)
        T(ISA(fused_rows))(6, FUSE_ARGS);
    else if (MR > 4 && m == 5 && FUSE_ROWS >= 5)
        T(ISA(fused_rows))(5, FUSE_ARGS);
    else if (m > 2)
        T(ISA(fused_rows))(4, FUSE_ARGS);
    else if (m == 2)
        T(ISA(fused_rows))(2, FUSE_ARGS);
    else
        T(ISA(fused_rows))(1, FUSE_ARGS);
#undef FUSE_ARGS
}

#define TINY_P 4
#include "tiny_body.h"
#undef TINY_P
#define TINY_P 8
#include "tiny_body.h"
#undef TINY_P

#include "transpose.h"

/* WT[j * pm + i] = W[i * pn + j] for rows [i0, i1) of W and its n columns (fn_config's
 * transpose). With 512-bit registers in blocks of LANES x LANES values (16 floats, 8
 * doubles) transposed in registers by log2(LANES) rounds of two-register shuffles (round
 * by round, row k of the result interleaves rows k / 2 and k / 2 + LANES / 2: after
 * log2(LANES) rounds, row k holds column k), the edges and the other targets by
 * transpose.h's 16-byte blocks. A 256 x 128 block: floats 12-15 -> 5 us, doubles 40 ->
 * 9 (8 x 8 floats on AVX2 this way gained 10%: not used there). An exact copy on every
 * target. */
static void T(ISA(transpose))(int64_t n, int64_t i0, int64_t i1, const REAL *W, int64_t pn,
                              REAL *WT, int64_t pm)
{
#if VEC_BYTES == 64
    typedef T(ISA(reg)) V;
    typedef T(ISA(ureg)) U;
    U lo, hi; /* row 2k: the first halves of rows k and k + LANES / 2 interleaved */
    for (int k = 0; k < LANES; k++) {
        lo[k] = (UINT)((k & 1 ? LANES : 0) + k / 2);
        hi[k] = (UINT)((k & 1 ? LANES : 0) + LANES / 2 + k / 2);
    }
    const int64_t i_v = i0 + (i1 - i0) / LANES * LANES, n_v = n / LANES * LANES;
    for (int64_t i = i0; i < i_v; i += LANES)
        for (int64_t j = 0; j < n_v; j += LANES) {
            V r[LANES], t[LANES];
            for (int k = 0; k < LANES; k++)
                memcpy(&r[k], W + (i + k) * pn + j, sizeof r[k]);
            for (int round = 1; round < LANES; round *= 2) {
                for (int k = 0; k < LANES / 2; k++) {
                    t[2 * k] = FN_SHUFFLE2(r[k], r[k + LANES / 2], lo);
                    t[2 * k + 1] = FN_SHUFFLE2(r[k], r[k + LANES / 2], hi);
                }
                memcpy(r, t, sizeof r);
            }
            for (int k = 0; k < LANES; k++)
                memcpy(WT + (j + k) * pm + i, &r[k], sizeof r[k]);
        }
    if (n_v < n) /* the last columns of those rows */
        T(transpose_rows)(n - n_v, i0, i_v, W + n_v, pn, WT + n_v * pm, pm);
    T(transpose_rows)(n, i_v, i1, W, pn, WT, pm); /* the last rows */
#else
    T(transpose_rows)(n, i0, i1, W, pn, WT, pm);
#endif
}

/* The tiny trainer's batch for rows padded to net->P values. */
static double T(ISA(tiny_batch))(const T(fn_tiny) *net, int64_t m, const REAL *X,
                                 const REAL *Y, REAL alpha)
{
    return net->P == 4 ? T(FN_CAT(ISA(tiny_batch), 4))(net, m, X, Y, alpha)
                       : T(FN_CAT(ISA(tiny_batch), 8))(net, m, X, Y, alpha);
}

const T(fn_config) T(ISA(fn_config)) = {
    ISA_NAME, MR, 2 * LANES, KC, MC, T(ISA(microkernel)), T(ISA(sigmoid)),
    T(ISA(sigmoid_short)), T(ISA(small_gemm)), T(ISA(small_gemm_g)),
    T(ISA(all_finite)), T(ISA(sigmoid_deriv_mul)), T(ISA(tanh)), T(ISA(edge_rows)),
    T(ISA(tile_g)), T(ISA(edge_rows_g)),
    T(ISA(fused_step)), FUSE_ROWS, T(ISA(output_layer)), T(ISA(tiny_batch)),
    T(ISA(transpose)), T(ISA(relu)), T(ISA(relu_deriv_mul)), T(ISA(add_bias)),
    T(ISA(bias_grad)), T(ISA(tanh_deriv_mul)),
};

#undef BLOCKWISE
#undef SMALL_BLOCK
#undef SMALL_WIDE
#undef EDGE_ACC
#undef REG_RUNS
#undef FUSE_ACC
#undef FUSE_COLS
#undef FUSE_ROWS
#undef SELECT
#undef SV
#undef LANES
#undef FN_AVX512_SIGMOID
#undef MIN_NAN
#undef BLEND_NEG
#undef SCALE2

#endif
