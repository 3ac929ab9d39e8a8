/* SPDX-License-Identifier: Apache-2.0 */
/* .npy reading and writing (NumPy format 1.0, 2.0 and 3.0; see numpy/lib/format.py).
 *
 * The reader trusts nothing in the file: every header field is parsed by a small parser of the
 * Python literal subset NumPy writes, sizes are checked for overflow, and the data must be
 * exactly as long as the shape needs, so a truncated or padded file is caught here rather than
 * producing garbage tensors downstream. Every failure message starts with the path so a tool
 * can print it as is. */
#include <clpsa/clpsa_npy.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_SIZE 6
/* NumPy itself refuses headers over 10000 bytes by default; a larger limit still stops a
 * corrupt length from turning into a huge allocation. */
#define NPY_MAX_HEADER (1u << 20)
#define NPY_SHAPE_TEXT 256
#define MALFORMED "header dictionary is malformed: "

static clpsa_status fail(char *message, size_t message_size, clpsa_status status, const char *path,
                         const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static clpsa_status fail(char *message, size_t message_size, clpsa_status status, const char *path,
                         const char *fmt, ...) {
    if (!message || message_size == 0)
        return status;
    const int n = snprintf(message, message_size, "%s: ", path ? path : "(null)");
    if (n >= 0 && (size_t)n < message_size) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(message + n, message_size - (size_t)n, fmt, args);
        va_end(args);
    }
    return status;
}

size_t clpsa_npy_type_size(clpsa_npy_type type) {
    switch (type) {
    case CLPSA_NPY_FLOAT32:
    case CLPSA_NPY_INT32:
        return 4;
    case CLPSA_NPY_FLOAT16:
        return 2;
    case CLPSA_NPY_INT8:
        return 1;
    }
    return 0;
}

static const char *type_descr(clpsa_npy_type type) {
    switch (type) {
    case CLPSA_NPY_FLOAT32:
        return "<f4";
    case CLPSA_NPY_FLOAT16:
        return "<f2";
    case CLPSA_NPY_INT8:
        return "|i1";
    case CLPSA_NPY_INT32:
        return "<i4";
    }
    return NULL;
}

