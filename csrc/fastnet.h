/*
 * fastnet kernels: the seed's multilayer perceptron in plain C (C11 + OpenMP).
 *
 * Names follow SEED.md: X (E x n_in) is the input, one example per row; W1, W2 are
 * the weights; H_in = X W1, H_out = act(H_in), O_in = H_out W2, O_out = act(O_in);
 * MSE = 1/N sum_e sum_n (O_out - Y)^2 with N = number of rows; delta_O and delta_H
 * are dMSE/dO_in and dMSE/dH_in.
 *
 * All matrices are row-major with an explicit leading dimension (ld = elements
 * between the starts of two rows). Every kernel exists for float (suffix _f32)
 * and double (suffix _f64); each .c file is written once and compiled for both
 * (see the bottom of each file).
 *
 * C never aborts and never prints: every function that can fail returns an
 * fn_status, and the caller (the Cython layer) turns it into an exception.
 */
#ifndef FASTNET_H
#define FASTNET_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FN_OK = 0,
    FN_ENOMEM = 1,     /* a workspace could not be allocated */
    FN_NONFINITE = 2,  /* training produced NaN or infinity; weights were restored */
    FN_EINVAL = 3,     /* an argument is out of range (the Python layer checks first) */
    FN_STOPPED = 4     /* the caller's stop check said stop; weights as for FN_NONFINITE */
} fn_status;

/* fn_train calls made from this thread ask `check` between batches, at most every
 * FN_STOP_CHECK_SECONDS, whether to stop (the Cython layer's: Ctrl-C's SIGINT arrived).
 * One that says so ends the call at the end of that batch (or the next one) with
 * FN_STOPPED, the weights restored to those of the start of the epoch it stopped in, as
 * for FN_NONFINITE; the small and tiny trainers, which replay the epochs done to restore
 * them, stop so only while those are fewer than the epochs to come, else they end the
 * call as usual. NULL (the default): never asked. */
typedef int (*fn_stop_check)(void);
#define FN_STOP_CHECK_SECONDS 0.1
void fn_set_stop_check(fn_stop_check check);
/* For tests: ask the check at every batch instead (1), or as above (0). */
void fn_set_stop_check_every_batch(int every_batch);

/* One enum, one switch: the activation table shared by every kernel. */
typedef enum {
    FN_IDENTITY = 0,
    FN_SIGMOID = 1,
    FN_TANH = 2,
    FN_RELU = 3,
    FN_STEP = 4
} fn_activation;

#define FN_NO_ACTIVATION (-1)
/* The activations the trainers apply in registers, and fn_config's output_layer takes;
 * the others (tanh, step) go through activation.c and loss.c. */
#define FN_ACT_IN_REGISTERS(act) ((act) == FN_SIGMOID || (act) == FN_IDENTITY || (act) == FN_RELU)

/* Which micro-kernels run: chosen once by fn_init() from the CPU's features. */
typedef enum { FN_ISA_GENERIC = 0, FN_ISA_AVX2 = 1, FN_ISA_AVX512 = 2 } fn_isa;

/* Detects the CPU, picks the micro-kernels, returns the ISA in use. `force` < 0
 * means "best available"; otherwise the given ISA if the CPU supports it. */
fn_isa fn_init(int force);
fn_isa fn_isa_in_use(void);
const char *fn_isa_name(fn_isa isa);
int fn_cpu_supports(fn_isa isa);
/* How the library was built and what it runs on: the C compiler and its version; the
 * OpenMP specification it was compiled for (_OPENMP, yyyymm); the path of the OpenMP
 * runtime the calls' teams come from, as the dynamic linker loaded it ("" if unknown). */
const char *fn_compiler(void);
int fn_openmp_version(void);
const char *fn_openmp_library(void);
/* The L2 cache of one core in bytes, as the C library reports it (sysconf), else 1 MiB
 * (the smaller L2 of the x86-64 cores seen). The GEMM sizes its packed row blocks to
 * half of it: for speed only; it sets which rows a thread takes, never how an element
 * is summed. */
int64_t fn_l2_bytes(void);

/* Threads: one OpenMP runtime, the same one threadpoolctl and OMP_NUM_THREADS set. */
void fn_set_num_threads(int n);
int fn_get_num_threads(void);
/* Whether a call that could use a team runs alone on a cold pool (see fn_team_if_warm,
 * internal.h): measured (AUTO), or, for tests that need the team, never (WARM: the pool
 * is taken as awake). fn_pool_wake_seconds: the pool's measured wake-up in seconds; a
 * value >= 0 sets it first. fn_last_team: the team the last such call was given. */
