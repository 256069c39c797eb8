/*
 * train.c: the seed's network end to end: feedforward, gradients, and whole epochs
 * of minibatch gradient descent in one call (the GIL is released around it).
 *
 * Feedforward, layer l = 0 .. L-1 (the seed's network is L = 2):
 *     pre[l]  = post[l-1] W[l] (+ b[l])      H_in = X W1, O_in = H_out W2
 *     post[l] = act[l](pre[l])               H_out, O_out
 * Backward, l = L-1 .. 0, starting from delta = delta_O:
 *     delta_prev = (delta W[l]^T) * act'(post[l-1])     delta_H
 *     W[l] := W[l] - alpha post[l-1]^T delta            (X for l = 0)
 * The hidden delta is computed before W[l] is updated: it uses the old weights.
 *
 * One workspace per call, sized for the largest batch, is reused by every batch: nothing
 * is allocated inside the epoch loop. Its block is the scratch block kept between calls
 * when large enough (fn_scratch_take), so a call does not touch new pages either. One
 * OpenMP region spans all epochs; the kernels share out their loops inside it (see
 * internal.h).
 */
#ifndef REAL
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* fn_forward of at least this many rows reads W[0] from a panel-major copy (when its
 * first layer is wide and deep enough: see fn_forward). */
#define FN_FORWARD_PANEL_ROWS 2048
/* A call of fewer rows than this (rows times epochs) in batches fused by rows keeps W[0]
 * row-major: its copy to panels and back would cost more than the panels save. */
#define FN_FUSED_PANEL_ROWS 64
/* fn_forward takes the rows in chunks of this many (see there). */
#define FN_FORWARD_CHUNK_ROWS 4096
/* The units scheme's groups of hidden units (units_batch): at least this many, whole
 * panels (two of 16 doubles; one of 32 floats). Each group's part of the output layer's
 * sums crosses between the cores: float64 mnist in one-panel groups, twice as many
 * parts, ran 1-2% slower on two threads (C, two times 6 rounds). */
#define FN_UNITS_GROUP 32

/* One hidden layer takes the units scheme when its outputs are fewer than this: the same
 * on every CPU. It was "narrower than the micro-tile" (rows_phase_fits), 32 floats or 16
 * doubles with AVX-512, 16 and 8 with AVX2, 8 and 4 with the portable kernels: on those,
 * mnist's 10 outputs went to the team products, where a batch of one row runs on one
 * thread. [784, 128, 10], 2000 rows a call, two threads, before -> after: AVX2 float64,
 * one row a batch 40.8 -> 21.2 ms, 8 rows 13.5 -> 12.1; portable float32, one row 51.6 ->
 * 27.7, float64 96.4 -> 59.4; [784, 128, 24], AVX-512 float64, 3000 rows, one row 51.7 ->
 * 28.8, 16 rows 14.4-16.5 -> 13.4-13.6, 64 rows 12.6-12.8 -> 12.5-13.7; one thread within
 * noise in all. */
#define FN_UNITS_MAX_OUTPUTS 32

/* Deeper networks take the units scheme for batches of at most this many rows, where the
 * general trainer's team products cost the most barriers a row: [784, 256, 128, 10] on two
 * threads, groups of 32 units, 1 row 28-34 -> 18-19 us a row, 4 12 -> 8.7, 8 10.4-10.8 ->
 * 7.9-8.2, 16 7.4-8.0 -> 6.8-6.9 (then 6.3 in groups of 64: units_group_panels); one
 * thread within noise. In longer batches, with groups of 64, two threads gained 8% at 32
 * rows and nothing from 64 (one thread within 2%): not worth capping the team at the 4
 * groups there, where the team products take any number of threads. */
#define FN_UNITS_DEEP_ROWS 16

/* A shuffled batch copied by rows (batches of at most fused_rows rows, whose step of W[0]
 * is fused with the next product) asks for a row of X this many rows before copying it.
 * When the rows scheme copied too, [784, 256, 128, 10], 20000 shuffled rows in C, medians
 * of 4 alternating rounds: one thread 155.6 -> 149.1 ms an epoch, two 100.4 -> 97.4. */
#define FN_GATHER_AHEAD 4

static _Thread_local int last_trainer = FN_TRAINER_GENERAL;
int fn_last_trainer(void) { return last_trainer; }
static _Thread_local int last_units = 0;
int fn_last_units(void) { return last_units; }

/* The stop check of training calls from this thread (fn_set_stop_check). */
static _Thread_local fn_stop_check stop_check = NULL;
static int stop_every_batch = 0;
void fn_set_stop_check(fn_stop_check check) { stop_check = check; }
void fn_set_stop_check_every_batch(int every_batch) { stop_every_batch = every_batch; }

/* Work between two reads of the clock while polling the stop check: about 0.1 ms of it,
 * so that the reads (some 20 ns) cost nothing measurable, even in batches of one row. */
#define FN_STOP_POLL_FLOP 1e7

void fn_stop_poll_init(fn_stop_poller *p, double flop_per_batch)
{
    p->check = stop_check;
    p->every = stop_every_batch || flop_per_batch >= FN_STOP_POLL_FLOP
                   ? 1
                   : 1 + (int64_t)(FN_STOP_POLL_FLOP / (flop_per_batch > 1 ? flop_per_batch : 1));
    p->left = p->every;
    p->next = omp_get_wtime() + FN_STOP_CHECK_SECONDS;
}

int fn_stop_poll_slow(fn_stop_poller *p)
{
    p->left = p->every;
    if (!stop_every_batch) {
        const double now = omp_get_wtime();
        if (now < p->next)
            return 0;
        p->next = now + FN_STOP_CHECK_SECONDS;
    }
    if (!p->check())
        return 0;
    p->check = NULL; /* said once: the call stops, and is not asked again */
    return 1;
}

#define FN_SELF "train.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

typedef struct {
    REAL **post;      /* L buffers, rows x sizes[l+1]: H_out, ..., O_out */
    REAL *delta[2];   /* rows x widest layer: delta_O, delta_H, ... (ping-pong) */
    REAL *Xb;         /* shuffled fused batches (fused_rows rows at most): their rows of X;
                       * the units scheme's two a thread (units_copy) */
    REAL *Yb;         /* shuffled, but for the units scheme: the batch's rows of Y */
    REAL *Xb2;        /* a second Xb when the last batch's rows are still needed (fused) */
    int64_t x_stride; /* elements from one Xb to the next */
    const REAL **xg;  /* shuffled: pointers to the batch's rows of X, read in place; the
                       * units scheme's one table a thread, xg_stride apart (whole cache
                       * lines each), the others' one table */
    int64_t xg_stride;
    double *row_loss; /* rows */
    REAL *gemm;       /* packing panels for the largest product */
    int64_t gemm_own; /* the units scheme: elements of it a thread (units_batch's products) */
    REAL *rows_ws;    /* output_rows_team's or units_batch's buffers, rows_stride a thread */
    int64_t rows_stride;
    REAL *snapshot;   /* the weights at the start of the epoch (see T(snapshot)) */
    REAL *w0;         /* W[0] panel-major while the general trainer runs (or NULL) */
    REAL *d0;         /* with w0: layer 0's delta panel-major (see backward_team) */
    int64_t w0_size;  /* its elements: sizes[0] x sizes[1] rounded up to whole panels */
    /* The units scheme (units_batch): each hidden group's part of O_in, for batches of
     * even and odd index; each thread's own buffers (units_own), own_stride bytes apart. */
    REAL *parts;
    int64_t part_stride; /* elements a group's part (rows of n_out values, unpadded) */
    char *own;
    size_t own_stride;
    int64_t n_fused; /* units_own's n_fused */
    int64_t own_rows, own_mid, own_out; /* units_own's rows, n_mid and n_out */
    char *tail;        /* the units scheme's tail (units_tail), tail_stride bytes a thread */
    size_t tail_stride;
    atomic_long *sync; /* the units scheme: a line a thread for fn_team_barrier (zeroed) */
    void *block;
} T(workspace);

/* A thread's own buffers in the units scheme: the batch's sums of layer 1 and then its
 * output (O, rows x n_mid: O_in, then O_out), their delta (dO, rows x n_mid), its rows of
 * Y (rows x n_out), layer 1's bias (n_mid) and each row's loss, in that order; with a fused
 * step of W[0] (units_fused_forward) then its groups' rows of delta_H and of H side by
 * side (rows x n_hidden each, n_fused = n_hidden; else 0). n_mid = sizes[2], the width of
 * the groups' parts; n_out = sizes[L], the same for two layers. */
typedef struct {
    REAL *O, *dO, *Yb, *b;
    double *row_loss;
    REAL *D, *H;
} T(units_own);

#define FN_LINE(b) ((((size_t)(b)) + FN_ALIGN - 1) / FN_ALIGN * FN_ALIGN)

static size_t T(units_own_bytes)(int64_t rows, int64_t n_mid, int64_t n_out, int64_t n_fused)
{
    return 2 * FN_LINE(sizeof(REAL) * rows * n_mid) + FN_LINE(sizeof(REAL) * rows * n_out) +
           FN_LINE(sizeof(REAL) * n_mid) + FN_LINE(sizeof(double) * rows) +
           2 * FN_LINE(sizeof(REAL) * rows * n_fused);
}

static T(units_own) T(units_own_get)(const T(workspace) *ws, int t)
{
    const size_t mid = FN_LINE(sizeof(REAL) * ws->own_rows * ws->own_mid);
    const size_t y = FN_LINE(sizeof(REAL) * ws->own_rows * ws->own_out);
    char *p = ws->own + (size_t)t * ws->own_stride;
    char *b = p + 2 * mid + y, *loss = b + FN_LINE(sizeof(REAL) * ws->own_mid);
    char *fused = loss + FN_LINE(sizeof(double) * ws->own_rows);
    T(units_own) own = {(REAL *)p, (REAL *)(p + mid), (REAL *)(p + 2 * mid), (REAL *)b,
                        (double *)loss, (REAL *)fused,
                        (REAL *)(fused + FN_LINE(sizeof(REAL) * ws->own_rows * ws->n_fused))};
    return own;
}

/* The units scheme's tail, layers 2 to L - 1 of a deeper network (units_tail_run): each
 * thread's own copy of their weights and biases, trained by every thread alike, and its
 * own buffers: layer l's W (sizes[l] x sizes[l + 1]), b (sizes[l + 1], with biases) and
 * output (rows x sizes[l + 1]) in turn, then two deltas (rows x the tail's widest). */
