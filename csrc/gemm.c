/*
 * gemm.c: the matrix products of the seed (H_in = X W1, O_in = H_out W2, and the
 * backward products delta_O W2^T, H_out^T delta_O, X^T delta_H).
 *
 * The loops around the micro-kernel, after BLIS: for each block of N (nc), each
 * chunk of M, each block of K (kc), pack op(B) and op(A) into contiguous panels,
 * then run the micro-kernel on every mr x nr tile of C; on the last K block each
 * finished tile goes through the epilogue (bias, activation, derivative) while it
 * is still in L1. Only the micro-kernel is architecture-specific (microkernel_*.c);
 * block sizes live in its fn_config.
 *
 * Threads share tiles of C (never the K dimension), and block sizes do not depend
 * on the thread count, so each element of C is summed in one fixed order.
 */
#ifndef REAL
#include "internal.h"

#include <string.h>

/* A chunk of M packed at once: this many mc blocks. */
#define FN_MC_CHUNK 8

#define REAL float
#define T(name) FN_CAT(name, f32)
#include "gemm.c"
#undef REAL
#undef T

#define REAL double
#define T(name) FN_CAT(name, f64)
#include "gemm.c"
#undef REAL
#undef T

#else /* the body, compiled once per REAL */

void T(fn_gemm_naive)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                      const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta,
                      REAL *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            REAL sum = 0;
            for (int64_t p = 0; p < K; p++) {
                REAL a = trans_a ? A[p * lda + i] : A[i * lda + p];
                REAL b = trans_b ? B[j * ldb + p] : B[p * ldb + j];
                sum += a * b;
            }
            C[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * C[i * ldc + j]);
        }
    }
}

int64_t T(fn_gemm_workspace)(int64_t M, int64_t N, int64_t K)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    int64_t kc = K < cfg->kc ? K : cfg->kc;
    int64_t m_chunk = cfg->mc * FN_MC_CHUNK;
    int64_t mc = M < m_chunk ? M : m_chunk;
    int64_t nc = N < cfg->nc ? N : cfg->nc;
    if (kc < 1)
        kc = 1;
    return fn_round_up(mc, cfg->mr) * kc + fn_round_up(nc, cfg->nr) * kc + FN_ALIGN;
}

/* Ap[p*mr + i] = op(A)[i0 + i, p0 + p] for one mr-row panel, zero past row M. */
static void T(pack_A)(int trans_a, const REAL *A, int64_t lda, int64_t M, int64_t i0,
                      int64_t p0, int64_t kc, int64_t mr, REAL *Ap)
{
    int64_t m = M - i0 < mr ? M - i0 : mr;
    if (trans_a) {
        for (int64_t p = 0; p < kc; p++) {
            const REAL *src = A + (p0 + p) * lda + i0;
            REAL *dst = Ap + p * mr;
            for (int64_t i = 0; i < m; i++)
                dst[i] = src[i];
            for (int64_t i = m; i < mr; i++)
                dst[i] = 0;
        }
    } else {
        for (int64_t i = 0; i < m; i++) {
            const REAL *src = A + (i0 + i) * lda + p0;
            for (int64_t p = 0; p < kc; p++)
                Ap[p * mr + i] = src[p];
        }
        for (int64_t i = m; i < mr; i++)
            for (int64_t p = 0; p < kc; p++)
                Ap[p * mr + i] = 0;
    }
}

/* Bp[p*nr + j] = op(B)[p0 + p, j0 + j] for one nr-column panel, zero past column N. */
static void T(pack_B)(int trans_b, const REAL *B, int64_t ldb, int64_t N, int64_t j0,
                      int64_t p0, int64_t kc, int64_t nr, REAL *Bp)
{
    int64_t n = N - j0 < nr ? N - j0 : nr;
    if (trans_b) {
        for (int64_t j = 0; j < n; j++) {
            const REAL *src = B + (j0 + j) * ldb + p0;
            for (int64_t p = 0; p < kc; p++)
                Bp[p * nr + j] = src[p];
        }
        for (int64_t j = n; j < nr; j++)
            for (int64_t p = 0; p < kc; p++)
                Bp[p * nr + j] = 0;
    } else {
        for (int64_t p = 0; p < kc; p++) {
            const REAL *src = B + (p0 + p) * ldb + j0;
            REAL *dst = Bp + p * nr;
            for (int64_t j = 0; j < n; j++)
                dst[j] = src[j];
            for (int64_t j = n; j < nr; j++)
                dst[j] = 0;
        }
    }
}

/* The epilogue on the m x n tile of C at (i0, j0), C pointing at the tile. */
static void T(epilogue_tile)(const T(fn_epilogue) *ep, REAL *C, int64_t ldc, int64_t m,
                             int64_t n, int64_t i0, int64_t j0)
{
    for (int64_t i = 0; i < m; i++) {
        REAL *row = C + i * ldc;
        if (ep->bias) {
            const REAL *bias = ep->bias + j0;
            for (int64_t j = 0; j < n; j++)
                row[j] += bias[j];
        }
        if (ep->act != FN_NO_ACTIVATION)
            T(fn_activation)(ep->act, n, row, row, ep->threshold);
        if (ep->deriv_of)
            T(fn_derivative_mul)(ep->deriv_act, n, ep->deriv_of + (i0 + i) * ep->ld_deriv + j0,
                                 row);
    }
}

