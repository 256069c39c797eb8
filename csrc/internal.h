/*
 * Internal declarations shared by the kernel files; not part of the public API.
 *
 * "Compiled twice": each kernel file is written once with REAL and T(name) and
 * compiled once as float (T(x) = x_f32) and once as double (T(x) = x_f64) through
 * instantiate.h. Nothing is kept in two hand-edited copies.
 *
 * "In team": the functions named *_team use OpenMP worksharing (omp for / single)
 * without opening a parallel region. Called outside a region they run on one
 * thread; called by every thread of a region (fn_train opens one per call) they
 * share the work. So a whole epoch runs in one region, with no fork/join per
 * batch, and a standalone call to a public kernel opens a region only when the
 * problem is big enough to pay for it (FN_RUN_TEAM).
 */
#ifndef FASTNET_INTERNAL_H
#define FASTNET_INTERNAL_H

#include "fastnet.h"

#include <stdatomic.h>

#define FN_CAT2(a, b) a##_##b
#define FN_CAT(a, b) FN_CAT2(a, b)

#define FN_ALIGN 64

/* Lanes of one vector (FN_SHUFFLE) or of two (FN_SHUFFLE2: b's lanes numbered after a's)
 * picked by an integer vector m of the same lane count: GCC's __builtin_shuffle. Clang has
 * no shuffle by a mask vector (its __builtin_shufflevector takes constant indices), so
 * there the lanes are picked one by one; the indices are taken modulo the lanes given, as
 * GCC takes them. */
#if defined(__clang__)
#define FN_SHUFFLE2(a, b, ...) /* m: the variadic part, as a literal's braces hold commas */ \
    __extension__({                                                                        \
        const __typeof__(a) a_ = (a), b_ = (b);                                            \
        const __typeof__(__VA_ARGS__) m_ = (__VA_ARGS__);                                  \
        __typeof__(a) r_;                                                                  \
        const unsigned n_ = sizeof(a_) / sizeof(a_[0]);                                    \
        for (unsigned k_ = 0; k_ < n_; k_++) {                                             \
            const unsigned j_ = (unsigned)m_[k_] % (2 * n_);                               \
            r_[k_] = j_ < n_ ? a_[j_] : b_[j_ - n_];                                       \
        }                                                                                  \
        r_;                                                                                \
    })
#define FN_SHUFFLE(a, ...) FN_SHUFFLE2(a, a, __VA_ARGS__)
#else
#define FN_SHUFFLE2(a, b, ...) __builtin_shuffle(a, b, __VA_ARGS__)
#define FN_SHUFFLE(a, ...) __builtin_shuffle(a, __VA_ARGS__)
#endif

/* The first FN_GEMM_CTL_BYTES of a team's GEMM workspace (fn_gemm_workspace counts them):
 * the team's threads' measured speeds, by which the packed path splits a product between
 * them (gemm.c). Whoever sets up a team's workspace clears them once (zero: no
 * measurement, an even split). */
#define FN_GEMM_CTL_BYTES (2 * FN_ALIGN)
#define fn_gemm_ctl_clear(ws) memset((ws), 0, FN_GEMM_CTL_BYTES)
/* A page: the unit the cores' prefetchers stay within (train_small.c's group blocks). */
#define FN_PAGE_BYTES 4096

/* The small-product path (no packing) takes products of at most this many
 * multiply-adds whose N is at most FN_SMALL_N and K at most the kc block. */
#define FN_SMALL_N 256
#define FN_SMALL_MAC 32768

/* Below this many flop per call (or per minibatch) one thread does the work:
 * an OpenMP barrier costs about a microsecond, a small product less than that. */
#define FN_PARALLEL_MIN_FLOP 4.0e6
/* The same for the general trainer's units scheme, whose batch has one barrier. */
#define FN_UNITS_MIN_FLOP 2.0e5

