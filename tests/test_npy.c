/* SPDX-License-Identifier: Apache-2.0 */
/* .npy reading and writing: round trips of every type, files laid out byte for byte as NumPy
 * writes them (format 1.0, 2.0 and 3.0), and every malformed file rejected with its status
 * and a message naming both the file and the problem. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa_npy.h>

#include "support/test_support.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int group_setup(void **state) {
    (void)state;
    return ts_temp_dir_create(dir, sizeof dir, "clpsa_test_npy") ? 0 : -1;
}

/* Temporaries of the writer still in the directory (there must never be any). */
static int count_temporaries(void) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static int group_teardown(void **state) {
    (void)state;
    return ts_temp_dir_remove(dir) ? 0 : -1;
}

static const char *path_of(const char *name) {
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* Builds a .npy file the way numpy.lib.format does: magic, version, little-endian header length
 * (2 bytes for 1.0, 4 for 2.0/3.0), the dict padded with spaces to a 64-byte boundary and ended
 * by '\n', then the data. `pad` = 0 writes the dict text exactly as given instead. */
static size_t build_npy(unsigned char *out, size_t capacity, int major, const char *dict, int pad,
                        const void *data, size_t data_size) {
    const size_t prefix = major == 1 ? 10 : 12;
    size_t header = strlen(dict);
    if (pad)
        header = ((prefix + header + 1 + 63) / 64) * 64 - prefix;
    assert_true(prefix + header + data_size <= capacity);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    out[8] = (unsigned char)(header & 0xff);
    out[9] = (unsigned char)(header >> 8);
    if (major != 1) {
        out[10] = (unsigned char)(header >> 16);
        out[11] = (unsigned char)(header >> 24);
    }
    memset(out + prefix, ' ', header);
    memcpy(out + prefix, dict, strlen(dict));
    if (pad)
        out[prefix + header - 1] = '\n';
    if (data_size)
        memcpy(out + prefix + header, data, data_size);
    return prefix + header + data_size;
}

static const char *write_npy(const char *name, int major, const char *dict, int pad,
                             const void *data, size_t data_size) {
    static unsigned char buffer[4096];
    const char *path = path_of(name);
    write_bytes(path, buffer, build_npy(buffer, sizeof buffer, major, dict, pad, data, data_size));
    return path;
}

static void fill_garbage(clpsa_npy_array *a) {
    memset(a, 0x5a, sizeof *a);
}

static void assert_empty(const clpsa_npy_array *a) {
    assert_null(a->data);
    assert_int_equal(a->ndim, 0);
    assert_int_equal(a->count, 0);
    assert_int_equal((int)a->type, 0);
}

/* Reads `path`, expecting `want` with a message that names the file and contains `needle`. */
static void expect_reject(const char *path, clpsa_status want, const char *needle) {
    char message[512];
    clpsa_npy_array a;
    fill_garbage(&a);
    const clpsa_status got = clpsa_npy_read(path, &a, message, sizeof message);
    if (got != want)
        fail_msg("%s: status %s, expected %s; message: %s", path, clpsa_status_name(got),
                 clpsa_status_name(want), message);
    if (strncmp(message, path, strlen(path)) != 0 || strncmp(message + strlen(path), ": ", 2))
        fail_msg("message \"%s\" does not start with \"%s: \"", message, path);
    if (!strstr(message, needle))
        fail_msg("message \"%s\" does not mention \"%s\"", message, needle);
    assert_empty(&a);
    /* A NULL message buffer is allowed and changes nothing else. */
    fill_garbage(&a);
    assert_int_equal(clpsa_npy_read(path, &a, NULL, 0), want);
    assert_empty(&a);
}

/* ---- Round trips ---- */

static void round_trip(clpsa_npy_type type, int ndim, const int64_t *shape) {
    size_t count = 1;
    for (int i = 0; i < ndim; ++i)
        count *= (size_t)shape[i];
    const size_t bytes = count * clpsa_npy_type_size(type);
    unsigned char *data = malloc(bytes + 1);
    assert_non_null(data);
    for (size_t i = 0; i < bytes; ++i)
        data[i] = (unsigned char)(i * 37u + 11u);
    char message[256];
    const char *path = path_of("round.npy");
    assert_int_equal(clpsa_npy_write(path, type, ndim, shape, data, message, sizeof message),
                     CLPSA_OK);

    /* The layout NumPy writes: version 1.0, data aligned to 64, header ending in '\n'. */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char head[10];
    assert_int_equal(fread(head, 1, 10, f), 10);
    fclose(f);
    assert_memory_equal(head, "\x93NUMPY\x01\x00", 8);
    const size_t header = head[8] | (size_t)head[9] << 8;
    assert_int_equal((10 + header) % 64, 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((size_t)st.st_size, 10 + header + bytes);

    clpsa_npy_array a;
    fill_garbage(&a);
    const clpsa_status status = clpsa_npy_read(path, &a, message, sizeof message);
    if (status != CLPSA_OK)
        fail_msg("%s", message);
    assert_int_equal(a.type, type);
    assert_int_equal(a.ndim, ndim);
    for (int i = 0; i < ndim; ++i)
        assert_int_equal(a.shape[i], shape[i]);
    assert_int_equal(a.count, count);
    assert_non_null(a.data);
    if (bytes)
        assert_memory_equal(a.data, data, bytes);
    clpsa_npy_free(&a);
    assert_null(a.data);
    clpsa_npy_free(&a); /* twice is harmless */
    clpsa_npy_free(NULL);
    free(data);
    assert_int_equal(remove(path), 0);
}

static void test_round_trip_every_type_and_rank(void **state) {
    (void)state;
    static const int64_t s1[] = {7};
    static const int64_t s2[] = {3, 5};
    static const int64_t s4[] = {2, 3, 1, 4};
    static const int64_t s8[] = {1, 2, 1, 2, 1, 2, 1, 3};
    static const int64_t empty[] = {0, 3};
    const clpsa_npy_type types[] = {CLPSA_NPY_FLOAT32, CLPSA_NPY_FLOAT16, CLPSA_NPY_INT8,
                                    CLPSA_NPY_INT32};
    for (int t = 0; t < 4; ++t) {
        round_trip(types[t], 0, NULL);
        round_trip(types[t], 1, s1);
        round_trip(types[t], 2, s2);
        round_trip(types[t], 4, s4);
        round_trip(types[t], 8, s8);
        round_trip(types[t], 2, empty);
    }
    assert_int_equal(count_temporaries(), 0);
}

static void test_type_sizes(void **state) {
    (void)state;
    assert_int_equal(clpsa_npy_type_size(CLPSA_NPY_FLOAT32), 4);
    assert_int_equal(clpsa_npy_type_size(CLPSA_NPY_FLOAT16), 2);
    assert_int_equal(clpsa_npy_type_size(CLPSA_NPY_INT8), 1);
    assert_int_equal(clpsa_npy_type_size(CLPSA_NPY_INT32), 4);
    assert_int_equal(clpsa_npy_type_size((clpsa_npy_type)99), 0);
}

static void test_written_header_is_numpys(void **state) {
    (void)state;
    const float data[6] = {1, 2, 3, 4, 5, 6};
    const int64_t shape[] = {2, 3};
    const char *path = path_of("header.npy");
    assert_int_equal(clpsa_npy_write(path, CLPSA_NPY_FLOAT32, 2, shape, data, NULL, 0), CLPSA_OK);
    unsigned char expected[256];
    const size_t size = build_npy(expected, sizeof expected, 1,
                                  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 1,
                                  data, sizeof data);
    unsigned char got[256];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(got, 1, sizeof got, f), size);
    fclose(f);
    assert_memory_equal(got, expected, size);

    /* Writing over an existing file replaces it. */
    const int8_t small[1] = {-3};
    const int64_t one[] = {1};
    assert_int_equal(clpsa_npy_write(path, CLPSA_NPY_INT8, 1, one, small, NULL, 0), CLPSA_OK);
    clpsa_npy_array a;
    assert_int_equal(clpsa_npy_read(path, &a, NULL, 0), CLPSA_OK);
    assert_int_equal(a.type, CLPSA_NPY_INT8);
    assert_int_equal(((int8_t *)a.data)[0], -3);
    clpsa_npy_free(&a);
    remove(path);
}

/* ---- Hand-crafted files as NumPy and friends write them ---- */

static void read_ok(const char *path, clpsa_npy_type type, int ndim, const int64_t *shape,
                    const void *data, size_t bytes) {
    char message[256];
    clpsa_npy_array a;
    const clpsa_status status = clpsa_npy_read(path, &a, message, sizeof message);
    if (status != CLPSA_OK)
        fail_msg("%s", message);
    assert_int_equal(a.type, type);
    assert_int_equal(a.ndim, ndim);
    for (int i = 0; i < ndim; ++i)
        assert_int_equal(a.shape[i], shape[i]);
    if (bytes)
        assert_memory_equal(a.data, data, bytes);
    clpsa_npy_free(&a);
}

static void test_read_handcrafted_versions(void **state) {
    (void)state;
    const float f[6] = {0.5f, -1.0f, 2.0f, 3.25f, -4.0f, 1e-3f};
    const int64_t s23[] = {2, 3};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    read_ok(write_npy("v1.npy", 1, dict, 1, f, sizeof f), CLPSA_NPY_FLOAT32, 2, s23, f, sizeof f);
    read_ok(write_npy("v2.npy", 2, dict, 1, f, sizeof f), CLPSA_NPY_FLOAT32, 2, s23, f, sizeof f);
    read_ok(write_npy("v3.npy", 3, dict, 1, f, sizeof f), CLPSA_NPY_FLOAT32, 2, s23, f, sizeof f);

    /* Other spellings a Python literal allows: double quotes, another key order, no trailing
     * comma, no padding, Python 2 longs, a trailing comma inside the shape. */
    const int64_t s6[] = {6};
    read_ok(write_npy("dq.npy", 1,
                      "{\"shape\": (6,), \"fortran_order\": False, \"descr\": \"<f4\"}", 0, f,
                      sizeof f),
            CLPSA_NPY_FLOAT32, 1, s6, f, sizeof f);
    read_ok(write_npy("long.npy", 1,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L,), }", 1, f,
                      sizeof f),
            CLPSA_NPY_FLOAT32, 2, s23, f, sizeof f);

    const int8_t i8[4] = {-128, -1, 0, 127};
    const int64_t s4[] = {4};
    read_ok(write_npy("i1a.npy", 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (4,), }", 1,
                      i8, sizeof i8),
            CLPSA_NPY_INT8, 1, s4, i8, sizeof i8);
    read_ok(write_npy("i1b.npy", 1, "{'descr': '<i1', 'fortran_order': False, 'shape': (4,), }", 1,
                      i8, sizeof i8),
            CLPSA_NPY_INT8, 1, s4, i8, sizeof i8);
    read_ok(write_npy("i1c.npy", 1, "{'descr': 'i1', 'fortran_order': False, 'shape': (4,), }", 1,
                      i8, sizeof i8),
            CLPSA_NPY_INT8, 1, s4, i8, sizeof i8);

    const int32_t i32[2] = {-7, 1 << 30};
    const int64_t s1x2[] = {1, 2};
    read_ok(write_npy("i4.npy", 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", 1,
                      i32, sizeof i32),
            CLPSA_NPY_INT32, 2, s1x2, i32, sizeof i32);

    const uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
    const int64_t s3[] = {3};
    read_ok(write_npy("f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", 1,
                      h, sizeof h),
            CLPSA_NPY_FLOAT16, 1, s3, h, sizeof h);

    /* A 0-d array holds one element; an array with a zero dimension holds none. */
    clpsa_npy_array a;
    assert_int_equal(
        clpsa_npy_read(write_npy("scalar.npy", 1,
                                 "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 1, f,
                                 4),
                       &a, NULL, 0),
        CLPSA_OK);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.count, 1);
    assert_true(((float *)a.data)[0] == 0.5f);
    clpsa_npy_free(&a);
    assert_int_equal(
        clpsa_npy_read(write_npy("empty.npy", 1,
                                 "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", 1,
                                 NULL, 0),
                       &a, NULL, 0),
        CLPSA_OK);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.count, 0);
    clpsa_npy_free(&a);
}

