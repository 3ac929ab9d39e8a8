/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa bench`: what it writes. Every record has every key (null where a figure does not
 * apply), so the JSON and the CSV have one schema and bench/plot.py needs no special cases. */
#include "bench_internal.h"
#include "json_writer.h"

#include <clpsa/clpsa.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#define COMMAND CLPSA__BENCH_COMMAND

/* ---- JSON ---- */

static void json_number_or_null(clpsa__json *j, const char *key, double value) {
    if (isnan(value))
        clpsa__json_null(j, key);
    else
        clpsa__json_number(j, key, value);
}

static void json_floats(clpsa__json *j, const char *key, const float *values, int count) {
    clpsa__json_begin_array(j, key);
    for (int i = 0; i < count; ++i)
        clpsa__json_number(j, NULL, values[i]);
    clpsa__json_end_array(j);
}

static void json_shape(clpsa__json *j, const char *key, const bench_shape *s) {
    clpsa__json_begin_array(j, key);
    clpsa__json_int(j, NULL, s->batch);
    clpsa__json_int(j, NULL, s->heads_q);
    clpsa__json_int(j, NULL, s->seq_q);
    clpsa__json_int(j, NULL, s->dim);
    clpsa__json_end_array(j);
}

static void json_parameters(clpsa__json *j, const bench_options *o, const bench_results *r) {
    clpsa__json_begin_object(j, "parameters");
    clpsa__json_bool(j, "quick", o->quick);
    clpsa__json_int(j, "reps", o->reps);
    clpsa__json_int(j, "warmup", 1);
    clpsa__json_string(j, "statistic", "median");
    clpsa__json_bool(j, "causal", o->causal);
    if (o->workloads[BENCH_WORKLOAD_VIDEO_TEXT])
        clpsa__json_int(j, "text_tokens", o->text_tokens);
    clpsa__json_begin_array(j, "workloads");
    for (int w = 0; w < BENCH_WORKLOAD_COUNT; ++w)
        if (o->workloads[w])
            clpsa__json_string(j, NULL, clpsa__bench_workload_name((bench_workload)w));
    clpsa__json_end_array(j);
    if (o->workloads[BENCH_WORKLOAD_FILES]) {
        clpsa__json_null(j, "shapes");
        clpsa__json_begin_object(j, "inputs");
        clpsa__json_string(j, "q", o->q);
        clpsa__json_string(j, "k", o->k);
        clpsa__json_string(j, "v", o->v);
        clpsa__json_end_object(j);
    } else {
        clpsa__json_begin_array(j, "shapes");
        for (int i = 0; i < o->shape_count; ++i)
            json_shape(j, NULL, &o->shapes[i]);
        clpsa__json_end_array(j);
        clpsa__json_null(j, "inputs");
    }
    clpsa__json_begin_array(j, "dtypes");
    for (int i = 0; i < o->dtype_count; ++i)
        clpsa__json_string(j, NULL, clpsa_dtype_name(o->dtypes[i]));
    clpsa__json_end_array(j);
    if (o->tau_given) {
        clpsa__json_null(j, "densities");
        json_floats(j, "tau", o->tau, 4);
        clpsa__json_string(j, "density_control", "fixed thresholds (--tau), threshold mode");
    } else {
        clpsa__json_begin_array(j, "densities");
        for (int i = 0; i < o->density_count; ++i)
            clpsa__json_number(j, NULL, o->densities[i]);
        clpsa__json_end_array(j);
        clpsa__json_null(j, "tau");
        clpsa__json_string(j, "density_control",
                           "budget mode at the target density (psa and its stages); beside it "
                           "psa_threshold: threshold mode, tau = min(1, s * tau_base), s found "
                           "by bisection until |density - psa's density| <= density_tolerance "
                           "(else the closest)");
    }
    json_floats(j, "tau_base", clpsa__bench_tau_base, 4);
    clpsa__json_number(j, "density_tolerance", CLPSA__BENCH_DENSITY_TOLERANCE);
    clpsa__json_int(j, "block_q", r->block_q);
    clpsa__json_int(j, "block_k", r->block_k);
    clpsa__json_int(j, "seed", (long long)o->seed);
    clpsa__json_end_object(j);
}

static void json_record(clpsa__json *j, const bench_record *r) {
    clpsa__json_begin_object(j, NULL);
    clpsa__json_string(j, "workload", clpsa__bench_workload_name(r->workload));
    json_shape(j, "shape", &r->shape);
    clpsa__json_int(j, "heads_kv", r->shape.heads_kv);
    clpsa__json_int(j, "seq_k", r->shape.seq_k);
    if (r->grid[0]) {
        clpsa__json_begin_array(j, "grid");
        for (int i = 0; i < 3; ++i)
            clpsa__json_int(j, NULL, r->grid[i]);
        clpsa__json_end_array(j);
    } else {
        clpsa__json_null(j, "grid");
    }
    clpsa__json_string(j, "dtype", clpsa_dtype_name(r->dtype));
    json_number_or_null(j, "target_density", r->target_density);
    clpsa__json_string(j, "method", clpsa__bench_method_name(r->method));
    clpsa__json_number(j, "density", r->density);
    clpsa__json_number(j, "time_ms", r->time_ms);
    clpsa__json_number(j, "tflops", r->tflops);
    json_number_or_null(j, "rel_l2", r->rel_l2);
    if (r->has_tau)
        json_floats(j, "tau", r->tau, 4);
    else
        clpsa__json_null(j, "tau");
    clpsa__json_string(j, "rule", r->rule);
    json_number_or_null(j, "pool_ms", r->pool_ms);
    json_number_or_null(j, "estimate_ms", r->estimate_ms);
    json_number_or_null(j, "assign_ms", r->assign_ms);
    json_number_or_null(j, "attend_ms", r->attend_ms);
    json_number_or_null(j, "clblast_vs_dense", r->clblast_vs_dense);
    clpsa__json_end_object(j);
}

static void write_json(FILE *out, const bench_options *o, const bench_results *r) {
    clpsa__json j;
    clpsa__json_init(&j, out);
    clpsa__json_begin_object(&j, NULL);
    clpsa__json_string(&j, "tool", "clpsa bench");
    clpsa__json_string(&j, "version", clpsa_version());
    clpsa__json_string(&j, "device", r->device);
    clpsa__json_string(&j, "device_reason", r->device_reason);
    json_parameters(&j, o, r);
    clpsa__json_number(&j, "wall_s", r->wall_s);
    clpsa__json_begin_array(&j, "records");
    for (size_t i = 0; i < r->count; ++i)
        json_record(&j, &r->records[i]);
    clpsa__json_end_array(&j);
    clpsa__json_end_object(&j);
}

/* ---- CSV ---- */

static void csv_number(FILE *out, double value) {
    fputc(',', out);
    if (isfinite(value))
        fprintf(out, "%.6g", value);
}

static void write_csv(FILE *out, const bench_results *r) {
    fputs("workload,batch,heads_q,heads_kv,seq_q,seq_k,head_dim,grid,dtype,target_density,"
          "method,density,time_ms,tflops,rel_l2,tau1,tau2,tau4,tau8,pool_ms,estimate_ms,"
          "assign_ms,attend_ms,clblast_vs_dense,rule\n",
          out);
    for (size_t i = 0; i < r->count; ++i) {
        const bench_record *x = &r->records[i];
        const bench_shape *s = &x->shape;
        fprintf(out, "%s,%d,%d,%d,%d,%d,%d,", clpsa__bench_workload_name(x->workload), s->batch,
                s->heads_q, s->heads_kv, s->seq_q, s->seq_k, s->dim);
        if (x->grid[0])
            fprintf(out, "%dx%dx%d", x->grid[0], x->grid[1], x->grid[2]);
        fprintf(out, ",%s", clpsa_dtype_name(x->dtype));
        csv_number(out, x->target_density);
        fprintf(out, ",%s", clpsa__bench_method_name(x->method));
        csv_number(out, x->density);
        csv_number(out, x->time_ms);
        csv_number(out, x->tflops);
        csv_number(out, x->rel_l2);
        for (int f = 0; f < 4; ++f)
            csv_number(out, x->has_tau ? x->tau[f] : NAN);
        csv_number(out, x->pool_ms);
        csv_number(out, x->estimate_ms);
        csv_number(out, x->assign_ms);
        csv_number(out, x->attend_ms);
        csv_number(out, x->clblast_vs_dense);
        fprintf(out, ",%s\n", x->rule ? x->rule : "");
    }
}

/* ---- Table ---- */

static void table_number(FILE *out, const char *format, double value) {
    if (isfinite(value))
        fprintf(out, format, value);
    else
        fprintf(out, " %9s", "-");
}

static void write_table(FILE *out, const bench_results *r) {
    fprintf(out, "device: %s (%s)\n", r->device, r->device_reason);
    fprintf(out, "%-13s %-14s %-4s %6s %-19s %7s %10s %9s %9s %9s\n", "workload", "shape", "type",
            "target", "method", "density", "time_ms", "TFLOP/s", "rel_l2", "vs_dense");
    for (size_t i = 0; i < r->count; ++i) {
        const bench_record *x = &r->records[i];
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%dx%dx%d", x->shape.batch, x->shape.heads_q,
                 x->shape.seq_q, x->shape.dim);
        fprintf(out, "%-13s %-14s %-4s ", clpsa__bench_workload_name(x->workload), shape,
                clpsa_dtype_name(x->dtype));
        if (isnan(x->target_density))
            fprintf(out, "%6s", "tau");
        else
            fprintf(out, "%6.2f", x->target_density);
        fprintf(out, " %-19s %7.3f", clpsa__bench_method_name(x->method), x->density);
        table_number(out, " %10.3f", x->time_ms);
        table_number(out, " %9.4f", x->tflops);
        table_number(out, " %9.2e", x->rel_l2);
        table_number(out, " %9.2e", x->clblast_vs_dense);
        fputc('\n', out);
    }
    fprintf(out, "%zu records in %.1f s\n", r->count, r->wall_s);
}

/* ---- Files ---- */

typedef void (*writer_fn)(FILE *out, const bench_options *o, const bench_results *r);

static void json_writer(FILE *out, const bench_options *o, const bench_results *r) {
    write_json(out, o, r);
}

static void csv_writer(FILE *out, const bench_options *o, const bench_results *r) {
    (void)o;
    write_csv(out, r);
}

static int write_to(const char *path, writer_fn writer, const bench_options *o,
                    const bench_results *r) {
    if (!strcmp(path, "-")) {
        writer(stdout, o, r);
        return fflush(stdout) == 0
                   ? CLPSA__EXIT_OK
                   : clpsa__tool_fail(COMMAND, "writing stdout: %s", strerror(errno));
    }
    FILE *out = fopen(path, "w");
    if (!out)
        return clpsa__tool_fail(COMMAND, "%s: cannot write: %s", path, strerror(errno));
    writer(out, o, r);
    const bool failed = ferror(out) != 0;
    if (fclose(out) != 0 || failed)
        return clpsa__tool_fail(COMMAND, "%s: write failed: %s", path, strerror(errno));
    return CLPSA__EXIT_OK;
}

int clpsa__bench_write_reports(const bench_options *o, const bench_results *r) {
    int rc = CLPSA__EXIT_OK;
    if (o->json)
        rc = write_to(o->json, json_writer, o, r);
    if (rc == CLPSA__EXIT_OK && o->csv)
        rc = write_to(o->csv, csv_writer, o, r);
    const bool stdout_taken =
        (o->json && !strcmp(o->json, "-")) || (o->csv && !strcmp(o->csv, "-"));
    if (rc == CLPSA__EXIT_OK && !stdout_taken) {
        write_table(stdout, r);
        fflush(stdout);
    }
    return rc;
}
