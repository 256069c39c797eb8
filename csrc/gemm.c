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
#include <stdatomic.h>
#include <string.h>

/* op(A) up to this size is taken to stay in L2 while a thread walks its columns. */
#define FN_A_RESIDENT_BYTES (512 * 1024)

/* K is walked in super-blocks of at most this many: a thread's packed B panel is this
 * many rows of nr values, and the packed path's row blocks hold as many rows of op(A)
 * as fit half of L2 at this depth. Doubles take one K block: at 4096 (K whole, for
 * wide's 1024) their row blocks were 128 rows, every item copied all its panels of B
 * again, and 256 x 1024 x 1024 ran at 130 GFLOP/s on two threads (157 at one K block);
 * wide's float64 epoch 750 -> 718 ms (C, 6 rounds). Floats take K whole up to 1024 (at
 * 256, wide's epoch was 3-5% slower on one and two threads, 5 alternating rounds): their
 * row blocks are twice as tall. Past that, at 4096, a row block was 64 rows deep in a
 * 512 KB panel of B, and long-K products ran at 0.6-0.7x NumPy's rate; at 1024 (two
 * threads, GFLOP/s, against NumPy in the same run): 4096^2 193 -> 266 (339), 512 x 4096
 * x 4096 192 -> 255 (288), 1024 x 1024 x 4096 246 -> 316 (326); 256 and 512 within noise
 * of 1024. */
#define FN_K_SUPER (sizeof(REAL) == 8 ? 256 : 1024)

/* The packed path's block of op(B), for a thread with two row blocks or more in a run of
 * columns: its panels are copied once per super-block and used by each row block in
 * turn (op(A)'s rows copied again for each such block of columns instead), as BLIS keeps
 * a kc x nc block of B in L3. */
#define FN_B_BLOCK_BYTES ((int64_t)4 << 20)

/* Column panels per item when C has fewer rows than the micro-tile (predicting a few
 * examples, training on batches of 1 to 7): the edge kernel runs one row against up to
 * eight panels at once, or it waits on its two FMA chains. */
#define FN_EDGE_GROUP 8

/* The packed path takes products of at least this many columns (fn_gemm_team). */
#define FN_PACK_MIN_N 256
/* pack_A with op(A) = A^T copies this many rows of A at a time into each micro-panel */
#define FN_PACK_A_ROWS 4

/* pack_B prefetches the row of op(B) this many rows ahead. */
#define FN_PACK_AHEAD 8

static int64_t fn_gcd(int64_t a, int64_t b)
{
    while (b) {
        const int64_t r = a % b;
        a = b, b = r;
    }
    return a;
}

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

/* The depth of K's super-blocks: min(K, FN_K_SUPER), at least 1 (the packed panels'
 * and the workspace's depth). */
static int64_t T(super_depth)(int64_t K)
{
    return K < 1 ? 1 : K < FN_K_SUPER ? K : FN_K_SUPER;
}

/* The packed path's rows per item: as many as keep its packed block of op(A) (rows x
 * min(K, super-block)) within half of L2, at least mc, a multiple of mr. Every item packs
 * its panels of op(B) again, so fewer, taller items copy B fewer times (wide's X W1 on
 * one thread: 2 items of 128 rows took 855 ms an epoch, 1 of 256 rows 830; of 96 rows,
 * 930). */
static int64_t T(packed_rows)(const T(fn_config) *cfg, int64_t K)
{
    const int64_t rows = fn_l2_bytes() / 2 / (T(super_depth)(K) * (int64_t)sizeof(REAL)) /
                         cfg->mr * cfg->mr;
    return rows > cfg->mc ? rows : fn_round_up(cfg->mc, cfg->mr);
}

/* The rows a thread's packed block of op(A) holds: half as many again as an item's, for a
 * share of rows split by the threads' speeds (up to 1.5x an even one, split_fractions):
 * such a share goes through in one piece, its panels of op(B) copied once. */
static int64_t T(packed_rows_held)(const T(fn_config) *cfg, int64_t K)
{
    return fn_round_up(T(packed_rows)(cfg, K) * 3 / 2, cfg->mr);
}

/* Columns of op(B) in the packed path's block: FN_B_BLOCK_BYTES at K's super-block
 * depth, in whole panels, at least one and at most N's (so the block is never larger
 * than a copy of op(B)). */
static int64_t T(b_block_cols)(const T(fn_config) *cfg, int64_t N, int64_t K)
{
    const int64_t ks = T(super_depth)(K);
    const int64_t most = (N + cfg->nr - 1) / cfg->nr;
    int64_t panels = FN_B_BLOCK_BYTES / (ks * (int64_t)sizeof(REAL) * cfg->nr);
    panels = panels < most ? panels : most;
    return (panels > 1 ? panels : 1) * cfg->nr;
}

/* Teams of at most this many split the packed path by their measured speeds (one
 * double a thread in the workspace's FN_GEMM_CTL_BYTES). */
#define FN_GEMM_WEIGHTED_MAX ((int64_t)(FN_GEMM_CTL_BYTES / sizeof(double)))

/* cum[0 .. team]: where each thread's share of a product starts, as fractions, from the
 * threads' measured rates (an even split while any is unmeasured); a share stays within
 * half and one and a half times an even one, so one slow measurement cannot starve a
 * thread or load it with everything. Every thread of the team calls it; it ends with the
 * barrier after which a thread may write its own rate (record_speed), so all read the
 * same rates and take the same split. */
