/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON writer of json_writer.h: objects one member a line; arrays of scalars on one line,
 * since they hold short lists of numbers here. */
#include "json_writer.h"

#include "tool_common.h"

#include <math.h>

static void item(clpsa__json *j, const char *key) {
    if (j->depth > 0) {
        const bool inline_item = j->in_array[j->depth];
        if (j->has_items[j->depth])
            fputs(inline_item ? ", " : ",", j->out);
        if (!inline_item)
            fprintf(j->out, "\n%*s", 2 * j->depth, "");
        j->has_items[j->depth] = true;
    }
    if (key) {
        clpsa__tool_json_string(j->out, key);
        fputs(": ", j->out);
    }
}

static void open_level(clpsa__json *j, const char *key, char bracket, bool array) {
    /* An array of objects is laid out one object after another, like an object's members. */
    if (!array && j->depth > 0 && j->in_array[j->depth] && !j->has_items[j->depth])
        j->in_array[j->depth] = false;
    item(j, key);
    fputc(bracket, j->out);
    if (j->depth + 1 < CLPSA__JSON_MAX_DEPTH)
        ++j->depth;
    j->has_items[j->depth] = false;
    j->in_array[j->depth] = array;
}

static void close_level(clpsa__json *j, char bracket) {
    const bool had = j->has_items[j->depth];
    const bool inline_level = j->in_array[j->depth];
    if (j->depth > 0)
        --j->depth;
    if (had && !inline_level)
        fprintf(j->out, "\n%*s", 2 * j->depth, "");
    fputc(bracket, j->out);
    if (j->depth == 0)
        fputc('\n', j->out);
}

void clpsa__json_init(clpsa__json *j, FILE *out) {
    j->out = out;
    j->depth = 0;
    for (int i = 0; i < CLPSA__JSON_MAX_DEPTH; ++i)
        j->has_items[i] = j->in_array[i] = false;
}

void clpsa__json_begin_object(clpsa__json *j, const char *key) {
    open_level(j, key, '{', false);
}

void clpsa__json_end_object(clpsa__json *j) {
    close_level(j, '}');
}

void clpsa__json_begin_array(clpsa__json *j, const char *key) {
    open_level(j, key, '[', true);
}

void clpsa__json_end_array(clpsa__json *j) {
    close_level(j, ']');
}

void clpsa__json_number(clpsa__json *j, const char *key, double value) {
    item(j, key);
    if (isfinite(value))
        fprintf(j->out, "%.6g", value);
    else
        fputs("null", j->out);
}

void clpsa__json_int(clpsa__json *j, const char *key, long long value) {
    item(j, key);
    fprintf(j->out, "%lld", value);
}

void clpsa__json_string(clpsa__json *j, const char *key, const char *text) {
    item(j, key);
    if (text)
        clpsa__tool_json_string(j->out, text);
    else
        fputs("null", j->out);
}

void clpsa__json_bool(clpsa__json *j, const char *key, bool value) {
    item(j, key);
    fputs(value ? "true" : "false", j->out);
}

void clpsa__json_null(clpsa__json *j, const char *key) {
    item(j, key);
    fputs("null", j->out);
}