enum { FN_POOL_AUTO = 0, FN_POOL_WARM = 1 };
void fn_set_pool_policy(int policy);
double fn_pool_wake_seconds(double set);
int fn_last_team(void);
/* Threads granted to the calls now running, from every calling thread, and the team
 * this thread's last call was granted: calls running at the same time share the cores
 * (fn_team_claim, internal.h). */
int fn_threads_busy(void);
int fn_last_grant(void);
/* The cores the teams share, and so the largest team a call gets whatever the thread
 * count says: the CPUs this process may use (its affinity mask and CPU quota, which the
 * Python package reads at import); n <= 0: the affinity mask's CPUs (omp_get_num_procs,
 * the default). Set before calls, not while they run. fn_set_team_limit: for tests, the
 * largest team instead of the cores (n <= 0: the cores), to run teams larger than the
 * machine's. */
void fn_set_cores(int n);
void fn_set_team_limit(int n);
int fn_cores(void);
/* For tests, the trainers' batch barrier (fn_team_barrier, dispatch.c): how many times,
 * since the process started, a waiting thread has slept (a long wait) and yielded its CPU
 * to the thread it waited for (on the same CPU); and the polls before a wait sleeps
 * (< 0: the default). */
void fn_barrier_waits(int64_t *sleeps, int64_t *yields);
void fn_set_barrier_polls(int64_t polls);
/* 1 in a process forked after a team had run in its parent: every call runs on its
 * calling thread there (GNU OpenMP's thread pool does not survive fork; the child's next
 * team waited for the parent's threads forever), and fn_get_num_threads says 1. */
int fn_forked_after_team(void);
/* The library's heap allocations since the process started (every one goes through
 * fn_aligned_alloc_at or fn_malloc, internal.h): how many, and their bytes. Tests take
 * the difference over a call: what it allocated. fn_scratch_drop frees the scratch
 * block kept between calls, so that the next call allocates its own. */
void fn_alloc_stats(int64_t *calls, int64_t *bytes);
void fn_scratch_drop(void);
/* For tests: the share of a weighted product (gemm.c) that thread 0 takes, in [0, 1], the
 * other threads even shares of the rest, instead of the measured speeds'; < 0 restores
 * the measured split. fn_gemm_forced_share returns the setting. */
void fn_gemm_force_share(double share);
double fn_gemm_forced_share(void);

/* How the small trainer (train_small.c) decides whether a team shares the batches: by
 * measuring (AUTO), or, for tests, always sharing, or taking every trip as slow and the
 * probe's answer as given (alone or shared); setting a policy forgets kept decisions.
 * fn_last_sharing says how this thread's last call ran: FN_ONE_THREAD (no team), FN_SHARED,
 * FN_ALONE_AFTER_PROBE (this call's probe), FN_ALONE_AS_DECIDED (an earlier call's),
 * FN_ALONE_FOR_OTHERS (shared until calls from other threads wanted the cores). */
enum { FN_SHARING_AUTO = 0, FN_SHARING_ALWAYS = 1, FN_SHARING_PROBE_ALONE = 2,
       FN_SHARING_PROBE_SHARED = 3 };
enum { FN_ONE_THREAD = 0, FN_SHARED = 1, FN_ALONE_AFTER_PROBE = 2, FN_ALONE_AS_DECIDED = 3,
       FN_ALONE_FOR_OTHERS = 4 };
void fn_set_sharing_policy(int policy);
int fn_last_sharing(void);
/* Which trainer fn_train's last call in this thread ran (train.c): train_tiny.c,
 * train_small.c or the general one. */
enum { FN_TRAINER_GENERAL = 0, FN_TRAINER_SMALL = 1, FN_TRAINER_TINY = 2 };
int fn_last_trainer(void);
/* Whether the general trainer's last call in this thread took its units scheme (train.c
 * units_fits): 1, else 0. */
int fn_last_units(void);
/* The one-way time of a cache line between two threads of a 2-thread team, in ns (the
 * best of 5 x 16 round trips); -1 when two threads are not available. Slower than
 * FN_SLOW_LINE_NS means the cores do not share a cache: measured 27-67 ns between cores
 * that share one, 165-270 between cores that do not. */