static void T(split_fractions)(_Atomic double *speed, int64_t team, double *cum)
{
    const double forced = fn_gemm_forced_share(), even = 1.0 / (double)team;
    double w[FN_GEMM_WEIGHTED_MAX], total = 0, sum = 0;
    int known = 1;
    for (int64_t t = 0; t < team; t++) {
        w[t] = atomic_load_explicit(&speed[t], memory_order_relaxed);
        known &= w[t] > 0;
        total += w[t];
    }
    for (int64_t t = 0; t < team; t++) {
        if (forced >= 0) /* tests: thread 0's share as given, the rest even */
            w[t] = t == 0 ? forced : (1 - forced) / (double)(team - 1);
        else {
            w[t] = known ? w[t] / total : even;
            w[t] = w[t] < 0.5 * even ? 0.5 * even : w[t] > 1.5 * even ? 1.5 * even : w[t];
        }
        sum += w[t];
    }
    cum[0] = 0;
    for (int64_t t = 0; t < team; t++)
        cum[t + 1] = cum[t] + w[t] / sum;
    cum[team] = 1;
#pragma omp barrier
}

/* Where thread k's share of `units` starts (cum: split_fractions'). */
static inline int64_t T(split_at)(const double *cum, int64_t k, int64_t units)
{
    return (int64_t)(cum[k] * (double)units + 0.5);
}

/* Averages a thread's new rate (flop in seconds) into its entry of the split's speeds. */
static void T(record_speed)(_Atomic double *speed, int64_t t, double flop, double seconds)
{
    if (seconds <= 0)
        return;
    const double rate = flop / seconds;
    const double old = atomic_load_explicit(&speed[t], memory_order_relaxed);
    atomic_store_explicit(&speed[t], old > 0 ? 0.5 * old + 0.5 * rate : rate,
                          memory_order_relaxed);
}

/* The packed path: products with at least FN_PACK_MIN_N columns and two micro-panels of
 * rows, where copying both operands into contiguous panels pays for itself; see
 * fn_gemm_team. (Narrower products, such as mnist's [784,128,10] layers, ran 5-20%
 * faster reading the operands in place.) Depends on the shape only. */
static int T(packed_path)(const T(fn_config) *cfg, int64_t M, int64_t N, int64_t K)
{
    (void)K;
    return M >= 2 * cfg->mr && N >= FN_PACK_MIN_N;
}

/* Per thread: a ks x nr panel of op(B) (ks = min(K, super block)) and an edge tile of C
 * (mr x FN_EDGE_GROUP nr); the B part is also large enough for the small path's padded
 * op(B); on the packed path, a packed_rows x ks block of op(A) besides, and with more rows
 * than that, a ks x b_block_cols block of op(B). */
static int64_t T(thread_workspace)(const T(fn_config) *cfg, int64_t M, int64_t N, int64_t K)
{
    const int64_t ks = T(super_depth)(K);
    const int64_t nb = fn_round_up(N < FN_SMALL_N ? N : FN_SMALL_N, 16);
    const int packed = T(packed_path)(cfg, M, N, K);
    const int64_t a_block = packed ? fn_round_up(T(packed_rows_held)(cfg, K) * ks, FN_ALIGN) : 0;
    /* the block of op(B), where a run of columns can take two row blocks */
    const int64_t b_block =
        packed && M > T(packed_rows)(cfg, K) ? ks * T(b_block_cols)(cfg, N, K) : 0;
    return ks * (nb > cfg->nr ? nb : cfg->nr) +
           fn_round_up(cfg->mr * cfg->nr * FN_EDGE_GROUP, FN_ALIGN) + a_block + b_block +
           3 * FN_ALIGN;
}

int64_t T(fn_gemm_workspace)(int64_t M, int64_t N, int64_t K, int team)
{
    return (int64_t)(FN_GEMM_CTL_BYTES / sizeof(REAL)) +
           (int64_t)team * T(thread_workspace)(T(fn_config_get)(), M, N, K);
}

/* Bp[p*nr + j] = op(B)[p0 + p, j0 + j] for one nr-column panel, zero past column N. */
static void T(pack_B)(int trans_b, const REAL *B, int64_t ldb, int64_t N, int64_t j0,
                      int64_t p0, int64_t kc, int64_t nr, REAL *Bp)
{
    int64_t n = N - j0 < nr ? N - j0 : nr;
    if (trans_b) {
        /* op(B) = B^T: blocks transposed in registers (fn_config's transpose); one value at
         * a time, each store went to another line of the panel (delta_H = delta_O W2^T on
         * wide: 2.4% of the epoch in this copy) */
        T(fn_config_get)()->transpose(kc, 0, n, B + j0 * ldb + p0, ldb, Bp, nr);
        for (int64_t p = 0; p < kc && n < nr; p++)
            for (int64_t j = n; j < nr; j++)
                Bp[p * nr + j] = 0;
    } else {
        for (int64_t p = 0; p < kc; p++) {
            const REAL *src = B + (p0 + p) * ldb + j0;
            REAL *dst = Bp + p * nr;
            /* Rows far apart (4 KB in a 1024-wide float layer) each start a new page,
             * where the hardware prefetchers stop: ask for the row FN_PACK_AHEAD on (the
             * wide epoch: 860 -> 820 ms on one thread). A prefetch past B's end does not
             * fault. */
            const uintptr_t ahead = (uintptr_t)src + FN_PACK_AHEAD * ldb * sizeof(REAL);
            __builtin_prefetch((const void *)ahead);
            __builtin_prefetch((const void *)(ahead + (nr - 1) * sizeof(REAL)));
            for (int64_t j = 0; j < n; j++)
                dst[j] = src[j];
            for (int64_t j = n; j < nr; j++)
                dst[j] = 0;
        }
    }
}

