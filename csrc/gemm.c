/*
 * gemm.c: the matrix products of the seed (H_in = X W1, O_in = H_out W2, and the
 * backward products delta_O W2^T, H_out^T delta_O, X^T delta_H).
 *
 * The loops around the micro-kernel, after BLIS, arranged so that threads never wait
 * for each other inside a product: C is cut into items of mc rows x nr columns; each
 * thread takes a contiguous run of items and runs the micro-kernel over K in blocks of
 * kc (the kc x nr slice of B stays in L1, the mc rows of A in L2). Neither operand is
 * copied when it can be read in place (like BLIS's kernels for skinny problems): the
 * micro-kernel reads op(A) through its strides and B's rows directly; only op(B) = B^T
 * and a partial last panel of columns are packed into the thread's own buffer; a
 * partial last micro-panel of rows (m < mr), and a last panel of at most nr / 2
 * columns, go through the edge kernel, which runs only those rows and the half panel
 * (edge_rows, with the micro-kernel's sums). At minibatch sizes
 * these copies (of the whole batch, of the whole weight matrix) were the largest cost
 * after the FMAs. On the last K block each finished tile goes through the epilogue
 * (bias, activation, derivative) while it is still in L1. Only the micro-kernel is
 * architecture-specific (microkernel_*.c); block sizes live in its fn_config.
 *
 * Each element of C belongs to one item and is summed over K in one fixed order, and
 * the blocking depends on the shapes only, so results do not depend on the number of
 * threads.
 */
#ifndef REAL
#include "internal.h"

#include <omp.h>
#include <string.h>

/* op(A) up to this size is taken to stay in L2 while a thread walks its columns. */
#define FN_A_RESIDENT_BYTES (512 * 1024)

/* K is walked in super-blocks of at most this many: a thread's packed B panel is this
 * many rows of nr values. */
#define FN_K_SUPER 4096

/* Column panels per item when C has fewer rows than the micro-tile (predicting a few
 * examples, training on batches of 1 to 7): the edge kernel runs one row against up to
 * eight panels at once, or it waits on its two FMA chains. */
#define FN_EDGE_GROUP 8

#define FN_SELF "gemm.c"
#include "instantiate.h"

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

/* The K block: at most cfg->kc, and K split into equal blocks (rounded up to 8) so that no
 * block is a sliver (K = 784 runs as 4 x 196, not 3 x 256 + 16). Depends on K only. */
static int64_t T(k_block)(const T(fn_config) *cfg, int64_t K)
{
    int64_t n_blocks = (K + cfg->kc - 1) / cfg->kc;
    if (n_blocks <= 1)
        return cfg->kc;
    int64_t kc = fn_round_up((K + n_blocks - 1) / n_blocks, 8);
    return kc < cfg->kc ? kc : cfg->kc;
}

/* Per thread: a ks x nr panel of op(B) (ks = min(K, super block)) and an edge tile of C
 * (mr x FN_EDGE_GROUP nr); the B part is also large enough for the small path's padded
 * op(B). */
static int64_t T(thread_workspace)(const T(fn_config) *cfg, int64_t N, int64_t K)
{
    int64_t ks = K < FN_K_SUPER ? K : FN_K_SUPER;
    int64_t nb = fn_round_up(N < FN_SMALL_N ? N : FN_SMALL_N, 16);
    if (ks < 1)
        ks = 1;
    return ks * (nb > cfg->nr ? nb : cfg->nr) +
           fn_round_up(cfg->mr * cfg->nr * FN_EDGE_GROUP, FN_ALIGN) + 2 * FN_ALIGN;
}

