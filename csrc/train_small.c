/*
 * train_small.c: whole epochs of minibatch descent (the contract of fn_train) for
 * networks whose batch fits in cache, digits-sized ones, whose products cost
 * microseconds or less (the tiniest, the seed's XOR, train in train_tiny.c). There the
 * general trainer's costs are not the FMAs but what surrounds them: a team GEMM per
 * product (about ten barriers a batch) and op(B) copied into padded panels for each small
 * product. Here:
 *
 *  - The weights are copied once per call into rows padded to whole vectors
 *    (zero-filled), and each W[l], l >= 1, is also kept transposed, so every product
 *    of the batch is the small kernel (target_body.h) on whole vectors with B read in
 *    place: nothing is packed per batch.
 *  - One hidden layer (the seed's network; the units scheme): its units go in groups of
 *    FN_UNIT_GROUP, and each thread owns whole groups g: columns g of W1 and b1, rows g of
 *    W2. A batch has one barrier (fn_team_barrier: each thread spins on the others' cache
 *    lines, about one line trip):
 *      own groups: H_g = act(X W1[:, g] + b1[g]), P_g = H_g W2[g, :];
 *      barrier;
 *      every thread: O = act(((P_0 + P_1) + ...) + b2), delta_O, the loss, b2's step,
 *               the same bits on each, into its own copies;
 *      own groups: delta_H_g = (delta_O W2[g, :]^T) * act'(H_g), then W2[g, :] (its
 *               transposed copy updated, then W2's rows from it), W1[:, g], b1[g].
 *    Only the P_g (batch x outputs each) cross between the cores; the P_g of alternate
 *    batches go to alternate buffers, so a thread may start the next batch while the
 *    others still read this one's. The groups, and so the order of the output layer's
 *    sums, depend on the shape only: one thread adds the same P_g in the same order.
 *    Each thread's group H_g and delta_H_g are a panel of their own (batch x group), so
 *    each product and activation runs on contiguous rows. Digits, 2 threads: 0.401 ->
 *    0.323 ms an epoch (C, 8 rounds), where the rows scheme below had gained nothing over
 *    one thread: its weights phase read every row of the other thread's deltas and its
 *    rows phase all of the W the other thread had just written, hundreds of cache lines
 *    a batch each way.
 *  - Other depths (the rows scheme): a batch is two phases, each closed by one barrier:
 *      rows:    each thread takes a share of the batch's rows through the feedforward,
 *               delta_O and the hidden deltas (all row by row; W is only read);
 *      weights: each thread takes a share of the rows of every W[l]:
 *               W[l] := W[l] - alpha post[l-1]^T delta[l]  (X for l = 0),
 *               and rewrites those columns of W[l]^T; one thread per layer does b[l].
 *  - With shuffling, both schemes read the batch's rows of X in place, through each
 *    thread's table of row pointers (small_gemm_g). Before, each thread copied every
 *    row into its own buffer (the updates of W1 read all of them; a shared copy moved
 *    the other thread's half between the cores each batch: digits 404-437 -> 391-402
 *    us an epoch), and on a Zen 4 host that copy took 600-1,300 cycles of the
 *    time-stamp counter of a 12,500-cycle digits batch, on every thread. Shuffled, in
 *    C, alternating rounds, two threads: digits float32 -12%, float64 -7% (9 rounds);
 *    [64, 64, 64, 10] -8% in both (7 rounds); one thread within noise. Y's rows: the
 *    rows scheme's by their own thread, the units scheme's all by every thread.
 *  - The weights are checked once, at the end of the call, and copied back to the
 *    caller's arrays if they are finite. A batch whose loss is not finite ends the run
 *    early. Either failure replays the call from its start on one thread (the results
 *    do not depend on the team) up to that epoch, now checking the weights at the end
 *    of each epoch and writing them back while they are finite: the caller's arrays,
 *    untouched until then, keep the weights of the start of the epoch that diverged, as
 *    the contract says. Checking and writing back each epoch cost XOR float64 25 of its
 *    270 ns an epoch; a replay costs at most the diverging call again.
 *
 * Padding stays exactly zero. The workspace starts zeroed and nothing writes delta_O's
 * padding columns; the padding columns of W^T are zero, so those of each hidden delta
 * are 0 * act'(.) = 0. Hence the padding columns of W and b never change, and H_in's
 * are 0. Padding rows of W (columns of W^T) are never written. Every sum runs over real
 * widths only.
 *
 * Determinism: every element is computed by the same code in the same order whichever
 * thread computes it; the thread count changes only who computes which rows (or groups),
 * so the results are the same on any number of threads.
 *
 * Whether sharing pays is measured, not assumed. Each batch moves the half of the
 * activations and weights the other thread wrote between the two cores: tens of ns a
 * cache line when the cores share a cache, about 200 ns when they do not (seen on
 * machines whose two vCPUs moved between such placements), and there a digits batch
 * took 18 us on two threads against 9 on one. Since the team cannot change the results,
 * a call first times a line's trip between threads 0 and 1; if it is slow, the first
 * epoch runs FN_SMALL_PROBE_BATCHES full batches shared and as many on thread 0 alone
 * (the others passing the barriers idle), and the rest of the call goes the faster way:
 * on thread 0 alone, without barriers, once the others have left. The decision is kept
 * for FN_SMALL_DECISION_SECONDS for calls of the same network shape, batch and team (a
 * fit of one epoch per call, as a training loop with validation makes, would otherwise
 * pay the probe's shared batches on every call): "alone" runs such a call on the calling
 * thread without a team at all, "shared" skips the probe when the trip is slow again.
 * Not even starting the team matters in that state: after a pause of 0.2 s, the first
 * exchange with the other thread took 10-15 ms, and the call after it, with the other
 * thread idle, ran 20% slower than one thread.
 *
 * Calls from other Python threads may start while a team shares its batches (the cores
 * are counted across calls: fn_team_claim, internal.h). When they want more cores than
 * there are, the team's other threads leave at the end of the batch and thread 0 goes on
 * alone, as after a probe, rather than making every barrier wait for their time slices.
 */
#ifndef REAL
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Widths are padded to a multiple of the small kernel's vector: 64 bytes, 16 floats or
 * 8 doubles. */
#define FN_PAD_BYTES 64

/* Limits of "fits in cache": every width, the batch, and all padded weights (with the
 * transposed copies) within L2-sized storage. */
#define FN_SMALL_MAX_WIDTH 256
#define FN_SMALL_MAX_ROWS 256
#define FN_SMALL_MAX_WEIGHT_BYTES (192 * 1024)

/* Below this many flop per batch (6 x rows x weights) one thread trains: measured on
 * 2 cores, 2.5e5 (32-wide layers, batch 32) ran slower on two threads and 5.3e5 faster.
 * The units scheme moves far less between the cores: two threads gained 9-10% at
 * 2.3-2.5e5 ([64,64,10] batch 8, [16,64,4] batch 32; C, one epoch a call) and nothing
 * at 0.7-1.2e5 ([8 or 16,64,4] batch 16). */
#define FN_SMALL_PARALLEL_MIN_FLOP 5.0e5
#define FN_SMALL_UNITS_MIN_FLOP 2.0e5

/* Each thread's share of the batch rows is at least this many. */
#define FN_SMALL_MIN_ROWS_PER_THREAD 16

/* Hidden units a group in the units scheme (one hidden layer): two vectors of floats,
 * so the products of a group keep the small kernel's wide blocks. */
#define FN_UNIT_GROUP 32

/* A one-way cache-line transfer between threads 0 and 1 slower than FN_SLOW_LINE_NS
 * (fastnet.h) starts the probe. The probe times this many full batches each way, and
 * runs only when the first epoch has at least four times as many. */
#define FN_SMALL_PROBE_BATCHES 4

/* How long a probe's decision is reused by later calls of the same shape. The hosts seen
 * change placement over minutes; re-probing once a second costs well under 0.1%. */
