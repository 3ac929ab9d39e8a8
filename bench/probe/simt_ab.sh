#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of portable-simt kernel trees on the GPU machine: bench/probe/ab_trees.sh with only the fp32
# measurements (dense B1 H12 N16384 D128 with the built-in parameters and, with SIMT_AB_PSA=1,
# the PSA attend on the video 16x32x32 workload), with NVIDIA's register report of each. Usage,
# carrying .gpu, .peers, build-rel and the trees:
#   bash bench/probe/simt_ab.sh TREE...   (default: cl)
. .gpu/env.sh
measure=fp32_dense
[ "${SIMT_AB_PSA:-0}" = 1 ] && measure=fp32_dense,fp32_psa
AB_MEASURE=$measure exec bash bench/probe/ab_trees.sh build-rel "${@:-cl}"
