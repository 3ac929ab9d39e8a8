/* SPDX-License-Identifier: Apache-2.0 */
/* What the fuzz targets share: the libFuzzer entry point and a check that aborts (so libFuzzer
 * and the replay driver both report it) when a property of the code under test fails. */
#ifndef CLPSA_FUZZ_CHECK_H
#define CLPSA_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(condition)                                                                      \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #condition);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif /* CLPSA_FUZZ_CHECK_H */