#define FN_SMALL_DECISION_SECONDS 1.0

static int sharing_policy = FN_SHARING_AUTO;
static _Thread_local int last_sharing = FN_SHARED; /* this thread's last call */

/* The last probe's decision: for which call shape (a hash), made when, and which way.
 * Only a hint for speed: a stale or mistaken entry cannot change a result. */
static struct {
    uint64_t key;
    double when;
    int alone, valid;
} decision;

void fn_set_sharing_policy(int policy)
{
#pragma omp critical(fn_sharing_decision)
    {
        sharing_policy = policy;
        decision.valid = 0;
    }
}
int fn_last_sharing(void) { return last_sharing; }

/* FNV-1a over the call's shape: which way sharing goes depends on nothing else. */
static uint64_t shape_key(size_t real_size, int n_layers, const int64_t *sizes, int64_t rows,
                          int team)
{
    uint64_t h = 1469598103934665603u;
    const int64_t words[] = {(int64_t)real_size, n_layers, rows, team};
    for (int i = 0; i < 4 + n_layers + 1; i++) {
        uint64_t w = (uint64_t)(i < 4 ? words[i] : sizes[i - 4]);
        for (int byte = 0; byte < 8; byte++, w >>= 8)
            h = (h ^ (w & 0xff)) * 1099511628211u;
    }
    return h;
}

/* The decision kept for `key`: 1 alone, 0 shared, -1 none (or expired). */
static int recall_decision(uint64_t key)
{
    int known = -1;
#pragma omp critical(fn_sharing_decision)
    if (decision.valid && decision.key == key &&
        omp_get_wtime() - decision.when < FN_SMALL_DECISION_SECONDS)
        known = decision.alone;
    return known;
}

static void keep_decision(uint64_t key, int alone)
{
#pragma omp critical(fn_sharing_decision)
    {
        decision.key = key;
        decision.when = omp_get_wtime();
        decision.alone = alone;
        decision.valid = 1;
    }
}

/* The one-way time of a cache line between threads 0 and 1 of the team, in ns (on
 * thread 0; 0 elsewhere): 16 round trips through `line`. Called by every thread. */
static double line_trip_ns(atomic_long *line)
{
    enum { TRIPS = 16 };
    const int t = omp_get_thread_num();
    if (t == 0)
        atomic_store(line, 0);
#pragma omp barrier
    double start = omp_get_wtime();
    for (long v = t; t < 2 && v < 2 * TRIPS; v += 2) {
        while (atomic_load_explicit(line, memory_order_acquire) != v)
            ;
        atomic_store_explicit(line, v + 1, memory_order_release);
    }
    if (t != 0)
        return 0;
    while (atomic_load_explicit(line, memory_order_acquire) != 2 * TRIPS)
        ;
    return (omp_get_wtime() - start) * 1e9 / (2 * TRIPS);
}

double fn_line_trip_ns(void)
{
    struct { _Alignas(FN_ALIGN) atomic_long v; char pad[FN_ALIGN - sizeof(atomic_long)]; } line;
    double best = -1;
    if (omp_get_max_threads() < 2 || omp_in_parallel() || !fn_team_allowed())
        return best;
    atomic_init(&line.v, 0);
#pragma omp parallel num_threads(2)
    if (omp_get_num_threads() == 2)
        for (int r = 0; r < 5; r++) {
            const double ns = line_trip_ns(&line.v);
            if (omp_get_thread_num() == 0 && (best < 0 || ns < best))
                best = ns;
        }
    return best;
}

#define FN_SELF "train_small.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

/* A thread's own copies, in the one-hidden-layer scheme (units, below): every thread
 * computes the whole output layer of each batch itself. */
typedef struct {
    REAL *O, *dO, *b, *Yb; /* rows x P[2] (Yb: the batch's Y, zero-padded), and P[2] */
    REAL *parts;           /* room for groups x rows x P[2]: the batch's parts, copied in
                            * rows of part_row's length (units_output; NULL with one
                            * group or one thread) */
    double *loss;          /* rows */
    int bad;               /* the end of a call: a non-finite weight in its groups */
} T(small_own);

typedef struct {
    int64_t *P;                      /* padded widths, L + 1 */
    REAL **W, **b, **WT;             /* padded copies: s[l] x P[l+1], P[l+1], s[l+1] x P[l] */
    REAL **post, **delta;            /* rows x P[l+1]: H_out..O_out, delta_H..delta_O
                                      * (units: the output layer's in own) */
    const REAL **xg;                 /* shuffled: each thread's pointers to the batch's
                                      * rows of X (x_rows), xg_stride apart */
    int64_t xg_stride;
    REAL *Yb;                        /* the rows scheme's batch of Y in shuffled order,
                                      * each thread's rows (units: in own) */
    double *row_loss;                /* rows (the rows scheme; units: in own) */
    atomic_long *line;               /* a cache line of its own, for line_trip_ns */
    atomic_long *passed;             /* a cache line per thread, for fn_team_barrier */
    int units;                       /* one hidden layer: split by its units (below) */
    int by_owner;                    /* units on pages: each thread fills its own groups
                                      * and buffers (group_setup, own_setup) */
    int64_t gw, groups;              /* hidden units a group, groups */
    /* units: each group's blocks, gs_* elements apart (group_layout): W[0]'s columns and
     * b[0]'s entries (gw wide), W[1]'s rows, W[1]^T's columns (gw wide), H and delta_H
     * (rows x gw), the parts (rows x P[2] each, by batch parity, parity_part apart) */
    int64_t gs_w0, gs_b0, gs_w1, gs_wt, gs_h, gs_part, parity_part;
    REAL *part;                      /* each group's H W2, its block gs_part long */
    T(small_own) *own;               /* team of them (units) */
    int team;
    void *pointers, *block;
    size_t bytes;                    /* of block */
} T(small_ws);

static int64_t T(padded)(int64_t n)
{
    return fn_round_up(n, FN_PAD_BYTES / (int64_t)sizeof(REAL));
}

/* The units scheme's group: FN_UNIT_GROUP hidden units, or all of them, padded, when
 * there are at most 16 (one group: the output layer's sums are then one chain, as in
 * the rows scheme). A function of the shape only, never of the team. */
static int64_t T(group_width)(const T(fn_net) *net)
{
    return net->sizes[1] > 16 ? FN_UNIT_GROUP : T(padded)(net->sizes[1]);
}

/* The units scheme's groups: the hidden units in whole groups. */
static int64_t T(unit_groups)(const T(fn_net) *net)
{
    const int64_t gw = T(group_width)(net);
    return (net->sizes[1] + gw - 1) / gw;
}

/* Padded width of layer l: whole vectors, and whole groups for the hidden layer of the
 * units scheme. */
static int64_t T(layer_pad)(const T(fn_net) *net, int l)
{
    return net->n_layers == 2 && l == 1 ? T(unit_groups)(net) * T(group_width)(net)
                                        : T(padded)(net->sizes[l]);
}

int T(fn_train_small_fits)(const T(fn_net) *net, int64_t rows)
{
    const int64_t *s = net->sizes;
    if (rows > FN_SMALL_MAX_ROWS)
        return 0;
    int64_t elements = 0;
    for (int l = 0; l <= net->n_layers; l++)
        if (s[l] > FN_SMALL_MAX_WIDTH)
            return 0;
    for (int l = 0; l < net->n_layers; l++)
        elements += s[l] * T(layer_pad)(net, l + 1) +
                    (l > 0 ? s[l + 1] * T(layer_pad)(net, l) : 0);
    return elements * (int64_t)sizeof(REAL) <= FN_SMALL_MAX_WEIGHT_BYTES;
}

/* The next buffer of n elements of `size` bytes in the block, at a multiple of `align`
 * bytes (a cache line, or a page) from its start (the block starts on such a multiple),
 * whole cache lines long; with base == NULL only counts. */