int64_t T(fn_gemm_workspace)(int64_t M, int64_t N, int64_t K, int team)
{
    (void)M;
    return (int64_t)team * T(thread_workspace)(T(fn_config_get)(), N, K);
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

/* The epilogue on the m x n tile of C at (i0, j0), C pointing at the tile. A tile whose
 * rows are contiguous (ldc == n: small products) is handled as one long row. */
void T(fn_epilogue_tile)(const T(fn_epilogue) *ep, REAL *C, int64_t ldc, int64_t m,
                         int64_t n, int64_t i0, int64_t j0)
{
    if (ep->bias)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                C[i * ldc + j] += ep->bias[j0 + j];
    const int flat = ldc == n && (!ep->deriv_of || ep->ld_deriv == n);
    const int64_t rows = flat ? 1 : m, len = flat ? m * n : n;
    for (int64_t i = 0; i < rows; i++) {
        REAL *row = C + i * ldc;
        if (ep->act != FN_NO_ACTIVATION)
            T(fn_activation)(ep->act, len, row, row, ep->threshold);
        if (ep->deriv_of)
            T(fn_derivative_mul)(ep->deriv_act, len, ep->deriv_of + (i0 + i) * ep->ld_deriv + j0,
                                 row);
    }
}

/* Rows i0 .. i0 + m of C by the direct path: op(A) read in place, and B too when its
 * rows are a multiple of 16 entries (the small kernel's width); otherwise op(B) copied to
 * zero-padded rows of such a multiple in buf. The copy of a digits network's W1 took
 * half of predicting one row. */
static void T(small_rows)(const T(fn_config) *cfg, int trans_a, int trans_b, int64_t i0,
                          int64_t m, int64_t N, int64_t K, REAL alpha, const REAL *A,
                          int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                          int64_t ldc, const T(fn_epilogue) *ep, REAL *buf)
{
    const REAL *Bp = B;
    int64_t NP = ldb;
    if (trans_b || N % 16) { /* else B's rows are whole vectors: read in place */
        REAL *dst = (REAL *)(((uintptr_t)buf + FN_ALIGN - 1) & ~(uintptr_t)(FN_ALIGN - 1));
        Bp = dst;
        NP = (N + 15) & ~(int64_t)15;
        for (int64_t p = 0; p < K; p++, dst += NP) {
            for (int j = 0; j < 16; j++) /* the padding: a fixed count, no memset call */
                dst[NP - 16 + j] = 0;
            for (int64_t j = 0; j < N; j++)
                dst[j] = trans_b ? B[j * ldb + p] : B[p * ldb + j];
        }
    }
    const REAL *Ai = trans_a ? A + i0 : A + i0 * lda;
    cfg->small_gemm(trans_a, m, N, K, alpha, Ai, lda, Bp, NP, beta, C + i0 * ldc, ldc);
    if (ep)
        T(fn_epilogue_tile)(ep, C + i0 * ldc, ldc, m, N, i0, 0);
}

/* The direct path's products: small, or narrower than the micro-tile, with K in one block. */
static int T(direct)(const T(fn_config) *cfg, int64_t M, int64_t N, int64_t K)
{
    return N <= FN_SMALL_N && K <= cfg->kc && (M * N * K <= FN_SMALL_MAC || N < cfg->nr);
}

int T(fn_gemm_blocking)(int64_t M, int64_t N, int64_t K, int64_t *kc, int64_t *ks)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    *kc = T(k_block)(cfg, K);
    *ks = FN_K_SUPER;
    return T(direct)(cfg, M, N, K);
}

