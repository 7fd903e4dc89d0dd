/* test_llamacpp.c - the llamacpp plugin through its table, beside cpu_ref:
 *
 *   options      check_option accepts flash_attn / n_batch / kv_type and
 *                refuses unknown keys and bad values with a sentence; create
 *                applies them and effective_settings echoes them
 *   refusals     f16 and bf16 on an F32 file, f32 on a Q8_0 file, f16
 *                accumulation: FB_ERR_UNSUPPORTED with the sentence that says why
 *   agreement    at f32 on a synthetic F32 model, every position's logits of a
 *                prompt prefilled in batches of 7 (three llama_decode calls),
 *                then teacher-forced decodes, against cpu_ref's f32 logits:
 *                max |difference| within 1e-4 of the largest |logit|, same
 *                argmax; with kv_type = f16 within 1e-2
 *   native       on a Q8_0 synthetic model: llama.cpp's 8-bit activations
 *                move the logits, measured and held to the native bar
 *
 * usage: test_llamacpp PLUGIN_DIR TMP_DIR   (exit 77 when llama.cpp's library
 * is absent: the plugin says so through probe)
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "check.h"
#include "model.h"
#include "plugin_host.h"
#include "synth.h"

#define N_POS 24 /* positions compared: a prompt of 20, then 4 decodes */
#define N_PROMPT 20

typedef struct test_model {
    char path[512];
    fb_model *model;
    fb_model_view_owner view;
} test_model;

static int open_synth(const char *dir, const char *label, uint32_t type, uint64_t seed, test_model *t) {
    fb_synth_spec spec;
    fb_error err;
    fb_synth_preset("tiny", &spec);
    spec.n_ctx = 64;
    spec.type = type;
    spec.seed = seed;
    spec.n_threads = 1;
    snprintf(spec.preset, sizeof spec.preset, "llamacpp-%s", label);
    snprintf(t->path, sizeof t->path, "%s/llamacpp_%s.gguf", dir, label);
    if (fb_synth_write(&spec, t->path, NULL, &err) || fb_model_open(t->path, &t->model, &err) ||
        fb_model_view_build(t->model, &t->view, &err)) {
        printf("cannot make the %s model: %s\n", label, err.msg);
        return -1;
    }
    printf("model %s: %s, seed %llu\n", label, t->path, (unsigned long long)seed);
    return 0;
}

static void close_synth(test_model *t) {
    fb_model_view_free(&t->view);
    fb_model_close(t->model);
}

static fb_settings settings_at(fb_precision p, const fb_option *options, uint32_t n_options) {
    fb_settings s = {.struct_size = sizeof s,
                     .weight_precision = p,
                     .accumulate_precision = FB_PRECISION_F32,
                     .allow_jit = 1,
                     .allow_graphs = 1,
                     .threads = 2,
                     .max_context = 0,
                     .n_options = n_options,
                     .options = options};
    return s;
}

/* Every position's logits of the fixed sequence: prefill N_PROMPT with all
 * logits, then decodes with logits. 0, or -1 with the reason printed. */
static int run_sequence(const fb_plugin *api, const fb_model_view *m, const fb_settings *settings,
                        const int32_t *tokens, float *logits, char *options_seen, size_t options_size, char *notes_seen,
                        size_t notes_size) {
    fb_session *s = NULL;
    char message[512] = "";
    fb_status st = api->create(fb_host_services(), m, settings, &s, message, sizeof message);
    if (st != FB_OK) {
        printf("%s: create failed (%d): %s\n", api->name, (int)st, message);
        return -1;
    }
    int32_t next;
    int rc = 0;
    st = api->prefill(s, tokens, N_PROMPT, FB_LOGITS_ALL, logits, &next);
    for (int p = N_PROMPT; st == FB_OK && p < N_POS; p++)
        st = api->decode(s, tokens[p], logits + (size_t)p * m->n_vocab, &next);
    if (st != FB_OK) {
        printf("%s: a call failed (%d): %s\n", api->name, (int)st, api->last_error(s));
        rc = -1;
    }
    if (options_seen && notes_seen) {
        fb_effective_settings e = {.struct_size = sizeof e};
        options_seen[0] = notes_seen[0] = '\0';
        if (api->effective_settings(s, &e) == FB_OK) {
            snprintf(options_seen, options_size, "%s", e.options);
            snprintf(notes_seen, notes_size, "%s", e.notes);
        }
    }
    api->destroy(s);
    return rc;
}

static int argmax(const float *v, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int)best;
}

/* The largest |difference| as a share of the largest |reference logit|, and
 * how many positions' argmax agree. */
