/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Minimal .npy (NumPy format 1.0/2.0/3.0) reading and writing for clpsa's tools and tests.
 * Only little-endian, C-order arrays of the types below are accepted; anything else is
 * rejected with CLPSA_ERROR_INVALID_FILE and a message naming the file and the problem.
 */
#ifndef CLPSA_CLPSA_NPY_H
#define CLPSA_CLPSA_NPY_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLPSA_NPY_MAX_DIMS 8

typedef enum clpsa_npy_type {
    CLPSA_NPY_FLOAT32 = 1, /* '<f4' */
    CLPSA_NPY_FLOAT16 = 2, /* '<f2' */
    CLPSA_NPY_INT8 = 3,    /* '|i1' */
    CLPSA_NPY_INT32 = 4,   /* '<i4' */
} clpsa_npy_type;

typedef struct clpsa_npy_array {
    clpsa_npy_type type;
    int ndim;
    int64_t shape[CLPSA_NPY_MAX_DIMS];
    size_t count; /* product of shape (1 for ndim == 0) */
    void *data;   /* count elements, owned by the array: free with clpsa_npy_free */
} clpsa_npy_array;

CLPSA_API size_t clpsa_npy_type_size(clpsa_npy_type type);

/* Reads `path`. On failure returns a status and writes "<path>: <problem>" into message
 * (when message is not NULL); *out is then left empty. */
CLPSA_API clpsa_status clpsa_npy_read(const char *path, clpsa_npy_array *out, char *message,
                                      size_t message_size);
/* Writes `path` atomically (temporary file + rename). */
CLPSA_API clpsa_status clpsa_npy_write(const char *path, clpsa_npy_type type, int ndim,
                                       const int64_t *shape, const void *data, char *message,
                                       size_t message_size);
CLPSA_API void clpsa_npy_free(clpsa_npy_array *array);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_NPY_H */
