/* fault_plugin.c - backends that misbehave on purpose, for the main job's
 * isolation tests: they load and start like a backend, then, from the third
 * decode on, crash (FAULT=1), hang (FAULT=2) or allocate without bound
 * (FAULT=3). Their arithmetic is a stand-in (next token = token + 1), which
 * the agreement check would call wrong; the tests are about the faults. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fairbench/plugin.h"

struct fb_session {
    uint32_t n_vocab, pos, max_pos;
    int decodes;
};

static fb_status probe(const fb_host *h, fb_probe_result *out) {
    (void)h;
    out->available = 1;
    strcpy(out->device, "a deliberately faulty test backend");
    return FB_OK;
}

static fb_status create(const fb_host *h, const fb_model_view *m, const fb_settings *st, fb_session **out, char *msg,
                        size_t n) {
    (void)h, (void)msg, (void)n;
    fb_session *s = calloc(1, sizeof *s);
    if (!s) return FB_ERR_OUT_OF_MEMORY;
    s->n_vocab = m->n_vocab;
    s->max_pos = st->max_context ? st->max_context : m->n_ctx;
    *out = s;
    return FB_OK;
}

static void misbehave(fb_session *s) {
    if (++s->decodes < 3) return;
#if FAULT == 1
    volatile int *null = NULL;
    *null = 1; /* SIGSEGV */
#elif FAULT == 2
    for (;;) sleep(1);
#elif FAULT == 3
    for (;;) { /* never freed, never checked: a leak that takes all it can get */
        char *p = malloc(64u << 20);
        memset(p, 1, 64u << 20);
    }
#endif
}

static fb_status run(fb_session *s, int32_t token, float *logits, int32_t *next) {
    if (logits) memset(logits, 0, s->n_vocab * sizeof *logits);
    *next = (int32_t)(((uint32_t)token + 1) % s->n_vocab);
    s->pos++;
    return FB_OK;
}

static fb_status prefill(fb_session *s, const int32_t *t, uint32_t n, uint32_t flags, float *logits, int32_t *next) {
    for (uint32_t i = 0; i < n; i++)
        run(s, t[i],
            (flags & FB_LOGITS_ALL)                  ? logits + (size_t)i * s->n_vocab
            : (flags & FB_LOGITS_LAST) && i + 1 == n ? logits
                                                     : NULL,
            next);
    return FB_OK;
}

static fb_status decode(fb_session *s, int32_t token, float *logits, int32_t *next) {
    misbehave(s);
    return run(s, token, logits, next);
}

static fb_status reset(fb_session *s) {
    s->pos = 0;
    return FB_OK;
}
static fb_status memory(fb_session *s, fb_memory_stats *m) {
    (void)s;
    m->host_bytes = sizeof *s;
    return FB_OK;
}
static fb_status effective(fb_session *s, fb_effective_settings *e) {
    (void)s;
    e->weight_precision = FB_PRECISION_F32;
    e->accumulate_precision = FB_PRECISION_F32;
    e->threads = 1;
    e->kernel_cache_hit = -1;
    return FB_OK;
}
static const char *last_error(fb_session *s) {
    (void)s;
    return "";
}
static void destroy(fb_session *s) { free(s); }

static const fb_plugin table = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_CPU | FB_CAP_PRECISION_F32,
    .name = PLUGIN_NAME,
    .version = "0.0.1",
    .description = "a faulty backend for tests",
    .probe = probe,
    .create = create,
    .prefill = prefill,
    .decode = decode,
    .reset = reset,
    .memory = memory,
    .effective_settings = effective,
    .last_error = last_error,
    .destroy = destroy,
};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &table; }
