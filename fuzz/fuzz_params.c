/* SPDX-License-Identifier: Apache-2.0 */
/* The parameter parsers on arbitrary text: CLPSA_PARAMS / clpsa_context_set_params
 * ("family.NAME=value, ...") and the tuned-parameter file. Whatever they accept holds only
 * allowed values, and a parsed override list formats back to text that parses to the same
 * values; whatever they refuse comes with a reason. */
#include "fuzz_check.h"

#include "internal.h"

#include <string.h>

#define DEVICE_KEY "pocl/skylake-avx512/cpu-fuzz"
#define DRIVER "6.0+debian"

static void check_allowed(const int *values) {
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        FUZZ_CHECK(values[id] == 0 || clpsa__param_allowed((clpsa__param_id)id, values[id]));
}

/* An accepted file's every setting line (after magic, device and driver, before the checksum)
 * is valid as a whole: the loader judged whole lines, not a cut-off part of one. */
static void check_whole_lines(const char *text) {
    const char *line = text;
    for (int skip = 0; skip < 3; ++skip)
        line = strchr(line, '\n') + 1;
    while (strncmp(line, "checksum=", 9) != 0) {
        const char *end = strchr(line, '\n');
        FUZZ_CHECK(end != NULL);
        char *one = strndup(line, (size_t)(end - line));
        FUZZ_CHECK(one != NULL);
        int values[CLPSA__PARAM_COUNT];
        char why[1024];
        FUZZ_CHECK(clpsa__params_parse(one, values, why, sizeof why));
        free(one);
        line = end + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';

    int values[CLPSA__PARAM_COUNT], again[CLPSA__PARAM_COUNT];
    char why[1024];
    why[0] = '\0';
    if (clpsa__params_parse(text, values, why, sizeof why)) {
        check_allowed(values);
        char formatted[4096];
        clpsa__params_format(values, formatted, sizeof formatted);
        FUZZ_CHECK(clpsa__params_parse(formatted, again, why, sizeof why));
        FUZZ_CHECK(memcmp(values, again, sizeof values) == 0);
    } else {
        FUZZ_CHECK(why[0] != '\0');
    }

    why[0] = '\0';
    if (clpsa__params_cache_parse(text, size, DEVICE_KEY, DRIVER, values, why, sizeof why)) {
        check_allowed(values);
        check_whole_lines(text);
    } else {
        FUZZ_CHECK(why[0] != '\0');
    }
    free(text);
    return 0;
}
