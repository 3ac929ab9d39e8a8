/* SPDX-License-Identifier: Apache-2.0 */
/* The reproducible offset draw of the sampled estimate (docs/algorithm.md §5): splitmix64 and a
 * partial Fisher-Yates shuffle, so the host, the reference and every device agree bit for bit. */
#include "plan_internal.h"

#include <assert.h>

static uint64_t splitmix64_step(uint64_t *x) {
    *x += 0x9E3779B97F4A7C15ull;
    uint64_t z = *x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void clpsa__draw_offsets(uint64_t x0, int n, int s, int *out) {
    assert(n >= 1 && n <= 256 && s >= 1 && s <= n);
    int a[256];
    for (int i = 0; i < n; ++i)
        a[i] = i;
    uint64_t x = x0;
    for (int i = 0; i < s; ++i) {
        const int j = i + (int)(splitmix64_step(&x) % (uint64_t)(n - i));
        const int swap = a[i];
        a[i] = a[j];
        a[j] = swap;
        out[i] = a[i];
    }
}
