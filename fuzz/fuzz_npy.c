/* SPDX-License-Identifier: Apache-2.0 */
/* The .npy reader on arbitrary file contents. A file it accepts must describe exactly the data
 * it returns (every element readable, count the product of the shape) and survive a round trip
 * through the writer unchanged; a file it refuses gets a message and no data. */
#include "fuzz_check.h"

#include <clpsa/clpsa_npy.h>

#include <string.h>
#include <unistd.h>

static char input_path[64], output_path[96];

static void remove_files(void) {
    unlink(input_path);
    unlink(output_path);
}

/* Two scratch files, in memory where /dev/shm exists. */
static void make_paths(void) {
    if (input_path[0])
        return;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(input_path, sizeof input_path, "%s/clpsa-fuzz-npy-XXXXXX", base);
    const int fd = mkstemp(input_path);
    FUZZ_CHECK(fd >= 0);
    close(fd);
    snprintf(output_path, sizeof output_path, "%s.out.npy", input_path);
    atexit(remove_files);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    make_paths();
    FILE *f = fopen(input_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);

    clpsa_npy_array a;
    char message[512];
    const clpsa_status status = clpsa_npy_read(input_path, &a, message, sizeof message);
    FUZZ_CHECK(memchr(message, '\0', sizeof message) != NULL);
    if (status != CLPSA_OK) {
        FUZZ_CHECK(message[0] != '\0');
        FUZZ_CHECK(a.data == NULL);
        return 0;
    }
    FUZZ_CHECK(a.ndim >= 0 && a.ndim <= CLPSA_NPY_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < a.ndim; ++i) {
        FUZZ_CHECK(a.shape[i] >= 0);
        count *= (size_t)a.shape[i];
    }
    FUZZ_CHECK(count == a.count);
    const size_t bytes = a.count * clpsa_npy_type_size(a.type);
    FUZZ_CHECK(bytes == 0 || a.data != NULL);
    FUZZ_CHECK(bytes <= size); /* nothing is invented beyond the file */
    FUZZ_CHECK(clpsa_npy_write(output_path, a.type, a.ndim, a.shape, a.data, message,
                               sizeof message) == CLPSA_OK);
    clpsa_npy_array back;
    FUZZ_CHECK(clpsa_npy_read(output_path, &back, message, sizeof message) == CLPSA_OK);
    FUZZ_CHECK(back.type == a.type && back.ndim == a.ndim && back.count == a.count);
    FUZZ_CHECK(memcmp(back.shape, a.shape, sizeof a.shape[0] * (size_t)a.ndim) == 0);
    FUZZ_CHECK(bytes == 0 || memcmp(back.data, a.data, bytes) == 0);
    clpsa_npy_free(&back);
    clpsa_npy_free(&a);
    return 0;
}