typedef struct {
    REAL *W, *b, *H;
} T(tail_layer);

static size_t T(tail_layer_bytes)(const T(fn_net) *net, int64_t rows, int l)
{
    const int64_t *s = net->sizes;
    return FN_LINE(sizeof(REAL) * s[l] * s[l + 1]) +
           (net->b ? FN_LINE(sizeof(REAL) * s[l + 1]) : 0) +
           FN_LINE(sizeof(REAL) * rows * s[l + 1]);
}

static int64_t T(tail_widest)(const T(fn_net) *net)
{
    int64_t w = 0;
    for (int l = 2; l <= net->n_layers; l++)
        w = net->sizes[l] > w ? net->sizes[l] : w;
    return w;
}

static size_t T(tail_bytes)(const T(fn_net) *net, int64_t rows)
{
    if (net->n_layers < 3)
        return 0;
    size_t n = 2 * FN_LINE(sizeof(REAL) * rows * T(tail_widest)(net));
    for (int l = 2; l < net->n_layers; l++)
        n += T(tail_layer_bytes)(net, rows, l);
    return n;
}

/* Thread t's layer l of the tail (2 <= l < L); l == L: its two deltas, in W and H. */
static T(tail_layer) T(tail_get)(const T(fn_net) *net, const T(workspace) *ws, int t, int l)
{
    const int64_t *s = net->sizes, rows = ws->own_rows;
    char *p = ws->tail + (size_t)t * ws->tail_stride;
    for (int k = 2; k < l; k++)
        p += T(tail_layer_bytes)(net, rows, k);
    if (l == net->n_layers) {
        T(tail_layer) d = {(REAL *)p, NULL,
                           (REAL *)(p + FN_LINE(sizeof(REAL) * rows * T(tail_widest)(net)))};
        return d;
    }
    const size_t w = FN_LINE(sizeof(REAL) * s[l] * s[l + 1]);
    const size_t b = net->b ? FN_LINE(sizeof(REAL) * s[l + 1]) : 0;
    T(tail_layer) x = {(REAL *)p, net->b ? (REAL *)(p + w) : NULL, (REAL *)(p + w + b)};
    return x;
}

/* The units scheme's groups of hidden units (units_batch): FN_UNITS_GROUP, or one panel
 * if wider, whole panels each; their panels and their count. The same for every batch
 * size, as the output layer's sums follow them: a fit's bits are those of one fit a
 * batch. A deeper network's groups are a quarter of its first hidden layer if that is
 * wider: their parts of layer 1's sums are rows of sizes[2] values (not a few outputs),
 * and with 4 groups of 64 units [784, 256, 128, 10] on two threads ran 4-5% faster in
 * batches of 1 and 4 rows than with 8 of 32, 8 rows 4% (one thread 18%), 16 rows 12%
 * faster than the team products (float32, medians of 5 alternating rounds). It caps the
 * team at 4 threads, as mnist's 4 groups do. */
static int64_t T(units_group_panels)(const T(fn_net) *net)
{
    const int64_t nr = T(fn_config_get)()->nr;
    const int64_t least = nr < FN_UNITS_GROUP ? FN_UNITS_GROUP / nr : 1;
    if (net->n_layers < 3)
        return least;
    /* at most FN_SMALL_N units (and kc): their products go by fn_gemm_rows */
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t most = (FN_SMALL_N < cfg->kc ? FN_SMALL_N : cfg->kc) / nr;
    const int64_t quarter = (net->sizes[1] + 4 * nr - 1) / (4 * nr); /* panels */
    return quarter < least ? least : quarter > most ? most : quarter;
}

static int64_t T(units_groups)(const T(fn_net) *net)
{
    const int64_t gw = T(units_group_panels)(net) * T(fn_config_get)()->nr;
    return (net->sizes[1] + gw - 1) / gw;
}

static int64_t T(n_params)(const T(fn_net) *net)
{
    int64_t n = 0;
    for (int l = 0; l < net->n_layers; l++)
        n += net->sizes[l] * net->sizes[l + 1] + (net->b ? net->sizes[l + 1] : 0);
    return n;
}

static void T(workspace_free)(T(workspace) *ws)
{
    free(ws->post);
    fn_scratch_give(ws->block);
    memset(ws, 0, sizeof(*ws));
}

/* One allocation for a batch of `rows`; gather: that many X buffers (0: none), gather_y:
 * one of Y, xg_tables tables of rows pointers (shuffled; the units scheme's one a thread),
 * a snapshot of `snapshot` elements, a panel-major copy of W[0] (w0_panels: its elements,
 * or 0), output_rows_team's buffers (rows_phase) and the units scheme's (units) only when
 * asked for. */
static fn_status T(workspace_alloc)(T(workspace) *ws, const T(fn_net) *net, int64_t rows,
                                    int gather, int gather_y, int xg_tables, int64_t snapshot,
                                    int team, int64_t w0_panels, int rows_phase, int units)
{
    const int L = net->n_layers;
    const int64_t *s = net->sizes;
    int64_t widest = 0, gemm = 0;
    for (int l = 1; l <= L; l++)
        widest = s[l] > widest ? s[l] : widest;
    for (int l = 0; l < L; l++) {
        int64_t need[3] = {T(fn_gemm_workspace)(rows, s[l + 1], s[l], team),  /* forward */
                           T(fn_gemm_workspace)(rows, s[l], s[l + 1], team),  /* delta   */
                           T(fn_gemm_workspace)(s[l], s[l + 1], rows, team)}; /* update  */
        for (int k = 0; k < 3; k++)
            gemm = need[k] > gemm ? need[k] : gemm;
    }
    /* the units scheme's products, a group of hidden units each (its width gw, or the
     * last group's), on each thread's own part of the buffer */
    int64_t gemm_own = 0;
    if (units) {
        const int64_t gw = T(units_group_panels)(net) * T(fn_config_get)()->nr;
        const int64_t widths[2] = {s[1] < gw ? s[1] : gw,
                                   s[1] - (T(units_groups)(net) - 1) * gw};
        for (int k = 0; k < 4; k++) {
            const int64_t w = widths[k / 2];
            const int64_t need = k % 2 ? T(fn_gemm_workspace)(s[0], w, rows, 1)
                                       : T(fn_gemm_workspace)(rows, w, s[0], 1);
            gemm_own = need > gemm_own ? need : gemm_own;
        }
        gemm_own = fn_round_up(gemm_own, FN_ALIGN);
        const int64_t owners = (int64_t)(FN_GEMM_CTL_BYTES / sizeof(REAL)) + team * gemm_own;
        gemm = owners > gemm ? owners : gemm;
    }
    /* output_rows_team's products (forward, delta, update of the output layer), each
     * thread in a buffer of its own that no team product shares: they run without a
     * barrier between them and the next team product; the units scheme's, those of
     * layers 1 to L - 1 (units_batch, units_tail_run) */
    int64_t rows_stride = 0;
    for (int l = units ? 1 : L - 1; l < L && (rows_phase || units); l++)
        for (int k = 0; k < 3; k++) {
            const int64_t m = k < 2 ? rows : s[l], n = k == 1 ? s[l] : s[l + 1],
                          kk = k == 0 ? s[l] : k == 1 ? s[l + 1] : rows;
            const int64_t need = fn_round_up(T(fn_gemm_workspace)(m, n, kk, 1), FN_ALIGN);
            rows_stride = need > rows_stride ? need : rows_stride;
        }
    /* Sizes in bytes, each rounded to a cache line. */
    size_t sizes[15 + 1];
    int n = 0;
    const size_t R = sizeof(REAL);
    size_t post_total = 0;
    for (int l = 0; l < L; l++)
        post_total += FN_LINE(R * rows * s[l + 1]);
    sizes[n++] = post_total;
    sizes[n++] = FN_LINE(R * rows * widest);
    sizes[n++] = FN_LINE(R * rows * widest);
    sizes[n++] = (size_t)gather * FN_LINE(R * rows * s[0]);
    sizes[n++] = gather_y ? FN_LINE(R * rows * s[L]) : 0;
    sizes[n++] = FN_LINE(sizeof(double) * rows);
    sizes[n++] = FN_LINE(R * gemm);
    sizes[n++] = FN_LINE(R * rows_stride * team);
    sizes[n++] = FN_LINE(R * snapshot);
    sizes[n++] = FN_LINE(R * w0_panels);
    const int64_t nr = T(fn_config_get)()->nr;
    sizes[n++] = w0_panels ? FN_LINE(R * rows * fn_round_up(s[1], nr)) : 0;
    /* the units scheme's rows of sizes[2] values, unpadded: padded to 16, the parts that
     * cross between the cores were 60% larger on mnist, and its epoch 3-6% slower on two
     * threads */
    const int64_t n_mid = L > 1 ? s[2] : 0; /* a single layer has no sizes[2] */
    const int64_t part_stride = (int64_t)(FN_LINE(R * rows * n_mid) / R);
    sizes[n++] = units ? R * (size_t)(2 * T(units_groups)(net) * part_stride) : 0;
    const int64_t n_fused = units && rows <= T(fn_config_get)()->fused_rows ? s[1] : 0;
    sizes[n++] = units ? (size_t)team * T(units_own_bytes)(rows, n_mid, s[L], n_fused) : 0;
    const int64_t xg_stride = fn_round_up(rows, FN_ALIGN / (int64_t)sizeof(REAL *));
    sizes[n++] = (size_t)xg_tables * sizeof(REAL *) * (size_t)xg_stride;
    sizes[n++] = units ? (size_t)team * FN_ALIGN : 0;
    sizes[n++] = units ? (size_t)team * T(tail_bytes)(net, rows) : 0;
    size_t total = 0;
    for (int k = 0; k < n; k++)
        total += sizes[k];

    memset(ws, 0, sizeof(*ws));
    ws->post = fn_malloc(sizeof(REAL *) * (size_t)L);
    ws->block = fn_scratch_take(total);
    if (!ws->post || !ws->block) {
        T(workspace_free)(ws);
        return FN_ENOMEM;
    }
    char *p = ws->block;
    for (int l = 0; l < L; l++) {
        ws->post[l] = (REAL *)p;
        p += FN_LINE(R * rows * s[l + 1]);
    }
    ws->delta[0] = (REAL *)p; p += sizes[1];
    ws->delta[1] = (REAL *)p; p += sizes[2];
    ws->Xb = gather ? (REAL *)p : NULL;
    ws->x_stride = (int64_t)(FN_LINE(R * rows * s[0]) / R);
    ws->Xb2 = gather > 1 ? ws->Xb + ws->x_stride : NULL;
    p += sizes[3];
    ws->Yb = gather_y ? (REAL *)p : NULL; p += sizes[4];
    ws->row_loss = (double *)p; p += sizes[5];
    ws->gemm = (REAL *)p; p += sizes[6];
    fn_gemm_ctl_clear(ws->gemm);
    ws->gemm_own = gemm_own;
    ws->rows_ws = (REAL *)p; p += sizes[7];
    ws->rows_stride = rows_stride;
    ws->snapshot = snapshot ? (REAL *)p : NULL;
    p += sizes[8];
    ws->w0 = w0_panels ? (REAL *)p : NULL;
    p += sizes[9];
    ws->d0 = w0_panels ? (REAL *)p : NULL;
    if (ws->d0 && s[1] % nr) /* the last panel's padding, never written: no garbage in */
        memset(ws->d0, 0, sizes[10]);
    p += sizes[10];
    ws->w0_size = w0_panels;
    ws->parts = units ? (REAL *)p : NULL;
    ws->part_stride = part_stride;
    p += sizes[11];
    ws->own = units ? p : NULL;
    ws->own_stride = T(units_own_bytes)(rows, n_mid, s[L], n_fused);
    ws->n_fused = n_fused;
    ws->own_rows = rows, ws->own_mid = n_mid, ws->own_out = s[L];
    p += sizes[12];
    ws->xg = xg_tables ? (const REAL **)(void *)p : NULL;
    ws->xg_stride = xg_stride;
    p += sizes[13];
    ws->sync = units ? (atomic_long *)(void *)p : NULL;
    if (units)
        memset(p, 0, sizes[14]);
    p += sizes[14];
    ws->tail = units ? p : NULL;
    ws->tail_stride = T(tail_bytes)(net, rows);
    return FN_OK;
}