/* ---- Rejections ---- */

static const float some_data[6] = {1, 2, 3, 4, 5, 6};

static void reject_dict(const char *name, const char *dict, const char *needle) {
    expect_reject(write_npy(name, 1, dict, 1, some_data, sizeof some_data),
                  CLPSA_ERROR_INVALID_FILE, needle);
}

static void test_reject_missing_and_unreadable(void **state) {
    (void)state;
    expect_reject(path_of("does_not_exist.npy"), CLPSA_ERROR_IO, "No such file");
    expect_reject(dir, CLPSA_ERROR_IO, "Is a directory");
}

static void test_reject_bad_magic_and_version(void **state) {
    (void)state;
    const char *path = path_of("magic.npy");
    write_bytes(path, "PK\x03\x04 this is a zip", 18);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "bad magic");
    write_bytes(path, "", 0);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "bad magic");
    write_bytes(path, "\x93NUMPY\x01", 7);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "preamble");
    write_bytes(path, "\x93NUMPY\x01\x00\x10", 9);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "preamble");

    unsigned char bytes[256];
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }";
    build_npy(bytes, sizeof bytes, 1, dict, 1, some_data, sizeof some_data);
    bytes[6] = 4;
    write_bytes(path, bytes, 64 + sizeof some_data);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "unsupported .npy version 4.0");
    bytes[6] = 1;
    bytes[7] = 1;
    write_bytes(path, bytes, 64 + sizeof some_data);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "unsupported .npy version 1.1");
}