/* FN_ROUNDED(x): the product just stored in x is rounded to its type here, not fused by
 * the compiler into the add that uses it (FMA contraction). Every path of the GEMM (the
 * micro-kernel, the small product, the edge tiles) and the fused first-layer step compute
 * C = alpha * sum + beta * C as round(beta * C + round(alpha * sum)) (FN_SCALE_ADD), so
 * the path an element takes does not change its bits (an update W -= alpha X^T delta made
 * by two different paths differed in the last bit in 3% of W's elements). */
#if defined(__GNUC__) && defined(__x86_64__)
#define FN_ROUNDED(x) __asm__("" : "+v"(x))
#elif defined(__GNUC__) && defined(__aarch64__)
#define FN_ROUNDED(x) __asm__("" : "+w"(x))
#else
#define FN_ROUNDED(x) ((void)0)
#endif
/* dst = alpha * s + beta * c by that rule, on scalars or vectors (dst is not c). */
#define FN_SCALE_ADD(dst, alpha, s, beta, c)                                             \
    do {                                                                                 \
        (dst) = (alpha) * (s);                                                           \
        FN_ROUNDED(dst);                                                                 \
        (dst) += (beta) * (c);                                                           \
    } while (0)

/* The tiny trainer (train_tiny.c) takes networks of at most FN_TINY_MAX_LAYERS layers
 * (fastnet.h), every width at most FN_TINY_MAX_WIDTH, batches of at most FN_TINY_MAX_ROWS
 * rows and at most FN_TINY_MAX_FLOP flop a batch (6 x rows x weights). Against the small
 * trainer, one thread, an epoch of 256 rows in C (medians of 5 alternating rounds):
 * [4, 8, 2] batch 16 2.23 -> 1.80 us, [4, 4, 4] batch 64 12.3 -> 9.7, [8, 8, 1] batch 8
 * 22.1 -> 14.3; at [8, 8, 8] the two were even (batch 16: 14.8 and 15.2 us; batch 64, 4.9e4
 * flop: 15.7 and 15.8) before the tiny update's sums went into registers (12% off). */
#define FN_TINY_MAX_WIDTH 8
#define FN_TINY_MAX_ROWS 64
#define FN_TINY_MAX_FLOP 2.0e4

/* Applies X to each row index of a micro-tile (the micro-kernels' unrolled rows). */
#define FN_ROWS4(X) X(0) X(1) X(2) X(3)
#define FN_ROWS6(X) FN_ROWS4(X) X(4) X(5)
#define FN_ROWS8(X) FN_ROWS6(X) X(6) X(7)

/* How many k steps ahead the micro-kernel prefetches a packed micro-panel of A: 16 steps
 * is 16 lines of doubles (8 a step on AVX-512) or 8 of floats; 8 and 32 gained less on
 * wide's float64 products. */
#define FN_PREFETCH_A 16
/* ... and how many values ahead along a row of A read in place (64: 8 lines of doubles,
 * 4 of floats; 128 gained no more). */
#define FN_PREFETCH_ROW 64
/* ... and how many rows ahead down A's columns read in place (floats; 4 and 16 alike). */
#define FN_PREFETCH_COL 8

/* The team for a call of `flop`: 1 below FN_PARALLEL_MIN_FLOP, inside a parallel region,
 * or when fn_team_if_warm says the pool's wake-up would cost more than the team saves. */
int fn_team_size(double flop);

/* The thread pool's temperature (dispatch.c). OpenMP threads spin for a few milliseconds
 * after a region, then sleep, and waking them is not free: 25-60 us on the hosts seen,
 * and 6-8 ms in some tries (thread creation, for the first region, likewise). A call of
 * `flop` that would start `team` threads on a cold pool (no team region and no such call
 * in the last FN_POOL_WARM_SECONDS) runs on one thread when it would take less, alone,
 * than FN_WAKE_PAYBACK times the wake-up measured so far; the next call that follows it
 * closely takes the team (a loop of calls wakes the pool once). Speed only: results do
 * not depend on the team. */