/* W[0]'s panel-major layout (pack_w0): nr-column panels, each a contiguous K x nr matrix,
 * K = sizes[0]; w0_panel_stride is the elements from one panel to the next, w0_elements
 * those of all of them (sizes[1] rounded up to whole panels). */
static int64_t T(w0_panel_stride)(const T(fn_net) *net)
{
    return net->sizes[0] * T(fn_config_get)()->nr;
}

static int64_t T(w0_elements)(const T(fn_net) *net)
{
    return net->sizes[0] * fn_round_up(net->sizes[1], T(fn_config_get)()->nr);
}

/* Feedforward of N rows through layers [first, end) (in: layer first's input), by every
 * thread of the team.
 * pre == NULL: the activation is applied in the GEMM's epilogue (fused); otherwise pre
 * keeps H_in, O_in, ... w0: W[0] panel-major (see T(pack_w0)), or NULL to read net->W[0].
 * G: with first == 0, the input's rows gathered (G[i] the i-th; in unused), or NULL. */
static void T(forward_from_team)(const T(fn_net) *net, int first, int end, int64_t N,
                                 const REAL *in, const REAL *const *G, REAL *const *pre,
                                 REAL *const *post, REAL *gemm_ws, const REAL *w0)
{
    const int64_t *s = net->sizes;
    for (int l = first; l < end; l++, G = NULL) {
        T(fn_epilogue) ep = {net->b ? net->b[l] : NULL, net->act[l], NULL, 0, 0,
                             net->threshold};
        if (pre) {
            ep.act = FN_NO_ACTIVATION;
            T(fn_gemm_team_panels)(0, 0, N, s[l + 1], s[l], 1, in, s[l], G, net->W[l], s[l + 1],
                                   0, 0, pre[l], s[l + 1], 0, &ep, gemm_ws);
#pragma omp for schedule(static)
            for (int64_t e = 0; e < N; e++)
                T(fn_activation)(net->act[l], s[l + 1], pre[l] + e * s[l + 1],
                                 post[l] + e * s[l + 1], net->threshold);
        } else if (l == 0 && w0) {
            T(fn_gemm_team_panels)(0, 0, N, s[1], s[0], 1, in, s[0], G, w0, 0,
                                   T(w0_panel_stride)(net), 0, post[0], s[1], 0, &ep, gemm_ws);
        } else {
            T(fn_gemm_team_panels)(0, 0, N, s[l + 1], s[l], 1, in, s[l], G, net->W[l], s[l + 1],
                                   0, 0, post[l], s[l + 1], 0, &ep, gemm_ws);
        }
        in = post[l];
    }
}

static void T(forward_team)(const T(fn_net) *net, int64_t N, const REAL *X,
                            const REAL *const *G, REAL *const *pre, REAL *const *post,
                            REAL *gemm_ws, const REAL *w0)
{
    T(forward_from_team)(net, 0, net->n_layers, N, X, G, pre, post, gemm_ws, w0);
}

/* W[l] := W[l] - alpha A_in^T delta for N rows, by every thread of the team (the fused
 * GEMM): backward_team's step, and the step of W[0] it defers. w0 as in forward_team; G
 * (l == 0): A_in's rows gathered, as in forward_from_team. */
static void T(update_team)(const T(fn_net) *net, int l, int64_t N, const REAL *A_in,
                           const REAL *const *G, const REAL *delta, int64_t d_panels,
                           REAL alpha, REAL *gemm_ws, REAL *w0)
{
    const int64_t *s = net->sizes;
    if (l == 0 && w0) /* delta panel-major too when d_panels (its panels' stride) */
        T(fn_gemm_team_panels)(1, 0, s[0], s[1], N, -alpha, A_in, s[0], G, delta, s[1],
                               d_panels, 1, w0, 0, T(w0_panel_stride)(net), NULL, gemm_ws);
    else
        T(fn_gemm_team_panels)(1, 0, s[l], s[l + 1], N, -alpha, A_in, s[l], l ? NULL : G, delta,
                               s[l + 1], 0, 1, net->W[l], s[l + 1], 0, NULL, gemm_ws);
}

/* W[0] (K x N, row-major) to or from (unpack) its panel-major copy w0: nr-column panels,
 * each a contiguous K x nr matrix, the last one zero-padded. The general trainer keeps W[0]
 * so while it runs, when its batches are too large to fuse the first layer's step: each
 * thread's columns of W[0] are then one contiguous range. Row-major, each row of mnist's W1
 * (512 bytes) held both threads' columns, and every update moved them between the cores:
 * the next forward product ran at 140 GFLOP/s on two threads instead of 180 (a thread's
 * hardware prefetcher reads ahead into the other's columns, so which thread owned which
 * columns did not matter), and the first layer's product needs no packing of B. */
static void T(pack_w0_panel)(const T(fn_net) *net, REAL *w0, int unpack, int64_t j0)
{
    const int64_t K = net->sizes[0], N = net->sizes[1], nr = T(fn_config_get)()->nr;
    const int64_t n = N - j0 < nr ? N - j0 : nr;
    REAL *W = net->W[0], *panel = w0 + j0 / nr * T(w0_panel_stride)(net);
    for (int64_t p = 0; p < K; p++) {
        if (unpack) {
            memcpy(W + p * N + j0, panel + p * nr, sizeof(REAL) * (size_t)n);
        } else {
            memcpy(panel + p * nr, W + p * N + j0, sizeof(REAL) * (size_t)n);
            for (int64_t j = n; j < nr; j++)
                panel[p * nr + j] = 0;
        }
    }
}

static void T(pack_w0)(const T(fn_net) *net, REAL *w0, int unpack)
{
    const int64_t nr = T(fn_config_get)()->nr;
    for (int64_t j0 = 0; j0 < net->sizes[1]; j0 += nr)
        T(pack_w0_panel)(net, w0, unpack, j0);
}

/* The same by every thread of the team, a share of the panels each: wide's 4 MB W[0],
 * copied in and out on every call, took 3.5 ms of an 85 ms epoch on one thread. With
 * `sync` (the units scheme's lines, train_team) the share is this thread's rows of
 * fn_row_share and the barrier after it fn_team_barrier; else a worksharing loop. */
static void T(pack_w0_team)(const T(fn_net) *net, REAL *w0, int unpack, atomic_long *sync)
{
    const int64_t nr = T(fn_config_get)()->nr, panels = (net->sizes[1] + nr - 1) / nr;
    if (sync) {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        int64_t p0, p1;
        fn_row_share(panels, 1, t, team, &p0, &p1);
        for (int64_t p = p0; p < p1; p++)
            T(pack_w0_panel)(net, w0, unpack, p * nr);
        fn_team_barrier(sync, t, team);
        return;
    }
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; p++)
        T(pack_w0_panel)(net, w0, unpack, p * nr);
}

/* The stride of layer 0's delta between its nr-column panels when backward_team makes it
 * panel-major (in ws->d0, for W[0]'s update to read in place), else 0: with W[0]
 * panel-major (ws->d0), no bias (whose gradient sums delta's rows), more than one layer
 * (one layer's delta is delta_O, made row by row), and W[0]'s step made now, applied
 * (not `other`: the gradients stored, or the step deferred to the next batch). */
static int64_t T(delta0_panels)(const T(fn_net) *net, const T(workspace) *ws, int64_t N,
                                int other)
{
    return ws->d0 && !net->b && net->n_layers > 1 && !other ? N * T(fn_config_get)()->nr : 0;
}

/* Backward pass after forward_team, by every thread of the team. With dW != NULL the
 * gradients are stored (dW[l], db[l]); otherwise each is applied at once as
 * W[l] -= alpha * gradient (fused into the GEMM), except W[0]'s with defer_first (the next
 * batch's forward applies it: forward_fused_team). row_loss gets each row's error.
 * rows_done: output_rows_team has already made delta_O, row_loss and the last hidden
 * delta (and the output layer's update goes by rows). Returns layer 0's delta (in
 * ws->delta). */
