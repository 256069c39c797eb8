/*
 * shuffle.c: each epoch's row order, drawn in C from the caller's NumPy generator.
 *
 * Generator.permutation(n) costs about 18 us for digits' 1797 rows from Python, 7% of a
 * digits epoch on two threads; the same draws here cost a few microseconds. NumPy's
 * algorithm, so the orders (and the generator's state after them) are NumPy's own:
 * start from 0 .. n-1 and, for i from n-1 down to 1, swap entry i with entry j, j drawn
 * uniformly in [0, i] by random_interval: the smallest all-ones mask covering i, draws
 * of the bit generator's next 32 bits (next 64 when i needs more) masked by it, until
 * one is at most i. tests/test_network_reference.py checks it against
 * Generator.permutation, for each of NumPy's bit generators.
 */
#include "fastnet.h"

static uint64_t interval(fn_bitgen *bg, uint64_t max)
{
    if (max == 0)
        return 0;
    uint64_t mask = max, value;
    mask |= mask >> 1, mask |= mask >> 2, mask |= mask >> 4;
    mask |= mask >> 8, mask |= mask >> 16, mask |= mask >> 32;
    if (max <= 0xffffffffu) {
        while ((value = (bg->next_uint32(bg->state) & mask)) > max)
            ;
    } else {
        while ((value = (bg->next_uint64(bg->state) & mask)) > max)
            ;
    }
    return value;
}

void fn_permutations(fn_bitgen *bitgen, int64_t count, int64_t n, int64_t *out)
{
    for (int64_t r = 0; r < count; r++) {
        int64_t *a = out + r * n;
        for (int64_t i = 0; i < n; i++)
            a[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            const int64_t j = (int64_t)interval(bitgen, (uint64_t)i);
            const int64_t t = a[i];
            a[i] = a[j], a[j] = t;
        }
    }
}
