/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection for test builds only: test_faults links the library's objects with
 * -Wl,--wrap for the host allocators and the OpenCL calls that can fail (fault_inject.c), so
 * every such call from the library, and nothing in the drivers, passes through a counter.
 * Armed with N, the Nth counted call fails (NULL, or CL_OUT_OF_RESOURCES / errcode_ret) and
 * every later one succeeds; disarmed, calls are only counted. */
#ifndef CLPSA_TESTS_FAULT_INJECT_H
#define CLPSA_TESTS_FAULT_INJECT_H

#include <stdbool.h>

/* Counts calls from now on and fails call number `nth` (1-based); 0 fails none. */
void fault_arm(long nth);
/* As fault_arm, counting only the calls of the function `name` (e.g. "clEnqueueNDRangeKernel"). */
void fault_arm_named(const char *name, long nth);
/* Stops counting. */
void fault_disarm(void);
/* Stop and resume counting without resetting the count, so that the test's own OpenCL calls
 * between two calls under test (poisoning, reading back) are neither counted nor failed. */
void fault_pause(void);
void fault_resume(void);
/* Calls counted since the last fault_arm. */
long fault_calls(void);
/* Whether the armed call was reached (and failed). */
bool fault_fired(void);
/* Name of the call that failed ("malloc", "clCreateBuffer", ...), or "" if none did. */
const char *fault_fired_at(void);

/* Between fault_track(true) and fault_track(false), counts the OpenCL objects the code under
 * test creates or retains (and the events it asks for) minus those it releases; starting
 * resets the count. A create-and-destroy cycle that leaks no handle ends at 0. */
void fault_track(bool on);
long fault_live_objects(void);

#endif /* CLPSA_TESTS_FAULT_INJECT_H */