static void *T(carve)(char *base, size_t *offset, int64_t n, size_t size, size_t align)
{
    *offset = (*offset + align - 1) / align * align;
    void *p = base ? base + *offset : NULL;
    *offset += ((size_t)n * size + FN_ALIGN - 1) / FN_ALIGN * FN_ALIGN;
    return p;
}

/* Where the units scheme's blocks lie (group_layout, small_layout). With more than one
 * group and more than one thread, no two threads write to the same page: each group's
 * own blocks (its columns of W1 and b1, rows of W2, columns of W2^T, H and delta_H) lie
 * together in a slab of whole pages, each group's parts (which the other threads read)
 * on pages of their own, one for each batch parity, and so does each thread's own
 * buffers. Packed, the threads' blocks shared pages (W1's rows were the threads' columns
 * side by side; H, W2 and the parts back to back), and the cores' prefetchers, which run
 * ahead within a page, kept taking lines the other thread was writing: digits on two
 * threads, each thread's products and sigmoids took 30-80% longer than with the other
 * thread idle, and the epoch 323 -> 262 us (C, unshuffled; shuffled 358 -> 282; float64
 * 601 -> 552). Every array's group block on pages of its own was no better for floats
 * and worse for doubles, and a group's parts in its slab made floats 2x slower. One
 * group, or one thread, keeps the blocks packed. Where the blocks lie changes no sum. */
static size_t T(group_align)(const T(small_ws) *ws)
{
    return ws->units && ws->groups > 1 && ws->team > 1 ? FN_PAGE_BYTES : FN_ALIGN;
}

/* A group block of n elements, rounded up to group_align. */
static int64_t T(group_stride)(const T(small_ws) *ws, int64_t n)
{
    return fn_round_up(n, (int64_t)(T(group_align)(ws) / sizeof(REAL)));
}

/* The units scheme's group strides (small_ws), from P, gw and groups: packed, each array's
 * group blocks back to back; else every gs_* is the slab's, whole pages, and the parts
 * are parity_part apart by parity and gs_part by group. */
static void T(group_layout)(T(small_ws) *ws, const T(fn_net) *net, int64_t rows)
{
    const int64_t *s = net->sizes, *P = ws->P, gw = ws->gw;
    const int64_t n[5] = {s[0] * gw, gw, gw * P[2], s[2] * gw, rows * gw};
    int64_t *gs[5] = {&ws->gs_w0, &ws->gs_b0, &ws->gs_w1, &ws->gs_wt, &ws->gs_h};
    const int64_t line = FN_ALIGN / (int64_t)sizeof(REAL);
    int64_t slab = 0; /* a group's own blocks together, H and delta_H each */
    for (int i = 0; i < 5; i++)
        slab += fn_round_up(n[i], line) * (i == 4 ? 2 : 1);
    for (int i = 0; i < 5; i++)
        *gs[i] = T(group_align)(ws) == FN_ALIGN ? fn_round_up(n[i], line)
                                                 : T(group_stride)(ws, slab);
    /* the parts, which the other threads read: each group's of each batch parity apart */
    ws->parity_part = T(group_stride)(ws, rows * P[2]);
    ws->gs_part = 2 * ws->parity_part;
}

static size_t T(small_layout)(T(small_ws) *ws, const T(fn_net) *net, int64_t rows, int gather,
                              int team, char *base)
{
    const int64_t *s = net->sizes, *P = ws->P;
    const int L = net->n_layers;
    const size_t R = sizeof(REAL);
    size_t off = 0;
    const size_t A = FN_ALIGN, G = T(group_align)(ws);
    if (ws->units) { /* group blocks (group_layout) */
        ws->WT[0] = ws->post[1] = ws->delta[1] = NULL;
        if (G == FN_ALIGN) {
            const int64_t g = ws->groups;
            ws->W[0] = T(carve)(base, &off, g * ws->gs_w0, R, A);
            ws->b[0] = net->b ? T(carve)(base, &off, g * ws->gs_b0, R, A) : NULL;
            ws->post[0] = T(carve)(base, &off, g * ws->gs_h, R, A);
            ws->delta[0] = T(carve)(base, &off, g * ws->gs_h, R, A);
            ws->W[1] = T(carve)(base, &off, g * ws->gs_w1, R, A);
            ws->WT[1] = T(carve)(base, &off, g * ws->gs_wt, R, A);
            ws->part = T(carve)(base, &off, g * ws->gs_part, R, A);
        } else { /* each group's blocks together, groups gs_* (all one stride) apart */
            char *slab = T(carve)(base, &off, ws->groups * ws->gs_w0, R, G);
            size_t in = 0;
            ws->W[0] = T(carve)(slab, &in, s[0] * ws->gw, R, A);
            ws->b[0] = net->b ? T(carve)(slab, &in, ws->gw, R, A) : NULL;
            ws->post[0] = T(carve)(slab, &in, rows * ws->gw, R, A);
            ws->delta[0] = T(carve)(slab, &in, rows * ws->gw, R, A);
            ws->W[1] = T(carve)(slab, &in, ws->gw * P[2], R, A);
            ws->WT[1] = T(carve)(slab, &in, s[2] * ws->gw, R, A);
            ws->part = T(carve)(base, &off, ws->groups * ws->gs_part, R, G);
        }
    } else {
        for (int l = 0; l < L; l++) {
            ws->W[l] = T(carve)(base, &off, s[l] * P[l + 1], R, A);
            ws->b[l] = net->b ? T(carve)(base, &off, P[l + 1], R, A) : NULL;
            ws->WT[l] = l > 0 ? T(carve)(base, &off, s[l + 1] * P[l], R, A) : NULL;
            ws->post[l] = T(carve)(base, &off, rows * P[l + 1], R, A);
            ws->delta[l] = T(carve)(base, &off, rows * P[l + 1], R, A);
        }
    }
    /* each thread's table on lines of its own, or pages (group_align, as the units
     * scheme's other per-thread blocks) */
    ws->xg_stride = fn_round_up(rows, (int64_t)(G / sizeof(REAL *)));
    ws->xg = gather ? T(carve)(base, &off, ws->xg_stride * team, sizeof(REAL *), G) : NULL;
    if (ws->units) {
        for (int t = 0; t < team; t++) {
            T(small_own) *o = ws->own + t;
            o->O = T(carve)(base, &off, rows * P[2], R, G);
            o->dO = T(carve)(base, &off, rows * P[2], R, A);
            o->b = net->b ? T(carve)(base, &off, P[2], R, A) : NULL;
            o->Yb = T(carve)(base, &off, rows * P[2], R, A);
            o->parts = G != FN_ALIGN ? T(carve)(base, &off, ws->groups * rows * P[2], R, A) : NULL;
            o->loss = T(carve)(base, &off, rows, sizeof(double), A);
        }
        ws->b[1] = ws->own[0].b; /* the copy loaded, checked and stored */
    } else {
        ws->Yb = gather ? T(carve)(base, &off, rows * s[L], R, A) : NULL;
        ws->row_loss = T(carve)(base, &off, rows, sizeof(double), A);
    }
    ws->line = T(carve)(base, &off, 1, FN_ALIGN, G);
    ws->passed = T(carve)(base, &off, team, FN_ALIGN, A);
    return off;
}

static void T(small_free)(T(small_ws) *ws)
{
    free(ws->pointers);
    fn_scratch_give(ws->block);
}

/* Rows [i0, i1) of the padded W[l] (l >= 1) into the same columns of W[l]^T; in the units
 * scheme group by group, each group's rows of W[1] and columns of W[1]^T a block of its
 * own (gw wide, so a block of v rows never spans two groups). */
