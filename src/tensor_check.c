/* SPDX-License-Identifier: Apache-2.0 */
/* Rules for strided tensors and the buffers that hold them. */
#include "internal.h"

#include <string.h>

clpsa_strides clpsa_strides_bhnd(int64_t heads, int64_t seq, int64_t dim) {
    const clpsa_strides s = {heads * seq * dim, seq * dim, dim, 1};
    return s;
}

clpsa_strides clpsa_strides_bnhd(int64_t heads, int64_t seq, int64_t dim) {
    const clpsa_strides s = {seq * heads * dim, dim, heads * dim, 1};
    return s;
}

clpsa_status clpsa__tensor_check_strides(clpsa_context *ctx, const clpsa__tensor *t) {
    const clpsa_strides *s = &t->strides;
    if (s->dim != 1)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_STRIDES,
                           "%s_strides.dim = %lld: the head dimension must be contiguous "
                           "(dim stride 1)",
                           t->name, (long long)s->dim);
    const char *names[3] = {"batch", "head", "seq"};
    const int64_t strides[3] = {s->batch, s->head, s->seq};
    const int64_t sizes[3] = {t->batch, t->heads, t->seq};
    for (int i = 0; i < 3; ++i)
        if (strides[i] < 0)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_STRIDES,
                               "%s_strides.%s = %lld: strides must not be negative", t->name,
                               names[i], (long long)strides[i]);
    /* No two elements may share an address: visiting the dimensions of size > 1 from the
     * smallest stride up, each stride must step past everything the smaller ones span. */
    int order[3] = {0, 1, 2};
    for (int i = 1; i < 3; ++i)
        for (int j = i; j > 0 && strides[order[j]] < strides[order[j - 1]]; --j) {
            const int swap = order[j];
            order[j] = order[j - 1];
            order[j - 1] = swap;
        }
    int64_t span = t->dim;
    const char *span_name = "dim";
    for (int i = 0; i < 3; ++i) {
        const int a = order[i];
        if (sizes[a] <= 1)
            continue;
        if (strides[a] < span)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_STRIDES,
                               "%s_strides.%s = %lld overlaps: it must be at least %lld, the "
                               "extent of the %s dimension(s) inside it",
                               t->name, names[a], (long long)strides[a], (long long)span,
                               span_name);
        int64_t grown = 0;
        if (__builtin_mul_overflow(strides[a], sizes[a] - 1, &grown) ||
            __builtin_add_overflow(grown, span, &span))
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_STRIDES,
                               "%s_strides.%s = %lld: the tensor's extent overflows 64 bits",
                               t->name, names[a], (long long)strides[a]);
        span_name = names[a];
    }
    /* The extent in bytes must fit in size_t; tensor_bytes relies on it. */
    int64_t bytes = 0;
    if (__builtin_mul_overflow(span, (int64_t)clpsa_dtype_size(t->dtype), &bytes))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_STRIDES,
                           "%s: the tensor's extent in bytes overflows 64 bits", t->name);
    return CLPSA_OK;
}

size_t clpsa__tensor_bytes(const clpsa__tensor *t) {
    const clpsa_strides *s = &t->strides;
    const int64_t last =
        s->batch * (t->batch - 1) + s->head * (t->heads - 1) + s->seq * (t->seq - 1) + (t->dim - 1);
    return (size_t)(last + 1) * clpsa_dtype_size(t->dtype);
}

clpsa_status clpsa__check_buffer(clpsa_context *ctx, const clpsa__tensor *t, cl_mem buffer) {
    if (!buffer)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT, "buffer %s is NULL", t->name);
    cl_context owner = NULL;
    cl_int err = clGetMemObjectInfo(buffer, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
    /* Only CL_INVALID_MEM_OBJECT blames the handle; running out of memory is not its fault. */
    if (err != CL_SUCCESS && err != CL_INVALID_MEM_OBJECT)
        return clpsa__fail_cl(ctx, err, "clGetMemObjectInfo(CL_MEM_CONTEXT)");
    if (err != CL_SUCCESS)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "buffer %s (%p) is not a valid cl_mem: clGetMemObjectInfo failed "
                           "with OpenCL error %d (%s)",
                           t->name, (void *)buffer, (int)err, clpsa__cl_error_name(err));
    if (owner != ctx->cl_ctx)
        return clpsa__fail(ctx, CLPSA_ERROR_WRONG_CONTEXT,
                           "buffer %s belongs to cl_context %p, but the plan's context is %p",
                           t->name, (void *)owner, (void *)ctx->cl_ctx);
    size_t size = 0;
    err = clGetMemObjectInfo(buffer, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clGetMemObjectInfo(CL_MEM_SIZE)");
    const size_t needed = clpsa__tensor_bytes(t);
    if (size < needed)
        return clpsa__fail(ctx, CLPSA_ERROR_BUFFER_TOO_SMALL,
                           "buffer %s holds %zu bytes, but shape [B=%lld, H=%lld, N=%lld, "
                           "D=%lld] of %s with its strides spans %zu bytes",
                           t->name, size, (long long)t->batch, (long long)t->heads,
                           (long long)t->seq, (long long)t->dim, clpsa_dtype_name(t->dtype),
                           needed);
    return CLPSA_OK;
}
