# eager_ops: the CUDA backend in the style of an eager framework (one
# precompiled kernel per op from plugins/eager_ops/eager_ops_kernels.cu, cuBLAS matmuls), its
# tests and its benchmark. Included from the top CMakeLists.txt when a CUDA
# toolkit is found; builds with no GPU or driver present.
#
# Targets:
#   eager_ops.so            the plugin, in the build tree's plugin folder
#   eager_ops_kernels       the kernels as a static library (plugin and kernel test)
#   test_eager_ops_host     host-side code (shapes, memory plan, weight conversion): no device
#   test_gpu_backend        through the loader: no-device contract, and agreement with cpu_ref
#                           (--backend eager_ops here; jit_fused.cmake adds its own tests)
#   test_eager_ops_kernels  every op against a CPU twin (needs a device)
#   test_eager_ops_kernels_emulated  the same test with the kernels' blocks run on the
#                           CPU (tests/cuda_emulate.h), the GEMMs as loops: no device
#   eager_ops_emulated.so   the whole plugin on that emulation, for test_gpu_backend
#                           --emulated (agreement with cpu_ref, graphs, contract): no device
#   bench_gpu               decode and prefill speed of any backend through the ABI (not a test)

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# A100 (sm_80) and H100 (sm_90) machine code, plus sm_90 PTX for newer GPUs.
set(FB_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures of the CUDA plugins")

# The directory's compile options (-Wall -Wextra, -Werror, sanitizers) are
# gcc's: give them to C sources only, and nvcc its own spelling.
function(fb_cuda_warnings target)
  get_property(_opts DIRECTORY ${CMAKE_SOURCE_DIR} PROPERTY COMPILE_OPTIONS)
  set(_wrapped "")
  foreach(opt IN LISTS _opts)
    list(APPEND _wrapped "$<$<COMPILE_LANGUAGE:C>:${opt}>")
  endforeach()
  set_property(TARGET ${target} PROPERTY COMPILE_OPTIONS ${_wrapped})
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  if(FB_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
  endif()
endfunction()

# ---------------------------------------------------------------- kernels
add_library(eager_ops_kernels STATIC ${CMAKE_SOURCE_DIR}/plugins/eager_ops/eager_ops_kernels.cu)
target_include_directories(eager_ops_kernels PUBLIC ${CMAKE_SOURCE_DIR}/plugins/eager_ops)
set_target_properties(eager_ops_kernels PROPERTIES
  CUDA_ARCHITECTURES "${FB_CUDA_ARCHITECTURES}"
  POSITION_INDEPENDENT_CODE ON
  CUDA_VISIBILITY_PRESET hidden
  CUDA_RUNTIME_LIBRARY Static)
# cudart linked statically: the plugin then needs only the driver (libcuda)
# and cuBLAS from the machine it runs on.
target_link_libraries(eager_ops_kernels PUBLIC CUDA::cublas CUDA::cudart_static)
fb_cuda_warnings(eager_ops_kernels)

# ---------------------------------------------------------------- the plugin
# As fb_plugin() does, plus a version script: the static CUDA runtime's own
# symbols stay local, and fb_plugin_entry is the one dynamic symbol.
set(_eager_map ${CMAKE_CURRENT_BINARY_DIR}/eager_ops.map)
file(WRITE ${_eager_map} "{\n  global: fb_plugin_entry;\n  local: *;\n};\n")
add_library(eager_ops MODULE
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops/eager_ops.c
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops/eager_ops_host.c
  ${CMAKE_SOURCE_DIR}/plugins/cuda_common/fb_cuda_common.c)
target_include_directories(eager_ops PRIVATE ${CMAKE_SOURCE_DIR}/core/include ${CMAKE_SOURCE_DIR}/plugins/eager_ops
                           ${CMAKE_SOURCE_DIR}/plugins/cuda_common)
target_link_libraries(eager_ops PRIVATE eager_ops_kernels m)
set_target_properties(eager_ops PROPERTIES
  PREFIX ""
  LIBRARY_OUTPUT_DIRECTORY ${FB_PLUGIN_BUILD_DIR}
  CUDA_RUNTIME_LIBRARY Static
  LINK_DEPENDS ${_eager_map})
target_link_options(eager_ops PRIVATE -Wl,--no-undefined -Wl,--version-script=${_eager_map})
# The bundled plugins this build makes (tests/test_conformance_bundled.sh expects each).
list(APPEND FB_BUNDLED_PLUGINS eager_ops)

# ---------------------------------------------------------------- tests
# Host-side code with no device: the memory plan, weight conversion, RoPE.
add_executable(test_eager_ops_host
  ${CMAKE_SOURCE_DIR}/tests/test_eager_ops_host.c
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops/eager_ops_host.c)
target_include_directories(test_eager_ops_host PRIVATE ${CMAKE_SOURCE_DIR}/plugins/eager_ops
                           ${CMAKE_SOURCE_DIR}/plugins/eager_ops ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(test_eager_ops_host PRIVATE fbcore)
add_test(NAME eager_ops_host COMMAND test_eager_ops_host)
set_tests_properties(eager_ops_host PROPERTIES TIMEOUT 120)

# Through the real loader (tests/test_gpu_backend.c, shared with jit_fused).
# --no-device: the contract that holds on any machine (probe says why not,
# create refuses with a sentence); without it: agreement with cpu_ref,
# graphs on and off (exit 77 without a device).
add_executable(test_gpu_backend ${CMAKE_SOURCE_DIR}/tests/test_gpu_backend.c)
target_link_libraries(test_gpu_backend PRIVATE fbcore)
add_dependencies(test_gpu_backend eager_ops cpu_ref)
add_test(NAME eager_ops_no_device COMMAND test_gpu_backend --backend eager_ops --no-device ${CMAKE_BINARY_DIR}/tests/tmp)
set_tests_properties(eager_ops_no_device PROPERTIES TIMEOUT 120)
add_test(NAME eager_ops_agreement COMMAND test_gpu_backend --backend eager_ops ${CMAKE_BINARY_DIR}/tests/tmp)
set_tests_properties(eager_ops_agreement PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS gpu)
# The same agreement tests, no device: the plugin built on the CPU emulation (below).
add_test(NAME eager_ops_emulated
         COMMAND test_gpu_backend --backend eager_ops --emulated
                 --plugin ${CMAKE_BINARY_DIR}/tests/emulated/eager_ops_emulated.so ${CMAKE_BINARY_DIR}/tests/tmp)
set_tests_properties(eager_ops_emulated PROPERTIES TIMEOUT 600)

# Every op against its CPU twin on random inputs (exit 77 without a device).
add_executable(test_eager_ops_kernels ${CMAKE_SOURCE_DIR}/tests/test_eager_ops_kernels.c)
target_link_libraries(test_eager_ops_kernels PRIVATE eager_ops_kernels fbcore m)
target_include_directories(test_eager_ops_kernels PRIVATE ${CMAKE_SOURCE_DIR}/plugins/cpu_ref) # blocks.h: the twins
set_target_properties(test_eager_ops_kernels PROPERTIES CUDA_RUNTIME_LIBRARY Static)
add_test(NAME eager_ops_kernels COMMAND test_eager_ops_kernels)
set_tests_properties(eager_ops_kernels PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS gpu)

# The same test with no device: plugins/eager_ops/eager_ops_kernels.cu built as host C++
# (tests/eager_ops_emulated.cc), each launch run block by block as fibers.
# nvcc needs a host C++ compiler, so there is one wherever this file is used.
enable_language(CXX)
add_executable(test_eager_ops_kernels_emulated
  ${CMAKE_SOURCE_DIR}/tests/test_eager_ops_kernels.c
  ${CMAKE_SOURCE_DIR}/tests/eager_ops_emulated.cc)
target_compile_definitions(test_eager_ops_kernels_emulated PRIVATE EO_EMULATE)
target_compile_features(test_eager_ops_kernels_emulated PRIVATE cxx_std_17)
target_include_directories(test_eager_ops_kernels_emulated PRIVATE
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops ${CMAKE_SOURCE_DIR}/plugins/cpu_ref ${CMAKE_SOURCE_DIR}/tests
  ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(test_eager_ops_kernels_emulated PRIVATE fbcore m)
add_test(NAME eager_ops_kernels_emulated COMMAND test_eager_ops_kernels_emulated)
set_tests_properties(eager_ops_kernels_emulated PROPERTIES TIMEOUT 300)

# The whole plugin on the CPU: plugins/eager_ops/*.c unchanged, linked
# against tests/eager_ops_emulated.cc (the kernels as fibers, the runtime
# calls on host memory, stream capture recorded and replayed, the GEMMs as
# loops) instead of the CUDA runtime and cuBLAS. Kept out of the plugin
# folder: fairbench never lists it; test_gpu_backend --plugin loads it.
add_library(eager_ops_emulated MODULE
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops/eager_ops.c
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops/eager_ops_host.c
  ${CMAKE_SOURCE_DIR}/plugins/cuda_common/fb_cuda_common.c
  ${CMAKE_SOURCE_DIR}/tests/eager_ops_emulated.cc)
target_compile_definitions(eager_ops_emulated PRIVATE EO_EMULATE)
target_compile_features(eager_ops_emulated PRIVATE cxx_std_17)
target_include_directories(eager_ops_emulated PRIVATE ${CMAKE_SOURCE_DIR}/core/include
  ${CMAKE_SOURCE_DIR}/plugins/eager_ops ${CMAKE_SOURCE_DIR}/plugins/cuda_common ${CMAKE_SOURCE_DIR}/plugins/eager_ops
  ${CMAKE_SOURCE_DIR}/tests ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(eager_ops_emulated PRIVATE m)
set_target_properties(eager_ops_emulated PROPERTIES
  PREFIX ""
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/emulated
  LINK_DEPENDS ${_eager_map})
target_link_options(eager_ops_emulated PRIVATE -Wl,--no-undefined -Wl,--version-script=${_eager_map})
if(TARGET test_gpu_backend)
  add_dependencies(test_gpu_backend eager_ops_emulated)
endif()
# The plugin author's checks (fairbench conformance) on it: the ABI contract
# of eager_ops, with no device. About 20 s.
add_test(NAME eager_ops_emulated_conformance
         COMMAND fairbench conformance ${CMAKE_BINARY_DIR}/tests/emulated/eager_ops_emulated.so --timeout 240)
set_tests_properties(eager_ops_emulated_conformance PROPERTIES TIMEOUT 600)

# `fairbench plugins` lists eager_ops (unavailable here, with CUDA's reason),
# and the .so exports exactly one dynamic symbol.
add_test(NAME eager_ops_plugins
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_cuda_plugin_listing.sh $<TARGET_FILE:fairbench> $<TARGET_FILE:eager_ops>
                 eager_ops gpu,f32,f16,bf16,graphs,copy-probe)
set_tests_properties(eager_ops_plugins PROPERTIES TIMEOUT 60)

# ---------------------------------------------------------------- benchmark (not a test)
#   bench_gpu MODEL.gguf [--backend A,B] [--precision f16,f32] [--graphs 0,1] [--jit-cache cold,warm] [--tokens N]
#             [--prompt 16,2048] [--prefill-reps N]: a row per prompt length, one session per configuration
add_executable(bench_gpu ${CMAKE_SOURCE_DIR}/bench/bench_gpu.c)
target_link_libraries(bench_gpu PRIVATE fbcore)
add_dependencies(bench_gpu eager_ops cpu_ref)