static void T(refresh_WT)(const T(fn_net) *net, const T(small_ws) *ws, int l, int64_t i0,
                          int64_t i1)
{
    const int64_t n = net->sizes[l + 1], pn = ws->P[l + 1], gw = ws->gw;
    const T(fn_config) *cfg = T(fn_config_get)();
    if (!ws->units) {
        cfg->transpose(n, i0, i1, ws->W[l], pn, ws->WT[l], ws->P[l]);
        return;
    }
    for (int64_t g = i0 / gw; g * gw < i1; g++) {
        const int64_t lo = i0 > g * gw ? i0 - g * gw : 0;
        const int64_t hi = i1 < (g + 1) * gw ? i1 - g * gw : gw;
        cfg->transpose(n, lo, hi, ws->W[1] + g * ws->gs_w1, pn, ws->WT[1] + g * ws->gs_wt, gw);
    }
}

/* n values between the caller's array and the padded copy (to_padded, or back), in
 * spans of `span` values, span k at padded + k * stride: W[0]'s rows and b[0] in the units
 * scheme, whose groups' columns lie in blocks of their own; otherwise one span. */
static void T(copy_spans)(REAL *caller, REAL *padded, int64_t n, int64_t span, int64_t stride,
                          int to_padded)
{
    for (int64_t j = 0, k = 0; j < n; j += span, k++) {
        const size_t bytes = sizeof(REAL) * (size_t)(n - j < span ? n - j : span);
        if (to_padded)
            memcpy(padded + k * stride, caller + j, bytes);
        else
            memcpy(caller + j, padded + k * stride, bytes);
    }
}

/* Row i of W[l] and b[l] between the caller's arrays and the padded copies. */
static void T(copy_row)(const T(fn_net) *net, const T(small_ws) *ws, int l, int64_t i,
                        int to_padded)
{
    const int64_t n = net->sizes[l + 1], gw = ws->gw;
    REAL *caller = net->W[l] + i * n;
    if (!ws->units)
        T(copy_spans)(caller, ws->W[l] + i * ws->P[l + 1], n, n, 0, to_padded);
    else if (l == 0)
        T(copy_spans)(caller, ws->W[0] + i * gw, n, gw, ws->gs_w0, to_padded);
    else /* W[1]'s rows: row i in group i / gw's block */
        T(copy_spans)(caller, ws->W[1] + (i / gw) * ws->gs_w1 + (i % gw) * ws->P[2], n, n, 0,
                      to_padded);
}

static void T(copy_bias)(const T(fn_net) *net, const T(small_ws) *ws, int l, int to_padded)
{
    const int64_t n = net->sizes[l + 1];
    if (ws->units && l == 0)
        T(copy_spans)(net->b[0], ws->b[0], n, ws->gw, ws->gs_b0, to_padded);
    else
        T(copy_spans)(net->b[l], ws->b[l], n, n, 0, to_padded);
}

/* The caller's weights into the padded copies (W, W^T, b). */
static void T(small_load)(const T(fn_net) *net, const T(small_ws) *ws)
{
    const int64_t *s = net->sizes;
    for (int l = 0; l < net->n_layers; l++) {
        for (int64_t i = 0; i < s[l]; i++)
            T(copy_row)(net, ws, l, i, 1);
        if (l > 0)
            T(refresh_WT)(net, ws, l, 0, s[l]);
        if (net->b)
            T(copy_bias)(net, ws, l, 1);
    }
    for (int t = 1; ws->units && net->b && t < ws->team; t++)
        memcpy(ws->own[t].b, ws->b[1], sizeof(REAL) * (size_t)ws->P[2]);
}

/* One zero-filled block for every buffer, and the padded copies of the weights (with
 * by_owner, only the layout and the barrier's lines: the team fills the rest). */
static fn_status T(small_alloc)(T(small_ws) *ws, const T(fn_net) *net, int64_t rows, int gather,
                                int team)
{
    const int L = net->n_layers;
    memset(ws, 0, sizeof(*ws));
    ws->units = L == 2;
    ws->team = team;
    ws->pointers = fn_malloc(sizeof(REAL *) * 5 * (size_t)L + sizeof(int64_t) * (size_t)(L + 1) +
                             sizeof(T(small_own)) * (size_t)team);
    if (!ws->pointers)
        return FN_ENOMEM;
    REAL **p = ws->pointers;
    ws->W = p, ws->b = p + L, ws->WT = p + 2 * L, ws->post = p + 3 * L, ws->delta = p + 4 * L;
    ws->P = (int64_t *)(p + 5 * L);
    ws->own = (T(small_own) *)(ws->P + L + 1);
    for (int l = 0; l <= L; l++)
        ws->P[l] = T(layer_pad)(net, l);
    if (ws->units) {
        ws->gw = T(group_width)(net);
        ws->groups = T(unit_groups)(net);
        T(group_layout)(ws, net, rows);
    }
    size_t bytes = T(small_layout)(ws, net, rows, gather, team, NULL);
    ws->block = fn_scratch_take(bytes); /* on a page, so on any group_align */
    ws->bytes = bytes;
    if (!ws->block) {
        T(small_free)(ws);
        return FN_ENOMEM;
    }
    ws->by_owner = T(group_align)(ws) != FN_ALIGN;
    T(small_layout)(ws, net, rows, gather, team, ws->block);
    if (ws->by_owner) { /* the rest in the team (group_setup, own_setup) */
        memset(ws->line, 0, (size_t)((char *)ws->block + bytes - (char *)ws->line));
        return FN_OK;
    }
    memset(ws->block, 0, bytes);
    T(small_load)(net, ws);
    return FN_OK;
}

/* With ws->by_owner, each thread at the start of the team: its groups' slabs and parts
 * zeroed and its groups' weights loaded (group_setup), its own buffers zeroed and its
 * copy of b2 (own_setup). Written by the thread that uses them, the blocks start in its
 * own cache, and the zeroing (80 KB for digits on two threads) and the copying are
 * shared. Done by thread 0 for the whole block, they took 5 us of a call (a call of one
 * digits batch on two threads: 16.1 -> 12.9 us). */
static void T(group_setup)(const T(fn_net) *net, const T(small_ws) *ws, int64_t g)
{
    const int64_t *s = net->sizes, gw = ws->gw, c0 = g * gw;
    const int64_t k = s[1] - c0 < gw ? s[1] - c0 : gw;
    memset(ws->W[0] + g * ws->gs_w0, 0, sizeof(REAL) * (size_t)ws->gs_w0); /* the slab */
    memset(ws->part + g * ws->gs_part, 0, sizeof(REAL) * (size_t)ws->gs_part);
    for (int64_t i = 0; i < s[0]; i++) /* row i's span of this group (copy_row's, one) */
        T(copy_spans)(net->W[0] + i * s[1] + c0, ws->W[0] + g * ws->gs_w0 + i * gw, k, gw,
                      0, 1);
    for (int64_t i = c0; i < c0 + k; i++)
        T(copy_row)(net, ws, 1, i, 1);
    T(refresh_WT)(net, ws, 1, c0, c0 + k);
    if (net->b)
        T(copy_spans)(net->b[0] + c0, ws->b[0] + g * ws->gs_b0, k, gw, 0, 1);
}

static void T(own_setup)(const T(fn_net) *net, const T(small_ws) *ws, int t)
{
    const T(small_own) *own = ws->own + t;
    memset(own->O, 0, (size_t)((char *)(own->loss) - (char *)own->O)); /* O .. parts */
    if (net->b)
        memcpy(own->b, net->b[1], sizeof(REAL) * (size_t)net->sizes[2]);
}

/* 1 if every padded weight is finite (the padding is 0). The units scheme's blocks group
 * by group: its slabs whole (H, delta_H and the rest) took 2.8 us of a digits call. */
static int T(group_finite)(const T(fn_net) *net, const T(small_ws) *ws, int64_t g)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t gw = ws->gw;
    return cfg->all_finite(net->sizes[0] * gw, ws->W[0] + g * ws->gs_w0) &&
           cfg->all_finite(gw * ws->P[2], ws->W[1] + g * ws->gs_w1) &&
           (!ws->b[0] || cfg->all_finite(gw, ws->b[0] + g * ws->gs_b0));
}

