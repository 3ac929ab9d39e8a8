#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs an MPI program on N local ranks the way CI machines (root, containers, 2 cores, no ssh,
# no network) allow, and passes its exit status on:
#   bash tests/check_mpi.sh path/to/mpiexec N program [args...]
# Open MPI: --allow-run-as-root (CI runs as root), --oversubscribe (more ranks than cores),
# --bind-to none (oversubscribed ranks must not be pinned to one core); the environment picks
# shared memory only (btl self,vader), no single-copy mechanism (CMA needs ptrace, refused in
# many containers), and a launcher agent that is never run for local ranks (plm_rsh_agent
# would otherwise require ssh). PoCL: one compute thread per rank, so N ranks on 2 cores do not
# run 2N threads each. Values already in the environment win.
set -euo pipefail
mpiexec=$1
ranks=$2
shift 2
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader}
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-false}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
export POCL_MAX_PTHREAD_COUNT=${POCL_MAX_PTHREAD_COUNT:-1}
flags=(-np "$ranks")
if "$mpiexec" --version 2>&1 | grep -qi 'open mpi\|open-mpi\|openrte'; then
    flags+=(--oversubscribe --bind-to none)
    [ "$(id -u)" -ne 0 ] || flags+=(--allow-run-as-root)
fi
exec timeout 240 "$mpiexec" "${flags[@]}" "$@"
