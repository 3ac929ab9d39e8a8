/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file clpsa_multi.h
 * @brief Head-sharded attention over several devices of one process.
 *
 * PSA is independent per head, so a multi-device plan splits the heads of one attention shape
 * across devices (one clpsa_plan per device, each for a slice of the heads) and runs the slices
 * concurrently. Under grouped-query attention a kv head and the query heads that share it
 * (a "kv-head group") always stay on one device. Shares follow per-device weights: equal by
 * default, given by the caller, or measured by a quick timing at creation.
 *
 * Tensors either live whole on one device, the "home" device (clpsa_multi_plan_run(): clpsa
 * copies each device's slices in and its output slice back), or are given as per-device slices
 * (clpsa_multi_plan_run_sliced(): no copies). The devices may share one cl_context (copies are
 * clEnqueueCopyBufferRect, and a slice that is one aligned contiguous range is used in place
 * through a sub-buffer) or belong to different cl_contexts (copies go through host memory,
 * chained with user events so the call still only enqueues).
 *
 * The per-device plans are head shards (clpsa_plan_desc.shard_head_first), so the sampled
 * estimate draws the same offsets as one plan over all heads: results equal the single-device
 * run's up to the device's own rounding.
 *
 * Threads: a multi-device plan is used by one thread at a time, as a plan is (clpsa.h); its
 * devices' contexts may serve other threads and their plans meanwhile. Its last_error is the
 * plan's, not the thread's.
 */
#ifndef CLPSA_CLPSA_MULTI_H
#define CLPSA_CLPSA_MULTI_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief One device of a multi-device plan. */
typedef struct clpsa_multi_device {
    clpsa_context *ctx;     /**< the device's context (required); the plan does not own it */
    cl_command_queue queue; /**< queue of ctx's cl_context and device; NULL: ctx's queue */
} clpsa_multi_device;

/** @brief The device list and how to share the heads; fill with clpsa_multi_desc_init(). */
typedef struct clpsa_multi_desc {
    const clpsa_multi_device *devices; /**< num_devices entries, each with its own context */
    int num_devices;                   /**< 1 .. number of kv-head groups (heads_kv) */
    /** num_devices weights, each finite and > 0: device i gets about weights[i] / sum of the
     * kv-head groups (at least one). NULL: equal shares (or timed ones, below). */
    const double *weights;
    /** Non-zero: weights from a quick timing at creation (one kv-head group run twice on each
     * device, weight = 1 / time); weights must then be NULL. */
    int timed_weights;
    /** Index of the device whose cl_context holds the whole tensors of clpsa_multi_plan_run();
     * 0 by default. */
    int home;
} clpsa_multi_desc;

/** @brief A set of per-device plans over slices of the heads. Opaque. */
typedef struct clpsa_multi_plan clpsa_multi_plan;

/** @brief What one device computes, and the layout of its slice tensors. */
typedef struct clpsa_multi_shard {
    int head_first; /**< first query head of the slice */
    int heads_q;    /**< query heads of the slice */
    int kv_first;   /**< first kv head of the slice */
    int heads_kv;   /**< kv heads of the slice */
    double weight;  /**< the weight the split used (given, 1, or 1 / timed ms) */
    /** Element strides of the device's slice of Q as clpsa_multi_plan_run_sliced() takes it:
     * contiguous [B, h, N, D] when the whole tensor's heads are outside its tokens (larger head
     * than token stride), else contiguous [B, N, h, D]. The same rule gives the others. */
    clpsa_strides q_strides;
    clpsa_strides k_strides;   /**< of the slice of K */
    clpsa_strides v_strides;   /**< of the slice of V */
    clpsa_strides out_strides; /**< of the slice of the output */
    size_t q_bytes;            /**< smallest buffer of the Q slice, in bytes */
    size_t k_bytes;            /**< of the K slice */
    size_t v_bytes;            /**< of the V slice */
    size_t out_bytes;          /**< of the output slice */
} clpsa_multi_shard;

/** @brief Sets every field of desc to its default (zero). NULL is ignored. Any thread. */
CLPSA_API void clpsa_multi_desc_init(clpsa_multi_desc *desc);

/**
 * @brief Splits groups kv-head groups into parts shares in proportion to weights (NULL:
 * equal), each share at least 1, and writes the group counts into counts (parts entries).
 *
 * Largest-remainder rounding of groups * w_i / sum(w) after giving every part one group, so
 * equal weights give shares that differ by at most one, the larger ones first. Any thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when counts is NULL;
 *         CLPSA_ERROR_INVALID_SHAPE when groups < 1, parts < 1 or parts > groups;
 *         CLPSA_ERROR_INVALID_VALUE for a weight that is not finite or not > 0.
 * The detail is in clpsa_context_last_error(NULL).
 */
CLPSA_API clpsa_status clpsa_split_heads(int groups, int parts, const double *weights, int *counts);

/**
 * @brief Creates one plan per device for its slice of desc's heads and returns them in *out.
 *
 * desc is the whole attention (as for clpsa_plan_create()); its strides describe the whole
 * tensors of clpsa_multi_plan_run(). Allocates the staging buffers the copies need on every
 * device (and host staging for devices of another cl_context than the home device). Blocks
 * while kernels compile and, with timed_weights, while the timing runs. Uses the devices'
 * contexts' threads.
 *
 * On failure *out is NULL and the detail (naming the device index, the bad value and the
 * rule, or a device plan's own last_error) is in clpsa_context_last_error(NULL).
 * @return CLPSA_OK;
 *   CLPSA_ERROR_NULL_ARGUMENT when multi, desc, out, devices or a device's ctx is NULL;
 *   CLPSA_ERROR_INVALID_VALUE for num_devices < 1, home outside [0, num_devices), a weight
 *   that is NaN, infinite or <= 0, weights given with timed_weights, the same context twice,
 *   or a queue of another device than its context's;
 *   CLPSA_ERROR_INVALID_SHAPE for more devices than kv-head groups, or shapes
 *   clpsa_plan_create() rejects;
 *   CLPSA_ERROR_WRONG_CONTEXT when a queue belongs to another cl_context than its ctx;
 *   any status of clpsa_plan_create() on a device.
 */
CLPSA_API clpsa_status clpsa_multi_plan_create(const clpsa_multi_desc *multi,
                                               const clpsa_plan_desc *desc, clpsa_multi_plan **out);
/**
 * @brief Waits for the plan's runs in flight (its host staging and events are in use until
 * then), then destroys the per-device plans and buffers. NULL is a no-op. The devices'
 * contexts stay the caller's and must outlive the plan.
 */
CLPSA_API void clpsa_multi_plan_destroy(clpsa_multi_plan *mp);

/** @brief Detail of the plan's last failure ("" if none, or for NULL). Valid until the next
 * call on mp. */
CLPSA_API const char *clpsa_multi_plan_last_error(const clpsa_multi_plan *mp);
/** @brief Number of devices (0 for NULL). */
CLPSA_API int clpsa_multi_plan_device_count(const clpsa_multi_plan *mp);
/**
 * @brief The slice device index computes, in *out.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when mp or out is NULL;
 *         CLPSA_ERROR_INVALID_VALUE when index is outside [0, device count).
 */
CLPSA_API clpsa_status clpsa_multi_plan_shard(const clpsa_multi_plan *mp, int index,
                                              clpsa_multi_shard *out);
/** @brief The plan of device index (for read-back of its slice: levels, stats, stage times),
 * owned by mp; NULL for NULL or an index out of range. */
CLPSA_API clpsa_plan *clpsa_multi_plan_device_plan(const clpsa_multi_plan *mp, int index);

/**
 * @brief Enqueues the attention of whole tensors q, k, v into out, all buffers of the home
 * device's cl_context laid out by the desc's strides, split over the devices.
 *
 * Each device's commands wait for the wait list (events of the home cl_context) and for the
 * plan's previous run. Never blocks. events, when not NULL, receives one event per device
 * (device count entries, all of the home cl_context, the caller's to release): device i's
 * output slice is in out when its event completes. On failure events are NULL and the output
 * slices of the device that failed (named in last_error) and of the devices after it are not
 * written; the devices before it may have written theirs. Input copies of any device may have
 * been enqueued: they write only the plan's staging buffers, which a later run rewrites.
 * Context's thread for every device.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT for a NULL plan or buffer, or num_events > 0
 *   with a NULL wait_list; CLPSA_ERROR_INVALID_VALUE when out is an input, or wait_list is set
 *   with num_events = 0; CLPSA_ERROR_WRONG_CONTEXT, CLPSA_ERROR_BUFFER_TOO_SMALL for buffers
 *   the home device's clpsa_plan_run() would reject; CLPSA_ERROR_OUT_OF_MEMORY,
 *   CLPSA_ERROR_OPENCL when the driver refuses a command.
 */
CLPSA_API clpsa_status clpsa_multi_plan_run(clpsa_multi_plan *mp, cl_mem q, cl_mem k, cl_mem v,
                                            cl_mem out, cl_uint num_events,
                                            const cl_event *wait_list, cl_event *events);
/**
 * @brief Enqueues every device's slice on its own buffers: q[i], k[i], v[i], out[i] of device
 * i's cl_context, laid out as clpsa_multi_plan_shard() says. No copies.
 *
 * The wait list is given to every device, so with num_events > 0 all devices must share one
 * cl_context. events as in clpsa_multi_plan_run(), device i's event in its own cl_context.
 * @return as clpsa_multi_plan_run(); CLPSA_ERROR_NULL_ARGUMENT also for NULL arrays;
 *   CLPSA_ERROR_WRONG_CONTEXT for a wait list with devices of several cl_contexts.
 */
CLPSA_API clpsa_status clpsa_multi_plan_run_sliced(clpsa_multi_plan *mp, const cl_mem *q,
                                                   const cl_mem *k, const cl_mem *v,
                                                   const cl_mem *out, cl_uint num_events,
                                                   const cl_event *wait_list, cl_event *events);
/**
 * @brief Blocks until every device's queue has finished (clFinish on each).
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT for NULL; CLPSA_ERROR_OPENCL when a clFinish
 *         fails (last_error names the device).
 */
CLPSA_API clpsa_status clpsa_multi_plan_finish(clpsa_multi_plan *mp);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_MULTI_H */
