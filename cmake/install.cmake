# SPDX-License-Identifier: Apache-2.0
# Install rules: libraries, headers, the clpsa command, the CMake package (find_package(clpsa)
# gives clpsa::clpsa, plus clpsa::clpsa_static when both libraries are built), the pkg-config
# file, the license, and the Debian package through CPack (cpack -G DEB).
include(CMakePackageConfigHelpers)

set(CLPSA_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/clpsa)
install(TARGETS ${CLPSA_LIBRARY_TARGETS} EXPORT clpsaTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
                NAMELINK_COMPONENT development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/clpsa DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT development FILES_MATCHING PATTERN "*.h")
if(CLPSA_BUILD_TOOLS)
    install(TARGETS clpsa_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
endif()
install(EXPORT clpsaTargets NAMESPACE clpsa:: DESTINATION ${CLPSA_CMAKE_DIR}
        COMPONENT development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/clpsaConfig.cmake.in
    ${PROJECT_BINARY_DIR}/clpsaConfig.cmake INSTALL_DESTINATION ${CLPSA_CMAKE_DIR})
# Before 1.0 the ABI may change between minor versions, so only 0.1.x satisfies a request
# for 0.1.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/clpsaConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/clpsaConfig.cmake
              ${PROJECT_BINARY_DIR}/clpsaConfigVersion.cmake
        DESTINATION ${CLPSA_CMAKE_DIR} COMPONENT development)

# pkg-config: the header includes CL/cl.h, so OpenCL's flags come along. Debian's OpenCL
# packages ship no OpenCL.pc, so the loader is named directly where pkg-config has no module.
find_package(PkgConfig QUIET)
set(CLPSA_PC_REQUIRES "")
set(CLPSA_PC_OPENCL_LIBS "-lOpenCL")
if(PKG_CONFIG_FOUND)
    pkg_check_modules(CLPSA_PC_OPENCL QUIET OpenCL)
    if(CLPSA_PC_OPENCL_FOUND)
        set(CLPSA_PC_REQUIRES "OpenCL")
        set(CLPSA_PC_OPENCL_LIBS "")
    endif()
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(CLPSA_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
    set(CLPSA_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(CLPSA_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
    set(CLPSA_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(CLPSA_PC_PREFIX "@CLPSA_PC_PREFIX@") # filled in at install time, below
configure_file(${PROJECT_SOURCE_DIR}/cmake/clpsa.pc.in ${PROJECT_BINARY_DIR}/clpsa.pc.in.cmake
               @ONLY)
# The prefix is the one given at install time (cmake --install --prefix P), not configure time.
install(CODE "
    file(READ \"${PROJECT_BINARY_DIR}/clpsa.pc.in.cmake\" pc)
    string(REPLACE \"@CLPSA_PC_PREFIX@\" \"\${CMAKE_INSTALL_PREFIX}\" pc \"\${pc}\")
    file(WRITE \"${PROJECT_BINARY_DIR}/clpsa.pc\" \"\${pc}\")
    " COMPONENT development)
install(FILES ${PROJECT_BINARY_DIR}/clpsa.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT development)
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT runtime)

# ---- Debian package: cpack -G DEB in the build folder ----
set(CPACK_PACKAGE_NAME clpsa)
set(CPACK_PACKAGE_VENDOR "clpsa developers")
set(CPACK_PACKAGE_CONTACT "clpsa developers <clpsa@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_LICENSE Apache-2.0)
# dpkg-shlibdeps (dpkg-dev) derives the Depends line from what the binaries link (libc,
# the OpenCL loader, and for the tool CLBlast and libpng); without it the list is written out.
find_program(CLPSA_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(CLPSA_DPKG_SHLIBDEPS)
    set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
    set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6, ocl-icd-libopencl1 | libopencl1")
    if(CLPSA_BUILD_TOOLS)
        string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libclblast1, libpng16-16")
    endif()
endif()
# A device to run on: PoCL on any CPU, or a GPU vendor's ICD.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "pocl-opencl-icd | opencl-icd")
include(CPack)
