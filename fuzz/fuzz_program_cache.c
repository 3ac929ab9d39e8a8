/* SPDX-License-Identifier: Apache-2.0 */
/* The program cache reader on arbitrary file contents: an entry it accepts hands the driver
 * exactly the bytes after the header and the key, nothing outside the file; an entry it
 * refuses says why. */
#include "fuzz_check.h"

#include "internal.h"

#include <string.h>

#define KEY "platform=fuzz|device=fuzz|file=common.cl+dense.cl|options=-DHEAD_DIM=64"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A copy of exactly `size` bytes, so a read past the end is an ASan report. */
    unsigned char *copy = malloc(size ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    const unsigned char *binary = NULL;
    size_t binary_size = 0;
    const char *why = clpsa__disk_cache_check(copy, size, KEY, &binary, &binary_size);
    if (why) {
        FUZZ_CHECK(*why != '\0');
        FUZZ_CHECK(binary == NULL && binary_size == 0);
    } else {
        const size_t header = 32 + strlen(KEY);
        FUZZ_CHECK(binary == copy + header);
        FUZZ_CHECK(binary_size > 0 && binary_size == size - header);
        unsigned sum = 0;
        for (size_t i = 0; i < binary_size; ++i)
            sum += binary[i];
        (void)sum;
    }
    free(copy);
    return 0;
}
