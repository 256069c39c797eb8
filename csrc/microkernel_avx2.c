/*
 * microkernel_avx2.c: the AVX2 + FMA micro-kernel (compiled with -mavx2 -mfma; called
 * only when the CPU has both). 6 x 16 floats / 6 x 8 doubles: 12 accumulators of 8
 * floats (4 doubles), two B vectors and one broadcast A value in the 16 ymm registers.
 *
 *   C[0:MR, 0:NR] = alpha * Ap Bp + beta * C     Ap: kc x MR packed, Bp: kc x NR packed
 */
#ifndef REAL
#include "internal.h"

#define ISA(name) name##_avx2
#include "vector_body.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define REAL float
#define T(name) FN_CAT(name, f32)
#define VEC __m256
#define LANES 8
#define LOAD _mm256_loadu_ps
#define STORE _mm256_storeu_ps
#define SET1 _mm256_set1_ps
#define FMADD _mm256_fmadd_ps
#define MUL _mm256_mul_ps
#define ZERO _mm256_setzero_ps
#include "microkernel_avx2.c"
#undef REAL
#undef T
#undef VEC
#undef LANES
#undef LOAD
#undef STORE
#undef SET1
#undef FMADD
#undef MUL
#undef ZERO

#define REAL double
#define T(name) FN_CAT(name, f64)
#define VEC __m256d
#define LANES 4
#define LOAD _mm256_loadu_pd
#define STORE _mm256_storeu_pd
#define SET1 _mm256_set1_pd
#define FMADD _mm256_fmadd_pd
#define MUL _mm256_mul_pd
#define ZERO _mm256_setzero_pd
#include "microkernel_avx2.c"
#endif

#else /* the body, compiled once per REAL */

#define MR 6
#define NR (2 * LANES)

/* One row of the tile: c<i>a, c<i>b hold C[i, 0:LANES] and C[i, LANES:2*LANES]. Named
 * registers, not an array, so the compiler keeps all accumulators in registers. */
#define DECLARE(i) VEC c##i##a = ZERO(), c##i##b = ZERO();
#define UPDATE(i)                                                                        \
    {                                                                                    \
        VEC a = SET1(Ap[i]);                                                             \
        c##i##a = FMADD(a, b0, c##i##a);                                                 \
        c##i##b = FMADD(a, b1, c##i##b);                                                 \
    }
#define STORE_NEW(i)                                                                     \
    STORE(C + i * ldc, MUL(va, c##i##a));                                                \
    STORE(C + i * ldc + LANES, MUL(va, c##i##b));
#define STORE_ADD(i)                                                                     \
    STORE(C + i * ldc, FMADD(va, c##i##a, MUL(vb, LOAD(C + i * ldc))));                    \
    STORE(C + i * ldc + LANES, FMADD(va, c##i##b, MUL(vb, LOAD(C + i * ldc + LANES))));

static void T(microkernel_avx2)(int64_t kc, const REAL *Ap, const REAL *Bp, REAL *C,
                                  int64_t ldc, REAL alpha, REAL beta)
{
    FN_ROWS6(DECLARE)
    for (int64_t p = 0; p < kc; p++) {
        const VEC b0 = LOAD(Bp), b1 = LOAD(Bp + LANES);
        FN_ROWS6(UPDATE)
        Ap += MR;
        Bp += NR;
    }
    const VEC va = SET1(alpha);
    if (beta == 0) {
        FN_ROWS6(STORE_NEW)
    } else {
        const VEC vb = SET1(beta);
        FN_ROWS6(STORE_ADD)
    }
}

#undef DECLARE
#undef UPDATE
#undef STORE_NEW
#undef STORE_ADD

const T(fn_config) T(fn_config_avx2) = {
    "avx2", MR, NR, 256, 72, T(microkernel_avx2), T(sigmoid_avx2), T(small_gemm_avx2),
};

#undef MR
#undef NR

#endif
