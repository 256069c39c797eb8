/*
 * tiny_body.h: the tiny trainer's step on one batch (train_tiny.c), for rows padded to
 * TINY_P values. target_body.h includes it for TINY_P = 4 and 8 under each ISA's flags,
 * so every row operation is one vector (or a few) of a width known when it compiles, and
 * the sigmoid is target_body.h's own, inline, with the short chain of its polynomial:
 * here a step waits on each sigmoid's latency. Where a register holds several rows
 * (TINY_BLOCKS) the forward pass works on registers of rows (XOR's hidden layer, 4 rows
 * x 4 units: one register of 16 floats, one sigmoid), elsewhere row by row and then the
 * sigmoid over the batch's flat array.
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
typedef UINT TINY(tiny_ureg) __attribute__((vector_size(RL * sizeof(REAL))));

/* The row at p into the CH registers acc[0 .. CH), and back */
#define ROW_GET(acc, p)                                                                  \
    for (int c = 0; c < CH; c++)                                                         \
        memcpy(&(acc)[c], (p) + c * RL, sizeof(V))
#define ROW_PUT(p, acc)                                                                  \
    for (int c = 0; c < CH; c++)                                                         \
        memcpy((p) + c * RL, &(acc)[c], sizeof(V))

/* Whole registers of rows (LANES / P rows each, at least 2) through a layer's product:
 * the rows of the input a register covers are one load, and the value each lane needs,
 * input (i, p) for lane (i, c), one permutation of it; W's row p is repeated in every
 * row of a register. The sums are the row loop's, in the same order (the same values),
 * and a sigmoid layer's register goes through the sigmoid as it is: stored as rows and
 * loaded back as one register, XOR's hidden layer waited for the stores (a load that
 * spans several stores is not forwarded from them), and each row read its inputs as
 * broadcasts. The last register's rows past m: X's are loaded as zeros (never read past
 * its last row), a hidden layer's are the buffer's padding rows; what they give goes to
 * padding rows, never read. C, one thread, per-round ratios, medians of 11-15 rounds:
 * XOR float32 and float64 -6%, [8, 5, 3] batch 32 -11%, [8, 8, 8] batch 16 -10%,
 * [4, 4, 4] batch 64 -18% (float64 -12%). With one row a register (float64 rows of 8 on
 * AVX-512, of 4 on AVX2) the permutations only replace the broadcasts: the row loop. */
#define TINY_BLOCKS (TINY_P < LANES && VEC_BYTES >= 32) /* a constant */
/* The P values at p repeated across a register: one broadcast load (a row built in
 * memory and loaded back as a register waited for the stores). */
static inline __attribute__((always_inline)) T(ISA(reg)) TINY(tiny_repeat)(const REAL *p)
{
    typedef T(ISA(reg)) VR;
#if VEC_BYTES == 64
    if (sizeof(REAL) == 4)
        return TINY_P == 4 ? (VR)_mm512_broadcast_f32x4(_mm_loadu_ps((const float *)p))
                           : (VR)_mm512_broadcast_f32x8(_mm256_loadu_ps((const float *)p));
    return (VR)_mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)p)); /* P = 4 */
#elif VEC_BYTES == 32 && defined(__AVX2__)
    return (VR)_mm256_broadcast_ps((const __m128 *)p); /* floats, P = 4 */
#else
    (void)p; /* TINY_BLOCKS is 0 */
    return (VR){0};
#endif
}
/* The lanes of x that idx names (modulo the lanes): GCC's __builtin_shuffle, which
 * compiles to one permute here. Clang has no shuffle by a variable mask (FN_SHUFFLE
 * picks its lanes one by one there, 1.6-1.7x XOR's epoch), so under clang the ISA's
 * permute is named: only the registers of rows (TINY_BLOCKS) need it, AVX-512's floats
 * and doubles and AVX2's floats. */
static inline __attribute__((always_inline)) T(ISA(reg))
    TINY(tiny_pick)(T(ISA(reg)) x, T(ISA(ureg)) idx)
{
#if defined(__clang__) && VEC_BYTES == 64
    typedef T(ISA(reg)) VR;
    if (sizeof(REAL) == 4)
        return (VR)_mm512_permutexvar_ps((__m512i)idx, (__m512)x);
    return (VR)_mm512_permutexvar_pd((__m512i)idx, (__m512d)x);
#elif defined(__clang__) && VEC_BYTES == 32 && defined(__AVX2__)
    typedef T(ISA(reg)) VR;
    if (sizeof(REAL) == 4)
        return (VR)_mm256_permutevar8x32_ps((__m256)x, (__m256i)idx);
    return FN_SHUFFLE(x, idx);
#else
    return FN_SHUFFLE(x, idx);
#endif
}
/* out = act(in W + b) for the m rows of in (ld_in apart; padded: in is a layer's
 * buffer, whole registers of rows, else X, read to its m-th row only) */