static REAL *T(backward_team)(const T(fn_net) *net, int64_t N, const REAL *X,
                              const REAL *const *G, const REAL *Y, T(workspace) *ws,
                              REAL *const *dW, REAL *const *db, REAL alpha, int defer_first,
                              int rows_done)
{
    const int L = net->n_layers;
    const int64_t *s = net->sizes;
    REAL *delta = ws->delta[0], *delta_prev = ws->delta[1];
    /* With W[0] panel-major, layer 0's delta is made panel-major too (nr-column panels of
     * N rows, d_panels apart), and W[0]'s update reads it in place: on wide each thread had
     * copied all of delta_H (1 MB) into panels for every batch, 5% of the epoch. Not when
     * a bias gradient sums its rows, or with one layer, whose delta (delta_O) is made row
     * by row (read as panels, a one-layer network without bias trained on wrong
     * gradients): delta0_panels. With rows_done and two layers, output_rows_team has
     * made it so. */
    const int64_t d_panels = T(delta0_panels)(net, ws, N, dW != NULL || defer_first);
    if (!rows_done)
        T(fn_output_delta_team)(net->act[L - 1], N, s[L], ws->post[L - 1], Y, delta,
                                ws->row_loss);
    for (int l = L - 1; l >= 0; l--) {
        const REAL *A_in = l > 0 ? ws->post[l - 1] : X;
        if (l > 0 && !(rows_done && l == L - 1)) {
            /* delta_prev = (delta W[l]^T) * act'(post[l-1]) */
            T(fn_epilogue) ep = {NULL, FN_NO_ACTIVATION, ws->post[l - 1], s[l], net->act[l - 1],
                                 0};
            if (l == 1 && d_panels) { /* layer 0's delta panel-major, in ws->d0 */
                delta_prev = ws->d0;
                T(fn_gemm_team_panels)(0, 1, N, s[1], s[2], 1, delta, s[2], NULL, net->W[1], s[2],
                                       0, 0, delta_prev, s[1], d_panels, &ep, ws->gemm);
            } else {
                T(fn_gemm_team)(0, 1, N, s[l], s[l + 1], 1, delta, s[l + 1], net->W[l],
                                s[l + 1], 0, delta_prev, s[l], &ep, ws->gemm);
            }
        } else if (l == 1 && d_panels) { /* rows_done, two layers: made in ws->d0 */
            delta_prev = ws->d0;
        }
        if (dW) {
            T(fn_gemm_team_panels)(1, 0, s[l], s[l + 1], N, 1, A_in, s[l], l ? NULL : G, delta,
                                   s[l + 1], 0, 0, dW[l], s[l + 1], 0, NULL, ws->gemm);
            if (net->b)
                T(fn_bias_gradient_team)(N, s[l + 1], delta, db[l], 1, 0);
        } else if (rows_done && l == L - 1 && N <= T(fn_config_get)()->kc) {
            /* the output layer's update by the rows of W[l] (the direct path). In a
             * network of two layers no barrier follows before the first layer's update:
             * nothing reads W[l] until the next batch's output_rows_team, and nothing
             * writes delta_O or H meanwhile; with more layers the next layer's delta
             * takes delta_O's buffer. */
            int64_t i0, i1;
            fn_row_share(s[l], T(fn_config_get)()->mr, omp_get_thread_num(),
                         omp_get_num_threads(), &i0, &i1);
            T(fn_gemm_rows)(1, 0, s[l + 1], N, i0, i1 - i0, -alpha, A_in, s[l], delta, s[l + 1], 1,
                            net->W[l], s[l + 1], NULL,
                            ws->rows_ws + omp_get_thread_num() * ws->rows_stride);
            if (net->b)
                T(fn_bias_gradient_team)(N, s[l + 1], delta, net->b[l], -alpha, 1);
            else if (L > 2) {
#pragma omp barrier
            }
        } else {
            if (l > 0 || !defer_first)
                T(update_team)(net, l, N, A_in, G, delta, l == 0 ? d_panels : 0, alpha, ws->gemm,
                               ws->w0);
            if (net->b)
                T(fn_bias_gradient_team)(N, s[l + 1], delta, net->b[l], -alpha, 1);
        }
        REAL *t = delta;
        delta = delta_prev;
        delta_prev = t;
    }
    return delta_prev;
}

/* Whether the output layer's rows go through output_rows_team: a network of two or more
 * layers whose output layer is narrower than the micro-tile (its products take the
 * GEMM's direct path, K in one block). */
static int T(rows_phase_fits)(const T(fn_net) *net)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int L = net->n_layers;
    const int64_t *s = net->sizes;
    return L >= 2 && s[L] < cfg->nr && s[L] <= cfg->kc && s[L - 1] <= cfg->kc &&
           s[L - 1] <= FN_SMALL_N;
}

/* The output layer's feedforward, delta_O and the last hidden delta for N rows, each
 * thread its own rows through all three, then one barrier: O_out = act(H W + b), delta_O,
 * delta_H = (delta_O W^T) * act'(H), for H = post[L-2] and W = W[L-1]. Each product by the
 * GEMM's direct path on the thread's rows: the same sums in the same order as
 * fn_gemm_team's (the same bits, whichever path it takes), without the three barriers and
 * the rows moving between cores that three team products and a team output delta cost:
 * mnist's output layer took 20 ms on two threads where one thread took 14.5.
 * In a network of two layers, delta_H goes panel by panel into layer 0's panel-major
 * delta when backward_team would make it so (delta0_panels). Row-major, W[0]'s update
 * copied it to panels: [784, 128, 10] in batches of 2048 rows took 72-75 ms an epoch of
 * 16384 float32 rows on one thread, 67 without the rows phase and 66-70 with the panels;
 * two threads 36-38, 34-39 and 34-35 (C, 3 alternating rounds of 7); the same in
 * batches of 512. */
static void T(output_rows_team)(const T(fn_net) *net, int64_t N, const REAL *Y,
                                T(workspace) *ws)
{
    const int L = net->n_layers;
    const int64_t *s = net->sizes, n_h = s[L - 1], n_out = s[L];
    int64_t i0, i1;
    fn_row_share(N, T(fn_config_get)()->mr, omp_get_thread_num(), omp_get_num_threads(), &i0,
                 &i1);
    REAL *buf = ws->rows_ws + omp_get_thread_num() * ws->rows_stride;
    const REAL *H = ws->post[L - 2], *W = net->W[L - 1];
    REAL *O = ws->post[L - 1], *dO = ws->delta[0], *dH = ws->delta[1];
    const T(fn_epilogue) forward = {net->b ? net->b[L - 1] : NULL, net->act[L - 1], NULL, 0, 0,
                                    net->threshold};
    T(fn_gemm_rows)(0, 0, n_out, n_h, i0, i1 - i0, 1, H, n_h, W, n_out, 0, O, n_out, &forward,
                    buf);
    T(fn_output_delta_rows)(net->act[L - 1], (REAL)(2.0 / (double)N), i0, i1, n_out, O, n_out, Y,
                            n_out, dO, n_out, ws->row_loss);
    /* delta_H panel by panel (pw columns each) when layer 0's delta is panel-major: two
     * layers, as backward_team decides it (the rows phase runs only in unfused batches,
     * their steps made at once), else all n_h columns in one */
    const int64_t d_panels = L == 2 ? T(delta0_panels)(net, ws, N, 0) : 0;
    const int64_t pw = d_panels ? T(fn_config_get)()->nr : n_h;
    for (int64_t c0 = 0; c0 < n_h; c0 += pw) {
        const int64_t w = n_h - c0 < pw ? n_h - c0 : pw;
        const T(fn_epilogue) deriv = {NULL, FN_NO_ACTIVATION, H + c0, n_h, net->act[L - 2], 0};
        T(fn_gemm_rows)(0, 1, w, n_out, i0, i1 - i0, 1, dO, n_out, W + c0 * n_out, n_out, 0,
                        d_panels ? ws->d0 + c0 / pw * d_panels : dH, pw, &deriv, buf);
    }
#pragma omp barrier
}

/* The feedforward of N rows when W[0]'s last update is still to be made: that update and
 * the product X W[0] in one pass over W[0] (fused_step; each thread a run of its panels),
 * then H_out's epilogue, then the other layers. The same values as update_team of W[0] then
 * forward_team; a product the GEMM would sum in one chain (its direct path) goes that way.
 * W[0] panel-major, each panel a contiguous stream: [784,256,128,10] in batches of one
 * row, C, medians of 5 alternating rounds, 97.2 -> 85.3 ms an epoch of 2000 rows float32,
 * 194 -> 159 float64 (row-major, its 1 KB rows read half at a time); batches of 4 the
 * same; the same bits. */
static void T(forward_fused_team)(const T(fn_net) *net, int64_t N, const REAL *X, int64_t kp,
                                  const REAL *Xp, const REAL *D, REAL alpha, T(workspace) *ws)
{
    const int64_t *s = net->sizes, n = s[1];
    int64_t kc, ks;
    if (T(fn_gemm_blocking)(N, n, s[0], &kc, &ks)) {
        T(update_team)(net, 0, kp, Xp, NULL, D, 0, alpha, ws->gemm, ws->w0);
        T(forward_team)(net, N, X, NULL, NULL, ws->post, ws->gemm, ws->w0);
        return;
    }
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t nr = cfg->nr, panels = (n + nr - 1) / nr;
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t j0 = t * panels / team * nr, j1_ = (t + 1) * panels / team * nr;
    const int64_t j1 = j1_ < n ? j1_ : n;
    if (j0 < j1) {
        REAL *H = ws->post[0];
        /* W[0] panel-major (ws->w0), or row-major in a short call */
        const int64_t ps = ws->w0 ? T(w0_panel_stride)(net) : nr;
        REAL *W = ws->w0 ? ws->w0 + j0 / nr * ps : net->W[0] + j0;
        cfg->fused_step(j1 - j0, s[0], kc, ks, W, ws->w0 ? nr : n, ps, kp, Xp, s[0], D + j0, n,
                        -alpha, 1, N, X, s[0], H + j0, n);
        const T(fn_epilogue) ep = {net->b ? net->b[0] : NULL, net->act[0], NULL, 0, 0,
                                   net->threshold};
        T(fn_epilogue_tile)(&ep, H + j0, n, N, j1 - j0, 0, j0);
    }
#pragma omp barrier
    T(forward_from_team)(net, 1, net->n_layers, N, ws->post[0], NULL, NULL, ws->post, ws->gemm,
                         NULL);
}

double T(fn_flop_per_row)(const T(fn_net) *net)
{
    double f = 0;
    for (int l = 0; l < net->n_layers; l++)
        f += 6.0 * (double)net->sizes[l] * (double)net->sizes[l + 1];
    return f;
}

