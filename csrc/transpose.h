/*
 * transpose.h: a square block transposed in registers, included in the body of each
 * kernel file that needs it (once per REAL: gemm.c's packing of B^T, train_small.c's
 * W^T).
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
        t[0] = __builtin_shuffle(r[0], r[1], (m4){0, 4, 1, 5});
        t[1] = __builtin_shuffle(r[0], r[1], (m4){2, 6, 3, 7});
        t[2] = __builtin_shuffle(r[2], r[3], (m4){0, 4, 1, 5});
        t[3] = __builtin_shuffle(r[2], r[3], (m4){2, 6, 3, 7});
        r[0] = __builtin_shuffle(t[0], t[2], (m4){0, 1, 4, 5});
        r[1] = __builtin_shuffle(t[0], t[2], (m4){2, 3, 6, 7});
        r[2] = __builtin_shuffle(t[1], t[3], (m4){0, 1, 4, 5});
        r[3] = __builtin_shuffle(t[1], t[3], (m4){2, 3, 6, 7});
        for (int q = 0; q < 4; q++)
            memcpy((char *)dst + q * ldd * (int64_t)sizeof(REAL), &r[q], sizeof r[q]);
    } else {
        typedef double v2 __attribute__((vector_size(16)));
        typedef int64_t m2 __attribute__((vector_size(16)));
        v2 r[2], o[2];
        for (int i = 0; i < 2; i++)
            memcpy(&r[i], (const char *)src + i * lds * (int64_t)sizeof(REAL), sizeof r[i]);
        o[0] = __builtin_shuffle(r[0], r[1], (m2){0, 2});
        o[1] = __builtin_shuffle(r[0], r[1], (m2){1, 3});
        for (int q = 0; q < 2; q++)
            memcpy((char *)dst + q * ldd * (int64_t)sizeof(REAL), &o[q], sizeof o[q]);
    }
}