double fn_line_trip_ns(void);
#define FN_SLOW_LINE_NS 100.0

/* shuffle.c. A NumPy bit generator as its capsule hands it out (bit_generator.capsule,
 * named "BitGenerator"): the layout of NumPy's bitgen_t (numpy/random/bitgen.h, part of
 * numpy.random's C API), declared here so that the build needs no NumPy headers. */
typedef struct fn_bitgen {
    void *state;
    uint64_t (*next_uint64)(void *state);
    uint32_t (*next_uint32)(void *state);
    double (*next_double)(void *state);
    uint64_t (*next_raw)(void *state);
} fn_bitgen;
/* count rows of n entries each: permutations of 0 .. n-1, each drawn from bitgen as
 * numpy.random.Generator.permutation(n) draws it (Fisher-Yates from the last entry, each
 * swap's index by NumPy's random_interval: masked 32- or 64-bit draws, rejected above
 * the bound), so the same values and the generator left in the same state. The caller
 * holds the bit generator's lock. */
void fn_permutations(fn_bitgen *bitgen, int64_t count, int64_t n, int64_t *out);

/* The deepest network the tiny trainer (train_tiny.c) takes. */
#define FN_TINY_MAX_LAYERS 8

#define FN_DECLARE(REAL, S)                                                              \
                                                                                         \
/* The tiny trainer's network and batch buffers (train_tiny.c): every row padded with    \
 * zeros to P values (4 or 8). W[l] (sizes[l] x P), b[l] (P, or NULL), WT[l] = W[l]^T    \
 * (sizes[l+1] x P, l >= 1), post[l] and delta[l] (a batch's rows x P, whole blocks of   \
 * 16 values), row_loss (a batch's rows). */                                            \
typedef struct {                                                                          \
    int n_layers;                                                                         \
    const int64_t *sizes;                                                                 \
    const int *act;                                                                       \
    REAL threshold;                                                                       \
    int64_t P;                                                                            \
    REAL *W[FN_TINY_MAX_LAYERS], *b[FN_TINY_MAX_LAYERS], *WT[FN_TINY_MAX_LAYERS];         \
    REAL *post[FN_TINY_MAX_LAYERS], *delta[FN_TINY_MAX_LAYERS];                           \
    double *row_loss;                                                                     \
} fn_tiny_##S;                                                                            \
                                                                                         \
