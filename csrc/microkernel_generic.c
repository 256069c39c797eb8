/*
 * microkernel_generic.c: the portable micro-kernel, plain C for any CPU (the
 * compiler vectorises the inner loop with whatever the baseline target has).
 *
 *   C[0:MR, 0:NR] = alpha * Ap Bp + beta * C     Ap: kc x MR packed, Bp: kc x NR packed
 */
#ifndef REAL
#include "internal.h"

#define ISA(name) name##_generic
#include "vector_body.h"

#define REAL float
#define T(name) FN_CAT(name, f32)
#define MR 4
#define NR 16
#include "microkernel_generic.c"
#undef REAL
#undef T
#undef MR
#undef NR

#define REAL double
#define T(name) FN_CAT(name, f64)
#define MR 4
#define NR 8
#include "microkernel_generic.c"
#undef REAL
#undef T
#undef MR
#undef NR

#else /* the body, compiled once per REAL */

static void T(microkernel_generic)(int64_t kc, const REAL *Ap, const REAL *Bp, REAL *C,
                                   int64_t ldc, REAL alpha, REAL beta)
{
    REAL acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = 0;
    for (int64_t p = 0; p < kc; p++) {
        const REAL *a = Ap + p * MR, *b = Bp + p * NR;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            C[i * ldc + j] = alpha * acc[i][j] + (beta == 0 ? 0 : beta * C[i * ldc + j]);
}

const T(fn_config) T(fn_config_generic) = {
    "generic", MR, NR, 256, 64, T(microkernel_generic), T(sigmoid_generic), T(small_gemm_generic),
};

#endif