static int T(small_finite)(const T(fn_net) *net, const T(small_ws) *ws)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    int ok = 1;
    if (ws->units) {
        for (int64_t g = 0; g < ws->groups; g++)
            ok &= T(group_finite)(net, ws, g);
        return ok && (!ws->b[1] || cfg->all_finite(ws->P[2], ws->b[1]));
    }
    for (int l = 0; l < net->n_layers; l++) /* padded rows, padding included (zero) */
        ok &= cfg->all_finite(net->sizes[l] * ws->P[l + 1], ws->W[l]) &&
              (!ws->b[l] || cfg->all_finite(ws->P[l + 1], ws->b[l]));
    return ok;
}

/* The caller's arrays := the padded W, b. */
static void T(small_store)(const T(fn_net) *net, const T(small_ws) *ws)
{
    for (int l = 0; l < net->n_layers; l++) {
        for (int64_t i = 0; i < net->sizes[l]; i++)
            T(copy_row)(net, ws, l, i, 0);
        if (net->b)
            T(copy_bias)(net, ws, l, 0);
    }
}

typedef struct {
    const T(fn_net) *net;
    T(small_ws) *ws;
    int64_t N, rows, n_epochs;
    const REAL *X, *Y;
    const int64_t *order;
    REAL alpha;
    double *epoch_loss;
    int64_t done;
    /* Set by one thread, read by all after a barrier; atomic as a thread may still read it
     * after the last batch's barrier while thread 0 sets it at the epoch's end (either
     * value takes that thread to the epoch's barrier: a benign race, but a race). */
    atomic_int nonfinite;
    int replay;       /* check and write back the weights at the end of each epoch */
    int kept_shared;  /* an earlier probe decided "shared" for this shape */
    int probe, alone; /* thread 0's decisions, read by all after a barrier */
    int decided;      /* this call's probe decided, with no other call beside it: keep it */
    int gave_way;     /* went alone because calls from other threads wanted the cores */
    /* The units scheme: the batch after which the others leave (thread 0 gave way in it),
     * or -1. A batch number, not a flag: the scheme has one barrier a batch, so a thread
     * still reading after batch k's barrier could see the flag thread 0 set in batch
     * k + 1, leave a batch early, and leave thread 0 to sum that batch without its
     * groups and then wait at a barrier no one else would reach (fits from several
     * Python threads hung so within seconds). */
    atomic_llong leave_at;
    int policy;       /* the sharing policy, read once for the whole team */
    int end_bad;      /* by_owner: a non-finite weight at the end (nothing stored) */
    fn_team_stop stop; /* thread 0 polls (batches numbered as for leave_at) */
    int stopped;       /* set by thread 0 */
} T(small_run);

/* Thread t's table of pointers to the shuffled batch's rows of X (perm: the batch's row
 * indices, nb of them), which the products read in place (x_product). */
static const REAL *const *T(x_rows)(const T(small_run) *run, int t, const int64_t *perm,
                                    int64_t nb)
{
    const REAL **xg = run->ws->xg + t * run->ws->xg_stride;
    const int64_t n_in = run->net->sizes[0];
    for (int64_t i = 0; i < nb; i++)
        xg[i] = run->X + perm[i] * n_in;
    return xg;
}

/* A product with X as op(A): rows r0.. of X from column col, or with trans_a its columns
 * col.. (rows are the batch's), read through xg (shuffled: small_gemm_g) or in place from
 * Xb (the batch in order, n_in values a row). The same values either way. */
static void T(x_product)(int trans_a, int64_t M, int64_t N, int64_t K, REAL alpha,
                         const REAL *Xb, const REAL *const *xg, int64_t n_in, int64_t r0,
                         int64_t col, const REAL *Bp, int64_t NP, REAL beta, REAL *C,
                         int64_t ldc)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    if (xg)
        cfg->small_gemm_g(trans_a, M, N, K, alpha, xg + r0, col, Bp, NP, beta, C, ldc);
    else
        cfg->small_gemm(trans_a, M, N, K, alpha, Xb + r0 * n_in + col, n_in, Bp, NP, beta, C,
                        ldc);
}

/* Rows [r0, r1) of a batch: feedforward, delta_O (and row_loss), hidden deltas. */
static void T(rows_phase)(const T(fn_net) *net, const T(small_ws) *ws, int64_t r0, int64_t r1,
                          int64_t nb, const REAL *Xb, const REAL *const *xg, const REAL *Yb)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int L = net->n_layers;
    const int64_t *s = net->sizes, *P = ws->P, m = r1 - r0;
    for (int l = 0; l < L; l++) { /* post[l] = act(post[l-1] W[l] + b[l]), X for l = 0 */
        const int64_t pn = P[l + 1];
        const T(fn_epilogue) ep = {ws->b[l], net->act[l], NULL, 0, 0, net->threshold};
        REAL *out = ws->post[l] + r0 * pn;
        if (l == 0)
            T(x_product)(0, m, pn, s[0], 1, Xb, xg, s[0], r0, 0, ws->W[0], pn, 0, out, pn);
        else
            cfg->small_gemm(0, m, pn, s[l], 1, ws->post[l - 1] + r0 * P[l], P[l], ws->W[l], pn,
                            0, out, pn);
        T(fn_epilogue_tile)(&ep, out, pn, m, pn, r0, 0);
    }
    T(fn_output_delta_rows)(net->act[L - 1], (REAL)(2.0 / (double)nb), r0, r1, s[L],
                            ws->post[L - 1], P[L], Yb, s[L], ws->delta[L - 1], P[L],
                            ws->row_loss);
    for (int l = L - 1; l > 0; l--) { /* delta[l-1] = (delta[l] W[l]^T) * act'(post[l-1]) */
        const T(fn_epilogue) ep = {NULL, FN_NO_ACTIVATION, ws->post[l - 1], P[l],
                                   net->act[l - 1], 0};
        REAL *prev = ws->delta[l - 1] + r0 * P[l];
        cfg->small_gemm(0, m, P[l], s[l + 1], 1, ws->delta[l] + r0 * P[l + 1], P[l + 1],
                        ws->WT[l], P[l], 0, prev, P[l]);
        T(fn_epilogue_tile)(&ep, prev, P[l], m, P[l], r0, 0);
    }
}

/* Thread t of `team`: its rows of every W[l] := W[l] - alpha A^T delta[l] (and W[l]^T),
 * and the biases of the layers l with l % team == t. */
static void T(weights_phase)(const T(fn_net) *net, const T(small_ws) *ws, int t, int team,
                             int64_t nb, const REAL *Xb, const REAL *const *xg, REAL alpha)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t *s = net->sizes, *P = ws->P;
    for (int l = 0; l < net->n_layers; l++) {
        const REAL *A = l > 0 ? ws->post[l - 1] : Xb;
        const int64_t lda = l > 0 ? P[l] : s[0], pn = P[l + 1];
        const int64_t i0 = s[l] * t / team, i1 = s[l] * (t + 1) / team;
        if (l > 0 && 4 * s[l + 1] < 3 * pn && T(padded)(i0) == i0) {
            /* a narrow layer (over a quarter of its padded width is padding, as digits'
             * 10 outputs in 16): W[l]^T's columns i0..i1 -= alpha delta^T A[:, i0:i1], the
             * outputs on the rows and nothing summed for the padding, then W[l]'s rows
             * from them; each element the same FMA chain as the other way round (the
             * units scheme's W2, units_backward). A's rows are read in whole vectors from
             * column i0, so i0 on a vector's boundary keeps them within A's padded rows
             * (else this thread's rows go the other way: the same values). */
            cfg->small_gemm(1, s[l + 1], i1 - i0, nb, -alpha, ws->delta[l], pn, A + i0, lda, 1,
                            ws->WT[l] + i0, P[l]);
            cfg->transpose(i1 - i0, 0, s[l + 1], ws->WT[l] + i0, P[l], ws->W[l] + i0 * pn, pn);
        } else if (l == 0) { /* X's columns i0..i1 */
            T(x_product)(1, i1 - i0, pn, nb, -alpha, Xb, xg, s[0], 0, i0, ws->delta[0], pn, 1,
                         ws->W[0] + i0 * pn, pn);
        } else {
            cfg->small_gemm(1, i1 - i0, pn, nb, -alpha, A + i0, lda, ws->delta[l], pn, 1,
                            ws->W[l] + i0 * pn, pn);
            if (l > 0)
                T(refresh_WT)(net, ws, l, i0, i1);
        }
        if (ws->b[l] && l % team == t)
            T(fn_bias_gradient_cols)(nb, 0, pn, ws->delta[l], pn, ws->b[l], -alpha, 1);
    }
}

