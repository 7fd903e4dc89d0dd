# cpu_ref's row dot-product kernels (plugins/cpu_ref/dot.c): their test and
# their benchmark. Included from the top CMakeLists.txt, so the targets live
# in the top-level binary directory.
#
# dot.c is compiled into each executable from source, exactly as the plugin
# compiles it: for the baseline ISA, with the AVX2 kernels enabled per
# function by target attributes and chosen at run time.

set(FB_CPU_REF_DOT_SOURCES ${CMAKE_SOURCE_DIR}/plugins/cpu_ref/dot.c)

# Every kernel (scalar and SIMD) against a double reference from the core's
# decoder; links fbcore for quant.h.
add_executable(test_cpu_ref_dot ${CMAKE_SOURCE_DIR}/tests/test_cpu_ref_dot.c ${FB_CPU_REF_DOT_SOURCES})
target_link_libraries(test_cpu_ref_dot PRIVATE fbcore)
add_test(NAME cpu_ref_dot COMMAND test_cpu_ref_dot)
set_tests_properties(cpu_ref_dot PROPERTIES TIMEOUT 300)

# Matrix-vector throughput per type and kernel set (not a test: run by hand,
#   build/bench_cpu_ref_dot [--quick]).
add_executable(bench_cpu_ref_dot ${CMAKE_SOURCE_DIR}/bench/bench_cpu_ref_dot.c ${FB_CPU_REF_DOT_SOURCES})
target_link_libraries(bench_cpu_ref_dot PRIVATE fbcore)
