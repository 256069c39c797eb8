/*
 * update.c: the gradient-descent step of the seed, W := W - alpha * dMSE/dW.
 *
 * fn_update is the plain step on a stored gradient. fn_fused_update never stores
 * the gradient: it is the GEMM W = 1 * W + (-alpha) * A_out^T delta, so the product
 * lands in W as it is computed, with no pass over a dW buffer.
 */
#ifndef REAL
#include "internal.h"

#define FN_SELF "update.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

void T(fn_update)(int64_t n, REAL *W, const REAL *dW, REAL alpha)
{
    for (int64_t i = 0; i < n; i++)
        W[i] -= alpha * dW[i];
}

fn_status T(fn_fused_update)(int64_t N, int64_t n_a, int64_t n_b, const REAL *A_out,
                             const REAL *delta, REAL *W, REAL alpha)
{
    return T(fn_gemm)(1, 0, n_a, n_b, N, -alpha, A_out, n_a, delta, n_b, 1, W, n_b, NULL);
}

#endif