/* The feedforward of N rows in chunks of `chunk` rows, by every thread of the team: each
 * chunk's rows of the requested outputs (pre, post: whole N-row arrays, or NULL), the
 * others in scratch[l] (chunk rows); ptrs: 2 L pointers a thread. w0: where W[0]'s
 * panel-major copy goes (made here, by the team), or NULL to read W[0] in place. */
static void T(forward_chunks_team)(const T(fn_net) *net, int64_t N, int64_t chunk,
                                   const REAL *X, REAL *const *pre, REAL *const *post,
                                   REAL *const *scratch, REAL **ptrs, REAL *gemm_ws,
                                   REAL *w0)
{
    const int L = net->n_layers;
    const int64_t *s = net->sizes;
    REAL **pre_c = ptrs + omp_get_thread_num() * 2 * L, **post_c = pre_c + L;
    if (w0)
        T(pack_w0_team)(net, w0, 0, NULL);
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        for (int l = 0; l < L; l++) {
            pre_c[l] = pre ? pre[l] + r0 * s[l + 1] : NULL;
            post_c[l] = post[l] ? post[l] + r0 * s[l + 1] : scratch[l];
        }
        T(forward_team)(net, N - r0 < chunk ? N - r0 : chunk, X + r0 * s[0], NULL,
                        pre ? pre_c : NULL, post_c, gemm_ws, w0);
    }
}

fn_status T(fn_forward)(const T(fn_net) *net, int64_t N, const REAL *X, REAL *const *pre,
                        REAL *const *post)
{
    const int L = net->n_layers;
    int team = fn_team_size(T(fn_flop_per_row)(net) / 3 * (double)N);
    /* Rows in chunks: the hidden outputs nobody asked for (predict's) take chunk rows of
     * scratch, not N, and stay in cache from one layer's product to the next. Predicting
     * 60000 mnist rows allocated 30 MB of them, new pages each call. Which rows go
     * together changes no row's values. */
    const int64_t chunk = N < FN_FORWARD_CHUNK_ROWS ? N : FN_FORWARD_CHUNK_ROWS;
    int64_t gemm = 0, scratch = 0;
    for (int l = 0; l < L; l++) {
        int64_t need = T(fn_gemm_workspace)(chunk, net->sizes[l + 1], net->sizes[l], team);
        gemm = fn_round_up(need > gemm ? need : gemm, FN_ALIGN);
        if (!post[l])
            scratch += fn_round_up(chunk * net->sizes[l + 1], FN_ALIGN);
    }
    /* Many rows (predicting a data set) through a first layer whose K spans several blocks
     * and whose width is at least a panel: W[0] read from a panel-major copy (pack_w0),
     * whose panels stay in L1 while a block of rows passes (read in place, a 1024-wide
     * float layer's rows fall into a few sets of L1). The copy costs under 1% of the
     * product here. Narrower layers or a K in one block ([2,4,1], [64,64,10] on 100000
     * rows) ran 15-40% slower from the copy than in place, or by the direct path. */
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t w0 = pre || N < FN_FORWARD_PANEL_ROWS || net->sizes[0] <= cfg->kc ||
                               net->sizes[1] < cfg->nr
                           ? 0
                           : fn_round_up(T(w0_elements)(net), FN_ALIGN);
    /* the GEMM's buffers, the hidden outputs nobody asked for, W[0]'s copy, the layers'
     * scratch pointers and each thread's chunk pointers */
    const size_t bytes =
        sizeof(REAL) * (size_t)(gemm + scratch + w0) + sizeof(REAL *) * (size_t)(L + 2 * L * team);
    REAL *ws = fn_scratch_take(bytes);
    if (!ws)
        return FN_ENOMEM;
    fn_gemm_ctl_clear(ws);
    REAL **scratch_l = (REAL **)(ws + gemm + scratch + w0), *next = ws + gemm;
    for (int l = 0; l < L; l++) {
        scratch_l[l] = post[l] ? NULL : next;
        next += post[l] ? 0 : fn_round_up(chunk * net->sizes[l + 1], FN_ALIGN);
    }
    REAL *w0_panels = w0 ? ws + gemm + scratch : NULL;
    FN_RUN_TEAM(team, T(forward_chunks_team)(net, N, chunk, X, pre, post, scratch_l,
                                             scratch_l + L, ws, w0_panels));
    fn_scratch_give(ws);
    return FN_OK;
}

static void T(gradients_team)(const T(fn_net) *net, int64_t N, const REAL *X, const REAL *Y,
                              T(workspace) *ws, REAL *const *dW, REAL *const *db)
{
    T(forward_team)(net, N, X, NULL, NULL, ws->post, ws->gemm, NULL);
    T(backward_team)(net, N, X, NULL, Y, ws, dW, db, 0, 0, 0);
}

fn_status T(fn_gradients)(const T(fn_net) *net, int64_t N, const REAL *X, const REAL *Y,
                          REAL *const *dW, REAL *const *db, double *loss)
{
    T(workspace) ws;
    int team = fn_team_size(T(fn_flop_per_row)(net) * (double)N);
    fn_status st = T(workspace_alloc)(&ws, net, N, 0, 0, 0, 0, team, 0, 0, 0);
    if (st != FN_OK)
        return st;
    FN_RUN_TEAM(team, T(gradients_team)(net, N, X, Y, &ws, dW, db));
    double total = 0;
    for (int64_t e = 0; e < N; e++)
        total += ws.row_loss[e];
    *loss = total / (double)N;
    T(workspace_free)(&ws);
    return FN_OK;
}

/* The weights of layer l as they live during a training call: W[0] in ws->w0 (with its
 * padding) while the general trainer keeps it panel-major. */
static REAL *T(live_weights)(const T(fn_net) *net, const T(workspace) *ws, int l, int64_t *n)
{
    if (l == 0 && ws->w0) {
        *n = ws->w0_size;
        return ws->w0;
    }
    *n = net->sizes[l] * net->sizes[l + 1];
    return net->W[l];
}

/* The snapshot's elements: every weight and bias, W[0] with its panels' padding, or
 * without W[0] at all for a call of one epoch with W[0] panel-major (see T(snapshot)). */
static int64_t T(snapshot_elements)(const T(fn_net) *net, int64_t w0_size, int64_t n_epochs)
{
    const int64_t w0 = net->sizes[0] * net->sizes[1];
    return T(n_params)(net) + (!w0_size ? 0 : n_epochs > 1 ? w0_size - w0 : -w0);
}

/* Copies every weight and bias to (save) or from (restore) the snapshot of the start of
 * `epoch`. The exception: while W[0] is panel-major the caller's W[0] is not written until
 * the call ends, so in epoch 0 it is the snapshot of W[0] (4 MB a call not copied, on
 * wide). Restoring it is packing it again. */
static void T(snapshot)(const T(fn_net) *net, const T(workspace) *ws, int restore,
                        int64_t epoch)
{
    REAL *snap = ws->snapshot;
    for (int l = 0; l < net->n_layers; l++) {
        for (int k = 0; k < (net->b ? 2 : 1); k++) {
            int64_t n = net->sizes[l + 1];
            REAL *v = k == 0 ? T(live_weights)(net, ws, l, &n) : net->b[l];
            if (l == 0 && k == 0 && ws->w0 && epoch == 0) {
                if (restore)
                    T(pack_w0)(net, ws->w0, 0);
                continue;
            }
            if (restore)
                memcpy(v, snap, sizeof(REAL) * n);
            else
                memcpy(snap, v, sizeof(REAL) * n);
            snap += n;
        }
    }
}

/* 1 if every weight and bias is finite: the vectorised check (a scalar loop over wide's
 * 1.3 million weights took 1.3 ms an epoch). */
static int T(net_finite)(const T(fn_net) *net, const T(workspace) *ws)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    int ok = 1;
    for (int l = 0; l < net->n_layers && ok; l++) {
        int64_t n;
        const REAL *W = T(live_weights)(net, ws, l, &n);
        ok = cfg->all_finite(n, W) && (!net->b || cfg->all_finite(net->sizes[l + 1], net->b[l]));
    }
    return ok;
}

/* The state the threads of a training run share. */
typedef struct {
    const T(fn_net) *net;
    int64_t N, rows, n_epochs;
    const REAL *X, *Y;
    const int64_t *order;
    REAL alpha;
    T(workspace) *ws;
    double *epoch_loss;
    double epoch_sum;
    int64_t done;
    /* Set by one thread, read by all after a barrier; atomic as a thread may still read it
     * after the last batch's barrier while thread 0 sets it at the epoch's end (either
     * value takes that thread to the epoch's barrier: a benign race, but a race). */
    atomic_int nonfinite;
    int fuse; /* batches of at most cfg->fused_rows rows: W[0]'s update is fused */
    int rows_phase; /* the output layer by output_rows_team (unfused batches) */
    int units;      /* the units scheme (units_batch) */
    fn_team_stop stop; /* thread 0 polls; batches numbered within the call */
    int stopped;       /* set by thread 0 */
} T(train_run);

/* The batch's loss into the epoch's sum (and non-finite: run->nonfinite), by one thread. */
static void T(add_batch_loss)(T(train_run) *run, int64_t nb)
{
    double batch = 0;
    for (int64_t e = 0; e < nb; e++)
        batch += run->ws->row_loss[e];
    run->epoch_sum += batch;
    if (!isfinite(batch))
        run->nonfinite = 1;
}

