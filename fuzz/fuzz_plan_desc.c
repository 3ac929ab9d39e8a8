/* SPDX-License-Identifier: Apache-2.0 */
/* Plan descriptor validation (every rule of clpsa_plan_create that needs no device) on
 * arbitrary descriptors, given as "field=value" lines (unknown fields and bad numbers are
 * skipped, so every input is some descriptor). A refused descriptor names its problem in
 * last_error; an accepted one has positive sizes and tensors whose extents fit in 64 bits. */
#include "fuzz_check.h"

#include "plan_internal.h"

#include <string.h>

typedef enum kind { INT, FLOAT, I64, U64, TEXT } kind;

#define F(name, k)                                                                                 \
    { #name, offsetof(clpsa_plan_desc, name), k }
static const struct field {
    const char *name;
    size_t offset;
    kind kind;
} fields[] = {
    F(method, INT),
    F(batch, INT),
    F(heads_q, INT),
    F(heads_kv, INT),
    F(seq_q, INT),
    F(seq_k, INT),
    F(head_dim, INT),
    F(dtype, INT),
    F(out_dtype, INT),
    F(q_strides.batch, I64),
    F(q_strides.head, I64),
    F(q_strides.seq, I64),
    F(q_strides.dim, I64),
    F(k_strides.batch, I64),
    F(k_strides.head, I64),
    F(k_strides.seq, I64),
    F(k_strides.dim, I64),
    F(v_strides.batch, I64),
    F(v_strides.head, I64),
    F(v_strides.seq, I64),
    F(v_strides.dim, I64),
    F(out_strides.batch, I64),
    F(out_strides.head, I64),
    F(out_strides.seq, I64),
    F(out_strides.dim, I64),
    F(scale, FLOAT),
    F(causal, INT),
    F(preset, TEXT),
    F(block_q, INT),
    F(block_k, INT),
    F(thresholds[0], FLOAT),
    F(thresholds[1], FLOAT),
    F(thresholds[2], FLOAT),
    F(thresholds[3], FLOAT),
    F(mode, INT),
    F(align_tile, INT),
    F(min_full, FLOAT),
    F(text_tokens, INT),
    F(similarity_cap, INT),
    F(similarity_thresholds[0], FLOAT),
    F(similarity_thresholds[1], FLOAT),
    F(similarity_thresholds[2], FLOAT),
    F(estimator, INT),
    F(sample_q, INT),
    F(sample_k, INT),
    F(antidiagonal_stride, INT),
    F(seed, U64),
    F(binary_density, FLOAT),
    F(grid[0], INT),
    F(grid[1], INT),
    F(grid[2], INT),
    F(ordering, INT),
    F(tile[0], INT),
    F(tile[1], INT),
    F(tile[2], INT),
    F(shard_head_first, INT),
    F(shard_heads_q, INT),
};
#undef F

/* Sets the field named by line[0..equals) from the text after '='. Integers wrap to the
 * field's width, as a caller's arithmetic might. */
static void set_field(clpsa_plan_desc *desc, char *line, char *value, char *preset,
                      size_t preset_size) {
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; ++i) {
        if (strcmp(line, fields[i].name) != 0)
            continue;
        char *at = (char *)desc + fields[i].offset;
        const unsigned long long bits = strtoull(value, NULL, 0);
        const long long number = (long long)bits;
        switch (fields[i].kind) {
        case INT: {
            const int v = (int)(unsigned)bits;
            memcpy(at, &v, sizeof v);
            break;
        }
        case FLOAT: {
            const float v = strtof(value, NULL);
            memcpy(at, &v, sizeof v);
            break;
        }
        case I64:
            memcpy(at, &number, sizeof number);
            break;
        case U64: {
            const uint64_t v = bits;
            memcpy(at, &v, sizeof v);
            break;
        }
        case TEXT:
            snprintf(preset, preset_size, "%s", value);
            desc->preset = preset;
            break;
        }
        return;
    }
}

static void no_log(void *user, clpsa_log_level level, const char *message) {
    (void)user;
    (void)level;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    char preset[128];
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *equals = strchr(line, '=');
        if (!equals)
            continue;
        *equals = '\0';
        set_field(&desc, line, equals + 1, preset, sizeof preset);
    }
    free(text);

    clpsa_context *ctx = calloc(1, sizeof *ctx);
    FUZZ_CHECK(ctx != NULL);
    ctx->log = no_log;
    ctx->log_level = CLPSA_LOG_OFF;
    clpsa_plan_desc d;
    clpsa__psa_options psa;
    clpsa__tensor tensors[4];
    const clpsa_status status = clpsa__plan_desc_check(ctx, &desc, &d, &psa, tensors);
    if (status != CLPSA_OK) {
        FUZZ_CHECK(clpsa_context_last_error(ctx)[0] != '\0');
    } else {
        FUZZ_CHECK(d.batch >= 1 && d.heads_q >= 1 && d.heads_kv >= 1 && d.seq_q >= 1 &&
                   d.seq_k >= 1 && d.head_dim >= 8 && d.heads_q % d.heads_kv == 0);
        for (int i = 0; i < 4; ++i)
            FUZZ_CHECK(clpsa__tensor_bytes(&tensors[i]) > 0);
    }
    free(ctx);
    return 0;
}