void T(fn_gemm_team)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                     const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                     int64_t ldc, const T(fn_epilogue) *ep, REAL *workspace)
{
    const T(fn_config) *cfg = T(fn_config_get)();

    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) { /* an empty sum: C = beta C, then the epilogue */
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) {
            REAL *row = C + i * ldc;
            for (int64_t j = 0; j < N; j++)
                row[j] = beta == 0 ? 0 : beta * row[j];
            if (ep)
                T(fn_epilogue_tile)(ep, row, ldc, 1, N, i, 0);
        }
        return;
    }

    /* This thread's buffers, each starting on a cache line. */
    REAL *mine = workspace + (int64_t)omp_get_thread_num() * T(thread_workspace)(cfg, N, K);
    if (T(direct)(cfg, M, N, K)) {
        /* The direct path. Too small to pay for a team: one thread. Narrower than the
         * micro-tile (the output layer's products, N = 10 on mnist, where an nr = 32 tile
         * would be two thirds padding): each thread takes a run of whole mr-row groups,
         * and copies op(B) (at most kc x 256) into its own buffer, which costs less than
         * the barrier sharing one copy would. Either way the result of each row is the
         * same. */
        if (M * N * K <= FN_SMALL_MAC) {
#pragma omp single
            T(small_rows)(cfg, trans_a, trans_b, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                          ep, mine);
        } else {
            const int64_t groups = (M + cfg->mr - 1) / cfg->mr;
            const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
            const int64_t i0 = t * groups / team * cfg->mr;
            const int64_t i1 = (t + 1) * groups / team * cfg->mr;
            if (i0 < M)
                T(small_rows)(cfg, trans_a, trans_b, i0, (i1 < M ? i1 : M) - i0, N, K, alpha, A,
                              lda, B, ldb, beta, C, ldc, ep, mine);
#pragma omp barrier
        }
        return;
    }

    const int64_t mr = cfg->mr, nr = cfg->nr, MC = cfg->mc;
    const int64_t KC = T(k_block)(cfg, K);
    const int64_t KS = K < FN_K_SUPER ? K : FN_K_SUPER;
    REAL *Bp = (REAL *)(((uintptr_t)mine + FN_ALIGN - 1) & ~(uintptr_t)(FN_ALIGN - 1));
    REAL *tile = Bp + fn_round_up(KS * nr, FN_ALIGN); /* an edge tile, mr x pw */
    /* op(A)[i, p] = A[i * rs_a + p * cs_a] */
    const int64_t rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;

    /* Column chunks: single panels of nr columns, or with fewer rows than mr and B read
     * in place, FN_EDGE_GROUP of them (pw columns); the full panels' chunks first, then a
     * partial last panel alone (packed). */
    const int64_t pw = M < mr && !trans_b ? FN_EDGE_GROUP * nr : nr;
    const int64_t full = N - N % nr;
    const int64_t n_panels = (full + pw - 1) / pw + (full < N), m_panels = (M + mr - 1) / mr;
    /* Row blocks: the M / mr micro-panels of rows dealt out evenly (so items cost the
     * same and threads finish together), at most mc rows each, and enough blocks to give
     * every thread two items. Which rows a thread computes changes no result. */
    const int64_t want_blocks = (2 * omp_get_num_threads() + n_panels - 1) / n_panels;
    int64_t m_blocks = (m_panels + MC / mr - 1) / (MC / mr);
    m_blocks = m_blocks > want_blocks ? m_blocks : want_blocks;
    m_blocks = m_blocks < m_panels ? m_blocks : m_panels;
    /* Item order. When op(A) fits in L2 (minibatch products), column panels are outermost,
     * so a thread owns whole columns of C: the columns of W it updates in X^T delta are
     * the columns it reads in the next batch's X W, and the columns of delta_H it writes
     * are those it reads, and both stay in its own cache. A large op(A) (predict on a
     * whole data set) is streamed once instead: row blocks outermost. */
    const int col_major = M * K * (int64_t)sizeof(REAL) <= FN_A_RESIDENT_BYTES;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < m_blocks * n_panels; item++) {
        const int64_t ib = col_major ? item % m_blocks : item / n_panels;
        const int64_t jp = col_major ? item / m_blocks : item % n_panels;
        const int64_t i_start = ib * m_panels / m_blocks * mr;
        const int64_t i_end = (ib + 1) * m_panels / m_blocks * mr;
        const int64_t mb = (i_end < M ? i_end : M) - i_start;
        const int64_t j0 = jp * pw < full ? jp * pw : full;
        const int64_t n = j0 < full ? (full - j0 < pw ? full - j0 : pw) : N - full;
        for (int64_t ks = 0; ks < K; ks += KS) {
            const int64_t ks_len = K - ks < KS ? K - ks : KS;
            /* B's rows are read in place unless op(B) = B^T or the panel is partial. */
            const int packed = trans_b || n < nr;
            if (packed)
                for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
                    const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
                    T(pack_B)(trans_b, B, ldb, N, j0, pc, kc, nr, Bp + (pc - ks) * nr);
                }
            const int64_t rs_b = packed ? nr : ldb;
            for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
                const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
                const int last = pc + kc >= K;
                const REAL beta_k = pc == 0 ? beta : (REAL)1;
                const REAL *Bpanel = packed ? Bp + (pc - ks) * nr : B + pc * ldb + j0;
                for (int64_t i0 = i_start; i0 < i_start + mb; i0 += mr) {
                    const int64_t m = i_start + mb - i0 < mr ? i_start + mb - i0 : mr;
                    REAL *Ct = C + i0 * ldc + j0;
                    if (m == mr && n == nr) {
                        cfg->microkernel(kc, A + i0 * rs_a + pc * cs_a, rs_a, cs_a, Bpanel, rs_b,
                                         Ct, ldc, alpha, beta_k);
                    } else { /* an edge tile: compute into the tile, keep the valid part */
                        if (m == mr && 2 * n > nr) /* then pw == nr */
                            cfg->microkernel(kc, A + i0 * rs_a + pc * cs_a, rs_a, cs_a, Bpanel,
                                             rs_b, tile, pw, 1, 0);
                        else /* fewer rows, or at most half a panel of columns */
                            cfg->edge_rows(m, 2 * n > nr ? (n + nr - 1) / nr * 2 : 1, kc,
                                           A + i0 * rs_a + pc * cs_a, rs_a, cs_a, Bpanel, rs_b,
                                           tile, pw);
                        for (int64_t i = 0; i < m; i++)
                            for (int64_t j = 0; j < n; j++) {
                                REAL v;
                                if (beta_k != 0)
                                    FN_SCALE_ADD(v, alpha, tile[i * pw + j], beta_k,
                                                 Ct[i * ldc + j]);
                                else
                                    v = alpha * tile[i * pw + j];
                                Ct[i * ldc + j] = v;
                            }
                    }
                    if (last && ep)
                        T(fn_epilogue_tile)(ep, Ct, ldc, m, n, i0, j0);
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
    int team = fn_team_size(2.0 * (double)M * (double)N * (double)K);
    REAL *ws = fn_aligned_alloc(sizeof(REAL) * T(fn_gemm_workspace)(M, N, K, team));
    if (!ws)
        return FN_ENOMEM;
    FN_RUN_TEAM(team, T(fn_gemm_team)(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                      ldc, ep, ws));
    fn_aligned_free(ws);
    return FN_OK;
}

#endif