/* Register/cache blocking of the GEMM for one ISA (BLIS's configuration table). */      \
typedef struct {                                                                          \
    const char *name;                                                                     \
    int64_t mr, nr;       /* micro-tile: mr rows x nr columns of C */                     \
    int64_t kc, mc;       /* cache blocks of K (B panel in L1) and M (A block in L2) */   \
    /* C[0:mr, 0:nr] = alpha * op(A) B + beta * C over kc steps; beta == 0: C is not     \
     * read. op(A)[i, p] = A[i * rs_a + p * cs_a] in place; B: kc rows of nr contiguous    \
     * values, rs_b apart (a packed panel, or B itself). */                               \
    void (*microkernel)(int64_t kc, const REAL *A, int64_t rs_a, int64_t cs_a,            \
                        const REAL *B, int64_t rs_b, REAL *C, int64_t ldc, REAL alpha,     \
                        REAL beta);                                                       \
    /* out[0:n] = sigmoid(x[0:n]), vectorised where the ISA allows (may alias). */        \
    void (*sigmoid)(int64_t n, const REAL *x, REAL *out);                                 \
    /* The same by the polynomial's short chain, for latency (the tiny trainer's; within \
     * 2 ulps of sigmoid's). */                                                          \
    void (*sigmoid_short)(int64_t n, const REAL *x, REAL *out);                           \
    /* The product for problems too small to pack A: C = alpha op(A) Bp + beta C, Bp the  \
     * K x NP zero-padded copy of op(B), NP = N rounded up to 16 (target_body.h). */      \
    void (*small_gemm)(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,          \
                       const REAL *A, int64_t lda, const REAL *Bp, int64_t NP, REAL beta,  \
                       REAL *C, int64_t ldc);                                             \
    /* The same with A gathered: its rows are G[0..] from column col (a shuffled batch's  \
     * rows of X read in place): op(A)[i, p] = G[i][col + p], or with trans_a              \
     * G[p][col + i]. The same values as small_gemm on a copy of those rows. */           \
    void (*small_gemm_g)(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,        \
                         const REAL *const *G, int64_t col, const REAL *Bp, int64_t NP,   \
                         REAL beta, REAL *C, int64_t ldc);                                \
    /* 1 if x[0:n] are all finite (no NaN, no infinity), else 0. */                        \
    int (*all_finite)(int64_t n, const REAL *x);                                          \
    /* row[0:n] *= out[0:n] (1 - out[0:n]): sigmoid' from the stored output. */            \
    void (*sigmoid_deriv_mul)(int64_t n, const REAL *out, REAL *row);                     \
    /* out[0:n] = tanh(x[0:n]), vectorised like the sigmoid (may alias). */               \
    void (*tanh)(int64_t n, const REAL *x, REAL *out);                                    \
    /* C[0:m, 0:regs nr/2] = op(A) B over kc steps, m <= mr rows, B's rows regs halves    \
     * of a panel wide (as the micro-kernel with alpha 1, beta 0: the same values). */    \
    void (*edge_rows)(int64_t m, int64_t regs, int64_t kc, const REAL *A, int64_t rs_a,   \
                      int64_t cs_a, const REAL *B, int64_t rs_b, REAL *C, int64_t ldc);   \
    /* whole tiles (two: the micro-kernel's, else one register of columns) and edges as   \
     * the micro-kernel and edge_rows with op(A) gathered as in small_gemm_g: cs 1, its   \
     * rows are G[i] + g_col; cs 0, its columns, G[p] + g_col. The same values. */        \
    void (*tile_g)(int two, int64_t kc, const REAL *const *G, int64_t g_col, int64_t cs,  \
                   const REAL *B, int64_t rs_b, REAL *C, int64_t ldc, REAL alpha,          \
                   REAL beta);                                                            \
    void (*edge_rows_g)(int64_t m, int64_t regs, int64_t kc, const REAL *const *G,        \
                        int64_t g_col, int64_t cs, const REAL *B, int64_t rs_b, REAL *C,  \
                        int64_t ldc);                                                     \
    /* For m <= fused_rows: W[0:K, 0:n] := alpha Ap^T D + beta W (kp rows of Ap, ldap      \
     * apart, and of D, ldd), and H[0:m, 0:n] = X W with the new W, in one pass over W; H \
     * summed in blocks of kc within super-blocks of ks, as the GEMM sums it (train.c).   \
     * W's rows ldw apart, each nr columns' panel ps after the last (row-major: nr). */   \
    void (*fused_step)(int64_t n, int64_t K, int64_t kc, int64_t ks, REAL *W, int64_t ldw, \
                       int64_t ps, int64_t kp, const REAL *Ap, int64_t ldap, const REAL *D,  \
                       int64_t ldd, REAL alpha, REAL beta, int64_t m, const REAL *X,          \
                       int64_t ldx, REAL *H, int64_t ldh);                                    \
    int64_t fused_rows; /* m <= fused_rows (< mr) for fused_step */                       \
    /* An output layer's rows from its summed parts, for act FN_SIGMOID, FN_IDENTITY or  \
     * FN_RELU (FN_ACT_IN_REGISTERS): O, delta_O and the rows' losses in one pass             \
     * (target_body.h). The parts' rows: ld_part apart, ld (padded as O) or n (packed);   \
     * Y's rows: ld_y apart, ld or n (the caller's rows, read in place). */               \
    void (*output_layer)(int act, int64_t m, int64_t n, int64_t ld, int64_t groups,       \
                         const REAL *parts, int64_t part_stride, int64_t ld_part,         \
                         const REAL *b, const REAL *Y, int64_t ld_y, REAL scale, REAL *O, \
                         REAL *dO, double *row_loss);                                     \
    /* The tiny trainer's step on a batch of m rows (m x sizes[0] of X, m x sizes[L] of  \
     * Y, unpadded): forward, deltas, every W[l] -= alpha A^T delta[l] (and b, WT).      \
     * Returns the batch's sum of squared errors (row_loss summed in order). */          \
    double (*tiny_batch)(const fn_tiny_##S *net, int64_t m, const REAL *X, const REAL *Y, \
                         REAL alpha);                                                     \
    /* WT[j * pm + i] = W[i * pn + j] for rows [i0, i1) of W and its n columns: an exact  \
     * copy, in this target's registers. */                                               \
    void (*transpose)(int64_t n, int64_t i0, int64_t i1, const REAL *W, int64_t pn,       \
                      REAL *WT, int64_t pm);                                              \
    /* out[0:n] = relu(x[0:n]) (may alias); row[0:n] *= relu'(out[0:n]). */               \
    void (*relu)(int64_t n, const REAL *x, REAL *out);                                    \
    void (*relu_deriv_mul)(int64_t n, const REAL *out, REAL *row);                        \
    /* C[i, 0:n] += b[0:n] for rows [0, m), ldc apart. */                                 \
    void (*add_bias)(int64_t m, int64_t n, REAL *C, int64_t ldc, const REAL *b);           \
    /* db[0:n] = alpha * column sums of delta's m rows (ld apart), + db with accumulate   \
     * (backprop.c's fn_bias_gradient_cols, the same values). */                          \
    void (*bias_grad)(int64_t m, int64_t n, const REAL *delta, int64_t ld, REAL *db,      \
                      REAL alpha, int accumulate);                                        \
    /* row[0:n] *= 1 - out[0:n]^2: tanh' from the stored output. */                      \
    void (*tanh_deriv_mul)(int64_t n, const REAL *out, REAL *row);                        \
} fn_config_##S;                                                                          \
const fn_config_##S *fn_config_get_##S(void);                                            \
                                                                                         \