void clpsa_npy_free(clpsa_npy_array *array) {
    if (!array)
        return;
    free(array->data);
    memset(array, 0, sizeof *array);
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* "(2, 3)", "(5,)" or "()": the way NumPy prints shapes, so messages read familiar. */
static void format_shape(char *text, size_t size, int ndim, const int64_t *shape) {
    size_t used = 0;
    int n = snprintf(text, size, "(");
    for (int i = 0; i < ndim && n >= 0 && (used += (size_t)n) < size; ++i)
        n = snprintf(text + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n >= 0 && (used += (size_t)n) < size)
        snprintf(text + used, size - used, ndim == 1 ? ",)" : ")");
}

/* Element count and byte size of a shape; false when either overflows size_t. */
static bool shape_size(int ndim, const int64_t *shape, size_t element_size, size_t *count,
                       size_t *bytes) {
    size_t c = 1;
    for (int i = 0; i < ndim; ++i) {
        const uint64_t d = (uint64_t)shape[i];
        if (d > SIZE_MAX || (d != 0 && c > SIZE_MAX / (size_t)d))
            return false;
        c *= (size_t)d;
    }
    if (element_size != 0 && c > SIZE_MAX / element_size)
        return false;
    *count = c;
    *bytes = c * element_size;
    return true;
}

/* ---- Header parsing: the Python literal subset NumPy writes ---- */

typedef struct parser {
    const char *p, *end;
    char error[160]; /* the problem, without the path */
} parser;

static bool parse_error(parser *ps, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static bool parse_error(parser *ps, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(ps->error, sizeof ps->error, fmt, args);
    va_end(args);
    return false;
}

static void skip_space(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ++ps->p;
}

static bool at(parser *ps, char c) {
    skip_space(ps);
    return ps->p < ps->end && *ps->p == c;
}

/* A quoted string without escapes (NumPy's keys and dtype strings never need them). */
static bool parse_string(parser *ps, char *out, size_t size, const char *what) {
    skip_space(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return parse_error(ps, MALFORMED "expected a quoted %s", what);
    const char quote = *ps->p++;
    const char *start = ps->p;
    while (ps->p < ps->end && *ps->p != quote && *ps->p != '\\' && *ps->p != '\n')
        ++ps->p;
    if (ps->p >= ps->end || *ps->p != quote)
        return parse_error(ps, MALFORMED "unterminated or escaped %s string", what);
    const size_t n = (size_t)(ps->p - start);
    ++ps->p;
    if (n >= size)
        return parse_error(ps, MALFORMED "%s '%.20s...' is too long", what, start);
    memcpy(out, start, n);
    out[n] = '\0';
    return true;
}

static bool parse_bool(parser *ps, bool *out) {
    skip_space(ps);
    const size_t left = (size_t)(ps->end - ps->p);
    if (left >= 4 && !memcmp(ps->p, "True", 4)) {
        ps->p += 4;
        *out = true;
        return true;
    }
    if (left >= 5 && !memcmp(ps->p, "False", 5)) {
        ps->p += 5;
        *out = false;
        return true;
    }
    return parse_error(ps, MALFORMED "fortran_order is not True or False");
}

/* One dimension: a non-negative decimal integer (Python 2 NumPy wrote a trailing L). */
static bool parse_dim(parser *ps, int64_t *out) {
    skip_space(ps);
    const char *start = ps->p;
    while (ps->p < ps->end && *ps->p != ',' && *ps->p != ')' && *ps->p != ' ' && *ps->p != '}')
        ++ps->p;
    const int len = (int)(ps->p - start);
    if (len == 0)
        return parse_error(ps, MALFORMED "empty dimension in shape");
    if (start[0] == '-')
        return parse_error(ps, "shape has a negative dimension %.*s", len > 24 ? 24 : len, start);
    int digits = len;
    if (digits > 1 && (start[digits - 1] == 'L' || start[digits - 1] == 'l'))
        --digits;
    uint64_t value = 0;
    for (int i = 0; i < digits; ++i) {
        const char c = start[i];
        if (c < '0' || c > '9')
            return parse_error(ps, "shape dimension '%.*s' is not a non-negative integer",
                               len > 24 ? 24 : len, start);
        if (value > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10)
            return parse_error(ps, "shape dimension %.*s is too large", len > 24 ? 24 : len, start);
        value = value * 10 + (uint64_t)(c - '0');
    }
    *out = (int64_t)value;
    return true;
}

/* "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is an int in Python, not a tuple, so it is refused. */
static bool parse_shape(parser *ps, int *ndim, int64_t *shape) {
    if (!at(ps, '('))
        return parse_error(ps, MALFORMED "shape is not a tuple");
    ++ps->p;
    int n = 0;
    bool trailing_comma = false;
    while (!at(ps, ')')) {
        if (ps->p >= ps->end)
            return parse_error(ps, MALFORMED "shape tuple is not closed");
        if (n == CLPSA_NPY_MAX_DIMS)
            return parse_error(ps, "shape has more than %d dimensions", CLPSA_NPY_MAX_DIMS);
        if (!parse_dim(ps, &shape[n]))
            return false;
        ++n;
        trailing_comma = false;
        skip_space(ps);
        if (ps->p >= ps->end)
            return parse_error(ps, MALFORMED "shape tuple is not closed");
        if (at(ps, ',')) {
            ++ps->p;
            trailing_comma = true;
        } else if (!at(ps, ')')) {
            return parse_error(ps, MALFORMED "expected ',' or ')' in the shape tuple");
        }
    }
    ++ps->p;
    if (n == 1 && !trailing_comma)
        return parse_error(ps,
                           MALFORMED "shape (%lld) is not a tuple (a 1-d shape is written (%lld,))",
                           (long long)shape[0], (long long)shape[0]);
    *ndim = n;
    return true;
}

typedef struct npy_header {
    char descr[32];
    bool fortran_order;
    int ndim;
    int64_t shape[CLPSA_NPY_MAX_DIMS];
} npy_header;

static bool parse_header(parser *ps, npy_header *h) {
    bool have_descr = false, have_order = false, have_shape = false;
    if (!at(ps, '{'))
        return parse_error(ps, MALFORMED "it does not start with '{'");
    ++ps->p;
    while (!at(ps, '}')) {
        if (ps->p >= ps->end)
            return parse_error(ps, MALFORMED "it is not closed by '}'");
        char key[32];
        if (!parse_string(ps, key, sizeof key, "key"))
            return false;
        if (!at(ps, ':'))
            return parse_error(ps, MALFORMED "expected ':' after '%s'", key);
        ++ps->p;
        bool *seen = NULL;
        bool ok = false;
        if (!strcmp(key, "descr")) {
            seen = &have_descr;
            if (at(ps, '[') || at(ps, '{'))
                return parse_error(
                    ps, "descr is not a simple type string (structured dtypes are not supported)");
            ok = parse_string(ps, h->descr, sizeof h->descr, "descr");
        } else if (!strcmp(key, "fortran_order")) {
            seen = &have_order;
            ok = parse_bool(ps, &h->fortran_order);
        } else if (!strcmp(key, "shape")) {
            seen = &have_shape;
            ok = parse_shape(ps, &h->ndim, h->shape);
        } else {
            return parse_error(ps, "header dictionary has an unexpected key '%s'", key);
        }
        if (!ok)
            return false;
        if (*seen)
            return parse_error(ps, "header dictionary has the key '%s' twice", key);
        *seen = true;
        if (at(ps, ','))
            ++ps->p;
        else if (!at(ps, '}'))
            return parse_error(ps, MALFORMED "expected ',' or '}' after '%s'", key);
    }
    ++ps->p;
    skip_space(ps);
    if (ps->p != ps->end)
        return parse_error(ps, MALFORMED "unexpected text after '}'");
    const char *missing = !have_descr   ? "descr"
                          : !have_order ? "fortran_order"
                          : !have_shape ? "shape"
                                        : NULL;
    if (missing)
        return parse_error(ps, MALFORMED "the key '%s' is missing", missing);
    return true;
}

static bool descr_type(const char *descr, clpsa_npy_type *type) {
    static const struct {
        const char *descr;
        clpsa_npy_type type;
    } known[] = {
        {"<f4", CLPSA_NPY_FLOAT32}, {"<f2", CLPSA_NPY_FLOAT16}, {"|i1", CLPSA_NPY_INT8},
        {"<i1", CLPSA_NPY_INT8},    {"i1", CLPSA_NPY_INT8},     {"<i4", CLPSA_NPY_INT32},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i) {
        if (!strcmp(descr, known[i].descr)) {
            *type = known[i].type;
            return true;
        }
    }
    return false;
}

/* ---- Reading ---- */

/* Reads exactly `size` bytes; returns the count read (short only at end of file or on error,
 * which the caller tells apart with ferror). */
static size_t read_fully(FILE *f, void *buffer, size_t size) {
    size_t done = 0;
    while (done < size) {
        const size_t n = fread((char *)buffer + done, 1, size - done, f);
        if (n == 0)
            break;
        done += n;
    }
    return done;
}

static clpsa_status read_file(FILE *f, const char *path, clpsa_npy_array *out, char *message,
                              size_t message_size) {
    /* The file size, when the file has one, lets truncation and absurd shapes be reported
     * before anything large is allocated. */
    struct stat st;
    const bool sized = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
    const uint64_t file_size = sized ? (uint64_t)st.st_size : 0;

    unsigned char prefix[12];
    size_t got = read_fully(f, prefix, 8);
    if (ferror(f))
        return fail(message, message_size, CLPSA_ERROR_IO, path, "read failed: %s",
                    strerror(errno));
    if (got < NPY_MAGIC_SIZE || memcmp(prefix, NPY_MAGIC, NPY_MAGIC_SIZE) != 0)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "not a .npy file (bad magic: expected \\x93NUMPY)");
    if (got < 8)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "file ends inside the .npy preamble (%zu bytes)", got);
    const int major = prefix[6], minor = prefix[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "unsupported .npy version %d.%d (expected 1.0, 2.0 or 3.0)", major, minor);
    const size_t length_bytes = major == 1 ? 2 : 4;
    got = read_fully(f, prefix + 8, length_bytes);
    if (ferror(f))
        return fail(message, message_size, CLPSA_ERROR_IO, path, "read failed: %s",
                    strerror(errno));
    if (got < length_bytes)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "file ends inside the .npy preamble (%zu bytes)", 8 + got);
    uint32_t header_length = (uint32_t)prefix[8] | (uint32_t)prefix[9] << 8;
    if (length_bytes == 4)
        header_length |= (uint32_t)prefix[10] << 16 | (uint32_t)prefix[11] << 24;
    const uint64_t data_offset = 8 + length_bytes + (uint64_t)header_length;
    if (sized && data_offset > file_size)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "header length %u goes beyond the end of the file (%llu bytes)",
                    (unsigned)header_length, (unsigned long long)file_size);
    if (header_length > NPY_MAX_HEADER)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "header length %u is larger than the %u bytes allowed", (unsigned)header_length,
                    (unsigned)NPY_MAX_HEADER);

    char *text = malloc((size_t)header_length + 1);
    if (!text)
        return fail(message, message_size, CLPSA_ERROR_OUT_OF_MEMORY, path,
                    "out of memory reading a %u-byte header", (unsigned)header_length);
    got = read_fully(f, text, header_length);
    if (ferror(f)) {
        free(text);
        return fail(message, message_size, CLPSA_ERROR_IO, path, "read failed: %s",
                    strerror(errno));
    }
    if (got < header_length) {
        free(text);
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "header length %u goes beyond the end of the file (%zu header bytes present)",
                    (unsigned)header_length, got);
    }
    text[header_length] = '\0';
    /* A NUL inside the header would hide text from the parser's messages; refuse it. */
    if (memchr(text, '\0', header_length)) {
        free(text);
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    MALFORMED "it contains a NUL byte");
    }
    parser ps = {text, text + header_length, ""};
    npy_header h;
    memset(&h, 0, sizeof h);
    const bool parsed = parse_header(&ps, &h);
    free(text);
    if (!parsed)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path, "%s", ps.error);

    if (h.fortran_order)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "fortran_order is True (only C-order arrays are supported)");
    clpsa_npy_type type;
    if (!descr_type(h.descr, &type)) {
        if (h.descr[0] == '>')
            return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                        "dtype '%s' is big-endian (only little-endian data is supported)", h.descr);
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "dtype '%s' is not supported (expected float32, float16, int8 or int32)",
                    h.descr);
    }
    char shape_text[NPY_SHAPE_TEXT];
    format_shape(shape_text, sizeof shape_text, h.ndim, h.shape);
    size_t count = 0, bytes = 0;
    if (!shape_size(h.ndim, h.shape, clpsa_npy_type_size(type), &count, &bytes))
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "shape %s has too many elements (the byte size overflows)", shape_text);
    if (sized && file_size - data_offset < bytes)
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "holds %llu bytes of data, shape %s needs %zu",
                    (unsigned long long)(file_size - data_offset), shape_text, bytes);

    /* One byte at least, so an empty array still has a non-NULL pointer to free. */
    void *data = malloc(bytes ? bytes : 1);
    if (!data)
        return fail(message, message_size, CLPSA_ERROR_OUT_OF_MEMORY, path,
                    "out of memory allocating %zu bytes for shape %s", bytes, shape_text);
    got = read_fully(f, data, bytes);
    if (ferror(f)) {
        free(data);
        return fail(message, message_size, CLPSA_ERROR_IO, path, "read failed: %s",
                    strerror(errno));
    }
    if (got < bytes) {
        free(data);
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "holds %zu bytes of data, shape %s needs %zu", got, shape_text, bytes);
    }
    /* Trailing bytes mean the header and the data disagree; count them for the message. */
    uint64_t extra = 0;
    char scratch[4096];
    size_t n;
    while ((n = fread(scratch, 1, sizeof scratch, f)) > 0)
        extra += n;
    if (ferror(f)) {
        free(data);
        return fail(message, message_size, CLPSA_ERROR_IO, path, "read failed: %s",
                    strerror(errno));
    }
    if (extra) {
        free(data);
        return fail(message, message_size, CLPSA_ERROR_INVALID_FILE, path,
                    "has %llu bytes after the data (shape %s needs %zu)", (unsigned long long)extra,
                    shape_text, bytes);
    }

    out->type = type;
    out->ndim = h.ndim;
    for (int i = 0; i < h.ndim; ++i)
        out->shape[i] = h.shape[i];
    out->count = count;
    out->data = data;
    return CLPSA_OK;
}