/* The units scheme: a network of two layers whose output layer is narrow (fewer than
 * FN_UNITS_MAX_OUTPUTS units) and whose batches are at most kc rows, or a deeper one in
 * batches of at most FN_UNITS_DEEP_ROWS whose layers after the second cost little (its
 * tail: units_tail_run, where "the output layer" below is layer 1 and the tail after it,
 * each thread through its own copy of the tail). Each thread owns whole groups of hidden units
 * (FN_UNITS_GROUP, whole panels of nr): groups [g0, g1) of fn_row_share over the team,
 * that is those columns of W[0] (panel-major), b[0], H and delta_H, and those rows of
 * W[1]. A batch then has one barrier, where each group's part of O_in crosses between
 * the cores:
 *     own groups g: H_g = act(X W0_g + b0_g), P_g = H_g W1_g;
 *     barrier;
 *     every thread: O_out = act(((P_0 + P_1) + ...) + b1), delta_O, each row's loss,
 *                   b1's step, the same bits on each, into its own buffers;
 *     own groups g: delta_H_g = (delta_O W1_g^T) * act'(H_g), W1_g and b0_g's steps,
 *                   W0_g -= alpha X^T delta_H_g.
 * H and delta_H are kept group by group, each group's nb x w block contiguous (rows w
 * apart, at c0 rows for its first unit c0): with the threads' columns side by side in
 * each row, each core's prefetchers pulled in lines the other was writing, and delta_H's
 * product and W1's update took as long on two threads as on one (19k cycles a batch of
 * mnist's; 10k in blocks). Unshuffled mnist on two threads, C: 31.3 -> 29.2 ms for
 * 20000 rows, float64 62.8 -> 57.0; one thread within noise.
 * The parts of alternate batches go to alternate buffers, so a thread may start the
 * next batch while another still reads this one's. Which groups exist, and so the order
 * of the output layer's sums, depends on the shape only: the same bits on any team.
 * Before (output_rows_team and team products), a batch had four barriers, and its
 * hidden activations and deltas crossed between the cores twice, from the threads that
 * wrote them by columns to those that read them by rows.
 * Batches of at most fused_rows rows make W0_g's step in the next batch's pass over W0_g
 * (units_fused_forward). They had gone by rows (forward_fused_team), W[0] row-major and
 * split by columns between the threads: its rows' lines crossed between the cores at every
 * step, so a batch of one mnist row ran alone (a team took 3x as long). In groups, C,
 * mnist, medians of alternating rounds, two threads against the rows' one: float32 SGD
 * 20.0 -> 13.0 ms for 2000 rows, batches of 4 11.2 -> 5.9 ms, float64 SGD 39.2 -> 22.5;
 * one thread within 3% (float64 7% faster). And a fit in batches of up to kc rows has
 * the bits of one fit a batch (the groups do not depend on the batch size). */
static int T(units_fits)(const T(fn_net) *net, int64_t rows)
{
    const int L = net->n_layers;
    const int64_t *s = net->sizes, kc = T(fn_config_get)()->kc;
    if (L < 3 || rows > FN_UNITS_DEEP_ROWS)
        return L == 2 && rows <= kc && s[2] < FN_UNITS_MAX_OUTPUTS && s[1] <= kc &&
               s[1] <= FN_SMALL_N;
    /* deeper: a tail of direct products (fn_gemm_rows), run by every thread, that costs
     * at most an eighth of the layers the groups share */
    double tail = 0;
    for (int l = 2; l <= L; l++)
        if (s[l] > kc || s[l] > FN_SMALL_N)
            return 0;
    for (int l = 2; l < L; l++)
        tail += 6.0 * (double)(s[l] * s[l + 1]);
    return 8 * tail <= 4.0 * (double)(s[0] * s[1]) + 6.0 * (double)(s[1] * s[2]);
}

/* Group g's step W0_g -= alpha X^T delta_H_g for the nb rows of X (Xb, or through xg). */
static void T(units_step_w0)(const T(train_run) *run, int64_t nb, const REAL *Xb,
                             const REAL *const *xg, int64_t g)
{
    const T(fn_net) *net = run->net;
    T(workspace) *ws = run->ws;
    const int64_t n_in = net->sizes[0], n_h = net->sizes[1], nr = T(fn_config_get)()->nr;
    const int64_t gp = T(units_group_panels)(net), gw = gp * nr, c0 = g * gw;
    const int64_t w = n_h - c0 < gw ? n_h - c0 : gw, w0_stride = T(w0_panel_stride)(net);
    REAL *gemm_own = ws->gemm + FN_GEMM_CTL_BYTES / sizeof(REAL) +
                     omp_get_thread_num() * ws->gemm_own;
    T(fn_gemm_cols_panels)(1, n_in, w, nb, -run->alpha, Xb, n_in, xg,
                           ws->delta[1] + c0 * run->rows, w, 0, 1, ws->w0 + g * gp * w0_stride,
                           0, w0_stride, NULL, gemm_own, 0, (w + nr - 1) / nr);
}

/* Units [c0, c1) of m rows between the groups' blocks (blocks: H's or delta_H's buffer,
 * group by group, each block rows of its width w, c * rows elements in for its first unit
 * c) and rows side by side (c1 - c0 values a row); to_blocks says which way. */
static void T(units_blocks)(const T(train_run) *run, int64_t c0, int64_t c1, int64_t m,
                            REAL *side, REAL *blocks, int to_blocks)
{
    const int64_t gw = T(units_group_panels)(run->net) * T(fn_config_get)()->nr, n = c1 - c0;
    for (int64_t c = c0; c < c1; c += gw) {
        const int64_t w = c1 - c < gw ? c1 - c : gw;
        for (int64_t i = 0; i < m; i++) {
            REAL *b = blocks + c * run->rows + i * w, *r = side + i * n + (c - c0);
            memcpy(to_blocks ? b : r, to_blocks ? r : b, sizeof(REAL) * (size_t)w);
        }
    }
}

/* Batches of at most fused_rows rows (stochastic gradient descent and its like): this
 * thread's groups [g0, g1) of columns of W0 (panel-major) take the last batch's step (kp
 * rows Xp and their delta_H, still in delta[1]) and give H = act(X W0 + b0) for this
 * batch's nb rows Xb, in one pass over their panels (fused_step), where the GEMM's update
 * and then its product had passed twice. The groups' blocks of delta_H and of H are
 * copied side by side in the thread's own rows (a few rows: about one row of W0's cost):
 * one call on a group at a time, two float registers, ran float32 SGD on mnist 17%
 * slower than on the eight of the whole row, and batches of 4 rows 20% slower. The step
 * of each epoch's last batch: units_flush. */
static void T(units_fused_forward)(const T(train_run) *run, int64_t nb, const REAL *Xb,
                                   int64_t kp, const REAL *Xp, int64_t g0, int64_t g1)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const T(fn_net) *net = run->net;
    const int64_t n_in = net->sizes[0], n_h = net->sizes[1], nr = cfg->nr;
    const int64_t gp = T(units_group_panels)(net), gw = gp * nr;
    const int64_t c0 = g0 * gw, c1 = g1 * gw < n_h ? g1 * gw : n_h, n = c1 - c0;
    if (n <= 0)
        return;
    const T(units_own) own = T(units_own_get)(run->ws, omp_get_thread_num());
    T(units_blocks)(run, c0, c1, kp, own.D, run->ws->delta[1], 0);
    /* K in the GEMM's blocks: those units_step_w0's and the unfused forward's products take
     * (fn_gemm_cols_panels never takes the direct path, whatever fn_gemm_blocking says) */
    int64_t kc, ks;
    T(fn_gemm_blocking)(nb, n, n_in, &kc, &ks);
    const int64_t w0_stride = T(w0_panel_stride)(net);
    cfg->fused_step(n, n_in, kc, ks, run->ws->w0 + g0 * gp * w0_stride, nr, w0_stride, kp, Xp,
                    n_in, own.D, n, -run->alpha, 1, nb, Xb, n_in, own.H, n);
    const T(fn_epilogue) hidden = {net->b ? net->b[0] + c0 : NULL, net->act[0], NULL, 0, 0,
                                   net->threshold};
    T(fn_epilogue_tile)(&hidden, own.H, n, nb, n, 0, 0);
    T(units_blocks)(run, c0, c1, nb, own.H, run->ws->post[0], 1);
}

/* The step of W0 that an epoch's last batch left to the next forward (units_fused_forward):
 * each thread its own groups. */
static void T(units_flush)(const T(train_run) *run, int64_t kp, const REAL *Xp)
{
    int64_t g0, g1;
    fn_row_share(T(units_groups)(run->net), 1, omp_get_thread_num(), omp_get_num_threads(),
                 &g0, &g1);
    for (int64_t g = g0; g < g1; g++)
        T(units_step_w0)(run, kp, Xp, NULL, g);
}

/* A deeper network's tail (layers 2 to L - 1), after units_batch's sums of layer 1 and its
 * activation (own->O): every thread through its own copy (tail_get), the same bits on
 * each: the feedforward, delta_O and each row's loss, the deltas back to own->dO (layer
 * 1's, which the groups' steps take), each layer's delta before its step. */
static void T(units_tail_run)(const T(train_run) *run, const T(units_own) *own, int64_t nb,
                              const REAL *Yb, REAL *buf)
{
    const T(fn_net) *net = run->net;
    const int64_t *s = net->sizes;
    const int L = net->n_layers, t = omp_get_thread_num();
    const REAL *in = own->O;
    for (int l = 2; l < L; l++) {
        const T(tail_layer) x = T(tail_get)(net, run->ws, t, l);
        const T(fn_epilogue) ep = {x.b, net->act[l], NULL, 0, 0, net->threshold};
        T(fn_gemm_rows)(0, 0, s[l + 1], s[l], 0, nb, 1, in, s[l], x.W, s[l + 1], 0, x.H,
                        s[l + 1], &ep, buf);
        in = x.H;
    }
    const T(tail_layer) deltas = T(tail_get)(net, run->ws, t, L);
    REAL *d = deltas.W, *spare = deltas.H;
    T(fn_output_delta_rows)(net->act[L - 1], (REAL)(2.0 / (double)nb), 0, nb, s[L], in, s[L],
                            Yb, s[L], d, s[L], own->row_loss);
    for (int l = L - 1; l >= 2; l--) {
        const T(tail_layer) x = T(tail_get)(net, run->ws, t, l);
        const REAL *H = l == 2 ? own->O : T(tail_get)(net, run->ws, t, l - 1).H;
        REAL *below = l == 2 ? own->dO : spare;
        const T(fn_epilogue) deriv = {NULL, FN_NO_ACTIVATION, H, s[l], net->act[l - 1], 0};
        T(fn_gemm_rows)(0, 1, s[l], s[l + 1], 0, nb, 1, d, s[l + 1], x.W, s[l + 1], 0, below,
                        s[l], &deriv, buf);
        T(fn_gemm_rows)(1, 0, s[l + 1], nb, 0, s[l], -run->alpha, H, s[l], d, s[l + 1], 1, x.W,
                        s[l + 1], NULL, buf);
        if (x.b)
            T(fn_bias_gradient_cols)(nb, 0, s[l + 1], d, s[l + 1], x.b, -run->alpha, 1);
        spare = d, d = below;
    }
}