/* The packed path's copy of rows [0, mb) x columns [0, kc) of op(A) (from A at the block's
 * first element; op(A)[i, p] = A[i lda + p], or A[p lda + i] with trans_a) into mr-row
 * micro-panels: Ap[g kc mr + p mr + i] = op(A)[g mr + i, p]; or gathered (G non-NULL, A
 * unused): op(A)[i, p] = G[i][g_col + p], or with trans_a G[p][g_col + i] (a shuffled
 * batch's rows of X, read in place). Rows past mb in the last panel are left as they are
 * (never stored to C). Each source row is read from start to end: with trans_a, row p of
 * A (a row of the batch, X^T's column) feeds every panel at once; one panel at a time
 * read 32 bytes from each of kc rows 4 KB apart (the same few L1 sets), then the next 32
 * bytes (the wide epoch's update products spent 4% of the epoch there). */
static void T(pack_A)(int trans_a, const REAL *A, int64_t lda, const REAL *const *G,
                      int64_t g_col, int64_t mb, int64_t kc, int64_t mr, REAL *Ap)
{
    if (trans_a) {
        /* The AVX-512 tile's whole panels by copies of constant size, FN_PACK_A_ROWS rows
         * of A at a time, so that each panel gets whole cache lines (a row at a time, each
         * copy wrote half a line, the panels' lines kc * 32 bytes apart: the same L1 set,
         * evicted before the next row wrote the other half) */
        const int64_t full = mr == 8 ? mb / 8 : 0;
        int64_t p = 0;
        for (; full && p + FN_PACK_A_ROWS <= kc; p += FN_PACK_A_ROWS) {
            const REAL *rows[FN_PACK_A_ROWS];
            for (int q = 0; q < FN_PACK_A_ROWS; q++)
                rows[q] = G ? G[p + q] + g_col : A + (p + q) * lda;
            for (int64_t g = 0; g < full; g++)
                for (int q = 0; q < FN_PACK_A_ROWS; q++)
                    memcpy(Ap + g * kc * 8 + (p + q) * 8, rows[q] + g * 8, sizeof(REAL) * 8);
        }
        for (; full && p < kc; p++) {
            const REAL *src = G ? G[p] + g_col : A + p * lda;
            for (int64_t g = 0; g < full; g++)
                memcpy(Ap + g * kc * 8 + p * 8, src + g * 8, sizeof(REAL) * 8);
        }
        /* the other panels (all of them with other tiles) a value at a time */
        for (p = 0; full * mr < mb && p < kc; p++) {
            const REAL *src = G ? G[p] + g_col : A + p * lda;
            for (int64_t g = full; g * mr < mb; g++) {
                const int64_t m = mb - g * mr < mr ? mb - g * mr : mr;
                for (int64_t i = 0; i < m; i++)
                    Ap[g * kc * mr + p * mr + i] = src[g * mr + i];
            }
        }
        return;
    }
    for (int64_t g = 0; g * mr < mb; g++) {
        const REAL *src = A + g * mr * lda;
        REAL *dst = Ap + g * kc * mr;
        const int64_t m = mb - g * mr < mr ? mb - g * mr : mr;
        if (G) { /* gathered: the rows G[g mr + i] from column g_col */
            const REAL *const *Gg = G + g * mr;
            if (m == 8 && mr == 8)
                for (int64_t p = 0; p < kc; p++)
                    for (int i = 0; i < 8; i++)
                        dst[p * 8 + i] = Gg[i][g_col + p];
            else
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t i = 0; i < m; i++)
                        dst[p * mr + i] = Gg[i][g_col + p];
        } else if (m == 8 && mr == 8) { /* the AVX-512 tile: a constant count to unroll */
            for (int64_t p = 0; p < kc; p++)
                for (int i = 0; i < 8; i++)
                    dst[p * 8 + i] = src[i * lda + p];
        } else {
            for (int64_t p = 0; p < kc; p++)
                for (int64_t i = 0; i < m; i++)
                    dst[p * mr + i] = src[i * lda + p];
        }
    }
}

/* The epilogue on the m x n tile of C at (i0, j0), C pointing at the tile. A tile whose
 * rows are contiguous (ldc == n: small products) is handled as one long row. */