static inline __attribute__((always_inline)) void
TINY(tiny_forward_blocks)(int64_t m, int64_t k, const REAL *in, int64_t ld_in, int padded,
                          const REAL *W, const REAL *b, int act, REAL *out)
{
    typedef T(ISA(reg)) VR;
    typedef T(ISA(ureg)) UR;
    const int64_t P = TINY_P, R = TINY_BLOCKS ? LANES / TINY_P : 1;
    UR pick; /* lane j: (j / P) ld_in, the start of its row */
    for (int j = 0; j < LANES; j++)
        pick[j] = (UINT)((j / TINY_P) * ld_in);
    VR wrep[FN_TINY_MAX_WIDTH], brep = {0};
    for (int64_t p = 0; p < k; p++)
        wrep[p] = TINY(tiny_repeat)(W + p * P);
    if (b)
        brep = TINY(tiny_repeat)(b);
    for (int64_t i0 = 0; i0 < m; i0 += R) {
        VR x;
        if (padded)
            memcpy(&x, in + i0 * P, sizeof x);
        else
            x = T(ISA(load_first))(in + i0 * ld_in, (m - i0 < R ? m - i0 : R) * ld_in);
        VR acc = TINY(tiny_pick)(x, pick) * wrep[0];
        for (int64_t p = 1; p < k; p++)
            acc += TINY(tiny_pick)(x, pick + (UINT)p) * wrep[p];
        if (b)
            acc += brep;
        if (act == FN_SIGMOID)
            acc = T(ISA(sigmoid_reg))(acc, 1);
        else if (act == FN_RELU)
            acc = T(ISA(relu_reg))(acc);
        memcpy(out + i0 * P, &acc, sizeof acc);
    }
}

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
        const int act = net->act[l], sigmoid = act == FN_SIGMOID;
        if (TINY_BLOCKS) { /* a sigmoid or relu applied in the registers */
            TINY(tiny_forward_blocks)(m, s[l], in, ld_in, l > 0, W, b, act, out);
        } else {
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
            for (int64_t k = 0; sigmoid && k < m * P; k += SMALL_VL) /* blocks (fastnet.h) */
                T(ISA(sigmoid_block))(out + k, out + k, 1);
            if (act == FN_RELU)
                T(ISA(relu))(m * P, out, out);
        }
        if (!FN_ACT_IN_REGISTERS(act)) /* tanh, step (the identity: nothing to do) */
            T(fn_activation)(act, m * P, out, out, net->threshold);
        in = out;
        ld_in = P;
    }
    const REAL scale = (REAL)(2.0 / (double)m);
    const int out_act = net->act[L - 1];
    if (FN_ACT_IN_REGISTERS(out_act) && s[L] <= 4) {
        /* fn_output_delta_rows inline: the same expressions (each of its four partial
         * sums of a row's squares has one term here, each square rounded before the sums
         * as there, where no FMA is compiled: the same bits). Through the call, 10% of an
         * XOR epoch. */
        for (int64_t e = 0; e < m; e++) {
            const REAL *o = net->post[L - 1] + e * P, *y = Y + e * s[L];
            REAL *d = net->delta[L - 1] + e * P;
            double sq[4] = {0, 0, 0, 0};
            for (int n = 0; n < 4; n++)
                if (n < s[L]) {
                    double q = (double)(o[n] - y[n]) * (double)(o[n] - y[n]);
                    FN_ROUNDED(q);
                    sq[n] = q;
                    d[n] = out_act == FN_SIGMOID ? scale * (o[n] - y[n]) * (o[n] * (1 - o[n]))
                           : out_act == FN_RELU  ? scale * (o[n] - y[n]) * (REAL)(o[n] > 0)
                                                 : scale * (o[n] - y[n]);
                }
            net->row_loss[e] = (sq[0] + sq[1]) + (sq[2] + sq[3]);
        }
    } else {
        T(fn_output_delta_rows)(net->act[L - 1], scale, 0, m, s[L], net->post[L - 1], P, Y,
                                s[L], net->delta[L - 1], P, net->row_loss);
    }
    /* hidden deltas: delta[l-1] = (delta[l] W[l]^T) * act'(post[l-1]) */
    for (int l = L - 1; l > 0; l--) {
        const REAL *WT = net->WT[l], *d = net->delta[l], *o = net->post[l - 1];
        REAL *prev = net->delta[l - 1];
        const int act = net->act[l - 1], sigmoid = act == FN_SIGMOID;
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
            } else if (act == FN_RELU) { /* as relu_deriv_mul: times 1 where out > 0, else 0 */
                ROW_GET(row, o + i * P);
                for (int c = 0; c < CH; c++)
                    acc[c] *= (V)((TINY(tiny_ureg))(row[c] > 0) & (TINY(tiny_ureg))((V){0} + 1));
            }
            ROW_PUT(prev + i * P, acc);
        }
        if (!FN_ACT_IN_REGISTERS(act)) /* tanh, step */
            T(fn_derivative_mul)(act, m * P, o, prev);
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

#undef TINY_BLOCKS
#undef ROW_GET
#undef ROW_PUT
#undef CH
#undef RL
#undef ROW_BYTES
#undef TP
#undef TINY
