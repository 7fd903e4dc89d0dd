# The HTML report and the SQLite results history (core/report_html.c,
# core/history.c) and their tests. Included by the top CMakeLists.txt after
# fbcore. SQLite is Debian's libsqlite3-dev (pkg-config module sqlite3).
find_package(PkgConfig REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)

target_sources(fbcore PRIVATE ${CMAKE_SOURCE_DIR}/core/report_html.c ${CMAKE_SOURCE_DIR}/core/history.c)
target_link_libraries(fbcore PUBLIC PkgConfig::SQLITE3)

# ---------------------------------------------------------------- tests
# The store itself: schema, migrations, appends, concurrent writers,
# per-repetition figures, tags, a garbage file and a newer schema refused.
add_executable(test_history ${CMAKE_SOURCE_DIR}/tests/test_history.c)
target_link_libraries(test_history PRIVATE fbcore)
add_test(NAME history COMMAND test_history ${CMAKE_BINARY_DIR}/tests/tmp/history)
set_tests_properties(history PROPERTIES TIMEOUT 120)

# slow_ref: cpu_ref with a sleep in each decode, for the regression check.
add_library(slow_ref MODULE ${CMAKE_SOURCE_DIR}/tests/plugins/slow_plugin.c)
target_include_directories(slow_ref PRIVATE ${CMAKE_SOURCE_DIR}/core/include)
target_compile_definitions(slow_ref PRIVATE CPU_REF_PATH="$<TARGET_FILE:cpu_ref>")
target_link_libraries(slow_ref PRIVATE ${CMAKE_DL_LIBS})
set_target_properties(slow_ref PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/slow_plugins)
add_dependencies(slow_ref cpu_ref)
# "wrong": the fault plugin with no fault, whose stand-in arithmetic the
# agreement check calls WRONG (the HTML report greys it out, never ranks it).
add_library(wrong_ref MODULE ${CMAKE_SOURCE_DIR}/tests/plugins/fault_plugin.c)
target_include_directories(wrong_ref PRIVATE ${CMAKE_SOURCE_DIR}/core/include)
target_compile_definitions(wrong_ref PRIVATE FAULT=0 PLUGIN_NAME="wrong")
set_target_properties(wrong_ref PROPERTIES PREFIX "" OUTPUT_NAME wrong LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/slow_plugins)

# The CLI around the store: every run recorded, --no-db, a garbage database
# (warning, report still written), two runs at once, list/show/export/tag,
# compare by tag, trend's chart and its regression check on slow_ref.
add_test(NAME history_cli
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_history_cli.sh $<TARGET_FILE:fairbench> ${CMAKE_BINARY_DIR}/tests/tmp
                 ${CMAKE_SOURCE_DIR}/configs/profiles ${CMAKE_BINARY_DIR}/tests/slow_plugins)
set_tests_properties(history_cli PROPERTIES TIMEOUT 300)

# The HTML report: recomputation, stated differences, the offline rule.
add_test(NAME html_report
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_html_report.sh $<TARGET_FILE:fairbench> ${CMAKE_BINARY_DIR}/tests/tmp
                 ${CMAKE_SOURCE_DIR}/configs/profiles)
set_tests_properties(html_report PROPERTIES TIMEOUT 120)

# The HTML report in headless Chromium: no errors, every chart with its
# series, a screenshot (build/tests/html_report.png). 77 without Chromium
# (outside CI).
add_test(NAME html_browser
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_html_browser.sh $<TARGET_FILE:fairbench> ${CMAKE_BINARY_DIR}/tests/tmp
                 ${CMAKE_SOURCE_DIR}/configs/profiles ${CMAKE_BINARY_DIR}/tests/slow_plugins ${CMAKE_BINARY_DIR}/tests)
set_tests_properties(html_browser PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