/* What the GEMM applies to each finished tile of C while it is in L1:                   \
 * v = C[i,j]; if bias: v += bias[j]; if act >= 0: v = act(v);                           \
 * if deriv_of: v *= act'(.) computed from the stored output deriv_of[i,j]. */             \
typedef struct {                                                                          \
    const REAL *bias;       /* length N, or NULL */                                       \
    int act;                /* fn_activation, or FN_NO_ACTIVATION */                      \
    const REAL *deriv_of;   /* M x N layer output whose act' multiplies C, or NULL */     \
    int64_t ld_deriv;                                                                     \
    int deriv_act;          /* the activation that produced deriv_of */                  \
    REAL threshold;         /* t of the step activation */                                \
} fn_epilogue_##S;                                                                        \
                                                                                         \
/* gemm.c. C (M x N) = alpha * op(A) op(B) + beta * C, then the epilogue.                \
 * op(A) is M x K: A itself (M x K, lda) or, with trans_a, A^T for A stored K x M.       \
 * op(B) is K x N: B (K x N, ldb) or, with trans_b, B^T for B stored N x K.               \
 * The three products of backpropagation are A B, A^T B and A B^T.                       \
 * beta == 0: C is only written. Parallel over tiles of C, never over K, so every       \
 * element is summed in the same order whatever the number of threads. */               \
fn_status fn_gemm_##S(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,         \
                      REAL alpha, const REAL *A, int64_t lda, const REAL *B, int64_t ldb, \
                      REAL beta, REAL *C, int64_t ldc, const fn_epilogue_##S *ep);        \
/* The same product by the textbook triple loop: the fallback and the test oracle. */    \
void fn_gemm_naive_##S(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,        \
                       REAL alpha, const REAL *A, int64_t lda, const REAL *B, int64_t ldb, \
                       REAL beta, REAL *C, int64_t ldc);                                  \
                                                                                         \
/* check.c. 1 if every one of the n values is finite (no NaN, no infinity), else 0. */     \
int fn_all_finite_##S(int64_t n, const REAL *x);                                          \
                                                                                         \
/* activation.c. out = act(z), elementwise on n values (out may alias z). */             \
void fn_activation_##S(int act, int64_t n, const REAL *z, REAL *out, REAL threshold);    \
/* dout = act'(z), computed from the stored output out = act(z) (no exp):                \
 * sigmoid s(1-s), tanh 1-t^2, relu [out>0], step 0, identity 1. */                       \
void fn_activation_derivative_##S(int act, int64_t n, const REAL *out, REAL *dout);      \
                                                                                         \
/* loss.c. MSE = 1/N sum_e sum_n (O_out[e,n] - Y[e,n])^2, O_out and Y N x n_out. */      \
double fn_mse_##S(int64_t N, int64_t n_out, const REAL *O_out, const REAL *Y);           \
/* delta_O = (2/N) (O_out - Y) * act'(O_in), act' from O_out, in one pass that also     \
 * sums the MSE into *loss. */                                                            \
