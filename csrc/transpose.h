/*
 * transpose.h: blocks of one 16-byte vector a side transposed in registers, included in
 * target_body.h once per REAL: each target's transpose (fn_config) takes its edges, and
 * the targets without 512-bit registers all of it.
 */
/* dst[q * ldd + i] = src[i * lds + q] for a square block of one 16-byte vector's values
 * a side (4 floats, 2 doubles), through the vector unit: the baseline's SSE2 shuffles. */
static inline void T(transpose_block)(const REAL *src, int64_t lds, REAL *dst, int64_t ldd)
{
    if (sizeof(REAL) == 4) {
        typedef float v4 __attribute__((vector_size(16)));
        typedef int32_t m4 __attribute__((vector_size(16)));
        v4 r[4], t[4];
        for (int i = 0; i < 4; i++)
            memcpy(&r[i], (const char *)src + i * lds * (int64_t)sizeof(REAL), sizeof r[i]);
        t[0] = FN_SHUFFLE2(r[0], r[1], (m4){0, 4, 1, 5});
        t[1] = FN_SHUFFLE2(r[0], r[1], (m4){2, 6, 3, 7});
        t[2] = FN_SHUFFLE2(r[2], r[3], (m4){0, 4, 1, 5});
        t[3] = FN_SHUFFLE2(r[2], r[3], (m4){2, 6, 3, 7});
        r[0] = FN_SHUFFLE2(t[0], t[2], (m4){0, 1, 4, 5});
        r[1] = FN_SHUFFLE2(t[0], t[2], (m4){2, 3, 6, 7});
        r[2] = FN_SHUFFLE2(t[1], t[3], (m4){0, 1, 4, 5});
        r[3] = FN_SHUFFLE2(t[1], t[3], (m4){2, 3, 6, 7});
        for (int q = 0; q < 4; q++)
            memcpy((char *)dst + q * ldd * (int64_t)sizeof(REAL), &r[q], sizeof r[q]);
    } else {
        typedef double v2 __attribute__((vector_size(16)));
        typedef int64_t m2 __attribute__((vector_size(16)));
        v2 r[2], o[2];
        for (int i = 0; i < 2; i++)
            memcpy(&r[i], (const char *)src + i * lds * (int64_t)sizeof(REAL), sizeof r[i]);
        o[0] = FN_SHUFFLE2(r[0], r[1], (m2){0, 2});
        o[1] = FN_SHUFFLE2(r[0], r[1], (m2){1, 3});
        for (int q = 0; q < 2; q++)
            memcpy((char *)dst + q * ldd * (int64_t)sizeof(REAL), &o[q], sizeof o[q]);
    }
}

/* Rows [i0, i1) of W (n values each, pn apart) into the same columns of W^T (rows pm
 * apart): blocks of a vector's width a side transposed in registers, the edges one value
 * at a time (one value at a time, each store to another row of W^T: digits' 32 x 10 of a
 * group took 400-750 cycles of the time-stamp counter a batch). */
static void T(transpose_rows)(int64_t n, int64_t i0, int64_t i1, const REAL *W, int64_t pn,
                              REAL *WT, int64_t pm)
{
    const int64_t v = 16 / (int64_t)sizeof(REAL), i_v = i0 + (i1 - i0) / v * v, n_v = n / v * v;
    for (int64_t i = i0; i < i_v; i += v) {
        for (int64_t j = 0; j < n_v; j += v)
            T(transpose_block)(W + i * pn + j, pn, WT + j * pm + i, pm);
        for (int64_t j = n_v; j < n; j++)
            for (int64_t r = i; r < i + v; r++)
                WT[j * pm + r] = W[r * pn + j];
    }
    for (int64_t i = i_v; i < i1; i++)
        for (int64_t j = 0; j < n; j++)
            WT[j * pm + i] = W[i * pn + j];
}
