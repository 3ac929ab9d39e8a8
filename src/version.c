/* SPDX-License-Identifier: Apache-2.0 */
#include <clpsa/clpsa.h>

#define CLPSA__STR2(x) #x
#define CLPSA__STR(x) CLPSA__STR2(x)

const char *clpsa_version(void) {
    return CLPSA__STR(CLPSA_VERSION_MAJOR) "." CLPSA__STR(CLPSA_VERSION_MINOR) "." CLPSA__STR(
        CLPSA_VERSION_PATCH);
}

int clpsa_version_number(void) {
    return CLPSA_VERSION_NUMBER;
}
