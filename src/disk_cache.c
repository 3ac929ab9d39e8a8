/* SPDX-License-Identifier: Apache-2.0 */
/* Program binaries on disk. One file per key, named by the key's hash; the file repeats the
 * whole key so a hash collision or a stale file is detected, never trusted.
 *
 * File layout (little-endian as written by this host):
 *   8 bytes  magic "CLPSAPB\0"
 *   u32      format version (CLPSA__DISK_FORMAT_VERSION)
 *   u32      key length K
 *   u64      binary length N
 *   u64      digest: FNV-1a over the 24 bytes above, then the key, then the binary
 *   K bytes  key, N bytes binary; nothing after.
 * The digest covers the whole entry, sizes included (version 1 hashed only the binary, so a
 * file whose header and checksum were rewritten around half a binary passed). Only a file
 * whose every byte is as written reaches the driver, which may crash on a damaged binary.
 * Writes go to a temporary file in the same directory and are renamed into place, so readers
 * see either the old file or the whole new one. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLPSA__DISK_FORMAT_VERSION 2u
/* Far above any program binary seen (NVIDIA's PTX of every attend variant is a few MB); a
 * larger file is not ours. */
#define CLPSA__DISK_MAX_FILE ((size_t)256 << 20)
#define CLPSA__DISK_HEADER_SIZE 32u
#define CLPSA__DISK_DIGESTED_HEADER 24u /* the header bytes before the digest */
static const char disk_magic[8] = {'C', 'L', 'P', 'S', 'A', 'P', 'B', '\0'};

typedef struct file_header {
    char magic[8];
    uint32_t version;
    uint32_t key_size;
    uint64_t binary_size;
    uint64_t digest;
} file_header;

_Static_assert(sizeof(file_header) == CLPSA__DISK_HEADER_SIZE, "the header has no padding");

static uint64_t entry_digest(const file_header *header, const void *key, const void *binary) {
    uint64_t h = clpsa__hash64(header, CLPSA__DISK_DIGESTED_HEADER, CLPSA__HASH_SEED);
    h = clpsa__hash64(key, header->key_size, h);
    return clpsa__hash64(binary, header->binary_size, h);
}