static double compare(const float *got, const float *want, uint32_t n_vocab, int *same_argmax) {
    double max_diff = 0, max_ref = 0;
    *same_argmax = 0;
    for (int p = 0; p < N_POS; p++) {
        const float *g = got + (size_t)p * n_vocab, *w = want + (size_t)p * n_vocab;
        for (uint32_t v = 0; v < n_vocab; v++) {
            double d = fabs((double)g[v] - (double)w[v]);
            if (isnan(d)) { // say whose: a NaN in the reference is not the backend's fault
                printf("NaN in the %s logits at position %d, token %u\n", isnan(w[v]) ? "reference's" : "backend's", p,
                       v);
                return INFINITY;
            }
            if (d > max_diff) max_diff = d;
            if (fabs((double)w[v]) > max_ref) max_ref = fabs((double)w[v]);
        }
        *same_argmax += argmax(g, n_vocab) == argmax(w, n_vocab);
    }
    return max_ref > 0 ? max_diff / max_ref : INFINITY;
}

static void check_options(const fb_plugin *api) {
    static const struct {
        const char *key, *value;
        fb_status want;
        const char *says;
    } cases[] = {
        {"flash_attn", "on", FB_OK, ""},
        {"flash_attn", "off", FB_OK, ""},
        {"n_batch", "1", FB_OK, ""},
        {"n_batch", "8192", FB_OK, ""},
        {"kv_type", "f32", FB_OK, ""},
        {"kv_type", "f16", FB_OK, ""},
        {"flash_atn", "on", FB_ERR_INVALID_ARGUMENT,
         "unknown option 'flash_atn' (known: flash_attn, n_batch, kv_type)"},
        {"flash_attn", "auto", FB_ERR_UNSUPPORTED, "flash_attn = 'auto' is not on or off"},
        {"n_batch", "0", FB_ERR_UNSUPPORTED, "n_batch = '0' is not a whole number from 1 to 8192"},
        {"n_batch", "12x", FB_ERR_UNSUPPORTED, "n_batch = '12x' is not a whole number"},
        {"n_batch", "8193", FB_ERR_UNSUPPORTED, "is not a whole number from 1 to 8192"},
        {"kv_type", "q8_0", FB_ERR_UNSUPPORTED, "kv_type = 'q8_0' is not f32 or f16"},
    };
    CHECK(FB_PLUGIN_HAS(api, check_option) && api->check_option, "the plugin offers no check_option");
    if (!api->check_option) return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[256] = "x";
        fb_status st = api->check_option(fb_host_services(), cases[i].key, cases[i].value, message, sizeof message);
        CHECK(st == cases[i].want, "%s = %s: status %d, expected %d (%s)", cases[i].key, cases[i].value, (int)st,
              (int)cases[i].want, message);
        if (cases[i].want == FB_OK)
            CHECK(message[0] == '\0', "%s = %s accepted with a message '%s'", cases[i].key, cases[i].value, message);
        else
            CHECK(strstr(message, cases[i].says) != NULL, "%s = %s: '%s' does not say '%s'", cases[i].key,
                  cases[i].value, message, cases[i].says);
    }
    printf("check_option: %zu cases\n", sizeof cases / sizeof cases[0]);
}

/* create must refuse with FB_ERR_UNSUPPORTED (or `want`) and a sentence containing `says`. */
static void check_refused(const fb_plugin *api, const fb_model_view *m, const fb_settings *settings, fb_status want,
                          const char *says) {
    fb_session *s = (fb_session *)(uintptr_t)1;
    char message[512] = "";
    fb_status st = api->create(fb_host_services(), m, settings, &s, message, sizeof message);
    CHECK(st == want && s == NULL, "create returned %d (expected %d), session %p: %s", (int)st, (int)want, (void *)s,
          message);
    CHECK(strstr(message, says) != NULL, "the refusal '%s' does not say '%s'", message, says);
    if (st == FB_OK) api->destroy(s);
    printf("refused: %s\n", message);
}

/* The session contract on a model llama.cpp can load (conformance's models
 * rotate part of each head, which llama.cpp's llama architecture refuses):
 * ids outside the vocabulary and a prompt past the context are refused and
 * change nothing; the last position works; reset gives the same logits. */