/* The units scheme, for one hidden layer: the thread owning hidden-unit group g (columns
 * [c0, c0 + gw) of W1 and b1, rows of W2) computes its H_g = act(X W1[:, g] + b1[g])
 * and the group's part of the output layer's sums, P_g = H_g W2[g, :]. */
static void T(units_forward)(const T(fn_net) *net, const T(small_ws) *ws, int64_t g0,
                             int64_t g1, int64_t nb, const REAL *Xb, const REAL *const *xg,
                             REAL *part, int64_t ldp, REAL *O)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t *s = net->sizes, *P = ws->P, gw = ws->gw;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t c0 = g * gw, k = s[1] - c0 < gw ? s[1] - c0 : gw;
        const REAL *b = ws->b[0] ? ws->b[0] + g * ws->gs_b0 : NULL;
        const T(fn_epilogue) ep = {b, net->act[0], NULL, 0, 0, net->threshold};
        REAL *H = ws->post[0] + g * ws->gs_h;
        T(x_product)(0, nb, gw, s[0], 1, Xb, xg, s[0], 0, 0, ws->W[0] + g * ws->gs_w0, gw, 0,
                     H, gw);
        T(fn_epilogue_tile)(&ep, H, gw, nb, gw, 0, 0);
        if (ws->groups == 1) /* one group: the sums */
            cfg->small_gemm(0, nb, P[2], k, 1, H, gw, ws->W[1] + g * ws->gs_w1, P[2], 0, O, P[2]);
        else /* rows of ldp: P[2], or s[2] for the other threads (part_row) */
            cfg->small_gemm(0, nb, ldp, k, 1, H, gw, ws->W[1] + g * ws->gs_w1, P[2], 0,
                            part + g * ws->gs_part, ldp);
    }
}

/* The length of the parts' rows: with the other threads reading them (shared, and more
 * than one group and thread), only the outputs' s[2] values, packed; else P[2], padded,
 * read in place. Packed, the lines of a batch's part that pass between the cores, the
 * stores that take them from the readers and the readers' loads, come to s[2] / P[2] of
 * the padded ones (digits: 20 lines a group, not 32). */
static int64_t T(part_row)(const T(fn_net) *net, const T(small_ws) *ws, int shared)
{
    return shared && ws->own[0].parts ? net->sizes[2] : ws->P[2];
}

/* Every thread, after the barrier: the output layer of the whole batch into its own
 * copies, O = act(((P_0 + P_1) + ...) + b2), delta_O, the rows' losses, b2's step. The
 * same bits on every thread. Returns the batch's loss sum. With `copy` (the batch is
 * shared) the parts are first copied into the thread's own buffer, one group after the
 * other: the other threads' lines then arrive in one pass of loads. Read in place by the
 * output's sigmoid pass, where each vector's long chain holds back the next loads,
 * fetching them took about 1,500 cycles of a digits batch more than the pass alone (a
 * loop of loads alone fetches 32 such lines in 200-350); with the copy, digits on two
 * threads, in C: float32 281-286 -> 265-266 us an epoch (shuffled 306 -> 289), float64
 * 579 -> 546. */
static double T(units_output)(const T(fn_net) *net, const T(small_ws) *ws,
                              const T(small_own) *own, int64_t nb, const REAL *part,
                              int copy, const REAL *Yb, int64_t ld_y, REAL alpha)
{
    const int64_t *s = net->sizes, P2 = ws->P[2], G = ws->groups;
    const REAL scale = (REAL)(2.0 / (double)nb);
    REAL *O = own->O;
    const int64_t ldp = T(part_row)(net, ws, copy); /* the parts' rows */
    int64_t stride = ws->gs_part;                   /* between the groups' parts */
    if (copy && own->parts) { /* own->parts: more than one group, more than one thread */
        for (int64_t g = 0; g < G; g++)
            memcpy(own->parts + g * nb * ldp, part + g * stride,
                   sizeof(REAL) * (size_t)(nb * ldp));
        part = own->parts, stride = nb * ldp;
    }
    const int fused = FN_ACT_IN_REGISTERS(net->act[1]);
    if (fused) { /* the seed's output layer (and the identity, relu): one pass in registers */
        T(fn_config_get)()->output_layer(net->act[1], nb, s[2], P2, G, G > 1 ? part : O, stride,
                                         G > 1 ? ldp : P2, own->b, Yb, ld_y, scale, O,
                                         own->dO, own->loss);
    } else if (G > 1) { /* O = ((P_0 + P_1) + ...) + ..., row by row (packed: 0 past ldp) */
        for (int64_t i = 0; i < nb; i++) {
            REAL *o = O + i * P2;
            memcpy(o, part + i * ldp, sizeof(REAL) * (size_t)ldp);
            for (int64_t g = 1; g < G; g++) {
                const REAL *q = part + g * stride + i * ldp;
                for (int64_t j = 0; j < ldp; j++) /* a vector loop (with the loop over g
                                                   * inside, scalar) */
                    o[j] += q[j];
            }
            memset(o + ldp, 0, sizeof(REAL) * (size_t)(P2 - ldp));
        }
    }
    if (!fused) {
        const T(fn_epilogue) ep = {own->b, net->act[1], NULL, 0, 0, net->threshold};
        T(fn_epilogue_tile)(&ep, O, P2, nb, P2, 0, 0);
        T(fn_output_delta_rows)(net->act[1], scale, 0, nb, s[2], O, P2, Yb, ld_y, own->dO, P2,
                                own->loss);
    }
    if (own->b)
        T(fn_bias_gradient_cols)(nb, 0, P2, own->dO, P2, own->b, -alpha, 1);
    double batch = 0;
    for (int64_t e = 0; e < nb; e++)
        batch += own->loss[e];
    return batch;
}

/* The owner of groups [g0, g1), after units_output: delta_H_g = (delta_O W2[g, :]^T) *
 * act'(H_g), then its rows of W2, its columns of W1 and b1. */
static void T(units_backward)(const T(fn_net) *net, const T(small_ws) *ws,
                              const T(small_own) *own, int64_t g0, int64_t g1, int64_t nb,
                              const REAL *Xb, const REAL *const *xg, REAL alpha)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t *s = net->sizes, *P = ws->P, gw = ws->gw;
    for (int64_t g = g0; g < g1; g++) {
        const int64_t c0 = g * gw, k = s[1] - c0 < gw ? s[1] - c0 : gw;
        const REAL *H = ws->post[0] + g * ws->gs_h;
        REAL *dH = ws->delta[0] + g * ws->gs_h;
        const T(fn_epilogue) ep = {NULL, FN_NO_ACTIVATION, H, gw, net->act[0], 0};
        cfg->small_gemm(0, nb, gw, s[2], 1, own->dO, P[2], ws->WT[1] + g * ws->gs_wt, gw, 0, dH,
                        gw);
        T(fn_epilogue_tile)(&ep, dH, gw, nb, gw, 0, 0);
        /* W2[g, :]^T -= alpha delta_O^T H_g: the outputs on the rows, the group's units on
         * the vectors, so no padding column of the outputs is summed (digits: 10 rows by
         * 32 columns, 1280 FMAs of registers of doubles, not 32 by 16, 2048); then W2's
         * rows from it. The same values: each element the same FMA chain over the batch's
         * rows, its two factors swapped. */
        REAL *WT = ws->WT[1] + g * ws->gs_wt;
        cfg->small_gemm(1, s[2], k, nb, -alpha, own->dO, P[2], H, gw, 1, WT, gw);
        cfg->transpose(k, 0, s[2], WT, gw, ws->W[1] + g * ws->gs_w1, P[2]);
        T(x_product)(1, s[0], gw, nb, -alpha, Xb, xg, s[0], 0, 0, dH, gw, 1,
                     ws->W[0] + g * ws->gs_w0, gw);
        if (ws->b[0])
            T(fn_bias_gradient_cols)(nb, 0, gw, dH, gw, ws->b[0] + g * ws->gs_b0, -alpha, 1);
    }
}