clpsa_status clpsa_npy_read(const char *path, clpsa_npy_array *out, char *message,
                            size_t message_size) {
    if (message && message_size)
        message[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !out)
        return fail(message, message_size, CLPSA_ERROR_NULL_ARGUMENT, path,
                    "clpsa_npy_read needs a path and an output array");
    if (!host_is_little_endian())
        return fail(message, message_size, CLPSA_ERROR_UNSUPPORTED, path,
                    ".npy reading is only implemented on little-endian hosts");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(message, message_size, CLPSA_ERROR_IO, path, "cannot open for reading: %s",
                    strerror(errno));
    const clpsa_status status = read_file(f, path, out, message, message_size);
    fclose(f);
    if (status != CLPSA_OK)
        memset(out, 0, sizeof *out);
    return status;
}

/* ---- Writing ---- */

/* Opens a new file next to `path` (same directory, so rename() is atomic) with O_EXCL, so two
 * writers never share a temporary, and mode 0666 so the umask decides permissions as it
 * would for a plain fopen. */
static int open_temporary(const char *path, char *tmp, size_t size) {
    static unsigned counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int attempt = 0; attempt < 100; ++attempt) {
        const unsigned tag = (unsigned)now.tv_nsec ^ (++counter * 2654435761u);
        const int n = snprintf(tmp, size, "%s.tmp.%ld.%08x", path, (long)getpid(), tag);
        if (n < 0 || (size_t)n >= size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        const int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

clpsa_status clpsa_npy_write(const char *path, clpsa_npy_type type, int ndim, const int64_t *shape,
                             const void *data, char *message, size_t message_size) {
    if (message && message_size)
        message[0] = '\0';
    if (!path || (ndim > 0 && !shape))
        return fail(message, message_size, CLPSA_ERROR_NULL_ARGUMENT, path,
                    "clpsa_npy_write needs a path and, for ndim > 0, a shape");
    const char *descr = type_descr(type);
    if (!descr)
        return fail(message, message_size, CLPSA_ERROR_INVALID_VALUE, path, "unknown array type %d",
                    (int)type);
    if (ndim < 0 || ndim > CLPSA_NPY_MAX_DIMS)
        return fail(message, message_size, CLPSA_ERROR_INVALID_SHAPE, path,
                    "ndim %d is outside 0..%d", ndim, CLPSA_NPY_MAX_DIMS);
    for (int i = 0; i < ndim; ++i)
        if (shape[i] < 0)
            return fail(message, message_size, CLPSA_ERROR_INVALID_SHAPE, path,
                        "dimension %d is negative (%lld)", i, (long long)shape[i]);
    char shape_text[NPY_SHAPE_TEXT];
    format_shape(shape_text, sizeof shape_text, ndim, shape);
    size_t count = 0, bytes = 0;
    if (!shape_size(ndim, shape, clpsa_npy_type_size(type), &count, &bytes))
        return fail(message, message_size, CLPSA_ERROR_INVALID_SHAPE, path,
                    "shape %s has too many elements", shape_text);
    if (bytes > 0 && !data)
        return fail(message, message_size, CLPSA_ERROR_NULL_ARGUMENT, path,
                    "data is NULL for shape %s", shape_text);
    if (!host_is_little_endian())
        return fail(message, message_size, CLPSA_ERROR_UNSUPPORTED, path,
                    ".npy writing is only implemented on little-endian hosts");

    /* Format 1.0, the header padded with spaces and ended by '\n' so the data starts at a
     * multiple of 64 bytes, as NumPy writes it. Eight 19-digit dimensions fit easily. */
    char header[512];
    int length =
        snprintf(header + 10, sizeof header - 10,
                 "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape_text);
    if (length < 0 || (size_t)length + 10 + 64 >= sizeof header)
        return fail(message, message_size, CLPSA_ERROR_INVALID_SHAPE, path,
                    "header for shape %s is too long", shape_text);
    size_t total = 10 + (size_t)length + 1;
    const size_t padded = (total + 63) / 64 * 64;
    memset(header + 10 + length, ' ', padded - total);
    header[padded - 1] = '\n';
    memcpy(header, NPY_MAGIC, NPY_MAGIC_SIZE);
    header[6] = 1;
    header[7] = 0;
    const size_t header_length = padded - 10;
    header[8] = (char)(header_length & 0xff);
    header[9] = (char)(header_length >> 8);
    total = padded;

    const size_t tmp_size = strlen(path) + 64;
    char *tmp = malloc(tmp_size);
    if (!tmp)
        return fail(message, message_size, CLPSA_ERROR_OUT_OF_MEMORY, path,
                    "out of memory for a temporary file name");
    const int fd = open_temporary(path, tmp, tmp_size);
    if (fd < 0) {
        const int err = errno;
        free(tmp);
        return fail(message, message_size, CLPSA_ERROR_IO, path,
                    "cannot create a temporary file next to it: %s", strerror(err));
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        const int err = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return fail(message, message_size, CLPSA_ERROR_IO, path, "cannot write: %s", strerror(err));
    }
    bool ok = fwrite(header, 1, total, f) == total;
    if (ok && bytes > 0)
        ok = fwrite(data, 1, bytes, f) == bytes;
    int err = ok ? 0 : errno;
    if (fflush(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return fail(message, message_size, CLPSA_ERROR_IO, path, "write failed: %s",
                    strerror(err ? err : EIO));
    }
    free(tmp);
    return CLPSA_OK;
}
