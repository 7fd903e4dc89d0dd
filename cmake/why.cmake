# why.cmake - the profiling pass ("why A beats B", docs/why.md): the trace
# model and analysis, NVML / RAPL / perf_event sampling and the CUPTI loader
# in the core; `fairbench profile`; and, where the CUDA toolkit's CUPTI is
# found, the CUPTI recorder: a shared object of its own that the core
# dlopen()s in a GPU backend's child, so fairbench links nothing of CUDA.
target_sources(fbcore PRIVATE
  core/why/trace.c core/why/analyze.c core/why/energy.c core/why/hwcount.c
  core/why/cupti.c core/why/pass.c core/why/why_text.c)
target_sources(fairbench PRIVATE core/cli/cmd_profile.c)

find_path(FB_CUPTI_INCLUDE_DIR cupti.h
  HINTS ${CUDAToolkit_ROOT} /usr/local/cuda
  PATH_SUFFIXES include extras/CUPTI/include)
find_library(FB_CUPTI_LIBRARY cupti
  HINTS ${CUDAToolkit_ROOT} /usr/local/cuda
  PATH_SUFFIXES lib64 lib extras/CUPTI/lib64)
if(FB_CUPTI_INCLUDE_DIR AND FB_CUPTI_LIBRARY)
  # cupti.h includes cuda.h, which sits in the toolkit's include folder.
  get_filename_component(_fb_cuda_root ${FB_CUPTI_INCLUDE_DIR} DIRECTORY)
  add_library(fb_cupti_recorder MODULE core/why/cupti_recorder.c)
  target_include_directories(fb_cupti_recorder SYSTEM PRIVATE ${FB_CUPTI_INCLUDE_DIR} ${_fb_cuda_root}/include)
  target_link_libraries(fb_cupti_recorder PRIVATE ${FB_CUPTI_LIBRARY} Threads::Threads)
  set_target_properties(fb_cupti_recorder PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib
                        C_VISIBILITY_PRESET hidden)
  target_compile_definitions(fbcore PRIVATE
    FB_CUPTI_RECORDER_PATH="${CMAKE_BINARY_DIR}/lib/fb_cupti_recorder.so")
  add_dependencies(fairbench fb_cupti_recorder)
  # installed beside the plugin folder, not in it (it is no backend)
  install(TARGETS fb_cupti_recorder LIBRARY DESTINATION lib/fairbench)
  message(STATUS "fairbench: CUPTI found (${FB_CUPTI_LIBRARY}); the profiling pass can record GPU kernels")
else()
  message(STATUS "fairbench: no CUPTI found; the profiling pass will say 'not available' for GPU kernels")
endif()
set_source_files_properties(
  core/why/trace.c core/why/analyze.c core/why/energy.c core/why/hwcount.c core/why/cupti.c core/why/pass.c
  core/why/why_text.c core/why/cupti_recorder.c core/cli/cmd_profile.c
  PROPERTIES COMPILE_OPTIONS "-Wshadow;-Wstrict-prototypes;-Wvla;-Wformat=2")
