/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file clpsa_npy.h
 * @brief Minimal .npy (NumPy format 1.0/2.0/3.0) reading and writing for clpsa's tools and
 * tests.
 *
 * Only little-endian, C-order arrays of the types below are accepted; anything else is
 * rejected with CLPSA_ERROR_INVALID_FILE and a message naming the file and the problem. These
 * functions take no context: they may be called from any thread at any time, report their
 * detail through the message buffer, and block for the file I/O.
 */
#ifndef CLPSA_CLPSA_NPY_H
#define CLPSA_CLPSA_NPY_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most dimensions an array may have. */
#define CLPSA_NPY_MAX_DIMS 8

/** @brief Element types of .npy arrays. */
typedef enum clpsa_npy_type {
    CLPSA_NPY_FLOAT32 = 1, /**< '<f4' */
    CLPSA_NPY_FLOAT16 = 2, /**< '<f2' */
    CLPSA_NPY_INT8 = 3,    /**< '|i1' */
    CLPSA_NPY_INT32 = 4,   /**< '<i4' */
} clpsa_npy_type;

/** @brief An array read from a file; its data is owned by the array. */
typedef struct clpsa_npy_array {
    clpsa_npy_type type;               /**< element type */
    int ndim;                          /**< number of dimensions, 0..CLPSA_NPY_MAX_DIMS */
    int64_t shape[CLPSA_NPY_MAX_DIMS]; /**< sizes of the first ndim dimensions */
    size_t count;                      /**< product of shape (1 for ndim == 0) */
    void *data; /**< count elements, owned by the array: free with clpsa_npy_free() */
} clpsa_npy_array;

/** @brief Bytes per element of type; 0 for an unknown type. */
CLPSA_API size_t clpsa_npy_type_size(clpsa_npy_type type);

/**
 * @brief Reads the array in path into *out, which then owns its data (free it with
 * clpsa_npy_free()).
 *
 * On failure writes "<path>: <problem>" into message (message_size bytes, when message is not
 * NULL) and leaves *out empty. Blocks for the read.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when path or out is NULL;
 *         CLPSA_ERROR_IO when the file cannot be opened or read;
 *         CLPSA_ERROR_INVALID_FILE for a malformed header, an unsupported dtype or order, or a
 *         file shorter than its shape; CLPSA_ERROR_OUT_OF_MEMORY when the data does not fit;
 *         CLPSA_ERROR_UNSUPPORTED on a big-endian host.
 */
CLPSA_API clpsa_status clpsa_npy_read(const char *path, clpsa_npy_array *out, char *message,
                                      size_t message_size);
/**
 * @brief Writes an array of type with ndim dimensions of shape, from data (the caller's), to
 * path atomically (temporary file, then rename).
 *
 * On failure writes the problem into message as clpsa_npy_read() does. Blocks for the write.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when path, shape (ndim > 0) or data is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for an unknown type; CLPSA_ERROR_INVALID_SHAPE for ndim
 *         outside 0..#CLPSA_NPY_MAX_DIMS or a negative or overflowing size;
 *         CLPSA_ERROR_OUT_OF_MEMORY; CLPSA_ERROR_IO when the file cannot be written or
 *         renamed; CLPSA_ERROR_UNSUPPORTED on a big-endian host.
 */
CLPSA_API clpsa_status clpsa_npy_write(const char *path, clpsa_npy_type type, int ndim,
                                       const int64_t *shape, const void *data, char *message,
                                       size_t message_size);
/** @brief Frees the array's data and empties it; NULL and empty arrays are ignored. */
CLPSA_API void clpsa_npy_free(clpsa_npy_array *array);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_NPY_H */