/* Layer 1's bias and the tail's weights and biases: each thread's copies from the
 * network's (to_net 0), or thread 0's into them (1). */
static void T(units_copies)(const T(train_run) *run, int to_net)
{
    const T(fn_net) *net = run->net;
    const int64_t *s = net->sizes;
    const int t = omp_get_thread_num();
    if (net->b) {
        REAL *own = T(units_own_get)(run->ws, t).b;
        memcpy(to_net ? net->b[1] : own, to_net ? own : net->b[1], sizeof(REAL) * s[2]);
    }
    for (int l = 2; l < net->n_layers; l++) {
        const T(tail_layer) x = T(tail_get)(net, run->ws, t, l);
        memcpy(to_net ? net->W[l] : x.W, to_net ? x.W : net->W[l],
               sizeof(REAL) * (size_t)(s[l] * s[l + 1]));
        if (x.b)
            memcpy(to_net ? net->b[l] : x.b, to_net ? x.b : net->b[l], sizeof(REAL) * s[l + 1]);
    }
}

/* One batch of nb rows (Xb, Yb: this thread's or shared; Yb all rows) by the units scheme;
 * parity: the batch's index in the epoch, mod 2. Returns the sum of the rows' losses,
 * the same on every thread. */
static double T(units_batch)(const T(train_run) *run, int64_t nb, const REAL *Xb,
                             const REAL *const *xg, const REAL *Yb, int64_t parity,
                             int64_t kp, const REAL *Xp)
{
    const T(fn_net) *net = run->net;
    T(workspace) *ws = run->ws;
    const int64_t *s = net->sizes, n_in = s[0], n_h = s[1], n_out = s[2];
    const int64_t nr = T(fn_config_get)()->nr, gp = T(units_group_panels)(net);
    const int64_t gw = gp * nr, groups = T(units_groups)(net);
    const int t = omp_get_thread_num();
    const REAL alpha = run->alpha;
    /* this thread's groups [g0, g1) */
    int64_t g0, g1;
    fn_row_share(groups, 1, t, omp_get_num_threads(), &g0, &g1);
    const T(units_own) own = T(units_own_get)(ws, t);
    REAL *parts = ws->parts + parity * groups * ws->part_stride;
    REAL *W1 = net->W[1], *b0 = net->b ? net->b[0] : NULL;
    REAL *buf = ws->rows_ws + t * ws->rows_stride;
    const int64_t w0_stride = T(w0_panel_stride)(net);
    REAL *gemm_own = ws->gemm + FN_GEMM_CTL_BYTES / sizeof(REAL) + t * ws->gemm_own;
    /* Group g: units [c0, c0 + w), panels [g gp, ...) of W[0]; its blocks of H and of
     * delta_H, nb x w each, rows w apart, c0 * rows elements into their buffers (see
     * units_fits). */
#define GROUP(g)                                                                         \
    const int64_t c0 = (g) * gw, w = n_h - c0 < gw ? n_h - c0 : gw;                      \
    REAL *Hg = ws->post[0] + c0 * run->rows
    if (run->fuse) /* the last batch's step of W0 and this one's H, in one pass */
        T(units_fused_forward)(run, nb, Xb, kp, Xp, g0, g1);
    for (int64_t g = g0; g < g1; g++) {
        GROUP(g);
        const T(fn_epilogue) hidden = {b0 ? b0 + c0 : NULL, net->act[0], NULL, 0, 0,
                                       net->threshold};
        if (!run->fuse)
            T(fn_gemm_cols_panels)(0, nb, w, n_in, 1, Xb, n_in, xg, ws->w0 + g * gp * w0_stride,
                                   0, w0_stride, 0, Hg, w, 0, &hidden, gemm_own, 0,
                                   (w + nr - 1) / nr);
        T(fn_gemm_rows)(0, 0, n_out, w, 0, nb, 1, Hg, w, W1 + c0 * n_out, n_out, 0,
                        parts + g * ws->part_stride, n_out, NULL, buf);
    }
    /* every group's part of the sums is in: a barrier spinning on the threads' own lines
     * where the team fits the cores (fn_team_barrier). In libgomp's, SGD on mnist spent a
     * quarter of its time on two threads. */
    fn_team_barrier(ws->sync, t, omp_get_num_threads());
    /* all nb x n_out values in one pass each: a row at a time, the activation's calls on
     * 10 values took longer than the output layer's products */
    const int64_t n_all = nb * n_out;
    memcpy(own.O, parts, sizeof(REAL) * (size_t)n_all);
    for (int64_t g = 1; g < groups; g++) {
        const REAL *q = parts + g * ws->part_stride;
        for (int64_t k = 0; k < n_all; k++)
            own.O[k] += q[k];
    }
    for (int64_t e = 0; e < nb && net->b; e++)
        for (int64_t c = 0; c < n_out; c++)
            own.O[e * n_out + c] += own.b[c];
    T(fn_activation)(net->act[1], n_all, own.O, own.O, net->threshold);
    if (net->n_layers == 2)
        T(fn_output_delta_rows)(net->act[1], (REAL)(2.0 / (double)nb), 0, nb, n_out, own.O,
                                n_out, Yb, n_out, own.dO, n_out, own.row_loss);
    else /* own.dO from the tail's layers, on this thread's copy of them */
        T(units_tail_run)(run, &own, nb, Yb, buf);
    if (net->b)
        T(fn_bias_gradient_cols)(nb, 0, n_out, own.dO, n_out, own.b, -alpha, 1);
    /* this thread's groups: each element is one chain over K whatever the range */
    for (int64_t g = g0; g < g1; g++) {
        GROUP(g);
        REAL *dHg = ws->delta[1] + c0 * run->rows;
        const T(fn_epilogue) deriv = {NULL, FN_NO_ACTIVATION, Hg, w, net->act[0], 0};
        T(fn_gemm_rows)(0, 1, w, n_out, 0, nb, 1, own.dO, n_out, W1 + c0 * n_out, n_out, 0,
                        dHg, w, &deriv, buf);
        T(fn_gemm_rows)(1, 0, n_out, nb, 0, w, -alpha, Hg, w, own.dO, n_out, 1,
                        W1 + c0 * n_out, n_out, NULL, buf);
        if (b0)
            T(fn_bias_gradient_cols)(nb, 0, w, dHg, w, b0 + c0, -alpha, 1);
        if (!run->fuse) /* else the next batch's forward makes it (or units_flush) */
            T(units_step_w0)(run, nb, Xb, xg, g);
    }
#undef GROUP
    double loss = 0;
    for (int64_t e = 0; e < nb; e++)
        loss += own.row_loss[e];
    return loss;
}

/* Row i of a shuffled batch, the data set's row `row`: its row of X by pointer (G[i], read
 * in place by the products), its row of Y copied (row i of Yb, n_out values a row). */
static inline void T(batch_row)(const T(train_run) *run, int64_t row, int64_t i,
                                const REAL **G, REAL *Yb)
{
    const int64_t n_in = run->net->sizes[0], n_out = run->net->sizes[run->net->n_layers];
    G[i] = run->X + row * n_in;
    memcpy(Yb + i * n_out, run->Y + row * n_out, sizeof(REAL) * (size_t)n_out);
}

/* The units scheme's shuffled batch (rows: its row indices, nb > 1): this thread's table
 * of pointers to the rows of X, which its products read in place (small_gemm_g's gathered
 * tiles, through fn_gemm_cols_panels), and all of Y copied into its own buffer. Before,
 * the rows of X were copied: into each thread's own buffer (both threads copied all of
 * them) or, when that took over a quarter of L2, half by each thread into a shared one
 * between two barriers (and the other thread's half then crossed between the cores).
 * Shuffled mnist in C on two threads took 1.33x its unshuffled time. */
static void T(units_gather)(const T(train_run) *run, const int64_t *rows, int64_t nb,
                            const REAL *const **xg, const REAL **Yb)
{
    const int t = omp_get_thread_num();
    const REAL **G = run->ws->xg + t * run->ws->xg_stride;
    REAL *Y = T(units_own_get)(run->ws, t).Yb;
    for (int64_t i = 0; i < nb; i++)
        T(batch_row)(run, rows[i], i, G, Y);
    *xg = G;
    *Yb = Y;
}

/* The same for a fused step's batch (units_fused_forward reads X as a matrix): the rows
 * of X copied to this thread's buffer for the batch's parity (the last batch's rows stay
 * for its step), those of Y to its own. */
static void T(units_copy)(const T(train_run) *run, const int64_t *rows, int64_t nb,
                          int64_t parity, const REAL **Xb, const REAL **Yb)
{
    const int t = omp_get_thread_num();
    const int64_t n_in = run->net->sizes[0], n_out = run->net->sizes[run->net->n_layers];
    REAL *X = run->ws->Xb + (2 * t + parity) * run->ws->x_stride;
    REAL *Y = T(units_own_get)(run->ws, t).Yb;
    for (int64_t i = 0; i < nb; i++) {
        const REAL *row;
        T(batch_row)(run, rows[i], 0, &row, Y + i * n_out);
        memcpy(X + i * n_in, row, sizeof(REAL) * (size_t)n_in);
    }
    *Xb = X;
    *Yb = Y;
}

/* A barrier of train_team's threads: the units scheme's own (fn_team_barrier, on
 * ws->sync), else libgomp's. A team of two can find both its threads on one CPU for a
 * while (dispatch.c, fn_team_barrier), where each of libgomp's barriers, spinning through
 * a time slice, took 4-8 ms: a one-epoch mnist-sized fit on 3000 rows passed five of
 * them, and took 32-39 ms against 13 on one thread. */
