/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the files the library keeps for itself (program binaries, tuned parameters) without
 * trusting what stands at their path. Anyone may put a FIFO, a device, a directory or a huge
 * file there: opening with O_NONBLOCK never waits for a writer, and fstat on the open file (not
 * the path, which can change in between) decides whether it is a regular file of a size clpsa
 * could have written before a byte is read or allocated. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

clpsa__file_result clpsa__file_read_regular(const char *path, size_t max_size, unsigned char **data,
                                            size_t *size, char *why, size_t why_size) {
    *data = NULL;
    *size = 0;
    why[0] = '\0';
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return CLPSA__FILE_MISSING;
        snprintf(why, why_size, "cannot open it: %s", strerror(errno));
        return CLPSA__FILE_REJECTED;
    }
    struct stat info;
    if (fstat(fd, &info) != 0) {
        snprintf(why, why_size, "cannot stat it: %s", strerror(errno));
        close(fd);
        return CLPSA__FILE_REJECTED;
    }
    if (!S_ISREG(info.st_mode)) {
        snprintf(why, why_size, "not a regular file (%s)",
                 S_ISFIFO(info.st_mode)   ? "a FIFO"
                 : S_ISDIR(info.st_mode)  ? "a directory"
                 : S_ISCHR(info.st_mode)  ? "a character device"
                 : S_ISBLK(info.st_mode)  ? "a block device"
                 : S_ISSOCK(info.st_mode) ? "a socket"
                                          : "not a file");
        close(fd);
        return CLPSA__FILE_REJECTED;
    }
    if (info.st_size < 0 || (uint64_t)info.st_size > (uint64_t)max_size) {
        snprintf(why, why_size, "%lld bytes, larger than any file clpsa writes there (%zu)",
                 (long long)info.st_size, max_size);
        close(fd);
        return CLPSA__FILE_REJECTED;
    }
    const size_t expected = (size_t)info.st_size;
    /* One byte more: text files get a terminating NUL, and a file that grew shows as too long. */
    unsigned char *buffer = malloc(expected + 1);
    if (!buffer) {
        snprintf(why, why_size, "out of host memory for %zu bytes", expected);
        close(fd);
        return CLPSA__FILE_REJECTED;
    }
    size_t done = 0;
    while (done <= expected) {
        const ssize_t n = read(fd, buffer + done, expected + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, why_size, "read error: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (!why[0] && done != expected)
        snprintf(why, why_size, "its size changed while it was read (%zu bytes, then %zu)",
                 expected, done);
    if (why[0]) {
        free(buffer);
        return CLPSA__FILE_REJECTED;
    }
    buffer[done] = '\0';
    *data = buffer;
    *size = done;
    return CLPSA__FILE_READ;
}