int fn_team_if_warm(double flop, int team);
/* The team for a call of minibatches: 1 below min_flop per batch (FN_PARALLEL_MIN_FLOP,
 * or less for a batch with fewer barriers; each batch ends at one) or inside a parallel
 * region, else as fn_team_if_warm says for the flop of the whole call. Weighing one batch
 * against the wake-up instead ran every one-epoch mnist fit on a cold pool alone once a
 * wake-up of 0.8 ms had been measured (an mnist batch takes 1.6 ms alone), and the
 * wake-up was then never measured again. */
int fn_team_for_batches(double batch_flop, double min_flop, double call_flop);
/* The cores shared by concurrent calls. Python threads may call in at the same time (the
 * GIL is released), and each would start its own team: two 2-thread digits fits on 2 cores
 * ran 5-6x slower than two 1-thread fits, as the threads' barriers waited for each other's
 * time slices. fn_team_claim(team) counts the threads granted to every call now running
 * (at least 1 a call) and grants `team` when no other call is running, else at most the
 * cores left (at least 1: the calling thread itself); fn_team_release gives them back.
 * `saved` keeps the caller's count of threads given back early (fn_team_give_back) across
 * a nested call. No team is larger than the cores (fn_set_cores, fastnet.h), whatever the
 * thread count asks for: on 2 cores, 3 threads took [50, 70, 3] (batch 16) from 0.52 to
 * 3.95 ms an epoch, mnist's batches of 1 from 12.9 to 68.6 ms and [1024, 1024, 256] from
 * 62 to 105, as threads waited for the time slices of others. Speed only: results do not
 * depend on the team. fn_last_grant: this thread's last grant. */
int fn_team_claim(int team, int *saved);
void fn_team_release(int grant, int saved);
/* A running call's team gives back n of its threads before it ends (called by its thread
 * 0, the calling thread); fn_team_started, by every thread entering the region, gives
 * back those OpenMP did not start. fn_cores (fastnet.h): the cores the claims share. */
void fn_team_give_back(int n);
void fn_team_started(int grant);
/* A barrier of the region's `team` threads (all of them call it), spinning on lines of
 * their own (team lines FN_ALIGN apart, zeroed before the region) when the team fits the
 * cores, else libgomp's; a wait for a thread on the waiter's own CPU yields it, a long
 * one sleeps. dispatch.c says what it costs. */
void fn_team_barrier(atomic_long *lines, int t, int team);
/* omp_in_parallel(), for files that do not include omp.h. */
int fn_in_parallel(void);
/* 1 unless this process was forked after a region of two or more threads had run (GNU
 * OpenMP's pool does not survive fork), and then notes that one is about to run. */
int fn_team_allowed(void);
/* A training call's polling of the stop check (fn_set_stop_check), by the calling thread
 * (thread 0 of its team) between batches: fn_stop_poll_init in the calling thread before
 * the team starts, fn_stop_poll once a batch, 1 when the check said stop. The clock is
 * read every `every` batches (about FN_STOP_POLL_FLOP of work apart), the check asked
 * every FN_STOP_CHECK_SECONDS. */
typedef struct {
    fn_stop_check check;
    int64_t every, left;
    double next;
} fn_stop_poller;
void fn_stop_poll_init(fn_stop_poller *p, double flop_per_batch);
int fn_stop_poll_slow(fn_stop_poller *p);
static inline int fn_stop_poll(fn_stop_poller *p)
{
    if (!p->check || --p->left > 0)
        return 0;
    return fn_stop_poll_slow(p);
}
/* A team's stop: thread 0 polls at the start of each batch and, when the check said stop
 * and `allowed`, publishes the batch's number (fn_team_stop_poll); every thread asks at
 * the batch's end, past its barriers, whether it is that batch (fn_team_stop_here). A
 * number, not a flag: a thread still ending the batch before, after its barriers, reads
 * a number not its own. Zeroed (all fields): never asked, never stopping. */