void T(fn_epilogue_tile)(const T(fn_epilogue) *ep, REAL *C, int64_t ldc, int64_t m,
                         int64_t n, int64_t i0, int64_t j0)
{
    if (ep->bias)
        T(fn_config_get)()->add_bias(m, n, C, ldc, ep->bias + j0);
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

/* Rows i0 .. i0 + m of C by the direct path: op(A) and B read in place (the small
 * kernel reads no value past a row's N: copying a digits network's W1 to rows padded to
 * 16 values took half of predicting one row, and copying W2, 128 x 10, 0.4 us of the 1.5
 * of a one-row forward through [16, 128, 10]), B^T copied to rows of a multiple
 * of 16 values in buf, by blocks transposed in registers (fn_config's transpose): one
 * value at a time, the copy of W1^T (256 x 128) for a hidden delta of [784, 256, 128, 10]
 * took 45% of an epoch in batches of one row (C, one thread). */
static void T(small_rows)(const T(fn_config) *cfg, int trans_a, int trans_b, int64_t i0,
                          int64_t m, int64_t N, int64_t K, REAL alpha, const REAL *A,
                          int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                          int64_t ldc, const T(fn_epilogue) *ep, REAL *buf)
{
    const REAL *Bp = B;
    int64_t NP = ldb;
    if (trans_b) { /* dst[p NP + j] = B[j ldb + p] */
        REAL *dst = (REAL *)(((uintptr_t)buf + FN_ALIGN - 1) & ~(uintptr_t)(FN_ALIGN - 1));
        Bp = dst;
        NP = (N + 15) & ~(int64_t)15;
        cfg->transpose(K, 0, N, B, ldb, dst, NP);
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

void T(fn_gemm_rows)(int trans_a, int trans_b, int64_t N, int64_t K, int64_t i0, int64_t m,
                    REAL alpha, const REAL *A, int64_t lda, const REAL *B, int64_t ldb,
                    REAL beta, REAL *C, int64_t ldc, const T(fn_epilogue) *ep, REAL *buf)
{
    if (m > 0)
        T(small_rows)(T(fn_config_get)(), trans_a, trans_b, i0, m, N, K, alpha, A, lda, B, ldb,
                      beta, C, ldc, ep, buf);
}

int T(fn_gemm_blocking)(int64_t M, int64_t N, int64_t K, int64_t *kc, int64_t *ks)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    *kc = T(k_block)(cfg, K);
    *ks = FN_K_SUPER;
    return T(direct)(cfg, M, N, K);
}

/* The micro-tiles of rows [i_start, i_start + mb) x columns [j0, j0 + n) of C for one K
 * block of kc: op(A)'s micro-panel g at Ag + g * g_stride (element [i, p] at i * rs_a +
 * p * cs_a from it), the kc x n slice of op(B) at Bpanel (rows rs_b apart, n <= pw
 * columns; a partial panel zero-padded to nr); C = alpha * sum + beta_k * C, then, with
 * ep (the last K block), the epilogue. Edge tiles go through `tile` (mr x pw): the full
 * micro-kernel when only columns are missing and more than half a panel is there, else
 * the edge kernel on just the rows and registers present. */
static void T(tiles)(const T(fn_config) *cfg, int64_t i_start, int64_t mb, int64_t j0,
                     int64_t n, int64_t kc, const REAL *Ag, int64_t g_stride, int64_t rs_a,
                     int64_t cs_a, const REAL *const *G, int64_t g_col, const REAL *Bpanel,
                     int64_t rs_b, REAL alpha, REAL beta_k, REAL *Cj, int64_t ldc,
                     const T(fn_epilogue) *ep, REAL *tile, int64_t pw)
{
    const int64_t mr = cfg->mr, nr = cfg->nr;
    /* gathered (G, gemm_panels): cs 1, op(A)'s rows G[i] + g_col; 0, its columns */
    const int64_t cs = cs_a == 1 ? 1 : 0;
    for (int64_t i0 = i_start; i0 < i_start + mb; i0 += mr, Ag += g_stride) {
        const int64_t m = i_start + mb - i0 < mr ? i_start + mb - i0 : mr;
        REAL *Ct = Cj + i0 * ldc;
        const REAL *const *Gt = G && cs ? G + (i0 - i_start) : G;
        const int64_t gc = G && !cs ? g_col + (i0 - i_start) : g_col;
        if (m == mr && n == nr) {
            /* C's rows 4 KB or more apart fall into the same sets of L1, and the tile comes
             * back from L2 or memory when the micro-kernel loads it at its end, after kc
             * steps: asked for now, it is there by then. 2048^2 float64 on one thread
             * 47.3 -> 51.6 GFLOP/s, two 91.9 -> 99.7 (C, alternating rounds; float32 +1.6%);
             * wide float64 epochs -1%, mnist's (rows 1 KB apart, not asked for) unchanged.
             * In the micro-kernel's prologue instead, mnist float64 ran 1.6% slower. */
            if (ldc * (int64_t)sizeof(REAL) >= 4096)
                for (int64_t i = 0; i < mr; i++)
                    for (int64_t j = 0; j < nr; j += 64 / (int64_t)sizeof(REAL))
                        __builtin_prefetch(Ct + i * ldc + j, 1);
            if (ep && ep->deriv_of)
                for (int64_t i = 0; i < mr; i++)
                    for (int64_t j = 0; j < nr; j += 64 / (int64_t)sizeof(REAL))
                        __builtin_prefetch(ep->deriv_of + (i0 + i) * ep->ld_deriv + j0 + j);
            if (G)
                cfg->tile_g(1, kc, Gt, gc, cs, Bpanel, rs_b, Ct, ldc, alpha, beta_k);
            else
                cfg->microkernel(kc, Ag, rs_a, cs_a, Bpanel, rs_b, Ct, ldc, alpha, beta_k);
        } else { /* an edge tile: compute into the tile, keep the valid part */
            const int64_t regs = 2 * n > nr ? (n + nr - 1) / nr * 2 : 1;
            if (m == mr && 2 * n > nr && G) /* then pw == nr */
                cfg->tile_g(1, kc, Gt, gc, cs, Bpanel, rs_b, tile, pw, 1, 0);
            else if (m == mr && 2 * n > nr)
                cfg->microkernel(kc, Ag, rs_a, cs_a, Bpanel, rs_b, tile, pw, 1, 0);
            else if (G) /* fewer rows, or at most half a panel of columns */
                cfg->edge_rows_g(m, regs, kc, Gt, gc, cs, Bpanel, rs_b, tile, pw);
            else
                cfg->edge_rows(m, regs, kc, Ag, rs_a, cs_a, Bpanel, rs_b, tile, pw);
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    REAL v;
                    if (beta_k != 0)
                        FN_SCALE_ADD(v, alpha, tile[i * pw + j], beta_k, Ct[i * ldc + j]);
                    else
                        v = alpha * tile[i * pw + j];
                    Ct[i * ldc + j] = v;
                }
        }
        if (ep)
            T(fn_epilogue_tile)(ep, Ct, ldc, m, n, i0, j0);
    }
}

void T(fn_gemm_team)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                     const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                     int64_t ldc, const T(fn_epilogue) *ep, REAL *workspace)
{
    T(fn_gemm_team_panels)(trans_a, trans_b, M, N, K, alpha, A, lda, NULL, B, ldb, 0, beta, C,
                           ldc, 0, ep, workspace);
}

