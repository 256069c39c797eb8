/*
 * backprop.c: the chain rule of the seed in matrix form.
 *
 *   delta_H  = dMSE/dH_in = (delta_O W2^T) * act'(H_in)    (act' from H_out)
 *   dMSE/dW2 = H_out^T delta_O
 *   dMSE/dW1 = X^T delta_H
 *   dMSE/db  = sum over rows of delta                       (only with bias)
 *
 * The hidden delta is one GEMM (A B^T) whose epilogue multiplies each finished tile
 * by act'; the weight gradient is one GEMM (A^T B), parallel over tiles of dW, never
 * over the rows it sums, so it does not depend on the number of threads.
 */
#ifndef REAL
#include "internal.h"

#define FN_SELF "backprop.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

fn_status T(fn_hidden_delta)(int act, int64_t N, int64_t n_h, int64_t n_o, const REAL *delta_O,
                             const REAL *W, const REAL *H_out, REAL *delta_H)
{
    T(fn_epilogue) ep = {NULL, FN_NO_ACTIVATION, H_out, n_h, act, 0};
    return T(fn_gemm)(0, 1, N, n_h, n_o, 1, delta_O, n_o, W, n_o, 0, delta_H, n_h, &ep);
}

fn_status T(fn_weight_gradient)(int64_t N, int64_t n_a, int64_t n_b, const REAL *A_out,
                                const REAL *delta, REAL *dW)
{
    return T(fn_gemm)(1, 0, n_a, n_b, N, 1, A_out, n_a, delta, n_b, 0, dW, n_b, NULL);
}

/* Columns [j0, j1) of db = alpha * column sums of delta (row stride ld); accumulate:
 * db += .... Each column is summed over the rows in order, then alpha times the sum is
 * rounded before the addition (in each target's registers: target_body.h's bias_grad). */
void T(fn_bias_gradient_cols)(int64_t N, int64_t j0, int64_t j1, const REAL *delta, int64_t ld,
                              REAL *db, REAL alpha, int accumulate)
{
    if (j1 > j0)
        T(fn_config_get)()->bias_grad(N, j1 - j0, delta + j0, ld, db + j0, alpha, accumulate);
}

/* db = alpha * column sums of delta (accumulate: db += ...), parallel over columns. */
void T(fn_bias_gradient_team)(int64_t N, int64_t n_b, const REAL *delta, REAL *db, REAL alpha,
                              int accumulate)
{
    const int64_t chunk = 64;
    const int64_t n_chunks = (n_b + chunk - 1) / chunk;
#pragma omp for schedule(static)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t j1 = (c + 1) * chunk < n_b ? (c + 1) * chunk : n_b;
        T(fn_bias_gradient_cols)(N, c * chunk, j1, delta, n_b, db, alpha, accumulate);
    }
}

void T(fn_bias_gradient)(int64_t N, int64_t n_b, const REAL *delta, REAL *db)
{
    FN_RUN_TEAM(1, T(fn_bias_gradient_team)(N, n_b, delta, db, 1, 0));
}

#endif
