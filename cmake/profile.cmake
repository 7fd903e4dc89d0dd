# Fairness profiles (core/profile.c, configs/profiles/*.ini) and their test.
# Included by the top CMakeLists.txt after fbcore. The INI reader is inih
# (Debian: libinih-dev, pkg-config module inih).
find_package(PkgConfig REQUIRED)
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)

target_sources(fbcore PRIVATE ${CMAKE_SOURCE_DIR}/core/profile.c)
target_link_libraries(fbcore PUBLIC PkgConfig::INIH)
# Where `fairbench run PROFILE` looks last: the source tree's profiles.
target_compile_definitions(fbcore PRIVATE FB_SOURCE_PROFILE_DIR="${CMAKE_SOURCE_DIR}/configs/profiles")

# Every malformed-profile message, defaults, overrides, --set, resolve order,
# and every shipped profile parsed. Writes its INI files under tmp/profile.
add_executable(test_profile ${CMAKE_SOURCE_DIR}/tests/test_profile.c)
target_link_libraries(test_profile PRIVATE fbcore)
add_test(NAME profile
         COMMAND test_profile ${CMAKE_BINARY_DIR}/tests/tmp/profile ${CMAKE_SOURCE_DIR}/configs/profiles)
set_tests_properties(profile PROPERTIES TIMEOUT 60)