/* The packed path's work on one row block, rows [i0, i0 + mb), against the panels of
 * columns [g0, g1) over the super-block [ks, ks + ks_len) of K: op(A)'s rows copied into
 * mr-row micro-panels in Ap, for each K block of kc:
 *   Ap[(pc - ks) mb_pad + g kc mr + p mr + i] = op(A)[i0 + g mr + i, pc + p],
 * then each panel's slice of op(B) copied into Bp (unless op(B) is panel-major already,
 * b_panels, or blk holds the block's panels, copied before: ks_len x nr a panel from g0)
 * and its tiles run, the epilogue on the last K block. */
static void T(packed_block)(const T(fn_config) *cfg, int trans_a, int trans_b, int64_t N,
                            int64_t K, REAL alpha, const REAL *A, int64_t lda, const REAL *B,
                            int64_t ldb, int64_t b_panels, REAL beta, REAL *C, int64_t ldc,
                            int64_t c_panels, const T(fn_epilogue) *ep, int64_t ks,
                            int64_t ks_len, int64_t KC, int64_t i0, int64_t mb, int64_t g0,
                            int64_t g1, REAL *Ap, REAL *Bp, const REAL *blk, REAL *tile,
                            const REAL *const *G)
{
    const int64_t mr = cfg->mr, nr = cfg->nr, mb_pad = fn_round_up(mb, mr);
    const int64_t rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;
    const int64_t ldc_t = c_panels ? nr : ldc;
    for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
        const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
        T(pack_A)(trans_a, G ? NULL : A + i0 * rs_a + pc * cs_a, lda,
                  G ? (trans_a ? G + pc : G + i0) : NULL, trans_a ? i0 : pc, mb, kc, mr,
                  Ap + (pc - ks) * mb_pad);
    }
    for (int64_t j0 = g0; j0 < g1; j0 += nr) {
        const int64_t n = g1 - j0 < nr ? g1 - j0 : nr;
        for (int64_t pc = ks; !blk && !b_panels && pc < ks + ks_len; pc += KC) {
            const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
            T(pack_B)(trans_b, B, ldb, N, j0, pc, kc, nr, Bp + (pc - ks) * nr);
        }
        REAL *Cj = c_panels ? C + j0 / nr * c_panels : C + j0;
        for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
            const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
            const REAL *Bpanel = b_panels ? B + j0 / nr * b_panels + pc * nr
                                 : blk    ? blk + (j0 - g0) / nr * ks_len * nr + (pc - ks) * nr
                                          : Bp + (pc - ks) * nr;
            T(tiles)(cfg, i0, mb, j0, n, kc, Ap + (pc - ks) * mb_pad, mr * kc, 1, mr, NULL, 0,
                     Bpanel, nr, alpha, pc == 0 ? beta : (REAL)1, Cj, ldc_t,
                     pc + kc >= K ? ep : NULL, tile, nr);
        }
    }
}

/* fn_gemm_team_panels, or with p1 >= 0 (fn_gemm_cols_panels) the column panels [p0, p1)
 * by the calling thread alone. */
static void T(gemm_panels)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                           REAL alpha, const REAL *A, int64_t lda, const REAL *const *G,
                           const REAL *B, int64_t ldb, int64_t b_panels, REAL beta, REAL *C,
                           int64_t ldc, int64_t c_panels, const T(fn_epilogue) *ep,
                           REAL *workspace, int64_t p0, int64_t p1)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    /* Where column j0 (a multiple of nr) of B or C starts, and its rows' stride. */
