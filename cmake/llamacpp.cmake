# llamacpp: llama.cpp as a backend, through its public C API (plugins/llamacpp).
# Included from the top CMakeLists.txt.
#
# The plugin compiles against a llama.cpp build's llama.h and loads that
# build's libllama.so at run time with dlopen (nothing links against it):
#   FAIRBENCH_LLAMACPP_DIR   a llama.cpp install (include/llama.h, lib/libllama.so)
#                            or build folder; default: the one scripts/setup-llamacpp.sh
#                            makes (`make llamacpp`), ~/.cache/fairbench/llama.cpp/<version>/cpu
# When none is found the plugin is skipped with one line. At run time
# FAIRBENCH_LLAMACPP_LIB may name another libllama.so of the same llama.cpp
# version (the CUDA build on a GPU machine).
#
# Tests (tests/test_llamacpp*.sh, tests/test_llamacpp.c): conformance at
# native, agreement with cpu_ref at f32 on a synthetic F32 model, the refusal
# sentences, options, and the message when the library is absent.

if(NOT DEFINED FAIRBENCH_LLAMACPP_DIR)
  if(DEFINED ENV{FAIRBENCH_LLAMACPP_DIR} AND NOT "$ENV{FAIRBENCH_LLAMACPP_DIR}" STREQUAL "")
    set(_fb_llamacpp_default "$ENV{FAIRBENCH_LLAMACPP_DIR}")
  else()
    execute_process(COMMAND ${CMAKE_SOURCE_DIR}/scripts/setup-llamacpp.sh --path
                    OUTPUT_VARIABLE _fb_llamacpp_default OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  set(FAIRBENCH_LLAMACPP_DIR "${_fb_llamacpp_default}" CACHE PATH
      "llama.cpp install or build folder for the llamacpp plugin (default: scripts/setup-llamacpp.sh's)")
endif()

unset(FB_LLAMACPP_INCLUDE CACHE)
unset(FB_LLAMACPP_LIBRARY CACHE)
if(FAIRBENCH_LLAMACPP_DIR)
  find_path(FB_LLAMACPP_INCLUDE llama.h PATHS ${FAIRBENCH_LLAMACPP_DIR}/include ${FAIRBENCH_LLAMACPP_DIR}
            NO_DEFAULT_PATH)
  find_library(FB_LLAMACPP_LIBRARY NAMES llama
               PATHS ${FAIRBENCH_LLAMACPP_DIR}/lib ${FAIRBENCH_LLAMACPP_DIR}/lib64 ${FAIRBENCH_LLAMACPP_DIR}/bin
                     ${FAIRBENCH_LLAMACPP_DIR}/src ${FAIRBENCH_LLAMACPP_DIR}
               NO_DEFAULT_PATH)
endif()

if(FB_LLAMACPP_INCLUDE AND FB_LLAMACPP_LIBRARY)
  set(FB_HAVE_LLAMACPP ON)
  # The version the setup script pins (its STAMP), or the folder's name.
  set(_fb_llamacpp_version "unknown")
  if(EXISTS ${FAIRBENCH_LLAMACPP_DIR}/STAMP)
    file(STRINGS ${FAIRBENCH_LLAMACPP_DIR}/STAMP _stamp LIMIT_COUNT 1)
    string(REGEX MATCH "^llama\\.cpp [^ ]+" _fb_llamacpp_version "${_stamp}")
    string(REPLACE "llama.cpp " "" _fb_llamacpp_version "${_fb_llamacpp_version}")
    set(_fb_llamacpp_version "${_fb_llamacpp_version} (llama-cpp-python)")
  endif()
  message(STATUS "fairbench: llama.cpp found (${FB_LLAMACPP_LIBRARY}); the llamacpp plugin will be built")
  fb_plugin(llamacpp plugins/llamacpp/llamacpp.c)
  # llama.h and ggml's headers are another project's: not held to our warnings.
  target_include_directories(llamacpp SYSTEM PRIVATE ${FB_LLAMACPP_INCLUDE})
  target_compile_definitions(llamacpp PRIVATE FB_LLAMACPP_LIB="${FB_LLAMACPP_LIBRARY}"
                             FB_LLAMACPP_VERSION="${_fb_llamacpp_version}")
  target_compile_options(llamacpp PRIVATE -Wshadow -Wstrict-prototypes -Wvla -Wformat=2)
  target_link_libraries(llamacpp PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)

  # ------------------------------------------------------------ tests
  add_executable(test_llamacpp ${CMAKE_SOURCE_DIR}/tests/test_llamacpp.c)
  target_link_libraries(test_llamacpp PRIVATE fbcore)
  add_dependencies(test_llamacpp llamacpp cpu_ref)
  add_test(NAME llamacpp
           COMMAND test_llamacpp ${FB_PLUGIN_BUILD_DIR} ${CMAKE_BINARY_DIR}/tests/tmp)
  add_test(NAME llamacpp_harness
           COMMAND ${CMAKE_SOURCE_DIR}/tests/test_llamacpp.sh $<TARGET_FILE:fairbench> ${FB_PLUGIN_BUILD_DIR}
                   ${CMAKE_BINARY_DIR}/tests/tmp)
  set_tests_properties(llamacpp llamacpp_harness PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
else()
  set(FB_HAVE_LLAMACPP OFF)
  message(STATUS "fairbench: no llama.cpp build in '${FAIRBENCH_LLAMACPP_DIR}'; the llamacpp plugin is skipped "
                 "(make llamacpp, or -DFAIRBENCH_LLAMACPP_DIR=<llama.cpp install>)")
endif()

# Installed beside the bundled plugins (it still loads the libllama.so it was configured with).
if(FB_HAVE_LLAMACPP)
  install(TARGETS llamacpp LIBRARY DESTINATION lib/fairbench/plugins)
endif()