static void test_reject_header_length_beyond_file(void **state) {
    (void)state;
    unsigned char bytes[256];
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }";
    build_npy(bytes, sizeof bytes, 1, dict, 1, some_data, sizeof some_data);
    bytes[8] = 0xff;
    bytes[9] = 0x7f;
    const char *path = path_of("hlen.npy");
    write_bytes(path, bytes, 64 + sizeof some_data);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "header length 32767 goes beyond the end");

    build_npy(bytes, sizeof bytes, 2, dict, 1, some_data, sizeof some_data);
    bytes[11] = 0x80; /* 2 GiB header in a version 2.0 file */
    write_bytes(path, bytes, 64 + sizeof some_data);
    expect_reject(path, CLPSA_ERROR_INVALID_FILE, "goes beyond the end");
}

static void test_reject_malformed_dict(void **state) {
    (void)state;
    reject_dict("nobrace.npy", "'descr': '<f4', 'fortran_order': False, 'shape': (6,)",
                "does not start with '{'");
    reject_dict("open.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), ",
                "not closed");
    reject_dict("nodescr.npy", "{'fortran_order': False, 'shape': (6,), }", "'descr' is missing");
    reject_dict("noshape.npy", "{'descr': '<f4', 'fortran_order': False, }", "'shape' is missing");
    reject_dict("noorder.npy", "{'descr': '<f4', 'shape': (6,), }", "'fortran_order' is missing");
    reject_dict("unquoted.npy", "{descr: '<f4', 'fortran_order': False, 'shape': (6,), }",
                "expected a quoted key");
    reject_dict("mixedq.npy", "{'descr\": '<f4', 'fortran_order': False, 'shape': (6,), }",
                "expected ':' after");
    reject_dict("unterminated.npy", "{'descr': '<f4", "unterminated");
    reject_dict("unterm.npy", "{'descr': '<f4, 'fortran_order': False, 'shape': (6,), }",
                "expected ',' or '}'");
    reject_dict("colon.npy", "{'descr' '<f4', 'fortran_order': False, 'shape': (6,), }",
                "expected ':' after 'descr'");
    reject_dict("extra.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1, }",
                "unexpected key 'x'");
    reject_dict("twice.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (6,), }",
                "'shape' twice");
    reject_dict("order.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }",
                "not True or False");
    reject_dict("after.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } x",
                "after '}'");
    reject_dict("struct.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }",
                "structured dtypes are not supported");
}