static void T(team_sync)(const T(train_run) *run)
{
    if (run->units) {
        fn_team_barrier(run->ws->sync, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#pragma omp barrier
}

static void T(train_team)(T(train_run) *run)
{
    const T(fn_net) *net = run->net;
    T(workspace) *ws = run->ws;
    const int64_t N = run->N, rows = run->rows;
    const int64_t n_in = net->sizes[0], n_out = net->sizes[net->n_layers];
    atomic_long *sync = run->units ? ws->sync : NULL; /* see team_sync */
    if (ws->w0)
        T(pack_w0_team)(net, ws->w0, 0, sync);
    if (run->units) /* each thread's copies of layer 1's bias and the tail */
        T(units_copies)(run, 0);
    int64_t batch_no = 0;
    int stopped = 0;
    for (int64_t epoch = 0; epoch < run->n_epochs; epoch++) {
        if (omp_get_thread_num() == 0) {
            T(snapshot)(net, ws, 0, epoch);
            run->epoch_sum = 0;
        }
        T(team_sync)(run);
        const int64_t *perm = run->order ? run->order + epoch * N : NULL;
        /* With run->fuse, the last batch's update of W[0] waits for this batch's forward:
         * kp rows Xp and their deltas Dp. */
        int64_t kp = 0;
        const REAL *Xp = NULL, *Dp = NULL;
        for (int64_t start = 0; start < N; start += rows, batch_no++) {
            const int64_t nb = N - start < rows ? N - start : rows;
            const REAL *Xb = run->X + start * n_in, *Yb = run->Y + start * n_out;
            const REAL *const *xg = NULL; /* a shuffled batch's rows of X, read in place */
            if (omp_get_thread_num() == 0)
                fn_team_stop_poll(&run->stop, batch_no, 1);
            if (perm && nb == 1) { /* one row is contiguous: read in place, not copied */
                Xb = run->X + perm[start] * n_in;
                Yb = run->Y + perm[start] * n_out;
            } else if (perm && run->units && run->fuse) { /* fused_step reads a matrix */
                T(units_copy)(run, perm + start, nb, start / rows % 2, &Xb, &Yb);
            } else if (perm && run->units) {
                T(units_gather)(run, perm + start, nb, &xg, &Yb);
            } else if (perm && !run->fuse) {
                /* the rows of X read in place by layer 0's products (packing, tiles, edges)
                 * through one table of pointers, the rows of Y copied. They were copied:
                 * [784, 256, 128, 10] shuffled in C, 12000 rows, two threads, per-round
                 * ratios of 5 alternating rounds: float32 -8.2% an epoch, float64 -8.7%;
                 * one thread -1.7%; wide -4% (unshuffled, these paths are unchanged) */
#pragma omp for schedule(static)
                for (int64_t i = 0; i < nb; i++)
                    T(batch_row)(run, perm[start + i], i, ws->xg, ws->Yb);
                Xb = NULL;
                xg = ws->xg;
                Yb = ws->Yb;
            } else if (perm) {
                REAL *dst = Xp == ws->Xb ? ws->Xb2 : ws->Xb; /* Xp stays */
#pragma omp for schedule(static)
                for (int64_t i = 0; i < nb; i++) { /* rows asked for FN_GATHER_AHEAD ahead */
                    if (i + FN_GATHER_AHEAD < nb)
                        fn_prefetch_bytes(run->X + perm[start + i + FN_GATHER_AHEAD] * n_in,
                                          sizeof(REAL) * (size_t)n_in);
                    memcpy(dst + i * n_in, run->X + perm[start + i] * n_in,
                           sizeof(REAL) * n_in);
                    memcpy(ws->Yb + i * n_out, run->Y + perm[start + i] * n_out,
                           sizeof(REAL) * n_out);
                }
                Xb = dst;
                Yb = ws->Yb;
            }
            if (run->units) {
                const double batch =
                    T(units_batch)(run, nb, Xb, xg, Yb, start / rows % 2, kp, Xp);
                if (omp_get_thread_num() == 0) {
                    run->epoch_sum += batch;
                    atomic_store_explicit(&run->nonfinite, !isfinite(batch),
                                          memory_order_relaxed); /* a barrier orders it */
                }
                kp = run->fuse ? nb : 0;
                Xp = Xb;
                if (!isfinite(batch)) { /* every thread sees it: no barrier needed */
                    kp = 0;
                    break;
                }
                if (fn_team_stop_here(&run->stop, batch_no)) {
                    stopped = 1;
                    break;
                }
                continue;
            }
            if (kp) {
                T(forward_fused_team)(net, nb, Xb, kp, Xp, Dp, run->alpha, ws);
            } else if (run->rows_phase) {
                T(forward_from_team)(net, 0, net->n_layers - 1, nb, Xb, xg, NULL, ws->post,
                                     ws->gemm, ws->w0);
                T(output_rows_team)(net, nb, Yb, ws);
            } else {
                T(forward_team)(net, nb, Xb, xg, NULL, ws->post, ws->gemm, ws->w0);
            }
            const int rows_done = !kp && run->rows_phase;
            if (rows_done && omp_get_thread_num() == 0) /* row_loss is complete */
                T(add_batch_loss)(run, nb);
            Dp = T(backward_team)(net, nb, Xb, xg, Yb, ws, NULL, NULL, run->alpha, run->fuse,
                                  rows_done);
            kp = run->fuse ? nb : 0;
            Xp = Xb;
            /* without the rows phase, one thread adds the batch's loss now; with it, thread
             * 0 has, and the barriers of the layers' steps have passed its result on */
            if (!rows_done) {
#pragma omp single
                T(add_batch_loss)(run, nb);
            }
            if (run->nonfinite)
                break;
            if (fn_team_stop_here(&run->stop, batch_no)) {
                stopped = 1;
                break;
            }
        }
        if (run->units) { /* its batches end without a barrier */
            if (kp)
                T(units_flush)(run, kp, Xp);
            T(team_sync)(run);
        } else if (kp && !run->nonfinite) {
            T(update_team)(net, 0, kp, Xp, NULL, Dp, 0, run->alpha, ws->gemm, ws->w0);
        }
        if (omp_get_thread_num() == 0) {
            if (run->units) /* layer 1's bias and the tail: thread 0's copies */
                T(units_copies)(run, 1);
            if (!run->nonfinite && !stopped && !T(net_finite)(net, ws))
                run->nonfinite = 1;
            if (run->nonfinite || stopped) {
                T(snapshot)(net, ws, 1, epoch);
                run->stopped = stopped;
            } else {
                run->epoch_loss[epoch] = run->epoch_sum / (double)N;
                run->done = epoch + 1;
            }
        }
        T(team_sync)(run);
        if (run->nonfinite || stopped)
            break;
    }
    if (ws->w0)
        T(pack_w0_team)(net, ws->w0, 1, sync);
}

static fn_status T(train_general)(const T(fn_net) *net, int64_t N, const REAL *X,
                                  const REAL *Y, const int64_t *order, int64_t n_epochs,
                                  int64_t rows, REAL alpha, double *epoch_loss,
                                  int64_t *epochs_done)
{
    T(workspace) ws;
    const double per_row = T(fn_flop_per_row)(net);
    const T(fn_config) *cfg = T(fn_config_get)();
    const int fuse = rows <= cfg->fused_rows;
    const int units = T(units_fits)(net, rows);
    last_units = units;
    /* The units scheme's batch has one barrier: worth a team from FN_UNITS_MIN_FLOP, of at
     * most one thread a group (one with none would only wait at the barrier and add up
     * the parts: [784,32,10] in batches of 8 ran 5% slower on two threads than on one) */
    const int64_t groups = units ? T(units_groups)(net) : 0;
    int team = fn_team_for_batches(per_row * (double)rows,
                                   units ? FN_UNITS_MIN_FLOP : FN_PARALLEL_MIN_FLOP,
                                   per_row * (double)N * (double)n_epochs);
    if (units && team > groups)
        team = (int)groups;
    /* W[0] panel-major (pack_w0), but for a call of a few short batches by rows: there
     * the copy in and out would cost more than it saves (forward_fused_team) */
    const int64_t w0_size =
        fuse && !units && N * n_epochs < FN_FUSED_PANEL_ROWS ? 0 : T(w0_elements)(net);
    const int rows_phase = (units || !fuse) && T(rows_phase_fits)(net);
    /* Shuffled, the batch's rows of X are read in place through tables of pointers: the
     * units scheme's threads each through its own (units_gather), the others through one;
     * a fused step's two batches are copied (the units scheme's: two a thread) */
    const int gather = !order || !fuse ? 0 : units ? 2 * team : 2;
    const int xg_tables = !order || fuse ? 0 : units ? team : 1;
    fn_status st = T(workspace_alloc)(&ws, net, rows, gather, order && !units, xg_tables,
                                      T(snapshot_elements)(net, w0_size, n_epochs), team,
                                      w0_size, rows_phase, units);
    if (st != FN_OK)
        return st;
    T(train_run) run = {.net = net, .N = N, .rows = rows, .n_epochs = n_epochs, .X = X, .Y = Y,
                        .order = order, .alpha = alpha, .ws = &ws, .epoch_loss = epoch_loss,
                        .fuse = fuse, .rows_phase = rows_phase, .units = units};
    fn_stop_poll_init(&run.stop.poll, per_row * (double)rows);
    FN_RUN_TEAM(team, T(train_team)(&run)); /* W[0] panel-major meanwhile (pack_w0) */
    T(workspace_free)(&ws);
    *epochs_done = run.done;
    return run.stopped ? FN_STOPPED : run.nonfinite ? FN_NONFINITE : FN_OK;
}

fn_status T(fn_train)(const T(fn_net) *net, int64_t N, const REAL *X, const REAL *Y,
                      const int64_t *order, int64_t n_epochs, int64_t batch_size, REAL alpha,
                      double *epoch_loss, int64_t *epochs_done)
{
    const int64_t rows = batch_size < N ? batch_size : N;
    *epochs_done = 0;
    if (N <= 0 || rows <= 0)
        return FN_EINVAL;
    last_trainer = T(fn_train_tiny_fits)(net, rows)    ? FN_TRAINER_TINY /* XOR-sized */
                   : T(fn_train_small_fits)(net, rows) ? FN_TRAINER_SMALL /* fits in cache */
                                                        : FN_TRAINER_GENERAL;
    fn_status st =
        last_trainer == FN_TRAINER_TINY
            ? T(fn_train_tiny)(net, N, X, Y, order, n_epochs, rows, alpha, epoch_loss,
                               epochs_done)
        : last_trainer == FN_TRAINER_SMALL
            ? T(fn_train_small)(net, N, X, Y, order, n_epochs, rows, alpha, epoch_loss,
                                epochs_done)
            : T(train_general)(net, N, X, Y, order, n_epochs, rows, alpha, epoch_loss,
                               epochs_done);
    /* Past the epochs completed (a replay may have written some first): NaN. */
    for (int64_t e = *epochs_done; e < n_epochs; e++)
        epoch_loss[e] = NAN;
    return st;
}

#undef FN_LINE

#endif