/* The rows of X the batch after this one reads (the next epoch's first, after the
 * last), asked into L1 with prefetches. Called by a thread with groups once its parts
 * are written, before the barrier: X W1 read the batch from L2 in 2,700 cycles of the
 * time-stamp counter on two threads (a digits group, 32 x 32 x 64), 2,100 from L1, and
 * the loads of the next batch issue in about 150. Asked for later, in the barrier's
 * wait or before the deltas, it gained nothing (those compete with the copy of the
 * parts and with the deltas' own rows). */
static void T(prefetch_next)(const T(small_run) *run, int64_t epoch, int64_t start)
{
    const int64_t n_in = run->net->sizes[0];
    int64_t next = start + run->rows;
    if (next >= run->N) { /* the next epoch's first batch, if any */
        if (epoch + 1 >= run->n_epochs)
            return;
        next = 0, epoch++;
    }
    const int64_t *perm = run->order ? run->order + epoch * run->N : NULL;
    const int64_t count = run->N - next < run->rows ? run->N - next : run->rows;
    for (int64_t i = 0; i < count; i++)
        fn_prefetch_bytes(run->X + (perm ? perm[next + i] : next + i) * n_in,
                          sizeof(REAL) * (size_t)n_in);
}

/* Thread 0: whether calls from other threads now want more cores than there are; if so
 * the team gives them its others (its barriers would wait on their time slices). */
static int T(give_way)(T(small_run) *run, int team)
{
    const int busy = fn_threads_busy();
    if (busy <= team || busy <= fn_cores() || run->policy == FN_SHARING_ALWAYS)
        return 0;
    run->alone = 1;
    fn_team_give_back(team - 1);
    return 1;
}

/* A barrier, unless thread 0 runs alone (the others have left the loop). */
#define FN_SYNC(alone)                                                                   \
    do {                                                                                 \
        if (!(alone))                                                                    \
            fn_team_barrier(ws->passed, t, team);                                        \
    } while (0)

static void T(small_team)(T(small_run) *run)
{
    const T(fn_net) *net = run->net;
    T(small_ws) *ws = run->ws;
    const int64_t N = run->N, n_in = net->sizes[0], n_out = net->sizes[net->n_layers];
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t probe_batches = FN_SMALL_PROBE_BATCHES;
    /* share: the threads that take part in each batch (the others pass the barriers
     * idle); alone: thread 0 on its own and the others gone. */
    int share = team, alone = 0, probe = 0;
    /* A slow trip: a probe, unless one decided "shared" for this shape (then the trip is
     * not timed at all: its 16 round trips and barrier took about 2 us of every call) */
    if (team > 1 && run->policy != FN_SHARING_ALWAYS && !run->kept_shared &&
        N / run->rows >= 4 * probe_batches) {
        const double ns = line_trip_ns(ws->line);
        if (t == 0)
            run->probe = run->policy != FN_SHARING_AUTO || ns > FN_SLOW_LINE_NS;
#pragma omp barrier
        probe = run->probe;
    }
    double last = t == 0 && probe ? omp_get_wtime() : 0, fastest[2] = {INFINITY, INFINITY};
    int contended = 0; /* thread 0: other calls held threads during the probe's batches */
    int64_t batch_no = 0;
    int stopped = 0; /* every thread's: the stop's batch ended the call */
    /* thread 0: the epoch's loss sum, kept here rather than in run, whose lines the
     * other threads read every batch (a store there each batch took the line from them) */
    double epoch_sum = 0;
    int last_share = -1;                    /* the units scheme: the last batch's share */
    if (ws->by_owner) { /* this thread's groups as the first batch deals them out */
        for (int64_t g = ws->groups * t / team; g < ws->groups * (t + 1) / team; g++)
            T(group_setup)(net, ws, g);
        T(own_setup)(net, ws, t);
    }
    for (int64_t epoch = 0; epoch < run->n_epochs; epoch++) {
        const int64_t *perm = run->order ? run->order + epoch * N : NULL;
        for (int64_t start = 0; start < N; start += run->rows, batch_no++) {
            if (probe) { /* full batches only: shared, then alone, then the decision */
                if (t == 0 && batch_no > 0) {
                    const double now = omp_get_wtime();
                    const int was_shared = batch_no <= probe_batches;
                    fastest[was_shared] = fmin(fastest[was_shared], now - last);
                    last = now;
                    contended |= fn_threads_busy() > team;
                }
                if (batch_no == 2 * probe_batches) {
                    if (t == 0) {
                        run->alone = run->policy == FN_SHARING_PROBE_ALONE ||
                                     (run->policy == FN_SHARING_AUTO && fastest[0] < fastest[1]);
                        /* not kept if timed beside other calls; alone: the others' cores
                         * are free */
                        run->decided = !contended && fn_threads_busy() <= team;
                        if (run->alone)
                            fn_team_give_back(team - 1);
                    }
#pragma omp barrier
                    probe = 0;
                    if (run->alone && t != 0)
                        return;
                    alone = run->alone;
                }
                share = alone || (batch_no >= probe_batches && probe) ? 1 : team;
            }
            const int64_t nb = N - start < run->rows ? N - start : run->rows;
            /* stopping replays the epochs done: only while they are fewer than those to
             * come (else the call ends first, and the caller acts then) */
            if (t == 0)
                fn_team_stop_poll(&run->stop, batch_no, 2 * epoch < run->n_epochs);
            if (ws->units) {
                if (last_share >= 0 && share != last_share)
                    FN_SYNC(alone); /* the groups change hands: their last updates first */
                last_share = share;
                const int64_t G = ws->groups;
                const int64_t g0 = G * t / share, g1 = t < share ? G * (t + 1) / share : g0;
                T(small_own) *own = ws->own + t;
                REAL *part = ws->part + (batch_no & 1) * ws->parity_part; /* this parity's */
                const REAL *Xb = run->X + start * n_in;
                const REAL *const *xg =
                    perm && g0 < g1 ? T(x_rows)(run, t, perm + start, nb) : NULL;
                /* Y's rows: in place if in order, else all of them gathered in rows padded
                 * as O's (copying them in order too: digits on two threads, in C, 14
                 * alternating rounds, float32 2% slower, float64 within noise) */
                const REAL *Yb = perm ? own->Yb : run->Y + start * n_out;
                const int64_t ld_y = perm ? ws->P[2] : n_out;
                for (int64_t i = 0; perm && i < nb; i++) {
                    const REAL *y = run->Y + perm[start + i] * n_out;
                    for (int64_t k = 0; k < n_out; k++) /* inline: rows of a few values */
                        own->Yb[i * ws->P[2] + k] = y[k];
                }
                T(units_forward)(net, ws, g0, g1, nb, Xb, xg, part,
                                 T(part_row)(net, ws, share > 1), own->O);
                /* other calls want the cores: give way */
                if (t == 0 && share > 1 && !probe && T(give_way)(run, team)) {
                    run->gave_way = 1;
                    atomic_store_explicit(&run->leave_at, batch_no, memory_order_relaxed);
                }
                if (g0 < g1)
                    T(prefetch_next)(run, epoch, start);
                FN_SYNC(alone); /* every group's part of the sums is in (and leave_at) */
                const int leaving =
                    !alone &&
                    atomic_load_explicit(&run->leave_at, memory_order_relaxed) == batch_no;
                const double batch =
                    T(units_output)(net, ws, own, nb, part, share > 1, Yb, ld_y, run->alpha);
                T(units_backward)(net, ws, own, g0, g1, nb, Xb, xg, run->alpha);
                if (t == 0)
                    epoch_sum += batch;
                if (leaving) { /* after the groups' updates: thread 0 takes them all */
                    FN_SYNC(alone);
                    if (t != 0)
                        return;
                    alone = 1, share = 1, last_share = 1;
                }
                if (!isfinite(batch)) /* every thread saw the same loss */
                    break;
                if (fn_team_stop_here(&run->stop, batch_no)) {
                    stopped = 1;
                    break;
                }
                continue;
            }
            const int64_t r0 = nb * t / share, r1 = t < share ? nb * (t + 1) / share : r0;
            const REAL *Xb = run->X + start * n_in, *Yb = run->Y + start * n_out;
            const REAL *const *xg =
                perm && t < share ? T(x_rows)(run, t, perm + start, nb) : NULL;
            if (perm) { /* its rows of Y */
                for (int64_t i = r0; i < r1; i++)
                    memcpy(ws->Yb + i * n_out, run->Y + perm[start + i] * n_out,
                           sizeof(REAL) * n_out);
                Yb = ws->Yb;
            }
            if (t < share)
                T(rows_phase)(net, ws, r0, r1, nb, Xb, xg, Yb);
            FN_SYNC(alone);
            if (t < share)
                T(weights_phase)(net, ws, t, share, nb, Xb, xg, run->alpha);
            if (t == 0) {
                double batch = 0;
                for (int64_t e = 0; e < nb; e++)
                    batch += ws->row_loss[e];
                epoch_sum += batch;
                if (!isfinite(batch))
                    run->nonfinite = 1;
                if (share > 1 && !probe && T(give_way)(run, team))
                    run->gave_way = 1;
            }
            FN_SYNC(alone);
            if (run->gave_way && !alone) {
                if (t != 0)
                    return;
                alone = 1, share = 1;
            }
            if (run->nonfinite)
                break;
            if (fn_team_stop_here(&run->stop, batch_no)) {
                stopped = 1;
                break;
            }
        }
        if (t == 0) {
            if (stopped) { /* the caller's weights, or a replay, give the epochs done */
                run->stopped = 1;
            } else if (isfinite(epoch_sum) && !run->nonfinite &&
                       (!run->replay || T(small_finite)(net, ws))) {
                run->epoch_loss[epoch] = epoch_sum / (double)N;
                run->done = epoch + 1;
                if (run->replay)
                    T(small_store)(net, ws);
            } else {
                run->nonfinite = 1;
            }
            epoch_sum = 0;
        }
        FN_SYNC(alone);
        if (run->nonfinite || stopped)
            break;
    }
    if (ws->by_owner && !run->replay) {
        /* Each thread checks its last batch's groups in its own cache; thread 0 stores
         * them all if every one is finite. (Stored by their owners, the caller's rows,
         * which split between groups inside a cache line unless 64-byte aligned, passed
         * their lines back and forth: a one-batch call took 9.3 us against 12.9, but
         * a digits epoch 263.5 against 259.8.) */
        const int64_t G = ws->groups;
        const int sh = alone ? 1 : share, seen = alone ? 1 : team;
        int bad = 0;
        for (int64_t g = G * t / sh; t < sh && g < G * (t + 1) / sh; g++)
            bad |= !T(group_finite)(net, ws, g);
        if (t == 0 && ws->b[1])
            bad |= !T(fn_config_get)()->all_finite(ws->P[2], ws->b[1]);
        ws->own[t].bad = bad;
        FN_SYNC(alone);
        if (t == 0) {
            int any = run->nonfinite;
            for (int o = 0; o < seen; o++)
                any |= ws->own[o].bad;
            if (!any && run->done > 0 && !stopped)
                T(small_store)(net, ws);
            run->end_bad = any;
        }
    }
}

