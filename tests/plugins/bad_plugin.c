/* bad_plugin.c - deliberately broken plugins for the loader's vetting tests.
 * Compiled once per defect with -DDEFECT=<n>; see tests/CMakeLists.txt. */
#include "fairbench/plugin.h"

#define NO_SYMBOL 1
#define RETURNS_NULL 2
#define OTHER_MAJOR 3
#define SMALL_TABLE 4
#define MISSING_CALL 5
#define BAD_NAME 6
#define DUPLICATE 7
#define MISSING_DEPENDENCY 8

#if DEFECT == MISSING_DEPENDENCY
int fb_test_dependency_function(void); /* defined in a library that is not on the path at run time */
#endif

static fb_status probe(const fb_host *h, fb_probe_result *out) {
    (void)h;
    out->available = 1;
#if DEFECT == MISSING_DEPENDENCY
    out->available = fb_test_dependency_function();
#endif
    return FB_OK;
}
static fb_status create(const fb_host *h, const fb_model_view *m, const fb_settings *s, fb_session **out, char *msg,
                        size_t n) {
    (void)h, (void)m, (void)s, (void)msg, (void)n;
    *out = 0;
    return FB_ERR_UNSUPPORTED;
}
static fb_status prefill(fb_session *s, const int32_t *t, uint32_t n, uint32_t f, float *l, int32_t *next) {
    (void)s, (void)t, (void)n, (void)f, (void)l, (void)next;
    return FB_ERR_INTERNAL;
}
__attribute__((unused)) static fb_status decode(fb_session *s, int32_t t, float *l, int32_t *next) {
    (void)s, (void)t, (void)l, (void)next;
    return FB_ERR_INTERNAL;
}
static fb_status reset(fb_session *s) {
    (void)s;
    return FB_OK;
}
static fb_status memory(fb_session *s, fb_memory_stats *m) {
    (void)s, (void)m;
    return FB_OK;
}
static fb_status effective(fb_session *s, fb_effective_settings *e) {
    (void)s, (void)e;
    return FB_OK;
}
static const char *last_error(fb_session *s) {
    (void)s;
    return "";
}
static void destroy(fb_session *s) { (void)s; }

#if DEFECT == RETURNS_NULL
__attribute__((unused))
#endif
static const fb_plugin table = {
#if DEFECT == OTHER_MAJOR
    .abi_major = 2,
#else
    .abi_major = FB_ABI_MAJOR,
#endif
    .abi_minor = FB_ABI_MINOR,
#if DEFECT == SMALL_TABLE
    .struct_size = 24,
#else
    .struct_size = sizeof(fb_plugin),
#endif
#if DEFECT == BAD_NAME
    .name = "Bad-Name",
#elif DEFECT == DUPLICATE
    .name = "twin",
#else
    .name = "bad_" PLUGIN_SUFFIX,
#endif
    .version = "0.0.1",
    .description = "a broken plugin for tests",
    .probe = probe,
    .create = create,
    .prefill = prefill,
#if DEFECT != MISSING_CALL
    .decode = decode,
#endif
    .reset = reset,
    .memory = memory,
    .effective_settings = effective,
    .last_error = last_error,
    .destroy = destroy,
};

#if DEFECT == NO_SYMBOL
FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry_misspelt(void) { return &table; }
#elif DEFECT == RETURNS_NULL
FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return (void *)0; }
#else
FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &table; }
#endif
