/* dependency.c - a library the missing-dependency test plugin links against,
 * kept out of the run-time search path so that dlopen fails. */
__attribute__((visibility("default"))) int fb_test_dependency_function(void);
__attribute__((visibility("default"))) int fb_test_dependency_function(void) { return 1; }