typedef struct {
    fn_stop_poller poll;
    atomic_llong after; /* the batch's number + 1; 0: none */
} fn_team_stop;
static inline void fn_team_stop_poll(fn_team_stop *s, int64_t batch_no, int allowed)
{
    if (fn_stop_poll(&s->poll) && allowed)
        atomic_store_explicit(&s->after, batch_no + 1, memory_order_relaxed);
}
static inline int fn_team_stop_here(fn_team_stop *s, int64_t batch_no)
{
    return atomic_load_explicit(&s->after, memory_order_relaxed) == batch_no + 1;
}

/* FN_RUN_TEAM's bookkeeping: fn_pool_start before a region (the time if the pool was
 * cold, else -1), fn_pool_joined by every thread as it enters (thread 1 measures the
 * wake-up), fn_pool_end after. */
double fn_pool_start(void);
void fn_pool_joined(double start);
void fn_pool_end(void);

/* Runs `call` on a team of at most `team` threads: as many as fn_team_claim grants (all
 * of them unless calls from other threads are running at the same time). A team of one
 * runs it directly, outside any parallel region: libgomp's barriers are then free,
 * whereas even a one-thread region pays a futex system call per barrier. Called from
 * inside the caller's own parallel region, a team of one still gets a region of its own,
 * so that the kernels' worksharing and barriers bind to it and not to the caller's team
 * (which hung or crashed: the other threads of that team were not in the same call). */
#define FN_RUN_TEAM(team, call)                                                          \
    do {                                                                                 \
        int fn_saved_;                                                                   \
        const int fn_grant_ = fn_team_claim(team, &fn_saved_);                           \
        if (fn_grant_ > 1) {                                                             \
            const double fn_start_ = fn_pool_start();                                    \
            _Pragma("omp parallel num_threads(fn_grant_)")                               \
            {                                                                            \
                fn_team_started(fn_grant_);                                              \
                fn_pool_joined(fn_start_);                                               \
                call;                                                                    \
            }                                                                            \
            fn_pool_end();                                                               \
        } else if (fn_in_parallel()) {                                                   \
            _Pragma("omp parallel num_threads(1)")                                       \
            call;                                                                        \
        } else {                                                                         \
            call;                                                                        \
        }                                                                                \
        fn_team_release(fn_grant_, fn_saved_);                                           \
    } while (0)
void *fn_aligned_alloc(size_t bytes);
/* malloc, counted (fn_alloc_stats, fastnet.h); free() frees it. */
void *fn_malloc(size_t bytes);
/* The same at a multiple of `align` bytes (a power of two, at least FN_ALIGN). */
void *fn_aligned_alloc_at(size_t bytes, size_t align);
void fn_aligned_free(void *p);
/* A call's scratch block of at least `bytes` (cache-line aligned): the one kept from an
 * earlier call when large enough. fn_scratch_give hands it back, to be kept for the next
 * call unless a larger one is kept or it is above FN_SCRATCH_KEEP bytes (dispatch.c). */
void *fn_scratch_take(size_t bytes);
void fn_scratch_give(void *p);
/* The calling thread t's share [*i0, *i1) of M rows among `team`: whole groups of mr
 * rows, as the GEMM's direct path deals them out. */
static inline void fn_row_share(int64_t M, int64_t mr, int64_t t, int64_t team, int64_t *i0,
                                int64_t *i1)
{
    const int64_t groups = (M + mr - 1) / mr, a = t * groups / team * mr,
                  b = (t + 1) * groups / team * mr;
    *i0 = a < M ? a : M;
    *i1 = b < M ? b : M;
}
static inline int64_t fn_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Asks for every cache line of bytes at p into L1 (a row of X the hardware prefetchers
 * would not foresee). */
