# The installed layout and the plugin SDK. Included last by the top
# CMakeLists.txt, so every plugin target configured before it (cpu_ref, and
# the CUDA ones when the toolkit is found) is installed.
#
#   cmake --install build --prefix PREFIX
#
#   PREFIX/bin/fairbench                       finds the two folders below from its own path
#   PREFIX/lib/fairbench/plugins/*.so          the bundled backends
#   PREFIX/share/fairbench/profiles/*.ini      the fairness profiles
#   PREFIX/include/fairbench/plugin.h          the plugin ABI, the one header a backend needs
#   PREFIX/lib/cmake/fairbench/                find_package(fairbench): fairbench::plugin_api,
#                                              fairbench::fairbench, fairbench_add_plugin()
#   PREFIX/lib/pkgconfig/fairbench.pc          pkg-config --cflags fairbench, plugindir
#   PREFIX/share/doc/fairbench/                README.md, PLUGINS.md, docs/forward-pass.md, examples/plugin
#
# The folders are fixed (not GNUInstallDirs' multiarch lib/<triplet>), because
# the binary looks for bin/../lib/fairbench/plugins and
# bin/../share/fairbench/profiles (core/backends.c, core/profile.c).
include(CMakePackageConfigHelpers)

set(FB_INSTALL_BINDIR      bin)
set(FB_INSTALL_PLUGINDIR   lib/fairbench/plugins)
set(FB_INSTALL_PROFILEDIR  share/fairbench/profiles)
set(FB_INSTALL_INCLUDEDIR  include)
set(FB_INSTALL_CMAKEDIR    lib/cmake/fairbench)
set(FB_INSTALL_PKGCONFIGDIR lib/pkgconfig)
set(FB_INSTALL_DOCDIR      share/doc/fairbench)

# The ABI version, read from the header itself so the package cannot drift.
file(STRINGS ${CMAKE_SOURCE_DIR}/core/include/fairbench/plugin.h _fb_abi REGEX "^#define FB_ABI_M(AJ|IN)OR [0-9]+")
string(REGEX REPLACE ".*FB_ABI_MAJOR ([0-9]+).*" "\\1" FB_ABI_MAJOR "${_fb_abi}")
string(REGEX REPLACE ".*FB_ABI_MINOR ([0-9]+).*" "\\1" FB_ABI_MINOR "${_fb_abi}")

# ---------------------------------------------------------------- the plugin API target
# Header only: a plugin links nothing of the core's. In the build tree it is
# the source header; installed, PREFIX/include.
add_library(fb_plugin_api INTERFACE)
target_include_directories(fb_plugin_api INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/core/include>
  $<INSTALL_INTERFACE:${FB_INSTALL_INCLUDEDIR}>)
set_target_properties(fb_plugin_api PROPERTIES EXPORT_NAME plugin_api)
add_library(fairbench::plugin_api ALIAS fb_plugin_api)

# ---------------------------------------------------------------- what is installed
install(TARGETS fairbench EXPORT fairbenchTargets RUNTIME DESTINATION ${FB_INSTALL_BINDIR})
install(TARGETS fb_plugin_api EXPORT fairbenchTargets)
install(FILES ${CMAKE_SOURCE_DIR}/core/include/fairbench/plugin.h DESTINATION ${FB_INSTALL_INCLUDEDIR}/fairbench)

# Every plugin target this configuration has. The CUDA ones link cuBLAS (and
# NVRTC) from the toolkit's folder: where that folder is not one the linker
# searches by default, their installed copies keep it as RUNPATH.
foreach(_plugin IN ITEMS cpu_ref eager_ops jit_fused)
  if(TARGET ${_plugin})
    set_target_properties(${_plugin} PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
    install(TARGETS ${_plugin} LIBRARY DESTINATION ${FB_INSTALL_PLUGINDIR})
    list(APPEND FB_INSTALLED_PLUGINS ${_plugin})
  endif()
endforeach()
message(STATUS "fairbench: cmake --install installs the plugins: ${FB_INSTALLED_PLUGINS}")

file(GLOB _fb_profiles ${CMAKE_SOURCE_DIR}/configs/profiles/*.ini)
install(FILES ${_fb_profiles} DESTINATION ${FB_INSTALL_PROFILEDIR})

install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/PLUGINS.md DESTINATION ${FB_INSTALL_DOCDIR})
# The forward pass a backend computes: PLUGINS.md links it as docs/forward-pass.md.
install(FILES ${CMAKE_SOURCE_DIR}/docs/forward-pass.md DESTINATION ${FB_INSTALL_DOCDIR}/docs)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/plugin DESTINATION ${FB_INSTALL_DOCDIR}/examples
        FILES_MATCHING PATTERN "*.c" PATTERN "*.md" PATTERN "CMakeLists.txt" PATTERN "build*" EXCLUDE)

# ---------------------------------------------------------------- CMake package
# Relocatable: every path in it is relative to where the package file lies.
install(EXPORT fairbenchTargets NAMESPACE fairbench:: DESTINATION ${FB_INSTALL_CMAKEDIR})
configure_package_config_file(
  ${CMAKE_SOURCE_DIR}/cmake/fairbenchConfig.cmake.in
  ${CMAKE_BINARY_DIR}/generated/fairbenchConfig.cmake
  INSTALL_DESTINATION ${FB_INSTALL_CMAKEDIR}
  PATH_VARS FB_INSTALL_INCLUDEDIR FB_INSTALL_PLUGINDIR FB_INSTALL_PROFILEDIR)
# The package version is fairbench's; what a plugin depends on is the ABI,
# which the package states as fairbench_ABI_MAJOR / fairbench_ABI_MINOR.
write_basic_package_version_file(
  ${CMAKE_BINARY_DIR}/generated/fairbenchConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${CMAKE_BINARY_DIR}/generated/fairbenchConfig.cmake
  ${CMAKE_BINARY_DIR}/generated/fairbenchConfigVersion.cmake
  DESTINATION ${FB_INSTALL_CMAKEDIR})

# ---------------------------------------------------------------- pkg-config
configure_file(${CMAKE_SOURCE_DIR}/cmake/fairbench.pc.in ${CMAKE_BINARY_DIR}/generated/fairbench.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/generated/fairbench.pc DESTINATION ${FB_INSTALL_PKGCONFIGDIR})
