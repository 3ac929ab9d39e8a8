/* SPDX-License-Identifier: Apache-2.0 */
/* The `clpsa` command: dispatches to its subcommands. */
#include "tool_common.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: clpsa <command> [options]\n"
            "\n"
            "commands:\n"
            "  devices   list the OpenCL platforms and devices, and the one clpsa would use\n"
            "  run       Pyramid Sparse Attention against dense attention and the binary\n"
            "            block-sparse baseline: density, levels, time per stage, error; on the\n"
            "            built-in video workload (raster and hilbert token order) or on Q, K, V\n"
            "            from .npy files\n"
            "  bench     time PSA, its stages, dense, binary and a CLBlast dense baseline over\n"
            "            workloads, shapes, dtypes and densities, with errors; JSON and CSV\n"
            "  tune      search the kernel parameters of a device and write them to the tuned\n"
            "            cache that later plans on it use\n"
            "\n"
            "  clpsa --help       this text\n"
            "  clpsa --version    the library version\n"
            "  clpsa <command> --help   the command's options\n"
            "\n"
            "environment:\n"
            "  CLPSA_DEVICE      device index (as `clpsa devices` numbers them) or a substring of\n"
            "                    the platform or device name\n"
            "  CLPSA_LOG         error|warn|info|debug|trace (default warn)\n"
            "  CLPSA_CACHE_DIR   where compiled kernels are cached\n"
            "\n"
            "exit status: 0 success, 1 failure, 2 wrong command line\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLPSA__EXIT_USAGE;
    }
    const char *command = argv[1];
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        usage(stdout);
        return CLPSA__EXIT_OK;
    }
    if (!strcmp(command, "--version") || !strcmp(command, "version")) {
        printf("clpsa %s\n", clpsa_version());
        return CLPSA__EXIT_OK;
    }
    if (!strcmp(command, "devices"))
        return clpsa__cmd_devices(argc - 1, argv + 1);
    if (!strcmp(command, "run"))
        return clpsa__cmd_run(argc - 1, argv + 1);
    if (!strcmp(command, "tune"))
        return clpsa__cmd_tune(argc - 1, argv + 1);
    if (!strcmp(command, "bench"))
        return clpsa__cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "clpsa: unknown command '%s'\n\n", command);
    usage(stderr);
    return CLPSA__EXIT_USAGE;
}
