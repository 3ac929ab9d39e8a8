# SPDX-License-Identifier: Apache-2.0
# Runs cmake/embed_kernels.cmake on kernel files in nested folders and checks the generated
# table: each file named by its path relative to the kernel folder, its size, and distinct C
# identifiers where two paths map to the same one ("a_b.cl" and "a/b.cl").
#   cmake -DEMBED_SCRIPT=cmake/embed_kernels.cmake -DWORK_DIR=dir -P check_embed_kernels.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
set(base "${WORK_DIR}/cl")
set(names "top.cl" "a_b.cl" "a/b.cl" "nvidia/mma_attend.cl" "portable/deep/x.cl")
set(paths "")
foreach(name IN LISTS names)
    file(WRITE "${base}/${name}" "/* ${name} */ kernel void k(void) {}\n")
    list(APPEND paths "${base}/${name}")
endforeach()
set(out "${WORK_DIR}/embedded.c")
execute_process(COMMAND ${CMAKE_COMMAND} -DOUTPUT=${out} -DKERNEL_DIR=${base} "-DSOURCES=${paths}"
                        -P ${EMBED_SCRIPT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "embed_kernels.cmake failed: ${rc}")
endif()
file(READ "${out}" text)
foreach(name IN LISTS names)
    file(SIZE "${base}/${name}" size)
    string(FIND "${text}" "{\"${name}\", " at)
    if(at EQUAL -1)
        message(FATAL_ERROR "no table entry named \"${name}\" in ${out}")
    endif()
    string(REGEX MATCH "{\"${name}\", \\(const char \\*\\)([a-zA-Z0-9_]+), ([0-9]+)}" entry
           "${text}")
    if(NOT CMAKE_MATCH_2 EQUAL size)
        message(FATAL_ERROR "entry \"${name}\" has size ${CMAKE_MATCH_2}, the file ${size}")
    endif()
    list(APPEND idents ${CMAKE_MATCH_1})
endforeach()
list(LENGTH idents count)
list(REMOVE_DUPLICATES idents)
list(LENGTH idents distinct)
if(NOT count EQUAL distinct)
    message(FATAL_ERROR "identifiers collide: ${idents}")
endif()
# A file outside the kernel folder is refused, not given a "../" name.
file(WRITE "${WORK_DIR}/outside.cl" "kernel void k(void) {}\n")
execute_process(COMMAND ${CMAKE_COMMAND} -DOUTPUT=${out} -DKERNEL_DIR=${base}
                        "-DSOURCES=${WORK_DIR}/outside.cl" -P ${EMBED_SCRIPT}
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(rc EQUAL 0)
    message(FATAL_ERROR "embed_kernels.cmake accepted a file outside the kernel folder")
endif()
message(STATUS "embed_kernels: ${count} nested kernel files named by relative path")
