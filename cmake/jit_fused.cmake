# jit_fused: the CUDA backend in the style of a JIT framework (kernels
# generated for the model's shapes and compiled by NVRTC at load, fused,
# replayed as one CUDA graph per step), its tests and its place in
# bench_gpu. Included from the top CMakeLists.txt when a CUDA toolkit is
# found (after eager_ops.cmake); builds with no GPU or driver present. No
# nvcc: the plugin is C, and its kernels reach the GPU only through NVRTC.
#
# Targets:
#   jit_fused.so               the plugin, in the build tree's plugin folder
#   jf_template.c (generated)  plugins/jit_fused/jit_fused_kernels.cuh as a C string, embedded in the plugin
#   test_jit_fused_host        shapes, memory plan, conversion, source, cache: no device
#   test_jf_upload             the loading pipeline with host memory as the device: no device
#   bench_jf_load              (a benchmark) the loading pipeline's GB/s on the host
#   test_jit_fused_nvrtc       the generated kernels of a preset's shapes compiled by
#                              NVRTC for sm_80 and sm_90 at f32, f16, bf16: no device
#   test_jit_fused_emulated    the generated kernels run on the CPU against cpu_ref: no device
#   test_jit_fused_prefill_emulated  the tensor-core prefill's kernels, the same way
#   (test_gpu_backend --backend jit_fused: the loader contract and agreement with cpu_ref)

find_package(CUDAToolkit REQUIRED)

# ---------------------------------------------------------------- the embedded kernel template
set(_jf_template_c ${CMAKE_CURRENT_BINARY_DIR}/generated/jf_template.c)
add_custom_command(
  OUTPUT ${_jf_template_c}
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/plugins/jit_fused/jit_fused_kernels.cuh -DOUT=${_jf_template_c}
          -DNAME=jf_kernel_template -P ${CMAKE_SOURCE_DIR}/cmake/embed_text.cmake
  DEPENDS ${CMAKE_SOURCE_DIR}/plugins/jit_fused/jit_fused_kernels.cuh ${CMAKE_SOURCE_DIR}/cmake/embed_text.cmake
  COMMENT "Embedding plugins/jit_fused/jit_fused_kernels.cuh into jit_fused"
  VERBATIM)
# The tensor-core prefill's kernels (jf_prefill.c appends them to the source where they apply).
set(_jf_prefill_c ${CMAKE_CURRENT_BINARY_DIR}/generated/jf_prefill_template.c)
add_custom_command(
  OUTPUT ${_jf_prefill_c}
  COMMAND ${CMAKE_COMMAND} -DIN=${CMAKE_SOURCE_DIR}/plugins/jit_fused/jit_fused_prefill.cuh -DOUT=${_jf_prefill_c}
          -DNAME=jf_prefill_template -P ${CMAKE_SOURCE_DIR}/cmake/embed_text.cmake
  DEPENDS ${CMAKE_SOURCE_DIR}/plugins/jit_fused/jit_fused_prefill.cuh ${CMAKE_SOURCE_DIR}/cmake/embed_text.cmake
  COMMENT "Embedding plugins/jit_fused/jit_fused_prefill.cuh into jit_fused"
  VERBATIM)

# The host half, shared by the plugin and its no-device tests. SHA-256 for
# the cache key is compiled in from core/sha256.c (a leaf with no core
# dependencies): the plugin still links nothing of the core.
add_library(jit_fused_host STATIC
  ${CMAKE_SOURCE_DIR}/plugins/jit_fused/jf_host.c
  ${CMAKE_SOURCE_DIR}/plugins/jit_fused/jf_upload.c
  ${CMAKE_SOURCE_DIR}/plugins/jit_fused/jf_prefill.c
  ${CMAKE_SOURCE_DIR}/core/sha256.c
  ${_jf_template_c}
  ${_jf_prefill_c})
target_include_directories(jit_fused_host
  PUBLIC ${CMAKE_SOURCE_DIR}/plugins/jit_fused ${CMAKE_SOURCE_DIR}/core/include
  PRIVATE ${CMAKE_SOURCE_DIR}/core)
target_link_libraries(jit_fused_host PUBLIC CUDA::nvrtc Threads::Threads m)
# CUDA::nvrtc also names the driver (libcuda), which nothing here calls: gcc's
# default --as-needed drops it, but sanitizer builds turn that default off,
# and a recorded libcuda.so.1 stops the tests from starting without a driver.
target_link_options(jit_fused_host INTERFACE -Wl,--as-needed)
set_target_properties(jit_fused_host PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)