#define B_COLUMN(j0) (b_panels ? B + (j0) / nr * b_panels : B + (j0))
#define C_COLUMN(j0) (c_panels ? C + (j0) / cfg->nr * c_panels : C + (j0))
    const int64_t ldc_t = c_panels ? cfg->nr : ldc;

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

    /* This thread's buffers, each starting on a cache line (alone: workspace is its own,
     * as its callers' products differ in shape from thread to thread). */
    const int alone = p1 >= 0;
    REAL *mine = alone ? workspace
                       : workspace + FN_GEMM_CTL_BYTES / sizeof(REAL) +
                             (int64_t)omp_get_thread_num() * T(thread_workspace)(cfg, M, N, K);
    /* (Gathered, the packed path or the column panels below: the trainers gather only with
     * W[0] panel-major, which the direct path does not take.) */
    if (!alone && T(direct)(cfg, M, N, K) && !b_panels && !c_panels && !G) {
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
            int64_t i0, i1;
            fn_row_share(M, cfg->mr, omp_get_thread_num(), omp_get_num_threads(), &i0, &i1);
            if (i0 < i1)
                T(small_rows)(cfg, trans_a, trans_b, i0, i1 - i0, N, K, alpha, A, lda, B, ldb,
                              beta, C, ldc, ep, mine);
#pragma omp barrier
        }
        return;
    }

    const int64_t mr = cfg->mr, nr = cfg->nr, MC = cfg->mc;
    const int64_t KC = T(k_block)(cfg, K);
    const int64_t KS = T(super_depth)(K);
    REAL *Bp = (REAL *)(((uintptr_t)mine + FN_ALIGN - 1) & ~(uintptr_t)(FN_ALIGN - 1));
    REAL *tile = Bp + fn_round_up(KS * nr, FN_ALIGN); /* an edge tile, mr x pw */
    REAL *Ap = tile + fn_round_up(mr * nr * FN_EDGE_GROUP, FN_ALIGN); /* packed path */
    /* op(A)[i, p] = A[i * rs_a + p * cs_a] */
    const int64_t rs_a = trans_a ? 1 : lda, cs_a = trans_a ? lda : 1;
    const int64_t full = N - N % nr, m_panels = (M + mr - 1) / mr;

    if (!alone && T(packed_path)(cfg, M, N, K)) {
        /* The packed path, after BLIS. Per item and super-block of K, the item's rows of
         * op(A) are copied once into mr-row micro-panels (kc x mr each, per K block), and
         * then each of its column panels' slices of op(B) into the thread's buffer, so
         * that the micro-kernel reads both contiguously whatever their strides. Read in
         * place, rows 4 KB apart (a 1024-wide float layer) all fell into the same few
         * sets of L1 and came from L2 for every micro-tile: wide's products ran at 60-75%
         * of OpenBLAS's rate on cores with two 512-bit FMA units. Each element is summed
         * in the same blocks of K, in the same order, as on the other paths.
         *
         * Items: m_blocks row blocks (at most packed_rows tall) x n_chunks runs of
         * panels, a multiple of the team where the shape allows (a thread's share of
         * C, not how it is summed). Each item copies its rows of op(A) and its panels of
         * op(B), n_chunks M K + m_blocks K N values in all: the cheaper split wins. */
        const int64_t team = omp_get_num_threads();
        const int64_t n_panels = (N + nr - 1) / nr;
        const int64_t block_panels = T(packed_rows)(cfg, K) / mr; /* per row block */
        const int64_t m_min = (m_panels + block_panels - 1) / block_panels;
        int64_t m_blocks = m_panels, n_chunks = 1;
        double best = -1;
        for (int64_t nc = 1; nc <= team && nc <= n_panels; nc++) {
            const int64_t step = team / fn_gcd(nc, team); /* m_blocks nc % team == 0 */
            int64_t mbk = (m_min + step - 1) / step * step;
            mbk = mbk < m_panels ? mbk : m_panels;
            const double cost = (double)nc * (double)M + (double)mbk * (double)N;
            if (best < 0 || cost < best)
                best = cost, m_blocks = mbk, n_chunks = nc;
        }
        /* The split follows the threads' measured speeds. A shared host can run one vCPU
         * at 0.6-0.7x the other's rate for minutes, and an even split then waits for the
         * slower thread (wide's epoch gained 1.21x from a second thread where NumPy's
         * gained 1.34x). Each thread's rate (flop per second of its last share, averaged)
         * is kept in the team's workspace; every thread reads all of them before a
         * barrier, so all compute the same split from the same values, and writes its own
         * only after it (the next product reads them after this one's closing barrier).
         * With one item a thread, the split point moves within the items' rows or columns
         * by whole micro-panels or panels; with more, whole items move. Either way the
         * same tiles, the same bits as any split. Wide float32, two threads, with one CPU
         * at 0.69-0.73x the other's rate: 478 -> 397 ms an epoch, 1 -> 2 threads 1.38x ->
         * 1.68x (`python -m fastnet bench`, one run each); in C, per-round ratios 0.87 and
         * 0.95 in two such spells. The extra barrier costs one line trip a product. */
        const int weighted = team > 1 && team <= FN_GEMM_WEIGHTED_MAX;
        _Atomic double *speed = (_Atomic double *)(void *)workspace;
        double cum[FN_GEMM_WEIGHTED_MAX + 1];
        if (weighted)
            T(split_fractions)(speed, team, cum);
        const int64_t t = omp_get_thread_num();
        const int rows_split = m_blocks == team && n_chunks == 1;
        if (weighted && (rows_split || (m_blocks == 1 && n_chunks == team))) {
            const int64_t units = rows_split ? m_panels : n_panels;
            const int64_t lo = T(split_at)(cum, t, units), hi = T(split_at)(cum, t + 1, units);
            const int64_t i0 = rows_split ? lo * mr : 0;
            const int64_t i1 = rows_split ? (hi * mr < M ? hi * mr : M) : M;
            const int64_t c0 = rows_split ? 0 : lo * nr;
            const int64_t c1 = rows_split ? N : (hi * nr < N ? hi * nr : N);
            if (i0 < i1 && c0 < c1) {
                const double start = omp_get_wtime();
                /* A share of rows larger than the packed block Ap holds (a forced split in
                 * the tests) goes in pieces of at most that many. Whole, the copy of a
                 * share over packed_rows ran past the thread's buffer into the next
                 * thread's, or past the workspace; in pieces of packed_rows, each piece
                 * copied op(B) again (wide float32 on two threads 2.5% slower). */
                const int64_t piece = T(packed_rows_held)(cfg, K);
                for (int64_t r0 = i0; r0 < i1; r0 += piece)
                    for (int64_t ks = 0; ks < K; ks += KS)
                        T(packed_block)(cfg, trans_a, trans_b, N, K, alpha, A, lda, B, ldb,
                                        b_panels, beta, C, ldc, c_panels, ep, ks,
                                        K - ks < KS ? K - ks : KS, KC, r0,
                                        i1 - r0 < piece ? i1 - r0 : piece, c0, c1, Ap, Bp, NULL,
                                        tile, G);
                T(record_speed)(speed, t,
                                2.0 * (double)(i1 - i0) * (double)(c1 - c0) * (double)K,
                                omp_get_wtime() - start);
            }
#pragma omp barrier
            return;
        }
        /* This thread's run of items (row-block major: item = ib n_chunks + jc), taken
         * chunk by chunk: the row blocks [ib0, ib1) it has in chunk jc. With two or more
         * and op(B) to copy, the block mode (FN_B_BLOCK_BYTES): per super-block, the
         * panels of a block of columns copied once, then each row block's op(A) copied
         * and its tiles run against them. 4096^2 on one thread had copied all of op(B)
         * for each of 16 row blocks, reading 128 bytes from each row 16 KB apart: 18% of
         * its time. Either way each element gets its K blocks in order: the same bits. */
        const int64_t items = m_blocks * n_chunks;
        const int64_t it0 = weighted ? T(split_at)(cum, t, items) : items * t / team;
        const int64_t it1 = weighted ? T(split_at)(cum, t + 1, items) : items * (t + 1) / team;
        const double start = weighted ? omp_get_wtime() : 0;
        REAL *Bblk = Ap + fn_round_up(T(packed_rows_held)(cfg, K) * KS, FN_ALIGN);
/* In the block, the panel of columns j0 (the block starting at g0) at K step pc of the
 * super-block at ks: panels of ks_len x nr, kc x nr a step. */
#define B_BLOCK(j0, pc) (Bblk + ((j0) - g0) / nr * ks_len * nr + ((pc) - ks) * nr)
        for (int64_t jc = 0; jc < n_chunks; jc++) {
            const int64_t ib0 = it0 > jc ? (it0 - jc + n_chunks - 1) / n_chunks : 0;
            const int64_t ib1 = it1 > jc ? (it1 - jc + n_chunks - 1) / n_chunks : 0;
            const int64_t jc0 = jc * n_panels / n_chunks * nr;
            const int64_t jc1 = (jc + 1) * n_panels / n_chunks * nr < N
                                    ? (jc + 1) * n_panels / n_chunks * nr : N;
            const int block_mode = ib1 - ib0 > 1 && !b_panels;
            const int64_t ncb = block_mode ? T(b_block_cols)(cfg, N, K) : jc1 - jc0;
            for (int64_t ks = 0; ks < K; ks += KS) {
                const int64_t ks_len = K - ks < KS ? K - ks : KS;
                for (int64_t g0 = jc0; g0 < jc1; g0 += ncb) { /* a block of columns */
                    const int64_t g1 = jc1 - g0 < ncb ? jc1 : g0 + ncb;
                    for (int64_t j0 = g0; block_mode && j0 < g1; j0 += nr)
                        for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
                            const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
                            T(pack_B)(trans_b, B, ldb, N, j0, pc, kc, nr, B_BLOCK(j0, pc));
                        }
                    for (int64_t ib = ib0; ib < ib1; ib++) {
                        const int64_t i_start = ib * m_panels / m_blocks * mr;
                        const int64_t i_end = (ib + 1) * m_panels / m_blocks * mr;
                        const int64_t mb = (i_end < M ? i_end : M) - i_start;
                        T(packed_block)(cfg, trans_a, trans_b, N, K, alpha, A, lda, B, ldb,
                                        b_panels, beta, C, ldc, c_panels, ep, ks, ks_len, KC,
                                        i_start, mb, g0, g1, Ap, Bp,
                                        block_mode ? B_BLOCK(g0, ks) : NULL, tile, G);
                    }
                }
            }
        }