static inline void fn_prefetch_bytes(const void *p, size_t bytes)
{
    for (size_t at = 0; at < bytes; at += FN_ALIGN)
        __builtin_prefetch((const char *)p + at, 0, 3);
}

#define FN_DECLARE_INTERNAL(REAL, S)                                                   \
extern const fn_config_##S fn_config_generic_##S;                                      \
extern const fn_config_##S fn_config_avx2_##S;                                         \
extern const fn_config_##S fn_config_avx512_##S;                                       \
/* Elements of packing workspace fn_gemm_team needs for an M x N x K product run by a  \
 * team of `team` threads (each thread packs into its own part, after the team's       \
 * FN_GEMM_CTL_BYTES). */                                                              \
int64_t fn_gemm_workspace_##S(int64_t M, int64_t N, int64_t K, int team);              \
void fn_gemm_team_##S(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,       \
                      REAL alpha, const REAL *A, int64_t lda, const REAL *B,           \
                      int64_t ldb, REAL beta, REAL *C, int64_t ldc,                    \
                      const fn_epilogue_##S *ep, REAL *workspace);                     \
/* fn_gemm_team with op(B) or C (or both) stored panel-major instead of row-major: with   \
 * b_panels > 0 (trans_b == 0), B[p, j] is at B[(j / nr) b_panels + p nr + j % nr], each  \
 * nr-column panel a contiguous K x nr matrix, the last one zero-padded to nr columns     \
 * (ldb unused); with c_panels > 0, C[i, j] is at C[(j / nr) c_panels + i nr + j % nr]    \
 * (ldc unused; padding columns are left as they are). nr is the micro-tile's            \
 * (fn_config_get()->nr). K >= 1. The same sums, in the same order, as fn_gemm_team:     \
 * the same bits. A thread's panels are then one contiguous range of memory. G non-NULL:  \
 * op(A) gathered, A and lda unused (as fn_gemm_cols_panels below). */                    \
void fn_gemm_team_panels_##S(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,  \
                             REAL alpha, const REAL *A, int64_t lda,                     \
                             const REAL *const *G, const REAL *B,                        \
                             int64_t ldb, int64_t b_panels, REAL beta, REAL *C,          \
                             int64_t ldc, int64_t c_panels, const fn_epilogue_##S *ep,   \
                             REAL *workspace);                                           \
/* The column panels [p0, p1) (nr columns each, the last one partial) of an M x N x K   \
 * product of fn_gemm_team_panels with op(B) = B, by the calling thread alone, with no   \
 * barrier; workspace: the thread's own, fn_gemm_workspace(M, N, K, 1) elements. The same \
 * sums, in the same order, as the team's unpacked path (the packed path's too: the same \
 * bits); B read in place, so for B panel-major or narrow (N < FN_PACK_MIN_N), where     \
 * the team reads it so too. M, K >= 1. */                                               \
/* G non-NULL: op(A) gathered, A and lda unused: its rows are G[0..] (a shuffled batch's   \
 * rows of X read in place), op(A)[i, p] = G[i][p], or with trans_a G[p][i]. */            \
void fn_gemm_cols_panels_##S(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,  \
                             const REAL *A, int64_t lda, const REAL *const *G,           \
                             const REAL *B, int64_t ldb,                                 \
                             int64_t b_panels, REAL beta, REAL *C, int64_t ldc,          \
                             int64_t c_panels, const fn_epilogue_##S *ep,                \
                             REAL *workspace, int64_t p0, int64_t p1);                   \
/* Rows [i0, i0 + m) of an M x N x K product of fn_gemm_team (with its epilogue), by the \
 * calling thread alone through the direct path, with no barrier; buf: the thread's own \
 * fn_gemm_workspace(M, N, K, 1) elements. Only for K <= kc (K in one block) and N <=    \
 * FN_SMALL_N: the same sums, in the same order, as fn_gemm_team's: the same bits. */    \
