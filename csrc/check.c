/*
 * check.c: input validation that reads large arrays at memory speed: is every value
 * finite? (x - x is 0 for every finite x and NaN for NaN and infinity.) Parallel over
 * chunks for large arrays; the answer does not depend on the order.
 */
#ifndef REAL
#include "internal.h"

#define FN_SELF "check.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

int T(fn_all_finite)(int64_t n, const REAL *x)
{
    const int64_t chunk = 1 << 14;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    int finite = 1;
    int team = fn_team_size((double)n);
#pragma omp parallel for num_threads(team) if (team > 1) schedule(static) reduction(&& : finite)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        int ok = 1; /* an integer AND: vectorises, unlike a floating-point sum */
        for (int64_t i = c * chunk; i < end; i++)
            ok &= x[i] - x[i] == 0;
        finite = finite && ok;
    }
    return finite;
}

#endif