#undef B_BLOCK
        if (weighted && it1 > it0) /* the share's flop, as a fraction of the items */
            T(record_speed)(speed, t,
                            2.0 * (double)M * (double)N * (double)K * (double)(it1 - it0) /
                                (double)items,
                            omp_get_wtime() - start);
#pragma omp barrier
        return;
    }

    /* Column chunks: single panels of nr columns, or with fewer rows than mr and B read
     * in place, FN_EDGE_GROUP of them (pw columns); the full panels' chunks first, then a
     * partial last panel alone (packed). */
    const int64_t pw = !alone && M < mr && !trans_b && !b_panels && !c_panels
                           ? FN_EDGE_GROUP * nr
                           : nr;
    const int64_t n_panels = (full + pw - 1) / pw + (full < N);
    /* Row blocks: the M / mr micro-panels of rows dealt out evenly (so items cost the
     * same and threads finish together), at most mc rows each, and enough blocks to give
     * every thread two items. Which rows a thread computes changes no result. */
    const int64_t want_blocks = ((alone ? 2 : 2 * omp_get_num_threads()) + n_panels - 1) / n_panels;
    int64_t m_blocks = (m_panels + MC / mr - 1) / (MC / mr);
    m_blocks = m_blocks > want_blocks ? m_blocks : want_blocks;
    m_blocks = m_blocks < m_panels ? m_blocks : m_panels;
    /* Item order. When op(A) fits in L2 (minibatch products), column panels are outermost,
     * so a thread owns whole columns of C: the columns of W it updates in X^T delta are
     * the columns it reads in the next batch's X W, and the columns of delta_H it writes
     * are those it reads, and both stay in its own cache. A large op(A) (predict on a
     * whole data set) is streamed once instead: row blocks outermost. */
    const int col_major = alone || M * K * (int64_t)sizeof(REAL) <= FN_A_RESIDENT_BYTES;
    /* the team's items dealt out in contiguous runs (omp for's static schedule, by hand:
     * one loop serves both modes), then a barrier; alone, the panels' items. Row blocks
     * outermost (a large op(A) streamed, predict's products), the runs follow the threads'
     * measured speeds as on the packed path; columns outermost, each thread keeps its
     * columns from batch to batch (see above), so the runs stay even. */
    const int64_t items = m_blocks * n_panels;
    int64_t item0 = 0, item1 = items;
    const int weighted = !alone && !col_major && omp_get_num_threads() > 1 &&
                         omp_get_num_threads() <= FN_GEMM_WEIGHTED_MAX;
    _Atomic double *speed = (_Atomic double *)(void *)workspace;
    if (alone) {
        item0 = p0 * m_blocks;
        item1 = p1 * m_blocks;
    } else if (weighted) {
        double cum[FN_GEMM_WEIGHTED_MAX + 1];
        T(split_fractions)(speed, omp_get_num_threads(), cum);
        item0 = T(split_at)(cum, omp_get_thread_num(), items);
        item1 = T(split_at)(cum, omp_get_thread_num() + 1, items);
    } else {
        fn_row_share(items, 1, omp_get_thread_num(), omp_get_num_threads(), &item0, &item1);
    }
    const double start = weighted ? omp_get_wtime() : 0;
    for (int64_t item = item0; item < item1; item++) {
        const int64_t ib = col_major ? item % m_blocks : item / n_panels;
        const int64_t jp = col_major ? item / m_blocks : item % n_panels;
        const int64_t i_start = ib * m_panels / m_blocks * mr;
        const int64_t i_end = (ib + 1) * m_panels / m_blocks * mr;
        const int64_t mb = (i_end < M ? i_end : M) - i_start;
        const int64_t j0 = jp * pw < full ? jp * pw : full;
        const int64_t n = j0 < full ? (full - j0 < pw ? full - j0 : pw) : N - full;
        for (int64_t ks = 0; ks < K; ks += KS) {
            const int64_t ks_len = K - ks < KS ? K - ks : KS;
            /* B's rows are read in place unless op(B) = B^T or the panel is partial (and
             * panel-major B is read in place always: its last panel is zero-padded). */
            const int packed = (trans_b || n < nr) && !b_panels;
            if (packed)
                for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
                    const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
                    T(pack_B)(trans_b, B, ldb, N, j0, pc, kc, nr, Bp + (pc - ks) * nr);
                }
            const int64_t rs_b = packed || b_panels ? nr : ldb;
            for (int64_t pc = ks; pc < ks + ks_len; pc += KC) {
                const int64_t kc = ks + ks_len - pc < KC ? ks + ks_len - pc : KC;
                const int last = pc + kc >= K;
                const REAL *Bpanel = packed ? Bp + (pc - ks) * nr : B_COLUMN(j0) + pc * rs_b;
                if (G) /* gathered: rows i_start.. from column pc, or the batch's rows pc..
                        * from column i_start */
                    T(tiles)(cfg, i_start, mb, j0, n, kc, NULL, 0, 0, trans_a ? 0 : 1,
                             trans_a ? G + pc : G + i_start, trans_a ? i_start : pc, Bpanel,
                             rs_b, alpha, pc == 0 ? beta : (REAL)1, C_COLUMN(j0), ldc_t,
                             last ? ep : NULL, tile, pw);
                else
                    T(tiles)(cfg, i_start, mb, j0, n, kc, A + i_start * rs_a + pc * cs_a,
                             mr * rs_a, rs_a, cs_a, NULL, 0, Bpanel, rs_b, alpha,
                             pc == 0 ? beta : (REAL)1, C_COLUMN(j0), ldc_t, last ? ep : NULL,
                             tile, pw);
            }
        }
    }
    if (weighted && item1 > item0)
        T(record_speed)(speed, omp_get_thread_num(),
                        2.0 * (double)M * (double)N * (double)K * (double)(item1 - item0) /
                            (double)items,
                        omp_get_wtime() - start);
    if (!alone) {
#pragma omp barrier
    }
}