static void check_contract(const fb_plugin *api, const fb_model_view *m, const int32_t *tokens) {
    enum { CTX = 24 };
    fb_settings st = settings_at(FB_PRECISION_F32, NULL, 0);
    st.max_context = CTX;
    fb_session *s = NULL;
    char message[512] = "";
    if (api->create(fb_host_services(), m, &st, &s, message, sizeof message) != FB_OK) {
        CHECK(0, "create with max_context %d: %s", CTX, message);
        return;
    }
    float *first = malloc(m->n_vocab * sizeof *first), *again = malloc(m->n_vocab * sizeof *again);
    int32_t next = -1, next2 = -1;
    int32_t bad[3] = {tokens[0], (int32_t)m->n_vocab, tokens[1]};
    CHECK(api->prefill(s, bad, 3, FB_LOGITS_LAST, first, &next) == FB_ERR_INVALID_ARGUMENT,
          "prefill with id %u (vocabulary %u) was not refused", m->n_vocab, m->n_vocab);
    CHECK(api->decode(s, -1, NULL, &next) == FB_ERR_INVALID_ARGUMENT, "decode of id -1 was not refused");
    // Refused calls changed nothing: the prompt still starts at position 0.
    CHECK(api->prefill(s, tokens, CTX - 1, FB_LOGITS_LAST, first, &next) == FB_OK, "prefill of %d: %s", CTX - 1,
          api->last_error(s));
    CHECK(api->prefill(s, tokens, 2, FB_LOGITS_NONE, NULL, &next2) == FB_ERR_CONTEXT_FULL,
          "2 tokens past position %d of %d were not FB_ERR_CONTEXT_FULL", CTX - 1, CTX);
    CHECK(api->decode(s, tokens[CTX - 1], again, &next2) == FB_OK, "the last position %d: %s", CTX - 1,
          api->last_error(s));
    CHECK(api->decode(s, tokens[0], NULL, &next2) == FB_ERR_CONTEXT_FULL, "decode past the context was not refused");
    CHECK(api->reset(s) == FB_OK, "reset: %s", api->last_error(s));
    CHECK(api->prefill(s, tokens, CTX - 1, FB_LOGITS_LAST, again, &next2) == FB_OK, "prefill after reset: %s",
          api->last_error(s));
    double max_diff = 0;
    for (uint32_t v = 0; v < m->n_vocab; v++)
        if (fabs((double)first[v] - (double)again[v]) > max_diff) max_diff = fabs((double)first[v] - (double)again[v]);
    CHECK(next == next2 && max_diff <= 1e-5, "after reset: next %d vs %d, max |diff| %.3g", next, next2, max_diff);
    printf("contract: bad ids and a full context refused, last position %d works, reset repeats (max |diff| %.2g)\n",
           CTX - 1, max_diff);
    free(first);
    free(again);
    api->destroy(s);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_llamacpp PLUGIN_DIR TMP_DIR\n");
        return 2;
    }
    const char *dirs[] = {argv[1]};
    fb_backend_list list;
    fb_error err;
    if (fb_backends_discover(dirs, 1, &list, &err)) {
        printf("plugin discovery failed: %s\n", err.msg);
        return 1;
    }
    const fb_backend *lc = fb_backends_find(&list, "llamacpp"), *ref = fb_backends_find(&list, "cpu_ref");
    if (!lc || !ref) {
        printf("llamacpp or cpu_ref is not among the usable plugins in %s\n", argv[1]);
        fb_backends_free(&list);
        return 1;
    }
    fb_probe_result probe = {.struct_size = sizeof probe};
    lc->api->probe(fb_host_services(), &probe);
    if (!probe.available) {
        printf("SKIP: llamacpp is unavailable: %s\n", probe.reason);
        fb_backends_free(&list);
        return 77;
    }
    printf("llamacpp: %s\n", probe.device);

    check_options(lc->api);

    test_model f32m, q8m;
    if (open_synth(argv[2], "f32", 0 /* F32 */, 11, &f32m) || open_synth(argv[2], "q8_0", 8 /* Q8_0 */, 12, &q8m)) {
        fb_backends_free(&list);
        return 1;
    }
    const fb_model_view *m = &f32m.view.view, *mq = &q8m.view.view;

    // ---------------------------------------------------------------- refusals
    fb_settings s16 = settings_at(FB_PRECISION_F16, NULL, 0);
    check_refused(lc->api, m, &s16, FB_ERR_UNSUPPORTED,
                  "weight precision f16 needs a file whose matrices are all F16, but blk.0.attn_q.weight is F32");
    fb_settings sb16 = settings_at(FB_PRECISION_BF16, NULL, 0);
    check_refused(lc->api, m, &sb16, FB_ERR_UNSUPPORTED, "matrices are all BF16, but blk.0.attn_q.weight is F32");
    fb_settings s32q = settings_at(FB_PRECISION_F32, NULL, 0);
    check_refused(lc->api, mq, &s32q, FB_ERR_UNSUPPORTED,
                  "but blk.0.attn_q.weight is Q8_0 (use weight_precision = native)");
    fb_settings acc16 = settings_at(FB_PRECISION_F32, NULL, 0);
    acc16.accumulate_precision = FB_PRECISION_F16;
    check_refused(lc->api, m, &acc16, FB_ERR_UNSUPPORTED, "no setting for f16 accumulation");
    fb_option bad[] = {{"kv_type", "q4_0"}};
    fb_settings sbad = settings_at(FB_PRECISION_F32, bad, 1);
    check_refused(lc->api, m, &sbad, FB_ERR_INVALID_ARGUMENT, "kv_type = 'q4_0' is not f32 or f16");

    // ---------------------------------------------------------------- agreement
    uint32_t seed = 20261127u;
    printf("token seed %u\n", seed);
    int32_t tokens[N_POS];
    for (int i = 0; i < N_POS; i++) {
        seed = seed * 1664525u + 1013904223u;
        tokens[i] = (int32_t)((seed >> 8) % m->n_vocab);
    }
    size_t n_floats = (size_t)N_POS * m->n_vocab;
    float *want = malloc(n_floats * sizeof *want), *got = malloc(n_floats * sizeof *got);
    float *want_q = malloc(n_floats * sizeof *want_q);
    if (!want || !got || !want_q) return 1;
    fb_settings ref32 = settings_at(FB_PRECISION_F32, NULL, 0);
    if (run_sequence(ref->api, m, &ref32, tokens, want, NULL, 0, NULL, 0) ||
        run_sequence(ref->api, mq, &ref32, tokens, want_q, NULL, 0, NULL, 0))
        return 1;

    /* llama.cpp casts an f32 K and V to f16 inside flash attention: that run
     * is held to the f16 bar, and its notes must say so. */
    /* min: an option that rounds K and V to f16 must move the logits at
     * all (above f32's 1e-6), or it never reached llama.cpp. */
    struct {
        const char *label;
        fb_option options[3];
        uint32_t n;
        const char *echo, *note;
        double min, bar;
    } runs[] = {
        {"defaults", {{0}}, 0, "flash_attn=off, n_batch=512, kv_type=f32", "; KV f32;", 0, 1e-4},
        {"n_batch 7", {{"n_batch", "7"}}, 1, "flash_attn=off, n_batch=7, kv_type=f32", "; KV f32;", 0, 1e-4},
        {"flash_attn on",
         {{"flash_attn", "on"}, {"n_batch", "7"}},
         2,
         "flash_attn=on, n_batch=7, kv_type=f32",
         "KV f32, cast to f16 inside flash attention",
         1e-5,
         1e-2},
        {"kv f16",
         {{"kv_type", "f16"}, {"n_batch", "7"}},
         2,
         "flash_attn=off, n_batch=7, kv_type=f16",
         "; KV f16;",
         1e-5,
         1e-2},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        fb_settings st = settings_at(FB_PRECISION_F32, runs[r].options, runs[r].n);
        char echo[256], notes[256];
        for (size_t i = 0; i < n_floats; i++) got[i] = NAN;
        int rc = run_sequence(lc->api, m, &st, tokens, got, echo, sizeof echo, notes, sizeof notes);
        CHECK(rc == 0, "%s: the run failed", runs[r].label);
        if (rc) continue;
        int same;
        double share = compare(got, want, m->n_vocab, &same);
        printf("f32 %-14s max |diff| %.3g of the largest |logit|, argmax %d/%d, options '%s'\n", runs[r].label, share,
               same, N_POS, echo);
        CHECK(share <= runs[r].bar, "%s: max |diff| %.3g of the largest logit is above %.0e", runs[r].label, share,
              runs[r].bar);
        CHECK(share >= runs[r].min, "%s: max |diff| %.3g of the largest logit: the option changed nothing",
              runs[r].label, share);
        CHECK(same == N_POS, "%s: argmax agrees at %d of %d positions", runs[r].label, same, N_POS);
        CHECK(strcmp(echo, runs[r].echo) == 0, "%s: effective options '%s', expected '%s'", runs[r].label, echo,
              runs[r].echo);
        CHECK(strstr(notes, runs[r].note) != NULL && strstr(notes, "8 bits") != NULL,
              "%s: the notes '%s' do not say '%s' and name the 8-bit activations", runs[r].label, notes, runs[r].note);
    }

    check_contract(lc->api, m, tokens);

    // Native on Q8_0: llama.cpp rounds activations to 8 bits; cpu_ref keeps them f32.
    fb_settings native = settings_at(FB_PRECISION_NATIVE, NULL, 0);
    if (run_sequence(lc->api, mq, &native, tokens, got, NULL, 0, NULL, 0) == 0) {
        int same;
        double share = compare(got, want_q, mq->n_vocab, &same);
        printf("native Q8_0 against cpu_ref f32: max |diff| %.3g of the largest |logit|, argmax %d/%d\n", share, same,
               N_POS);
        CHECK(share <= 5e-2, "native Q8_0: max |diff| %.3g of the largest logit is above the native bar 5e-2", share);
    } else {
        CHECK(0, "native on the Q8_0 model failed");
    }

    free(want);
    free(got);
    free(want_q);
    close_synth(&f32m);
    close_synth(&q8m);
    fb_backends_free(&list);
    return check_summary();
}