void clpsa__disk_cache_resolve_dir(const char *requested, char *out, size_t capacity) {
    const char *env = getenv("CLPSA_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (requested && *requested)
        snprintf(out, capacity, "%s", requested);
    else if (env && *env)
        snprintf(out, capacity, "%s", env);
    else if (xdg && *xdg)
        snprintf(out, capacity, "%s/clpsa", xdg);
    else if (home && *home)
        snprintf(out, capacity, "%s/.cache/clpsa", home);
    else
        out[0] = '\0';
}

static void file_path(const clpsa_context *ctx, const char *key, char *out, size_t capacity) {
    const uint64_t h = clpsa__hash64(key, strlen(key), CLPSA__HASH_SEED);
    snprintf(out, capacity, "%s/program-%016llx.bin", ctx->cache_dir, (unsigned long long)h);
}

const char *clpsa__disk_cache_check(const unsigned char *data, size_t size, const char *key,
                                    const unsigned char **binary, size_t *binary_size) {
    *binary = NULL;
    *binary_size = 0;
    const size_t key_size = strlen(key);
    file_header header;
    if (size < sizeof header)
        return "shorter than its header (truncated)";
    memcpy(&header, data, sizeof header); /* data need not be aligned */
    if (memcmp(header.magic, disk_magic, sizeof disk_magic) != 0)
        return "bad magic (not a clpsa program cache file)";
    if (header.version != CLPSA__DISK_FORMAT_VERSION)
        return "written by another format version";
    if (header.key_size != key_size)
        return "its key differs from the requested one (stale or hash collision)";
    /* Subtractions only: header sizes are untrusted and their sum can wrap. */
    const size_t after_header = size - sizeof header;
    if (header.key_size > after_header || header.binary_size != after_header - header.key_size)
        return "its size disagrees with its header (truncated or corrupt)";
    if (header.binary_size == 0)
        return "it holds an empty binary";
    const unsigned char *stored_key = data + sizeof header;
    if (memcmp(stored_key, key, key_size) != 0)
        return "its key differs from the requested one (stale or hash collision)";
    if (entry_digest(&header, stored_key, stored_key + key_size) != header.digest)
        return "its digest does not match (corrupt or partly written)";
    *binary = stored_key + key_size;
    *binary_size = (size_t)header.binary_size;
    return NULL;
}

static void reject(clpsa_context *ctx, const char *path, const char *why) {
    ctx->cache_stats.disk_rejects++;
    clpsa__log(ctx, CLPSA_LOG_WARN, "program cache: ignoring %s: %s", path, why);
}

bool clpsa__disk_cache_load(clpsa_context *ctx, const char *key, unsigned char **binary,
                            size_t *size) {
    *binary = NULL;
    *size = 0;
    if (!ctx->cache_dir[0])
        return false;
    char path[4200];
    file_path(ctx, key, path, sizeof path);
    unsigned char *data = NULL;
    size_t data_size = 0;
    char why[256];
    const clpsa__file_result read =
        clpsa__file_read_regular(path, CLPSA__DISK_MAX_FILE, &data, &data_size, why, sizeof why);
    if (read == CLPSA__FILE_MISSING)
        return false; /* a plain miss */
    if (read == CLPSA__FILE_REJECTED) {
        reject(ctx, path, why);
        return false;
    }
    const unsigned char *stored = NULL;
    size_t stored_size = 0;
    const char *bad = clpsa__disk_cache_check(data, data_size, key, &stored, &stored_size);
    if (bad) {
        free(data);
        reject(ctx, path, bad);
        return false;
    }
    /* The caller frees what it gets; hand it the binary alone. */
    memmove(data, stored, stored_size);
    *binary = data;
    *size = stored_size;
    return true;
}

bool clpsa__make_dirs(const char *dir) {
    char partial[4096];
    const size_t length = strlen(dir);
    if (length == 0 || length >= sizeof partial)
        return false;
    memcpy(partial, dir, length + 1);
    for (size_t i = 1; i <= length; ++i) {
        if (partial[i] != '/' && partial[i] != '\0')
            continue;
        const char saved = partial[i];
        partial[i] = '\0';
        if (mkdir(partial, 0755) != 0 && errno != EEXIST)
            return false;
        partial[i] = saved;
    }
    return true;
}

void clpsa__disk_cache_store(clpsa_context *ctx, const char *key, const unsigned char *binary,
                             size_t size) {
    if (!ctx->cache_dir[0])
        return;
    if (!clpsa__make_dirs(ctx->cache_dir)) {
        clpsa__log(ctx, CLPSA_LOG_WARN, "program cache: cannot create %s: %s", ctx->cache_dir,
                   strerror(errno));
        return;
    }
    char path[4200], temp[4300];
    file_path(ctx, key, path, sizeof path);
    static _Atomic unsigned counter; /* contexts may store from several threads */
    snprintf(temp, sizeof temp, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    file_header header;
    memcpy(header.magic, disk_magic, sizeof disk_magic);
    header.version = CLPSA__DISK_FORMAT_VERSION;
    header.key_size = (uint32_t)strlen(key);
    header.binary_size = size;
    header.digest = entry_digest(&header, key, binary);
    FILE *file = fopen(temp, "wb");
    bool ok = file != NULL;
    ok = ok && fwrite(&header, sizeof header, 1, file) == 1;
    ok = ok && fwrite(key, 1, header.key_size, file) == header.key_size;
    ok = ok && fwrite(binary, 1, size, file) == size;
    if (file)
        ok = (fclose(file) == 0) && ok;
    ok = ok && rename(temp, path) == 0;
    if (!ok) {
        clpsa__log(ctx, CLPSA_LOG_WARN, "program cache: cannot write %s: %s", path,
                   strerror(errno));
        remove(temp);
        return;
    }
    clpsa__log(ctx, CLPSA_LOG_DEBUG, "program cache: stored %s (%zu bytes)", path, size);
}
