/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the `clpsa` subcommands: exit codes, option parsing, error reports in one
 * format, a log callback that keeps the library's last error line, and timing. */
#ifndef CLPSA_TOOLS_TOOL_COMMON_H
#define CLPSA_TOOLS_TOOL_COMMON_H

#include <clpsa/clpsa.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: scripts tell a wrong command line (fix the call) from a failed run. */
#define CLPSA__EXIT_OK 0
#define CLPSA__EXIT_FAILURE 1
#define CLPSA__EXIT_USAGE 2

/* Subcommands; argv[0] is the subcommand's name. */
int clpsa__cmd_devices(int argc, char **argv);
int clpsa__cmd_run(int argc, char **argv);
int clpsa__cmd_tune(int argc, char **argv);
int clpsa__cmd_bench(int argc, char **argv);

/* Matches argv[*i] against "--name VALUE" or "--name=VALUE". Returns false when it is another
 * option. On a match *value is the value (advancing *i past a separate one), or NULL when the
 * value is missing. */
bool clpsa__tool_option(int argc, char **argv, int *i, const char *name, const char **value);

/* A flag whose value is kept as given (a path, a device, a name), stored as a const char *
 * at `offset` in the command's options struct. */
typedef struct clpsa__tool_text_flag {
    const char *flag;
    size_t offset;
} clpsa__tool_text_flag;

/* Matches argv[*i] against the table. Returns false when it is none of its flags; otherwise
 * stores the value in `options` and sets *rc (a usage error when the value is missing). */
bool clpsa__tool_text_option(const char *command, int argc, char **argv, int *i,
                             const clpsa__tool_text_flag *flags, size_t count, void *options,
                             int *rc);

/* Whole-string numbers: false on empty text, trailing junk, overflow or non-finite values. */
bool clpsa__tool_parse_int(const char *text, long min, long max, long *out);
bool clpsa__tool_parse_double(const char *text, double *out);

/* "clpsa <command>: <message>" and a hint to --help on stderr; returns CLPSA__EXIT_USAGE. */
int clpsa__tool_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "clpsa <command>: <message>" on stderr; returns CLPSA__EXIT_FAILURE. */
int clpsa__tool_fail(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Reports a failed library call: the status's name and sentence, then the detail (the
 * context's last error, or the thread's when there is no context) unless the logger printed it.
 * Returns CLPSA__EXIT_FAILURE. */
int clpsa__tool_library_error(const char *command, const char *call, clpsa_status status,
                              const clpsa_context *ctx);
/* Reports a failed OpenCL call by its error name; returns CLPSA__EXIT_FAILURE. */
int clpsa__tool_cl_error(const char *command, const char *call, cl_int err);
const char *clpsa__tool_cl_error_name(cl_int err);

/* Fills a context description with the tool's logger: lines go to stderr as the default
 * logger would print them, at the level CLPSA_LOG sets, except that errors always show (even
 * with CLPSA_LOG=off); clpsa__tool_library_error then does not repeat them. */
void clpsa__tool_context_desc_init(clpsa_context_desc *desc, const char *device_spec);

/* "1.50 GiB", "64.0 KiB", "512 B". */
void clpsa__tool_format_bytes(char *text, size_t size, uint64_t bytes);

/* JSON string literal of `text` (quotes included, control characters escaped). */
void clpsa__tool_json_string(FILE *out, const char *text);

/* Milliseconds between the start and the end of a finished command with profiling info;
 * negative when the queue has no profiling. */
double clpsa__tool_event_ms(cl_event event);
/* Monotonic wall-clock time in milliseconds. */
double clpsa__tool_wall_ms(void);

/* Runs the plan once on `queue` over buffers q, k, v, out and waits for it. staged (PSA,
 * binary): the per-stage device times of clpsa_plan_read_stage_times; otherwise total_ms is
 * the run's event time (dense is one kernel). Without profiling, total_ms is the host's wall
 * time. Errors are reported under `command`; returns an exit code. */
int clpsa__tool_timed_run(const char *command, const clpsa_context *ctx, clpsa_plan *plan,
                          cl_command_queue queue, const cl_mem *buffers, bool staged,
                          clpsa_stage_times *times);

/* A --bm / --bn value: an integer from 16 to 256, a multiple of 8 for key blocks (`key`).
 * Returns an exit code (a usage error naming the flag). */
int clpsa__tool_parse_block(const char *command, const char *flag, const char *value, bool key,
                            int *out);

/* Median of `count` values (sorts them in place). */
double clpsa__tool_median(double *values, size_t count);

/* splitmix64: a small seeded generator so the built-in problem is the same on every run. */
uint64_t clpsa__tool_random(uint64_t *state);
/* Uniform in [-1, 1). */
float clpsa__tool_random_signed(uint64_t *state);

#endif /* CLPSA_TOOLS_TOOL_COMMON_H */