fn_status T(fn_train_small)(const T(fn_net) *net, int64_t N, const REAL *X, const REAL *Y,
                            const int64_t *order, int64_t n_epochs, int64_t rows, REAL alpha,
                            double *epoch_loss, int64_t *epochs_done)
{
    const double flop = T(fn_flop_per_row)(net) * (double)rows;
    int team = 1;
    const int units = net->n_layers == 2;
    if (flop >= (units ? FN_SMALL_UNITS_MIN_FLOP : FN_SMALL_PARALLEL_MIN_FLOP) &&
        !omp_in_parallel()) {
        /* units: a group at least; rows: FN_SMALL_MIN_ROWS_PER_THREAD */
        int64_t most = units ? T(unit_groups)(net) : rows / FN_SMALL_MIN_ROWS_PER_THREAD;
        team = omp_get_max_threads();
        team = team < most ? team : (int)(most > 1 ? most : 1);
        const int64_t batches = (N + rows - 1) / rows;
        team = fn_team_if_warm(T(fn_flop_per_row)(net) * (double)(batches * rows * n_epochs),
                               team);
    }
    T(small_ws) ws;
    fn_status st = T(small_alloc)(&ws, net, rows, order != NULL, team);
    if (st != FN_OK)
        return st;
    const uint64_t key = shape_key(sizeof(REAL), net->n_layers, net->sizes, rows, team);
    const int known = team > 1 ? recall_decision(key) : -1;
    T(small_run) run = {net, &ws, N, rows, n_epochs, X, Y, order, alpha, epoch_loss,
                        .kept_shared = known == 0, .policy = sharing_policy, .leave_at = -1};
    fn_stop_poll_init(&run.stop.poll, flop);
    FN_RUN_TEAM(known == 1 ? 1 : team, T(small_team)(&run)); /* alone as decided: no team */
    const int granted = fn_last_grant(); /* 1 when other calls held the cores */
    if (run.decided) /* the probe's answer, not a later giving way */
        keep_decision(key, run.alone && !run.gave_way);
    const int failed =
        !run.stopped &&
        (run.nonfinite || (ws.by_owner ? run.end_bad : !T(small_finite)(net, &ws)));
    /* stopped: the caller's weights are those of the call's start; the epochs done
     * are replayed on them */
    if (failed || (run.stopped && run.done > 0)) {
        /* replay up to the epoch that failed (or the last, or those done), checking each */
        const int64_t epochs = run.stopped ? run.done : run.nonfinite ? run.done + 1 : n_epochs;
        T(small_run) again = {net, &ws, N, rows, epochs, X, Y,
                              order, alpha, epoch_loss, .replay = 1, .policy = sharing_policy,
                              .leave_at = -1};
        if (!ws.by_owner) { /* by_owner: the team's group_setup zeroes and loads them */
            /* from a zeroed block, as small_alloc left it: the failed run's infinities
             * made NaN (0 * inf) in padding lanes, which small_load does not write and
             * the replay's checks read (its first epoch "failed": a diverging float32
             * fit kept none of the epochs before the bad one) */
            memset(ws.block, 0, ws.bytes);
            T(small_load)(net, &ws);
        }
        FN_RUN_TEAM(1, T(small_team)(&again));
        run.done = again.done;
    } else if (run.done > 0 && !ws.by_owner && !run.stopped) { /* by_owner: in the team */
        T(small_store)(net, &ws);
    }
    last_sharing = team == 1     ? FN_ONE_THREAD
                   : known == 1  ? FN_ALONE_AS_DECIDED
                   : granted == 1 ? FN_ONE_THREAD
                   : run.gave_way ? FN_ALONE_FOR_OTHERS
                   : !run.alone  ? FN_SHARED
                                 : FN_ALONE_AFTER_PROBE;
    T(small_free)(&ws);
    *epochs_done = run.done;
    return run.stopped ? FN_STOPPED : failed ? FN_NONFINITE : FN_OK;
}

#endif
