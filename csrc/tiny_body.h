/*
 * tiny_body.h: the tiny trainer's step on one batch (train_tiny.c), for rows padded to
 * TINY_P values. target_body.h includes it for TINY_P = 4 and 8 under each ISA's flags,
 * so every row operation is one vector (or a few) of a width known when it compiles, and
 * the sigmoid is target_body.h's own, inline, over the batch's whole flat array (XOR's
 * hidden layer, 4 rows x 4 units: one register of 16 floats), with the short chain of
 * its polynomial: here a step waits on each sigmoid's latency.
 *
 * Every sum runs over the real widths in index order, as the reference's. The loops
 * over P lanes carry the padding's zeros along, which stay zero: a padding column of
 * H_in is 0 (W's padding columns are), of delta 0 (W^T's are; delta_O's are never
 * written), and so the padding columns of W and b get 0 steps.
 */
#define TP(name) FN_CAT(name, TINY_P)
#define TINY(name) T(TP(ISA(name))) /* name_<isa>_<P>_<f32|f64> */
/* A padded row: CH registers of RL values (one, unless P values are wider than the
 * ISA's registers). */
#define ROW_BYTES (TINY_P * sizeof(REAL))
#define RL ((int64_t)((ROW_BYTES < VEC_BYTES ? ROW_BYTES : VEC_BYTES) / sizeof(REAL)))
#define CH (TINY_P / RL)

typedef REAL TINY(tiny_reg) __attribute__((vector_size(RL * sizeof(REAL))));

/* The row at p into the CH registers acc[0 .. CH), and back */
#define ROW_GET(acc, p)                                                                  \
    for (int c = 0; c < CH; c++)                                                         \
        memcpy(&(acc)[c], (p) + c * RL, sizeof(V))
#define ROW_PUT(p, acc)                                                                  \
    for (int c = 0; c < CH; c++)                                                         \
        memcpy((p) + c * RL, &(acc)[c], sizeof(V))

static double TINY(tiny_batch)(const T(fn_tiny) *net, int64_t m, const REAL *X,
                               const REAL *Y, REAL alpha)
{
    typedef TINY(tiny_reg) V;
    const int64_t P = TINY_P, *s = net->sizes;
    const int L = net->n_layers;
    V acc[CH], row[CH];
    /* forward: post[l] = act(in W[l] + b[l]) */
    const REAL *in = X;
    int64_t ld_in = s[0];
    for (int l = 0; l < L; l++) {
        const REAL *W = net->W[l], *b = net->b[l];
        REAL *out = net->post[l];
        for (int64_t i = 0; i < m; i++) {
            const REAL *x = in + i * ld_in;
            ROW_GET(row, W);
            for (int c = 0; c < CH; c++)
                acc[c] = x[0] * row[c];
            for (int64_t p = 1; p < s[l]; p++) {
                ROW_GET(row, W + p * P);
                for (int c = 0; c < CH; c++)
                    acc[c] += x[p] * row[c];
            }
            if (b) {
                ROW_GET(row, b);
                for (int c = 0; c < CH; c++)
                    acc[c] += row[c];
            }
            ROW_PUT(out + i * P, acc);
        }
        if (net->act[l] == FN_SIGMOID)
            for (int64_t k = 0; k < m * P; k += SMALL_VL) /* whole blocks (fastnet.h) */
                T(ISA(sigmoid_block))(out + k, out + k, 1);
        else
            T(fn_activation)(net->act[l], m * P, out, out, net->threshold);
        in = out;
        ld_in = P;
    }
    T(fn_output_delta_rows)(net->act[L - 1], (REAL)(2.0 / (double)m), 0, m, s[L],
                            net->post[L - 1], P, Y, s[L], net->delta[L - 1], P,
                            net->row_loss);
    /* hidden deltas: delta[l-1] = (delta[l] W[l]^T) * act'(post[l-1]) */
    for (int l = L - 1; l > 0; l--) {
        const REAL *WT = net->WT[l], *d = net->delta[l], *o = net->post[l - 1];
        REAL *prev = net->delta[l - 1];
        const int sigmoid = net->act[l - 1] == FN_SIGMOID;
        for (int64_t i = 0; i < m; i++) {
            ROW_GET(row, WT);
            for (int c = 0; c < CH; c++)
                acc[c] = d[i * P] * row[c];
            for (int64_t j = 1; j < s[l + 1]; j++) {
                ROW_GET(row, WT + j * P);
                for (int c = 0; c < CH; c++)
                    acc[c] += d[i * P + j] * row[c];
            }
            if (sigmoid) { /* as sigmoid_deriv_mul: the same values */
                ROW_GET(row, o + i * P);
                for (int c = 0; c < CH; c++)
                    acc[c] *= row[c] * (1 - row[c]);
            }
            ROW_PUT(prev + i * P, acc);
        }
        if (!sigmoid)
            T(fn_derivative_mul)(net->act[l - 1], m * P, o, prev);
    }
    /* steps: W[l] -= alpha A^T delta[l], b[l] -= alpha (sum of delta[l]'s rows), as the
     * GEMM rounds them (FN_SCALE_ADD). Row by row of the batch, every row of W's sums
     * at once: independent chains (one sum a row of W in turn waited on each FMA). */
    for (int l = 0; l < L; l++) {
        const REAL *A = l > 0 ? net->post[l - 1] : X, *d = net->delta[l];
        const int64_t lda = l > 0 ? P : s[0], k = s[l];
        REAL *W = net->W[l], *b = net->b[l];
        /* sum[p]: row p of A^T delta, for every p < P, so that the loops have constant
         * bounds and the sums stay in registers (through memory, each step of a sum
         * waited for the store of the last); rows p >= k read A's column 0 and are not
         * used. bias: delta's column sums. */
        V sum[TINY_P][CH], bias[CH];
        ROW_GET(row, d);
        for (int p = 0; p < TINY_P; p++)
            for (int c = 0; c < CH; c++)
                sum[p][c] = A[p < k ? p : 0] * row[c];
        for (int c = 0; c < CH; c++)
            bias[c] = row[c];
        for (int64_t i = 1; i < m; i++) {
            ROW_GET(row, d + i * P);
            for (int p = 0; p < TINY_P; p++)
                for (int c = 0; c < CH; c++)
                    sum[p][c] += A[i * lda + (p < k ? p : 0)] * row[c];
            for (int c = 0; c < CH; c++)
                bias[c] += row[c];
        }
        for (int64_t p = 0; p < k; p++) {
            ROW_GET(row, W + p * P);
            for (int c = 0; c < CH; c++)
                FN_SCALE_ADD(acc[c], -alpha, sum[p][c], 1, row[c]);
            ROW_PUT(W + p * P, acc);
        }
        if (b) {
            ROW_GET(row, b);
            for (int c = 0; c < CH; c++)
                FN_SCALE_ADD(acc[c], -alpha, bias[c], 1, row[c]);
            ROW_PUT(b, acc);
        }
        if (l > 0) /* W[l]^T from the new W[l] */
            for (int64_t p = 0; p < s[l]; p++)
                for (int64_t j = 0; j < s[l + 1]; j++)
                    net->WT[l][j * P + p] = W[p * P + j];
    }
    double batch = 0;
    for (int64_t e = 0; e < m; e++)
        batch += net->row_loss[e];
    return batch;
}

#undef ROW_GET
#undef ROW_PUT
#undef CH
#undef RL
#undef ROW_BYTES
#undef TP
#undef TINY
