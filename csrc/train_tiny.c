/*
 * train_tiny.c: fn_train (same contract) for the tiniest networks, the seed's XOR
 * ([2, 4, 1] on its 4 rows) and its kind: every width at most FN_TINY_MAX_WIDTH (8),
 * batches of at most FN_TINY_MAX_ROWS and a step of at most FN_TINY_MAX_FLOP.
 *
 * The small trainer (train_small.c) pads every row to whole vectors of 16 floats so that
 * its products run on full registers. For XOR that made 4 rows of 16 lanes of which 1
 * to 4 are real: each product, activation and update worked on registers three quarters
 * or more padding, in a chain of dependent operations. Here rows are padded to P = 4 or
 * 8 values (the widest layer's), and a layer's batch is one flat array (XOR's hidden
 * layer, 4 rows x 4 units: one register of 16 floats, one sigmoid). The step on a batch
 * is tiny_body.h, compiled per ISA for each P (fn_config's tiny_batch), so a row is a
 * vector of a width known when it compiles and the sigmoid is inline. XOR float32 in C,
 * one thread: 238 -> 164 ns an epoch (medians of 5 alternating rounds).
 *
 * One thread: below FN_TINY_MAX_FLOP a batch is far too small to share between cores
 * (the small trainer keeps one thread there too), so the results cannot depend on the
 * team. The weights are copied once per call into padded rows (W[l], b[l], and W[l]^T
 * for the hidden deltas) and back at the end. They are checked once, at the end; a
 * batch whose loss is not finite ends the run early. Either failure replays the call
 * from the caller's weights, untouched so far, checking and storing them after every
 * epoch, up to the epoch that failed: the caller keeps the weights of its start, as the
 * contract says, and the replay repeats the same bits.
 */
#ifndef REAL
#include "internal.h"

#include <math.h>
#include <string.h>

#define FN_SELF "train_tiny.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

/* The call's copies (fn_tiny in fastnet.h has their layout): the network's padded
 * weights, all in one block (params, checked as one array), and the batch's rows of X
 * and Y when shuffled (Xb, Yb, unpadded). */
typedef struct {
    T(fn_tiny) net;
    REAL *params, *Xb, *Yb;
    int64_t n_params;
    void *block;
    size_t bytes; /* of block */
} T(tiny_ws);

int T(fn_train_tiny_fits)(const T(fn_net) *net, int64_t rows)
{
    if (net->n_layers > FN_TINY_MAX_LAYERS || rows > FN_TINY_MAX_ROWS)
        return 0;
    for (int l = 0; l <= net->n_layers; l++)
        if (net->sizes[l] > FN_TINY_MAX_WIDTH)
            return 0;
    return T(fn_flop_per_row)(net) * (double)rows <= FN_TINY_MAX_FLOP;
}

static fn_status T(tiny_alloc)(T(tiny_ws) *ws, const T(fn_net) *net, int64_t rows)
{
    const int L = net->n_layers;
    const int64_t *s = net->sizes;
    int64_t widest = 0;
    for (int l = 0; l <= L; l++)
        widest = s[l] > widest ? s[l] : widest;
    const int64_t P = widest <= 4 ? 4 : 8, batch = fn_round_up(rows * P, 16);
    ws->n_params = 0;
    for (int l = 0; l < L; l++)
        ws->n_params += (s[l] + (net->b ? 1 : 0)) * P;
    int64_t n = ws->n_params + rows * (s[0] + s[L]);
    for (int l = 0; l < L; l++)
        n += (l > 0 ? s[l + 1] * P : 0) + 2 * batch;
    const size_t bytes = sizeof(REAL) * (size_t)n + sizeof(double) * (size_t)rows;
    char *p = fn_scratch_take(bytes);
    if (!p)
        return FN_ENOMEM;
    memset(p, 0, bytes); /* the padding columns: zero, and never written */
    ws->block = p;
    ws->bytes = bytes;
    T(fn_tiny) *t = &ws->net;
    *t = (T(fn_tiny)){.n_layers = L, .sizes = s, .act = net->act, .threshold = net->threshold,
                      .P = P};
    t->row_loss = (double *)p; /* doubles first: REAL's alignment follows */
    REAL *r = (REAL *)(p + sizeof(double) * (size_t)rows);
    for (int l = 0; l < L; l++) { /* the batch's rows first: whole 64-byte blocks */
        t->post[l] = r, r += batch;
        t->delta[l] = r, r += batch;
    }
    ws->params = r;
    for (int l = 0; l < L; l++) {
        t->W[l] = r, r += s[l] * P;
        t->b[l] = net->b ? r : NULL, r += net->b ? P : 0;
    }
    for (int l = 1; l < L; l++)
        t->WT[l] = r, r += s[l + 1] * P;
    ws->Xb = r, r += rows * s[0];
    ws->Yb = r;
    return FN_OK;
}

