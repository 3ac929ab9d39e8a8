/* SPDX-License-Identifier: Apache-2.0 */
/* Turning the PTX of an nvidia-wgmma build into an sm_90a module (see cl/nvidia/nv_wgmma.cl).
 * Pure text work, no OpenCL, so tools and tests can use it on their own. */
#ifndef CLPSA_PTX_SM90A_H
#define CLPSA_PTX_SM90A_H

#include <stddef.h>

/* The marker nv_wgmma.cl writes before each sm_90a-only instruction. */
#define CLPSA__SM90A_MARKER "//clpsa-sm90a:"

/* A new NUL-terminated text: `ptx` (size bytes, no NUL needed) with every marker deleted, the
 * `.target sm_90` line declaring sm_90a and a `.version` below 8.0 raised to 8.0. NULL when the
 * text has no `.target sm_90` line, no marker, or memory runs out; *why then says which. */
char *clpsa__ptx_enable_sm90a(const char *ptx, size_t size, size_t *out_size, const char **why);

#endif