static void test_reject_bad_shape(void **state) {
    (void)state;
    reject_dict("list.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [6], }",
                "shape is not a tuple");
    reject_dict("int.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }",
                "shape (6) is not a tuple");
    reject_dict("neg.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }",
                "negative dimension -6");
    reject_dict("float.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5, 2), }",
                "'2.5' is not a non-negative integer");
    reject_dict("str.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': ('a',), }",
                "is not a non-negative integer");
    reject_dict("empty.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,,), }",
                "empty dimension");
    reject_dict("space.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3,), }",
                "expected ',' or ')'");
    reject_dict("unclosed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3",
                "not closed");
    reject_dict("ninedims.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6), }",
                "more than 8 dimensions");
    reject_dict("huge.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
                "is too large");
    reject_dict("overflow.npy",
                "{'descr': '<f4', 'fortran_order': False, "
                "'shape': (4294967296, 4294967296, 4294967296), }",
                "too many elements");
}

static void test_reject_fortran_order_and_dtypes(void **state) {
    (void)state;
    reject_dict("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                "fortran_order is True");
    reject_dict("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                "dtype '<f8' is not supported (expected float32, float16, int8 or int32)");
    reject_dict("u1.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (24,), }",
                "dtype '|u1' is not supported");
    reject_dict("be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }",
                "dtype '>f4' is big-endian");
    reject_dict("bei.npy", "{'descr': '>i4', 'fortran_order': False, 'shape': (6,), }",
                "big-endian");
}

static void test_reject_truncated_and_trailing_data(void **state) {
    (void)state;
    const char *dict23 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    expect_reject(write_npy("short.npy", 1, dict23, 1, some_data, 20), CLPSA_ERROR_INVALID_FILE,
                  "holds 20 bytes of data, shape (2, 3) needs 24");
    expect_reject(write_npy("nodata.npy", 1, dict23, 1, NULL, 0), CLPSA_ERROR_INVALID_FILE,
                  "holds 0 bytes of data, shape (2, 3) needs 24");
    const char *dict5 = "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }";
    expect_reject(write_npy("long.npy", 1, dict5, 1, some_data, sizeof some_data),
                  CLPSA_ERROR_INVALID_FILE, "has 4 bytes after the data");
    const char *dict0 = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
    expect_reject(write_npy("scalar.npy", 2, dict0, 1, some_data, 2), CLPSA_ERROR_INVALID_FILE,
                  "holds 2 bytes of data, shape () needs 4");
    /* A shape far larger than the file is caught before anything is allocated. */
    const char *big = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }";
    expect_reject(write_npy("big.npy", 1, big, 1, some_data, sizeof some_data),
                  CLPSA_ERROR_INVALID_FILE, "holds 24 bytes of data, shape (1000000000000,)");
}

static void test_reject_null_arguments(void **state) {
    (void)state;
    char message[128];
    clpsa_npy_array a;
    assert_int_equal(clpsa_npy_read(NULL, &a, message, sizeof message), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_npy_read(path_of("x.npy"), NULL, message, sizeof message),
                     CLPSA_ERROR_NULL_ARGUMENT);
    const int64_t shape[] = {2};
    assert_int_equal(clpsa_npy_write(NULL, CLPSA_NPY_FLOAT32, 1, shape, some_data, NULL, 0),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(
        clpsa_npy_write(path_of("x.npy"), CLPSA_NPY_FLOAT32, 1, NULL, some_data, NULL, 0),
        CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_npy_write(path_of("x.npy"), CLPSA_NPY_FLOAT32, 1, shape, NULL, message,
                                     sizeof message),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_non_null(strstr(message, "x.npy: data is NULL"));
    assert_int_equal(count_temporaries(), 0);
}

static void test_write_rejections(void **state) {
    (void)state;
    char message[512];
    const int64_t shape[] = {2, 3};
    const int64_t negative[] = {2, -3};
    const char *path = path_of("w.npy");
    assert_int_equal(
        clpsa_npy_write(path, CLPSA_NPY_FLOAT32, 2, negative, some_data, message, sizeof message),
        CLPSA_ERROR_INVALID_SHAPE);
    assert_non_null(strstr(message, "w.npy: dimension 1 is negative"));
    assert_int_equal(
        clpsa_npy_write(path, CLPSA_NPY_FLOAT32, 9, shape, some_data, message, sizeof message),
        CLPSA_ERROR_INVALID_SHAPE);
    assert_non_null(strstr(message, "ndim 9"));
    assert_int_equal(
        clpsa_npy_write(path, (clpsa_npy_type)7, 2, shape, some_data, message, sizeof message),
        CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(message, "unknown array type 7"));
    const int64_t overflow[] = {INT64_MAX, INT64_MAX};
    assert_int_equal(
        clpsa_npy_write(path, CLPSA_NPY_INT8, 2, overflow, some_data, message, sizeof message),
        CLPSA_ERROR_INVALID_SHAPE);
    assert_non_null(strstr(message, "too many elements"));

    char missing_dir[600];
    snprintf(missing_dir, sizeof missing_dir, "%s/no/such/dir/w.npy", dir);
    assert_int_equal(clpsa_npy_write(missing_dir, CLPSA_NPY_FLOAT32, 2, shape, some_data, message,
                                     sizeof message),
                     CLPSA_ERROR_IO);
    assert_non_null(strstr(message, missing_dir));
    assert_non_null(strstr(message, "No such file or directory"));
    assert_int_equal(count_temporaries(), 0);

    /* A message buffer too small for the text is truncated, never overrun. */
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(
        clpsa_npy_write(missing_dir, CLPSA_NPY_FLOAT32, 2, shape, some_data, tiny, sizeof tiny),
        CLPSA_ERROR_IO);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_sizes),
        cmocka_unit_test(test_round_trip_every_type_and_rank),
        cmocka_unit_test(test_written_header_is_numpys),
        cmocka_unit_test(test_read_handcrafted_versions),
        cmocka_unit_test(test_reject_missing_and_unreadable),
        cmocka_unit_test(test_reject_bad_magic_and_version),
        cmocka_unit_test(test_reject_header_length_beyond_file),
        cmocka_unit_test(test_reject_malformed_dict),
        cmocka_unit_test(test_reject_bad_shape),
        cmocka_unit_test(test_reject_fortran_order_and_dtypes),
        cmocka_unit_test(test_reject_truncated_and_trailing_data),
        cmocka_unit_test(test_reject_null_arguments),
        cmocka_unit_test(test_write_rejections),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
