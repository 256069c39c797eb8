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

/* The chunks of x shared by the team; *finite is cleared by any thread that finds a
 * value that is not finite. */
static void T(finite_team)(int64_t n, const REAL *x, int *finite)
{
    const T(fn_config) *cfg = T(fn_config_get)();
    const int64_t chunk = 1 << 14;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    int ok = 1;
#pragma omp for schedule(static) nowait
    for (int64_t c = 0; c < n_chunks; c++) {
        const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        ok = ok && cfg->all_finite(end - c * chunk, x + c * chunk);
    }
    if (!ok) {
#pragma omp atomic write
        *finite = 0;
    }
}

int T(fn_all_finite)(int64_t n, const REAL *x)
{
    int finite = 1;
    const int team = fn_team_size((double)n);
    FN_RUN_TEAM(team, T(finite_team)(n, x, &finite));
    return finite;
}

#endif