void T(fn_gemm_team)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                     const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                     int64_t ldc, const T(fn_epilogue) *ep, REAL *workspace)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t mr = cfg->mr, nr = cfg->nr, KC = cfg->kc, MC = cfg->mc, NC = cfg->nc;
    const int64_t m_chunk = MC * FN_MC_CHUNK;

    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { /* an empty sum: C = beta C, then the epilogue */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) {
            REAL *row = C + i * ldc;
            for (int64_t j = 0; j < N; j++)
                row[j] = beta == 0 ? 0 : beta * row[j];
            if (ep)
                T(epilogue_tile)(ep, row, ldc, 1, N, i, 0);
        }
        return;
    }

    /* Both panels start on a cache line. */
    REAL *Ap = (REAL *)(((uintptr_t)workspace + FN_ALIGN - 1) & ~(uintptr_t)(FN_ALIGN - 1));
    int64_t kc_max = K < KC ? K : KC;
    REAL *Bp = Ap + fn_round_up(M < m_chunk ? M : m_chunk, mr) * kc_max;

    if (M * N * K <= FN_SMALL_MAC && N <= FN_SMALL_N && K <= KC) {
        /* Too small to pay for packing and a team: one thread, row by row. */
#pragma omp single
        {
            const REAL *Bk = B;
            int64_t ldbk = ldb;
            if (trans_b) { /* the small kernel reads op(B) as K x N rows */
                for (int64_t p = 0; p < K; p++)
                    for (int64_t j = 0; j < N; j++)
                        Bp[p * N + j] = B[j * ldb + p];
                Bk = Bp;
                ldbk = N;
            }
            cfg->small_gemm(trans_a, M, N, K, alpha, A, lda, Bk, ldbk, beta, C, ldc);
            if (ep)
                T(epilogue_tile)(ep, C, ldc, M, N, 0, 0);
        }
        return;
    }

    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = N - jc < NC ? N - jc : NC;
        const int64_t n_panels = (nc + nr - 1) / nr;
        for (int64_t ic = 0; ic < M; ic += m_chunk) {
            const int64_t mcc = M - ic < m_chunk ? M - ic : m_chunk;
            const int64_t m_panels = (mcc + mr - 1) / mr;
            const int64_t panels_per_block = MC / mr;
            const int64_t m_blocks = (m_panels + panels_per_block - 1) / panels_per_block;
            for (int64_t pc = 0; pc < K; pc += KC) {
                const int64_t kc = K - pc < KC ? K - pc : KC;
                const int last = pc + kc >= K;
                const REAL beta_k = pc == 0 ? beta : (REAL)1;

#pragma omp for schedule(static) nowait
                for (int64_t jp = 0; jp < n_panels; jp++)
                    T(pack_B)(trans_b, B, ldb, N, jc + jp * nr, pc, kc, nr, Bp + jp * nr * kc);
#pragma omp for schedule(static)
                for (int64_t ip = 0; ip < m_panels; ip++)
                    T(pack_A)(trans_a, A, lda, M, ic + ip * mr, pc, kc, mr, Ap + ip * mr * kc);

#pragma omp for collapse(2) schedule(static)
                for (int64_t ib = 0; ib < m_blocks; ib++) {
                    for (int64_t jp = 0; jp < n_panels; jp++) {
                        const int64_t j0 = jc + jp * nr;
                        const int64_t n = N - j0 < nr ? N - j0 : nr;
                        const REAL *Bpanel = Bp + jp * nr * kc;
                        int64_t ip_end = (ib + 1) * panels_per_block;
                        if (ip_end > m_panels)
                            ip_end = m_panels;
                        for (int64_t ip = ib * panels_per_block; ip < ip_end; ip++) {
                            const int64_t i0 = ic + ip * mr;
                            const int64_t m = M - i0 < mr ? M - i0 : mr;
                            REAL *Ct = C + i0 * ldc + j0;
                            if (m == mr && n == nr) {
                                cfg->microkernel(kc, Ap + ip * mr * kc, Bpanel, Ct, ldc, alpha,
                                                 beta_k);
                            } else { /* an edge tile: compute in full, keep the valid part */
                                REAL tile[FN_MR_MAX * FN_NR_MAX]
                                    __attribute__((aligned(FN_ALIGN)));
                                cfg->microkernel(kc, Ap + ip * mr * kc, Bpanel, tile, nr, 1, 0);
                                for (int64_t i = 0; i < m; i++)
                                    for (int64_t j = 0; j < n; j++) {
                                        REAL v = alpha * tile[i * nr + j];
                                        if (beta_k != 0)
                                            v += beta_k * Ct[i * ldc + j];
                                        Ct[i * ldc + j] = v;
                                    }
                            }
                            if (last && ep)
                                T(epilogue_tile)(ep, Ct, ldc, m, n, i0, j0);
                        }
                    }
                }
            }
        }
    }
}

fn_status T(fn_gemm)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                     const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                     int64_t ldc, const T(fn_epilogue) *ep)
{
    if (M < 0 || N < 0 || K < 0)
        return FN_EINVAL;
    if (M == 0 || N == 0)
        return FN_OK;
    REAL *ws = fn_aligned_alloc(sizeof(REAL) * T(fn_gemm_workspace)(M, N, K));
    if (!ws)
        return FN_ENOMEM;
    int team = fn_team_size(2.0 * (double)M * (double)N * (double)K);
    FN_RUN_TEAM(team, T(fn_gemm_team)(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                      ldc, ep, ws));
    fn_aligned_free(ws);
    return FN_OK;
}

#endif
