# ThreadSanitizer build (-DFB_TSAN=ON, `make tsan`): the core, cpu_ref and
# the test plugins with -fsanitize=thread, and a short ctest, tsan_threads,
# that runs cpu_ref through `fairbench conformance` at 3 threads (the count
# whose uneven split once looked like a race in attention_worker) and at 2.
# Not with FB_SANITIZE: ASan and TSan cannot share a process.
option(FB_TSAN "Build with ThreadSanitizer (the core, cpu_ref, test plugins)" OFF)
if(FB_TSAN)
  if(FB_SANITIZE)
    message(FATAL_ERROR "FB_TSAN and FB_SANITIZE cannot be combined (ThreadSanitizer and AddressSanitizer exclude each other)")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  # Included before the targets exist; generator expressions resolve later.
  add_test(NAME tsan_threads
           COMMAND ${CMAKE_SOURCE_DIR}/tests/test_tsan.sh $<TARGET_FILE:fairbench> $<TARGET_FILE:cpu_ref>
                   ${CMAKE_BINARY_DIR}/tests/tmp)
  set_tests_properties(tsan_threads PROPERTIES TIMEOUT 600)
endif()
