/*
 * microkernel_avx512.c: the AVX-512 micro-kernel (compiled with -mavx512f -mavx512dq;
 * called only when the CPU and OS support it). 12 x 32 floats / 12 x 16 doubles:
 * 24 zmm accumulators, two B vectors and a broadcast A value in the 32 registers.
 *
 *   C[0:MR, 0:NR] = alpha * Ap Bp + beta * C     Ap: kc x MR packed, Bp: kc x NR packed
 */
#ifndef REAL
#include "internal.h"

#define ISA(name) name##_avx512
#include "vector_body.h"

#if defined(__AVX512F__)
#include <immintrin.h>

#define REAL float
#define T(name) FN_CAT(name, f32)
#define VEC __m512
#define LANES 16
#define LOAD _mm512_loadu_ps
#define STORE _mm512_storeu_ps
#define SET1 _mm512_set1_ps
#define FMADD _mm512_fmadd_ps
#define MUL _mm512_mul_ps
#define ZERO _mm512_setzero_ps
#include "microkernel_avx512.c"
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
#define VEC __m512d
#define LANES 8
#define LOAD _mm512_loadu_pd
#define STORE _mm512_storeu_pd
#define SET1 _mm512_set1_pd
#define FMADD _mm512_fmadd_pd
#define MUL _mm512_mul_pd
#define ZERO _mm512_setzero_pd
#include "microkernel_avx512.c"
#endif

#else /* the body, compiled once per REAL */

#define MR 12
#define NR (2 * LANES)

static void T(microkernel_avx512)(int64_t kc, const REAL *Ap, const REAL *Bp, REAL *C,
                                  int64_t ldc, REAL alpha, REAL beta)
{
    VEC c[MR][2];
    for (int i = 0; i < MR; i++)
        c[i][0] = c[i][1] = ZERO();
    for (int64_t p = 0; p < kc; p++) {
        VEC b0 = LOAD(Bp + p * NR), b1 = LOAD(Bp + p * NR + LANES);
        for (int i = 0; i < MR; i++) {
            VEC a = SET1(Ap[p * MR + i]);
            c[i][0] = FMADD(a, b0, c[i][0]);
            c[i][1] = FMADD(a, b1, c[i][1]);
        }
    }
    VEC va = SET1(alpha);
    if (beta == 0) {
        for (int i = 0; i < MR; i++) {
            STORE(C + i * ldc, MUL(va, c[i][0]));
            STORE(C + i * ldc + LANES, MUL(va, c[i][1]));
        }
    } else {
        VEC vb = SET1(beta);
        for (int i = 0; i < MR; i++) {
            STORE(C + i * ldc, FMADD(va, c[i][0], MUL(vb, LOAD(C + i * ldc))));
            STORE(C + i * ldc + LANES, FMADD(va, c[i][1], MUL(vb, LOAD(C + i * ldc + LANES))));
        }
    }
}

const T(fn_config) T(fn_config_avx512) = {
    "avx512", MR, NR, 256, 96, 4096, T(microkernel_avx512), T(sigmoid_avx512), T(small_gemm_avx512),
};

#undef MR
#undef NR

#endif
