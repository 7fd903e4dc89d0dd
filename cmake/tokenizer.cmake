# The tokenizer (core/tokenizer.c) and `fairbench tokenize`, their tests and
# the tokenizer benchmark. Included by the top CMakeLists.txt after fbcore.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

target_sources(fbcore PRIVATE ${CMAKE_SOURCE_DIR}/core/tokenizer.c)
target_link_libraries(fbcore PUBLIC PkgConfig::PCRE2)

set(FB_TOKENIZER_TEST_DIR ${CMAKE_BINARY_DIR}/tests)
set(FB_TOKENIZER_DATA ${CMAKE_SOURCE_DIR}/tests/data/tokenizer)

# Unit tests, golden vectors of the committed vocabularies, round trips, a
# synth tiny model, hostile vocabularies.
add_executable(test_tokenizer ${CMAKE_SOURCE_DIR}/tests/test_tokenizer.c)
target_link_libraries(test_tokenizer PRIVATE fbcore)
set_target_properties(test_tokenizer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${FB_TOKENIZER_TEST_DIR})
add_test(NAME tokenizer
         COMMAND test_tokenizer ${FB_TOKENIZER_DATA} ${FB_TOKENIZER_TEST_DIR}/tmp)
set_tests_properties(tokenizer PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# The same golden check on the real default model (skipped when it is absent).
add_test(NAME tokenizer_real_model
         COMMAND test_tokenizer --real-model ${FB_TOKENIZER_DATA} ${CMAKE_SOURCE_DIR}/scripts/fetch-model.sh)
set_tests_properties(tokenizer_real_model PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# The command line: ids, pieces, --ids, --file, --decode and its errors.
add_test(NAME tokenizer_cli
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_tokenize_cli.sh $<TARGET_FILE:fairbench> ${FB_TOKENIZER_TEST_DIR}/tmp)
set_tests_properties(tokenizer_cli PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

# Benchmark, not a test: bench_tokenizer [MODEL.gguf ...] times 1 MiB of English prose.
add_executable(bench_tokenizer ${CMAKE_SOURCE_DIR}/bench/bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE fbcore)
target_compile_definitions(bench_tokenizer PRIVATE FB_TOKENIZER_DATA="${FB_TOKENIZER_DATA}"
                           FB_FETCH_MODEL="${CMAKE_SOURCE_DIR}/scripts/fetch-model.sh")
