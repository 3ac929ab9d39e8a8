/* SPDX-License-Identifier: Apache-2.0 */
/* An outside program built against an installed (or embedded) clpsa: it includes clpsa.h
 * before any OpenCL header and without choosing an OpenCL version, so the OpenCL 2.0+
 * declarations must still be visible; another file of it (consumer_cl12.c) includes
 * CL/cl.h first with version 1.2. It runs one small attention to prove the link works. */
#include <clpsa/clpsa.h>
#include <clpsa/clpsa_npy.h>
#include <clpsa/clpsa_tuning.h>
#include <clpsa/clpsa_workload.h>

#include <stdio.h>
#include <string.h>

_Static_assert(CL_TARGET_OPENCL_VERSION == 300, "clpsa.h must default to the headers' own 300");

/* OpenCL 2.0 API, hidden if clpsa.h had chosen 1.2 for this program. */
static const cl_queue_properties queue_properties[] = {CL_QUEUE_PROPERTIES, 0, 0};

int consumer_cl12_version(void);

int main(void) {
    if (strcmp(clpsa_version(), CLPSA_CONSUMER_EXPECT_VERSION) != 0 ||
        clpsa_version_number() != CLPSA_VERSION_NUMBER) {
        fprintf(stderr, "consumer: linked clpsa %s, headers %d, expected %s\n", clpsa_version(),
                CLPSA_VERSION_NUMBER, CLPSA_CONSUMER_EXPECT_VERSION);
        return 1;
    }
    if (consumer_cl12_version() != 120) {
        fprintf(stderr, "consumer: clpsa.h overrode the caller's CL_TARGET_OPENCL_VERSION\n");
        return 1;
    }
    (void)queue_properties;
    clpsa_context *ctx = NULL;
    clpsa_status status = clpsa_context_create(NULL, &ctx);
    if (status != CLPSA_OK) {
        fprintf(stderr, "consumer: %s: %s\n", clpsa_status_name(status),
                clpsa_context_last_error(NULL));
        return 1;
    }
    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.method = CLPSA_METHOD_DENSE;
    desc.batch = 1;
    desc.heads_q = 1;
    desc.seq_q = 16;
    desc.head_dim = 32;
    clpsa_plan *plan = NULL;
    clpsa_buffer_sizes sizes;
    cl_mem q = NULL, out = NULL;
    status = clpsa_plan_create(ctx, &desc, &plan);
    if (status == CLPSA_OK)
        status = clpsa_plan_buffer_sizes(plan, &sizes);
    if (status == CLPSA_OK)
        status = clpsa_context_alloc(ctx, sizes.q, &q);
    if (status == CLPSA_OK)
        status = clpsa_context_alloc(ctx, sizes.out, &out);
    if (status == CLPSA_OK)
        status = clpsa_plan_run(plan, NULL, q, q, q, out, 0, NULL, NULL);
    if (status == CLPSA_OK && clFinish(clpsa_context_queue(ctx)) != CL_SUCCESS)
        status = CLPSA_ERROR_OPENCL;
    if (status != CLPSA_OK)
        fprintf(stderr, "consumer: %s: %s\n", clpsa_status_name(status),
                clpsa_context_last_error(ctx));
    else
        printf("consumer: clpsa %s ran on %s\n", clpsa_version(), clpsa_context_device_name(ctx));
    if (q)
        clReleaseMemObject(q);
    if (out)
        clReleaseMemObject(out);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    return status == CLPSA_OK ? 0 : 1;
}