void T(fn_gemm_team_panels)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                            REAL alpha, const REAL *A, int64_t lda, const REAL *const *G,
                            const REAL *B, int64_t ldb, int64_t b_panels, REAL beta, REAL *C,
                            int64_t ldc, int64_t c_panels, const T(fn_epilogue) *ep,
                            REAL *workspace)
{
    T(gemm_panels)(trans_a, trans_b, M, N, K, alpha, A, lda, G, B, ldb, b_panels, beta, C,
                   ldc, c_panels, ep, workspace, 0, -1);
}

void T(fn_gemm_cols_panels)(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,
                            const REAL *A, int64_t lda, const REAL *const *G, const REAL *B,
                            int64_t ldb, int64_t b_panels, REAL beta, REAL *C, int64_t ldc,
                            int64_t c_panels, const T(fn_epilogue) *ep, REAL *workspace,
                            int64_t p0, int64_t p1)
{
    if (p0 < p1 && M > 0 && K > 0)
        T(gemm_panels)(trans_a, 0, M, N, K, alpha, A, lda, G, B, ldb, b_panels, beta, C, ldc,
                       c_panels, ep, workspace, p0, p1);
}

#undef B_COLUMN
#undef C_COLUMN

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
    fn_gemm_ctl_clear(ws);
    FN_RUN_TEAM(team, T(fn_gemm_team)(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                      ldc, ep, ws));
    fn_aligned_free(ws);
    return FN_OK;
}

#endif
