# python: the bridge plugin that runs backends written in Python (torch,
# tinygrad, numpy_ref, ...), its Python files, its tests. Included from the top
# CMakeLists.txt. The plugin compiles against CPython's limited-API headers
# (python3-dev) and links no libpython: it finds the user's Python at run
# time. Without the headers it is skipped with a message; nothing else in
# fairbench depends on Python.
#
#   python.so                                 the plugin, in the build tree's plugin folder
#   plugins/python/fairbench.py               the Python side of the contract
#   plugins/python/backends/*.py              the shipped backends, one backend each
#   test_python_bridge                        dlopen()s python.so, drives numpy_ref against cpu_ref
#   python_* tests                            tests/test_python_*.sh (see each)

find_package(Python3 3.9 COMPONENTS Interpreter Development.Module)
if(NOT Python3_Development.Module_FOUND)
  message(STATUS "fairbench: no CPython headers (python3-dev); the Python bridge plugin is skipped")
  return()
endif()

fb_plugin(python ${CMAKE_SOURCE_DIR}/plugins/python/python_bridge.c)
# Headers only: every Py* function is looked up with dlsym at run time.
target_include_directories(python SYSTEM PRIVATE ${Python3_INCLUDE_DIRS})
target_link_libraries(python PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)

# The Python files beside the plugin, as the installed layout has them
# (copied at configure time; a changed source re-runs the copy).
set(FB_PYTHON_FILES_DIR ${FB_PLUGIN_BUILD_DIR}/python)
configure_file(${CMAKE_SOURCE_DIR}/plugins/python/fairbench.py ${FB_PYTHON_FILES_DIR}/fairbench.py COPYONLY)
file(GLOB _fb_py_backends ${CMAKE_SOURCE_DIR}/plugins/python/backends/*.py)
foreach(_f IN LISTS _fb_py_backends)
  get_filename_component(_n ${_f} NAME)
  configure_file(${_f} ${FB_PYTHON_FILES_DIR}/backends/${_n} COPYONLY)
endforeach()

install(TARGETS python LIBRARY DESTINATION lib/fairbench/plugins)
install(FILES ${CMAKE_SOURCE_DIR}/plugins/python/fairbench.py DESTINATION lib/fairbench/plugins/python)
install(FILES ${_fb_py_backends} DESTINATION lib/fairbench/plugins/python/backends)

# ---------------------------------------------------------------- tests
# The Python the tests use: one that imports numpy (scripts/setup.sh installs
# python3-numpy); the test skips (77) when none does.
add_executable(test_python_bridge ${CMAKE_SOURCE_DIR}/tests/test_python_bridge.c)
target_link_libraries(test_python_bridge PRIVATE fbcore)
add_dependencies(test_python_bridge python cpu_ref fairbench)
set(_fb_py_env "FAIRBENCH_PYTHON_BACKENDS=${CMAKE_SOURCE_DIR}/plugins/python/test_backends")
add_test(NAME python_bridge
         COMMAND ${CMAKE_SOURCE_DIR}/tests/test_python_bridge.sh $<TARGET_FILE:test_python_bridge>
                 $<TARGET_FILE:fairbench> $<TARGET_FILE:python> ${CMAKE_CURRENT_BINARY_DIR}/tests/tmp)
set_tests_properties(python_bridge PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 ENVIRONMENT "${_fb_py_env}")

# The real frameworks on the CPU, tiny synthetic models (see the script for
# what each installs or skips on).
foreach(_fw tinygrad torch)
  add_test(NAME python_${_fw}
           COMMAND ${CMAKE_SOURCE_DIR}/tests/test_python_frameworks.sh ${_fw} $<TARGET_FILE:test_python_bridge>
                   $<TARGET_FILE:fairbench> $<TARGET_FILE:python> ${CMAKE_CURRENT_BINARY_DIR}/tests/tmp)
  set_tests_properties(python_${_fw} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()