fn_status fn_output_delta_##S(int act, int64_t N, int64_t n_out, const REAL *O_out,       \
                              const REAL *Y, REAL *delta_O, double *loss);                \
                                                                                         \
/* backprop.c. delta_H (N x n_h) = (delta_O W^T) * act'(H_in), act' from H_out;           \
 * delta_O N x n_o, W n_h x n_o, H_out N x n_h. The product is multiplied by act'         \
 * as each tile is written (GEMM epilogue), not in a second pass. */                      \
fn_status fn_hidden_delta_##S(int act, int64_t N, int64_t n_h, int64_t n_o,              \
                              const REAL *delta_O, const REAL *W, const REAL *H_out,      \
                              REAL *delta_H);                                             \
/* dW (n_a x n_b) = A_out^T delta, A_out N x n_a the layer's input, delta N x n_b. */    \
fn_status fn_weight_gradient_##S(int64_t N, int64_t n_a, int64_t n_b, const REAL *A_out,  \
                                 const REAL *delta, REAL *dW);                            \
/* db (n_b) = sum over the N rows of delta. */                                           \
void fn_bias_gradient_##S(int64_t N, int64_t n_b, const REAL *delta, REAL *db);          \
                                                                                         \
/* update.c. W := W - alpha * dW, elementwise on n values. */                            \
void fn_update_##S(int64_t n, REAL *W, const REAL *dW, REAL alpha);                      \
/* W (n_a x n_b) := W - alpha * A_out^T delta: the gradient product written straight     \
 * into the descent step (GEMM with alpha' = -alpha, beta = 1); no dW is stored. */       \
fn_status fn_fused_update_##S(int64_t N, int64_t n_a, int64_t n_b, const REAL *A_out,     \
                              const REAL *delta, REAL *W, REAL alpha);                    \
                                                                                         \
/* train.c. A network of L layers: W[l] is sizes[l] x sizes[l+1], b[l] has sizes[l+1]     \
 * entries (b == NULL: no bias, the seed's model), act[l] follows layer l. */             \
typedef struct {                                                                          \
    int n_layers;                                                                         \
    const int64_t *sizes;                                                                 \
    REAL *const *W;                                                                       \
    REAL *const *b;                                                                       \
    const int *act;                                                                       \
    REAL threshold;                                                                       \
} fn_net_##S;                                                                             \
/* Feedforward of N rows of X (N x sizes[0]): post[l] (N x sizes[l+1]) = act[l](pre[l]),  \
 * pre[l] = post[l-1] W[l] (+ b[l]) (H_in, ..., O_in), post[L-1] = O_out. With pre ==     \
 * NULL the activation is fused into the product and pre is not kept; then a hidden       \
 * layer's post[l] may be NULL: its output goes to scratch (predict). */                  \
fn_status fn_forward_##S(const fn_net_##S *net, int64_t N, const REAL *X,                 \
                         REAL *const *pre, REAL *const *post);                            \
/* dW[l] = dMSE/dW[l], db[l] = dMSE/db[l] (db NULL without bias) on N rows of X, Y.       \
 * Returns the MSE in *loss. */                                                           \
fn_status fn_gradients_##S(const fn_net_##S *net, int64_t N, const REAL *X, const REAL *Y, \
                           REAL *const *dW, REAL *const *db, double *loss);               \
/* Minibatch gradient descent for n_epochs over N rows, in place on the weights.         \
 * order (n_epochs x N row indices) gives each epoch's row order; NULL keeps rows in      \
 * order. Each batch: forward, delta_O, delta_H..., W -= alpha dW. epoch_loss[i] is the   \
 * MSE over epoch i's batches before each update: (1/N) sum of (O_out - Y)^2.              \
 * On NaN/inf the weights of the start of that epoch are restored, *epochs_done says      \
 * how many epochs completed, and FN_NONFINITE is returned (FN_STOPPED likewise when the   \
 * stop check says stop: fn_set_stop_check). epoch_loss[i] is NaN for the epochs not       \
 * completed (i >= *epochs_done). */                                                      \
fn_status fn_train_##S(const fn_net_##S *net, int64_t N, const REAL *X, const REAL *Y,   \
                       const int64_t *order, int64_t n_epochs, int64_t batch_size,         \
                       REAL alpha, double *epoch_loss, int64_t *epochs_done);

FN_DECLARE(float, f32)
FN_DECLARE(double, f64)

#undef FN_DECLARE

#endif /* FASTNET_H */
