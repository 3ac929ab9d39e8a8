/* SPDX-License-Identifier: Apache-2.0 */
/* The other include order: the program picks OpenCL 1.2 and includes CL/cl.h first; clpsa.h
 * must keep that choice. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clpsa/clpsa.h>

int consumer_cl12_version(void);

int consumer_cl12_version(void) {
    return CL_TARGET_OPENCL_VERSION;
}
