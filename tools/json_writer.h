/* SPDX-License-Identifier: Apache-2.0 */
/* A small streaming JSON writer for the tool's --json output: it tracks nesting and commas, so
 * the printing code states only keys and values and the result is always well-formed. */
#ifndef CLPSA_TOOLS_JSON_WRITER_H
#define CLPSA_TOOLS_JSON_WRITER_H

#include <stdbool.h>
#include <stdio.h>

#define CLPSA__JSON_MAX_DEPTH 16

typedef struct clpsa__json {
    FILE *out;
    int depth;
    bool has_items[CLPSA__JSON_MAX_DEPTH]; /* per level: a comma is due before the next item */
    bool in_array[CLPSA__JSON_MAX_DEPTH];  /* per level: items on one line */
} clpsa__json;

/* Every call takes the member's key inside an object, NULL inside an array or at the top. */
void clpsa__json_init(clpsa__json *j, FILE *out);
void clpsa__json_begin_object(clpsa__json *j, const char *key);
void clpsa__json_end_object(clpsa__json *j);
void clpsa__json_begin_array(clpsa__json *j, const char *key);
void clpsa__json_end_array(clpsa__json *j);
/* Non-finite numbers are written as null (JSON has no NaN or infinity). */
void clpsa__json_number(clpsa__json *j, const char *key, double value);
void clpsa__json_int(clpsa__json *j, const char *key, long long value);
/* NULL text is written as null. */
void clpsa__json_string(clpsa__json *j, const char *key, const char *text);
void clpsa__json_bool(clpsa__json *j, const char *key, bool value);
void clpsa__json_null(clpsa__json *j, const char *key);

#endif /* CLPSA_TOOLS_JSON_WRITER_H */
