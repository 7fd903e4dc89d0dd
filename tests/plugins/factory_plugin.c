/* factory_plugin.c - one .so that publishes two backends through ABI 1.1's
 * factory, each taking a per-backend option, for the loader's, the main
 * job's and conformance's tests.
 *
 * Both backends are the SDK's worked example (examples/plugin/example_naive.c)
 * under other names; each session is a small wrapper that remembers the
 * options it was given, so effective settings can echo them:
 *
 *   factory_a, factory_b   option `greeting` = any non-empty text (echoed),
 *                          option `rows` = 1..64 (echoed); any other key is
 *                          refused with a sentence naming the known ones.
 *
 * The entry table itself is only a container (no calls of its own). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fb_plugin_entry example_plugin_entry_unused
#include "example_naive.c"
#undef fb_plugin_entry

typedef struct wrapped {
    fb_session *inner;
    char options[256];
} wrapped;

static fb_status f_check_option(const fb_host *host, const char *key, const char *value, char *message, size_t size) {
    (void)host;
    if (strcmp(key, "greeting") == 0) {
        if (value[0]) return FB_OK;
        snprintf(message, size, "greeting must not be empty");
        return FB_ERR_UNSUPPORTED;
    }
    if (strcmp(key, "rows") == 0) {
        char *end;
        long v = strtol(value, &end, 10);
        if (*value && !*end && v >= 1 && v <= 64) return FB_OK;
        snprintf(message, size, "rows must be an integer from 1 to 64, not '%s'", value);
        return FB_ERR_UNSUPPORTED;
    }
    snprintf(message, size, "unknown option '%s' (known: greeting, rows)", key);
    return FB_ERR_INVALID_ARGUMENT;
}

static fb_status f_create(const fb_host *host, const fb_model_view *model, const fb_settings *settings,
                          fb_session **out, char *message, size_t message_size) {
    *out = NULL;
    wrapped *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(message, message_size, "out of memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
    size_t used = 0;
    uint32_t n = settings->struct_size >= offsetof(fb_settings, options) + sizeof settings->options
                     ? settings->n_options : 0;
    for (uint32_t i = 0; i < n; i++) {
        char why[200];
        if (f_check_option(host, settings->options[i].key, settings->options[i].value, why, sizeof why) != FB_OK) {
            snprintf(message, message_size, "%s", why);
            free(w);
            return FB_ERR_INVALID_ARGUMENT;
        }
        if (used < sizeof w->options)
            used += (size_t)snprintf(w->options + used, sizeof w->options - used, "%s%s=%s", used ? ", " : "",
                                     settings->options[i].key, settings->options[i].value);
    }
    fb_status st = example_create(host, model, settings, &w->inner, message, message_size);
    if (st != FB_OK) {
        free(w);
        return st;
    }
    *out = (fb_session *)w;
    return FB_OK;
}

#define INNER(s) (((wrapped *)(void *)(s))->inner)
static fb_status f_prefill(fb_session *s, const int32_t *t, uint32_t n, uint32_t flags, float *logits, int32_t *next) {
    return example_prefill(INNER(s), t, n, flags, logits, next);
}
static fb_status f_decode(fb_session *s, int32_t token, float *logits, int32_t *next) {
    return example_decode(INNER(s), token, logits, next);
}
static fb_status f_reset(fb_session *s) { return example_reset(INNER(s)); }
static fb_status f_memory(fb_session *s, fb_memory_stats *out) { return example_memory(INNER(s), out); }
static fb_status f_effective(fb_session *s, fb_effective_settings *out) {
    fb_status st = example_effective_settings(INNER(s), out);
    if (out->struct_size >= offsetof(fb_effective_settings, options) + sizeof out->options)
        snprintf(out->options, sizeof out->options, "%s", ((wrapped *)(void *)s)->options);
    return st;
}
static const char *f_last_error(fb_session *s) { return s ? example_last_error(INNER(s)) : ""; }
static void f_destroy(fb_session *s) {
    if (!s) return;
    example_destroy(INNER(s));
    free(s);
}

#define BACKEND(NAME)                                                                                              \
    {.abi_major = FB_ABI_MAJOR, .abi_minor = FB_ABI_MINOR, .struct_size = sizeof(fb_plugin),                       \
     .capabilities = FB_CAP_CPU | FB_CAP_PRECISION_F32, .name = NAME, .version = "1.1.0",                         \
     .description = "the SDK example, published by a factory, with options", .probe = example_probe,              \
     .create = f_create, .prefill = f_prefill, .decode = f_decode, .reset = f_reset, .memory = f_memory,          \
     .effective_settings = f_effective, .last_error = f_last_error, .destroy = f_destroy,                         \
     .check_option = f_check_option}
static const fb_plugin backends[] = {BACKEND("factory_a"), BACKEND("factory_b")};

static uint32_t f_count(const fb_host *host) {
    (void)host;
    return sizeof backends / sizeof backends[0];
}
static const fb_plugin *f_get(const fb_host *host, uint32_t i) {
    (void)host;
    return i < f_count(host) ? &backends[i] : NULL;
}

static const fb_plugin container = {.abi_major = FB_ABI_MAJOR, .abi_minor = FB_ABI_MINOR,
                                    .struct_size = sizeof(fb_plugin), .name = "factory",
                                    .version = "1.1.0", .description = "two backends from one .so",
                                    .factory_count = f_count, .factory_get = f_get};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &container; }
