/* conform_broken.c - backends that break one rule of the ABI contract each,
 * for `fairbench conformance`'s tests. Compiled once per defect with
 * -DDEFECT=<n> -DPLUGIN_NAME="conform_<defect>" (tests/CMakeLists.txt).
 *
 * Each is the SDK's worked example (examples/plugin/example_naive.c, which
 * passes every check) with one call wrapped to misbehave, so the check that
 * catches the defect is the only reason it fails:
 *
 *   WRONG_ARGMAX          next token = argmax + 1            prefill_lengths/tiny (and every check that looks)
 *   IGNORES_RESET         reset() keeps the positions         reset
 *   CRASH_UNSUPPORTED     create() with a precision it does not claim dereferences NULL
 *                                                            unsupported_precision
 *   GRAPHS_WHEN_FORBIDDEN claims graphs and reports them on even when not allowed
 *                                                            no_jit_no_graphs
 *   WRONG_PRECISION       reports f16 weights while holding f32  effective_settings
 *   IGNORES_MAX_CONTEXT   allocates and checks the model's n_ctx, not settings.max_context
 *                                                            context_end/gqa
 *   IGNORES_ROPE_FREQS    drops the Llama-3 RoPE factors      prefill_lengths/gqa, decode/gqa
 *   LEAKS_SESSIONS        destroy() frees nothing             create_destroy
 *   HANGS_IN_MEMORY       memory() never returns              memory (time-out)
 *   WRITES_STDOUT         create() prints a line on stdout    create_destroy (and every check)
 *   ABORTS_ON_BAD_TOKEN   asserts token ids instead of refusing them  invalid_token
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The example, with its entry point renamed out of the way. */
#define fb_plugin_entry example_plugin_entry_unused
#include "example_naive.c"
#undef fb_plugin_entry

#define WRONG_ARGMAX 1
#define IGNORES_RESET 2
#define CRASH_UNSUPPORTED 3
#define GRAPHS_WHEN_FORBIDDEN 4
#define WRONG_PRECISION 5
#define IGNORES_MAX_CONTEXT 6
#define IGNORES_ROPE_FREQS 7
#define LEAKS_SESSIONS 8
#define HANGS_IN_MEMORY 9
#define WRITES_STDOUT 10
#define ABORTS_ON_BAD_TOKEN 11

static fb_plugin broken;

static fb_status broken_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                               fb_session **out, char *message, size_t message_size) {
    fb_settings changed = *settings;
    fb_model_view view = *mv;
#if DEFECT == CRASH_UNSUPPORTED
    if (settings->weight_precision != FB_PRECISION_F32) {
        volatile int *null = NULL;
        *null = 1; /* SIGSEGV instead of FB_ERR_UNSUPPORTED */
    }
#elif DEFECT == IGNORES_MAX_CONTEXT
    changed.max_context = 0;
#elif DEFECT == IGNORES_ROPE_FREQS
    view.rope_freqs = NULL;
#elif DEFECT == WRITES_STDOUT
    printf("conform_writes_stdout: loading the model\n");
#endif
    return example_create(host, &view, &changed, out, message, message_size);
}

static fb_status broken_prefill(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits,
                                int32_t *next) {
#if DEFECT == ABORTS_ON_BAD_TOKEN
    for (uint32_t i = 0; tokens && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->c.vocab_size) abort();
#endif
    fb_status st = example_prefill(s, tokens, n, flags, logits, next);
#if DEFECT == WRONG_ARGMAX
    if (st == FB_OK) *next = (*next + 1) % s->c.vocab_size;
#endif
    return st;
}

static fb_status broken_decode(fb_session *s, int32_t token, float *logits, int32_t *next) {
#if DEFECT == ABORTS_ON_BAD_TOKEN
    if (token < 0 || token >= s->c.vocab_size) abort();
#endif
    fb_status st = example_decode(s, token, logits, next);
#if DEFECT == WRONG_ARGMAX
    if (st == FB_OK) *next = (*next + 1) % s->c.vocab_size;
#endif
    return st;
}

static fb_status broken_reset(fb_session *s) {
#if DEFECT == IGNORES_RESET
    (void)s;
    return FB_OK;
#else
    return example_reset(s);
#endif
}

static fb_status broken_memory(fb_session *s, fb_memory_stats *out) {
#if DEFECT == HANGS_IN_MEMORY
    for (;;) sleep(1);
#endif
    return example_memory(s, out);
}

static fb_status broken_effective(fb_session *s, fb_effective_settings *out) {
    fb_status st = example_effective_settings(s, out);
#if DEFECT == GRAPHS_WHEN_FORBIDDEN
    out->graphs = 1;
#elif DEFECT == WRONG_PRECISION
    out->weight_precision = FB_PRECISION_F16;
#endif
    return st;
}

static void broken_destroy(fb_session *s) {
#if DEFECT == LEAKS_SESSIONS
    (void)s;
#else
    example_destroy(s);
#endif
}

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) {
    broken = example_plugin;
    broken.name = PLUGIN_NAME;
    broken.description = "the example with one deliberate defect, for conformance tests";
#if DEFECT == GRAPHS_WHEN_FORBIDDEN
    broken.capabilities |= FB_CAP_GRAPHS;
#endif
    broken.create = broken_create;
    broken.prefill = broken_prefill;
    broken.decode = broken_decode;
    broken.reset = broken_reset;
    broken.memory = broken_memory;
    broken.effective_settings = broken_effective;
    broken.destroy = broken_destroy;
    return &broken;
}
