/* SPDX-License-Identifier: Apache-2.0 */
/* Program binaries on disk. One file per key, named by the key's hash; the file repeats the
 * whole key so a hash collision or a stale file is detected, never trusted.
 *
 * File layout (little-endian as written by this host):
 *   8 bytes  magic "CLPSAPB\0"
 *   u32      format version (CLPSA__DISK_FORMAT_VERSION)
 *   u32      key length K
 *   u64      binary length N
 *   u64      FNV-1a hash of the binary
 *   K bytes  key, N bytes binary; nothing after.
 * Writes go to a temporary file in the same directory and are renamed into place, so readers
 * see either the old file or the whole new one. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLPSA__DISK_FORMAT_VERSION 1u
static const char disk_magic[8] = {'C', 'L', 'P', 'S', 'A', 'P', 'B', '\0'};

typedef struct file_header {
    char magic[8];
    uint32_t version;
    uint32_t key_size;
    uint64_t binary_size;
    uint64_t binary_hash;
} file_header;

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
    FILE *file = fopen(path, "rb");
    if (!file)
        return false; /* a plain miss */
    struct stat info;
    file_header header;
    const size_t key_size = strlen(key);
    char *stored_key = NULL;
    unsigned char *data = NULL;
    const char *why = NULL;
    if (fstat(fileno(file), &info) != 0 || fread(&header, sizeof header, 1, file) != 1)
        why = "shorter than its header (truncated)";
    else if (memcmp(header.magic, disk_magic, sizeof disk_magic) != 0)
        why = "bad magic (not a clpsa program cache file)";
    else if (header.version != CLPSA__DISK_FORMAT_VERSION)
        why = "written by another format version";
    else if (header.key_size != key_size)
        why = "its key differs from the requested one (stale or hash collision)";
    else if ((uint64_t)info.st_size != sizeof header + header.key_size + header.binary_size)
        why = "its size disagrees with its header (truncated or corrupt)";
    else if (!(stored_key = malloc(key_size)) ||
             !(data = malloc(header.binary_size ? header.binary_size : 1)))
        why = "out of host memory";
    else if (fread(stored_key, 1, key_size, file) != key_size ||
             fread(data, 1, header.binary_size, file) != header.binary_size)
        why = "read error";
    else if (memcmp(stored_key, key, key_size) != 0)
        why = "its key differs from the requested one (stale or hash collision)";
    else if (clpsa__hash64(data, header.binary_size, CLPSA__HASH_SEED) != header.binary_hash)
        why = "its checksum does not match (corrupt)";
    fclose(file);
    free(stored_key);
    if (why) {
        free(data);
        reject(ctx, path, why);
        return false;
    }
    *binary = data;
    *size = header.binary_size;
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
    header.binary_hash = clpsa__hash64(binary, size, CLPSA__HASH_SEED);
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