/* The caller's parameters into the padded copies. */
static void T(tiny_load)(const T(fn_net) *net, const T(tiny_ws) *ws)
{
    const T(fn_tiny) *t = &ws->net;
    for (int l = 0; l < net->n_layers; l++) {
        const int64_t k = net->sizes[l], n = net->sizes[l + 1], P = t->P;
        for (int64_t p = 0; p < k; p++) {
            memcpy(t->W[l] + p * P, net->W[l] + p * n, sizeof(REAL) * (size_t)n);
            for (int64_t j = 0; l > 0 && j < n; j++)
                t->WT[l][j * P + p] = net->W[l][p * n + j];
        }
        if (net->b)
            memcpy(t->b[l], net->b[l], sizeof(REAL) * (size_t)n);
    }
}

/* The padded copies into the caller's arrays. */
static void T(tiny_store)(const T(fn_net) *net, const T(tiny_ws) *ws)
{
    const T(fn_tiny) *t = &ws->net;
    for (int l = 0; l < net->n_layers; l++) {
        const int64_t k = net->sizes[l], n = net->sizes[l + 1], P = t->P;
        for (int64_t p = 0; p < k; p++)
            memcpy(net->W[l] + p * n, t->W[l] + p * P, sizeof(REAL) * (size_t)n);
        if (net->b)
            memcpy(net->b[l], t->b[l], sizeof(REAL) * (size_t)n);
    }
}

/* Epochs [0, n_epochs) from the caller's weights. With `each`, the weights are checked
 * at the end of every epoch and stored while they are finite. Returns the epochs
 * completed; *failed: a batch's loss or (each) the weights were not finite; *stopped
 * (with a poll): the stop check said stop, in the epoch returned. */
static int64_t T(tiny_run)(const T(fn_net) *net, T(tiny_ws) *ws, int64_t N, const REAL *X,
                           const REAL *Y, const int64_t *order, int64_t n_epochs,
                           int64_t rows, REAL alpha, double *epoch_loss, int each,
                           int *failed, fn_stop_poller *poll, int *stopped)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t n_in = net->sizes[0], n_out = net->sizes[net->n_layers];
    T(tiny_load)(net, ws);
    *failed = 0;
    for (int64_t epoch = 0; epoch < n_epochs; epoch++) {
        const int64_t *perm = order ? order + epoch * N : NULL;
        double sum = 0;
        for (int64_t start = 0; start < N; start += rows) {
            const int64_t nb = N - start < rows ? N - start : rows;
            const REAL *Xb = X + start * n_in, *Yb = Y + start * n_out;
            if (perm) {
                for (int64_t i = 0; i < nb; i++) {
                    memcpy(ws->Xb + i * n_in, X + perm[start + i] * n_in,
                           sizeof(REAL) * (size_t)n_in);
                    memcpy(ws->Yb + i * n_out, Y + perm[start + i] * n_out,
                           sizeof(REAL) * (size_t)n_out);
                }
                Xb = ws->Xb, Yb = ws->Yb;
            }
            const double batch = cfg->tiny_batch(&ws->net, nb, Xb, Yb, alpha);
            sum += batch;
            if (!isfinite(batch)) {
                *failed = 1;
                return epoch;
            }
            /* stopping replays the epochs done: only while they are fewer than those to
             * come (else the call ends first, and the caller acts then) */
            if (poll && fn_stop_poll(poll) && 2 * epoch < n_epochs) {
                *stopped = 1;
                return epoch;
            }
        }
        if (each) {
            if (!cfg->all_finite(ws->n_params, ws->params)) {
                *failed = 1;
                return epoch;
            }
            T(tiny_store)(net, ws);
        }
        epoch_loss[epoch] = sum / (double)N;
    }
    return n_epochs;
}

fn_status T(fn_train_tiny)(const T(fn_net) *net, int64_t N, const REAL *X, const REAL *Y,
                           const int64_t *order, int64_t n_epochs, int64_t rows, REAL alpha,
                           double *epoch_loss, int64_t *epochs_done)
{
    T(tiny_ws) ws;
    const fn_status st = T(tiny_alloc)(&ws, net, rows);
    if (st != FN_OK)
        return st;
    int failed, stopped = 0;
    fn_stop_poller poll;
    fn_stop_poll_init(&poll, T(fn_flop_per_row)(net) * (double)rows);
    int64_t done = T(tiny_run)(net, &ws, N, X, Y, order, n_epochs, rows, alpha, epoch_loss,
                               0, &failed, &poll, &stopped);
    if (!failed && !stopped && !T(fn_config_get)()->all_finite(ws.n_params, ws.params))
        failed = 1; /* in some epoch: find which */
    if (failed || (stopped && done > 0)) {
        /* replay from the caller's weights, untouched so far, up to the failure (stopped:
         * the epochs done), in a block zeroed as tiny_alloc left it: the failed run's
         * infinities made NaN (0 * inf) in padding lanes that tiny_load does not write and
         * the replay's checks read (a diverging float32 fit kept no epoch) */
        memset(ws.block, 0, ws.bytes);
        done = T(tiny_run)(net, &ws, N, X, Y, order,
                           stopped ? done : done < n_epochs ? done + 1 : n_epochs, rows, alpha,
                           epoch_loss, 1, &failed, NULL, NULL);
    } else if (done > 0 && !stopped) {
        T(tiny_store)(net, &ws);
    }
    fn_scratch_give(ws.block);
    *epochs_done = done;
    return stopped ? FN_STOPPED : failed ? FN_NONFINITE : FN_OK;
}

#endif
