/* SPDX-License-Identifier: Apache-2.0 */
#include "internal.h"

uint64_t clpsa__hash64(const void *data, size_t size, uint64_t seed) {
    const unsigned char *bytes = data;
    uint64_t h = seed;
    for (size_t i = 0; i < size; ++i) {
        h ^= bytes[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