void fn_gemm_rows_##S(int trans_a, int trans_b, int64_t N, int64_t K, int64_t i0,       \
                      int64_t m, REAL alpha, const REAL *A, int64_t lda, const REAL *B, \
                      int64_t ldb, REAL beta, REAL *C, int64_t ldc,                     \
                      const fn_epilogue_##S *ep, REAL *buf);                           \
/* How fn_gemm_team sums each element of an M x N x K product over K: 1 for the direct  \
 * path (one FMA chain over all of K), else 0, and it sums blocks of *kc within          \
 * super-blocks of *ks, each block a chain from zero added to the sum so far. */          \
int fn_gemm_blocking_##S(int64_t M, int64_t N, int64_t K, int64_t *kc, int64_t *ks);  \
/* gemm.c: the epilogue ep on the m x n tile of C at (i0, j0) of the product, C pointing \
 * at the tile (bias, activation, act' from ep->deriv_of). */                           \
void fn_epilogue_tile_##S(const fn_epilogue_##S *ep, REAL *C, int64_t ldc, int64_t m,  \
                          int64_t n, int64_t i0, int64_t j0);                          \
/* train.c: flop of one row through forward, delta and update: 6 sum_l n_l n_(l+1). */ \
double fn_flop_per_row_##S(const fn_net_##S *net);                                     \
/* row[0:n] *= act'(.) from the stored output out[0:n]. */                             \
void fn_derivative_mul_##S(int act, int64_t n, const REAL *out, REAL *row);           \
/* Rows [e0, e1) of delta_O = scale (O_out - Y) * act'(O_out) (scale = 2/N) and          \
 * row_loss[e] = sum_n (O_out - Y)^2, with row strides ld_o, ld_y, ld_d. */             \
void fn_output_delta_rows_##S(int act, REAL scale, int64_t e0, int64_t e1, int64_t n_out, \
                              const REAL *O_out, int64_t ld_o, const REAL *Y,           \
                              int64_t ld_y, REAL *delta_O, int64_t ld_d,                \
                              double *row_loss);                                        \
/* Rows [0, N) of delta_O and row_loss[e] = sum_n (O_out - Y)^2, shared by the team. */ \
void fn_output_delta_team_##S(int act, int64_t N, int64_t n_out, const REAL *O_out,    \
                              const REAL *Y, REAL *delta_O, double *row_loss);         \
void fn_bias_gradient_team_##S(int64_t N, int64_t n_b, const REAL *delta, REAL *db,   \
                               REAL alpha, int accumulate);                            \
/* Columns [j0, j1) of the same, by the calling thread alone; delta's row stride ld. */ \
void fn_bias_gradient_cols_##S(int64_t N, int64_t j0, int64_t j1, const REAL *delta,   \
                               int64_t ld, REAL *db, REAL alpha, int accumulate);      \
/* train_small.c: fn_train for networks whose batches fit in cache (same contract).    \
 * fn_train_small_fits says whether a network and batch size are such. */              \
int fn_train_small_fits_##S(const fn_net_##S *net, int64_t rows);                      \
fn_status fn_train_small_##S(const fn_net_##S *net, int64_t N, const REAL *X,          \
                             const REAL *Y, const int64_t *order, int64_t n_epochs,    \
                             int64_t rows, REAL alpha, double *epoch_loss,             \
                             int64_t *epochs_done);                                    \
/* train_tiny.c: the same for the tiniest networks (XOR), on the calling thread. */     \
int fn_train_tiny_fits_##S(const fn_net_##S *net, int64_t rows);                       \
fn_status fn_train_tiny_##S(const fn_net_##S *net, int64_t N, const REAL *X,           \
                            const REAL *Y, const int64_t *order, int64_t n_epochs,     \
                            int64_t rows, REAL alpha, double *epoch_loss,              \
                            int64_t *epochs_done);

FN_DECLARE_INTERNAL(float, f32)
FN_DECLARE_INTERNAL(double, f64)
#undef FN_DECLARE_INTERNAL

#endif
