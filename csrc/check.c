/*
 * check.c: input validation that reads large arrays at memory speed: is every value
 * finite? Parallel over chunks for large arrays, each checked by the target's vector
 * kernel (target_body.h); the answer does not depend on the order.
 */
#ifndef REAL
#include "internal.h"

#define FN_SELF "check.c"
#include "instantiate.h"

#else /* the body, compiled once per REAL */

int T(fn_all_finite)(int64_t n, const REAL *x)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t chunk = 1 << 14;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    int finite = 1;
    int team = fn_team_size((double)n);
#pragma omp parallel for num_threads(team) if (team > 1) schedule(static) reduction(&& : finite)
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        finite = finite && cfg->all_finite(end - c * chunk, x + c * chunk);
    }
    return finite;
}

#endif
