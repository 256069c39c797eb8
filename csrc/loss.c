/*
 * loss.c: the seed's cost and the output delta.
 *
 *   MSE     = 1/N sum_e sum_n (O_out[e,n] - Y[e,n])^2     N = number of rows (examples)
 *   delta_O = dMSE/dO_in = (2/N) (O_out - Y) * act'(O_in)  (elementwise, act' from O_out)
 *
 * N counts examples, as in the seed ("squared error per example, summed over the
 * outputs"); PyTorch's MSELoss(reduction="mean") would divide by N * n_out instead.
 * Sums are taken per row, then over rows in order, in double: the result does not
 * depend on the number of threads.
 */
#ifndef REAL
#include "internal.h"

#include <stdlib.h>

#define FN_SELF "loss.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

double T(fn_mse)(int64_t N, int64_t n_out, const REAL *O_out, const REAL *Y)
{
    double total = 0;
    for (int64_t e = 0; e < N; e++) {
        double row = 0;
        for (int64_t n = 0; n < n_out; n++) {
            double d = (double)O_out[e * n_out + n] - (double)Y[e * n_out + n];
            row += d * d;
        }
        total += row;
    }
    return N > 0 ? total / (double)N : 0.0;
}

/* row_loss[e] = sum_n (O_out[e,n] - Y[e,n])^2 for rows [e0, e1), in double, as four
 * partial sums (n mod 4) added pairwise at the end: one chain of n_out dependent
 * additions per row was most of delta_O's time (digits' 10 outputs, a batch of 32 rows:
 * delta_O and the losses 930 -> 750 cycles). The order is fixed, so the sums do not
 * depend on the team. */
static void T(row_losses)(int64_t e0, int64_t e1, int64_t n_out, const REAL *O_out,
                          int64_t ld_o, const REAL *Y, int64_t ld_y, double *row_loss)
{
    for (int64_t e = e0; e < e1; e++) {
        const REAL *o = O_out + e * ld_o, *y = Y + e * ld_y;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#define SQ(n) ((double)(o[n] - y[n]) * (double)(o[n] - y[n]))
        int64_t n = 0;
        for (; n + 4 <= n_out; n += 4)
            s0 += SQ(n), s1 += SQ(n + 1), s2 += SQ(n + 2), s3 += SQ(n + 3);
        /* the last n_out mod 4 into s0, s1, s2 (named sums, not an array indexed by a
         * variable, which lived on the stack: XOR's one output went through memory) */
        if (n < n_out)
            s0 += SQ(n);
        if (n + 1 < n_out)
            s1 += SQ(n + 1);
        if (n + 2 < n_out)
            s2 += SQ(n + 2);
#undef SQ
        row_loss[e] = (s0 + s1) + (s2 + s3);
    }
}

void T(fn_output_delta_rows)(int act, REAL scale, int64_t e0, int64_t e1, int64_t n_out,
                             const REAL *O_out, int64_t ld_o, const REAL *Y, int64_t ld_y,
                             REAL *delta_O, int64_t ld_d, double *row_loss)
{
    T(row_losses)(e0, e1, n_out, O_out, ld_o, Y, ld_y, row_loss);
    for (int64_t e = e0; e < e1; e++) {
        const REAL *o = O_out + e * ld_o;
        const REAL *y = Y + e * ld_y;
        REAL *d = delta_O + e * ld_d;
        if (act == FN_SIGMOID) /* inline: a call per row cost more than the row (n_out 10) */
            for (int64_t n = 0; n < n_out; n++)
                d[n] = scale * (o[n] - y[n]) * (o[n] * (1 - o[n]));
        else {
            for (int64_t n = 0; n < n_out; n++)
                d[n] = scale * (o[n] - y[n]);
            T(fn_derivative_mul)(act, n_out, o, d);
        }
    }
}

void T(fn_output_delta_team)(int act, int64_t N, int64_t n_out, const REAL *O_out,
                             const REAL *Y, REAL *delta_O, double *row_loss)
{
    const REAL scale = (REAL)(2.0 / (double)N);
#pragma omp for schedule(static)
    for (int64_t e = 0; e < N; e++)
        T(fn_output_delta_rows)(act, scale, e, e + 1, n_out, O_out, n_out, Y, n_out, delta_O,
                                n_out, row_loss);
}

fn_status T(fn_output_delta)(int act, int64_t N, int64_t n_out, const REAL *O_out,
                             const REAL *Y, REAL *delta_O, double *loss)
{
    *loss = 0;
    if (N <= 0)
        return FN_OK;
    double *row_loss = fn_malloc(sizeof(double) * (size_t)N);
    if (!row_loss)
        return FN_ENOMEM;
    FN_RUN_TEAM(1, T(fn_output_delta_team)(act, N, n_out, O_out, Y, delta_O, row_loss));
    double total = 0;
    for (int64_t e = 0; e < N; e++)
        total += row_loss[e];
    free(row_loss);
    *loss = total / (double)N;
    return FN_OK;
}

#endif