# ---------------------------------------------------------------- the plugin
# cudart is linked statically (its symbols kept local by the version script);
# libnvrtc comes from the machine's CUDA installation; the driver (libcuda) is
# reached at run time through cudaGetDriverEntryPointByVersion, so the .so
# loads where no driver is installed and probe() says why it cannot run.
set(_jf_map ${CMAKE_CURRENT_BINARY_DIR}/jit_fused.map)
file(WRITE ${_jf_map} "{\n  global: fb_plugin_entry;\n  local: *;\n};\n")
add_library(jit_fused MODULE ${CMAKE_SOURCE_DIR}/plugins/jit_fused/jit_fused.c
            ${CMAKE_SOURCE_DIR}/plugins/cuda_common/fb_cuda_common.c)
target_include_directories(jit_fused PRIVATE ${CMAKE_SOURCE_DIR}/core/include ${CMAKE_SOURCE_DIR}/plugins/jit_fused
                           ${CMAKE_SOURCE_DIR}/plugins/cuda_common ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(jit_fused PRIVATE jit_fused_host CUDA::cudart_static m)
set_target_properties(jit_fused PROPERTIES
  PREFIX ""
  LIBRARY_OUTPUT_DIRECTORY ${FB_PLUGIN_BUILD_DIR}
  LINK_DEPENDS ${_jf_map})
# --as-needed: CUDA::cudart_static brings the libcuda stub, which the plugin
# never calls directly; gcc drops it by default, but not under sanitizers,
# and a recorded libcuda.so.1 would make the .so unloadable without a driver.
target_link_options(jit_fused PRIVATE -Wl,--as-needed -Wl,--no-undefined -Wl,--version-script=${_jf_map})
# The bundled plugins this build makes (tests/test_conformance_bundled.sh expects each).
list(APPEND FB_BUNDLED_PLUGINS jit_fused)

# ---------------------------------------------------------------- tests (no device)
add_executable(test_jit_fused_host ${CMAKE_SOURCE_DIR}/tests/test_jit_fused_host.c)
target_include_directories(test_jit_fused_host PRIVATE ${CMAKE_SOURCE_DIR}/core)
target_link_libraries(test_jit_fused_host PRIVATE jit_fused_host fbcore)
add_test(NAME jit_fused_host COMMAND test_jit_fused_host ${CMAKE_BINARY_DIR}/tests/tmp)
set_tests_properties(jit_fused_host PROPERTIES TIMEOUT 300)

# The loading pipeline (jf_upload.c) with host memory as the device: bytes
# against jf_layout_rows, the arena's layout, every error path.
add_executable(test_jf_upload ${CMAKE_SOURCE_DIR}/tests/test_jf_upload.c)
target_include_directories(test_jf_upload PRIVATE ${CMAKE_SOURCE_DIR}/core)
target_link_libraries(test_jf_upload PRIVATE jit_fused_host fbcore)
add_test(NAME jf_upload COMMAND test_jf_upload ${CMAKE_BINARY_DIR}/tests/tmp)
set_tests_properties(jf_upload PROPERTIES TIMEOUT 300)

# One test per model shape, so ctest spreads the compilations over the cores.
add_executable(test_jit_fused_nvrtc ${CMAKE_SOURCE_DIR}/tests/test_jit_fused_nvrtc.c)
target_link_libraries(test_jit_fused_nvrtc PRIVATE jit_fused_host fbcore)
foreach(shape tiny smollm2-135m llama3.2-1b llama3-8b odd-a odd-b)
  add_test(NAME jit_fused_nvrtc_${shape} COMMAND test_jit_fused_nvrtc ${shape})
  set_tests_properties(jit_fused_nvrtc_${shape} PROPERTIES TIMEOUT 600)
endforeach()
# The native kernels (GGUF block formats read in place), per type and a Q4_K_M mix.
# (3-6 minutes of one core: each type compiles in 10-30 s per architecture, a
# 2-kind mix in 30-60 s; not in the sanitizer build, where NVRTC is the same)
if(NOT FB_SANITIZE)
  add_test(NAME jit_fused_nvrtc_native_llama3.2-1b COMMAND test_jit_fused_nvrtc llama3.2-1b native)
  set_tests_properties(jit_fused_nvrtc_native_llama3.2-1b PROPERTIES TIMEOUT 900)
endif()

# The generated kernels run on the CPU (tests/jf_emulate.h: blocks as
# fibers), through the plugin's own weight layout and launch sequence,
# against cpu_ref at f32, f16 and bf16. The host C++ compiler builds them at
# test time, as NVRTC would at load.
find_program(FB_CXX NAMES c++ g++ clang++)
if(NOT FB_CXX)
  set(FB_CXX c++) # the test then says it is skipped
endif()
add_executable(test_jit_fused_emulated ${CMAKE_SOURCE_DIR}/tests/test_jit_fused_emulated.c)
target_link_libraries(test_jit_fused_emulated PRIVATE jit_fused_host fbcore)
add_dependencies(test_jit_fused_emulated cpu_ref)
add_test(NAME jit_fused_emulated
         COMMAND test_jit_fused_emulated ${CMAKE_BINARY_DIR}/tests/tmp ${FB_CXX} ${CMAKE_SOURCE_DIR}/tests)
set_tests_properties(jit_fused_emulated PROPERTIES TIMEOUT 600)
# weight_precision = native: Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K and a Q4_K_M
# mix read in place, against cpu_ref's native path (1e-5, top-1 40/40), and
# three mutations of the block decoding that must each fail.
add_test(NAME jit_fused_emulated_native
         COMMAND test_jit_fused_emulated ${CMAKE_BINARY_DIR}/tests/tmp ${FB_CXX} ${CMAKE_SOURCE_DIR}/tests --native)
set_tests_properties(jit_fused_emulated_native PROPERTIES TIMEOUT 600)

# The tensor-core prefill (jit_fused_prefill.cuh) on the CPU: three odd models
# at f16 (and one at bf16), a 161-token prompt in chunks of 80, against
# cpu_ref (1e-5), decode steps after it; then its mutations, each of which
# must fail (a wrong fragment lane mapping in a GEMM and in attention, no lo
# half, a wrong causal bound, RoPE at the wrong position).
add_executable(test_jit_fused_prefill_emulated ${CMAKE_SOURCE_DIR}/tests/test_jit_fused_prefill_emulated.c)
target_link_libraries(test_jit_fused_prefill_emulated PRIVATE jit_fused_host fbcore)
add_dependencies(test_jit_fused_prefill_emulated cpu_ref)
add_test(NAME jit_fused_prefill_emulated
         COMMAND test_jit_fused_prefill_emulated ${CMAKE_BINARY_DIR}/tests/tmp ${FB_CXX} ${CMAKE_SOURCE_DIR}/tests)
set_tests_properties(jit_fused_prefill_emulated PROPERTIES TIMEOUT 600)
if(NOT FB_SANITIZE)
  add_test(NAME jit_fused_prefill_emulated_mutations
           COMMAND test_jit_fused_prefill_emulated ${CMAKE_BINARY_DIR}/tests/tmp ${FB_CXX} ${CMAKE_SOURCE_DIR}/tests
                   --mutations)
  set_tests_properties(jit_fused_prefill_emulated_mutations PROPERTIES TIMEOUT 600)
endif()

# Through the loader: the no-device contract here; agreement with cpu_ref,
# graphs and the kernel cache where a GPU is (exit 77 without one).
if(TARGET test_gpu_backend)
  add_dependencies(test_gpu_backend jit_fused)
  add_test(NAME jit_fused_no_device
           COMMAND test_gpu_backend --backend jit_fused --no-device ${CMAKE_BINARY_DIR}/tests/tmp)
  set_tests_properties(jit_fused_no_device PROPERTIES TIMEOUT 120)
  add_test(NAME jit_fused_agreement COMMAND test_gpu_backend --backend jit_fused ${CMAKE_BINARY_DIR}/tests/tmp)
  set_tests_properties(jit_fused_agreement PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS gpu)
endif()
# `fairbench plugins` lists it (unavailable here, with CUDA's reason), and the
# .so exports one symbol and records no libcuda.
add_test(NAME jit_fused_plugins
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_cuda_plugin_listing.sh $<TARGET_FILE:fairbench> $<TARGET_FILE:jit_fused>
                 jit_fused gpu,f32,f16,bf16,native,jit,graphs,copy-probe)
set_tests_properties(jit_fused_plugins PROPERTIES TIMEOUT 60)
if(TARGET bench_gpu)
  add_dependencies(bench_gpu jit_fused)
endif()
# Benchmark, not a test: bench_jf_load MODEL.gguf [--precision f16] [--threads N]
# times the loading pipeline on the host (memcpy as the copy), single-threaded
# and the loader before it against the pipeline, in GB/s of file bytes.
add_executable(bench_jf_load ${CMAKE_SOURCE_DIR}/bench/bench_jf_load.c)
target_include_directories(bench_jf_load PRIVATE ${CMAKE_SOURCE_DIR}/core)
target_link_libraries(bench_jf_load PRIVATE jit_fused_host fbcore)
