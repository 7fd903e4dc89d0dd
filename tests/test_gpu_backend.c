/* test_gpu_backend.c - a CUDA backend (eager_ops or jit_fused) through the
 * real loader.
 *
 *   test_gpu_backend --backend NAME --no-device TMP_DIR
 *       what holds on any machine: the plugin is found, declares its
 *       capabilities truthfully, probe says why it cannot run (or names the
 *       device), create() refuses native weights and non-f32 accumulation
 *       (and, for a JIT backend, a profile that forbids JIT) with a
 *       sentence, and without a device returns FB_ERR_UNAVAILABLE with
 *       CUDA's reason instead of crashing.
 *   test_gpu_backend --backend NAME TMP_DIR [--model FILE.gguf] [--positions N] [--seed N]
 *       needs a CUDA device (exit 77 without one): on a synthetic model of
 *       realistic shape (dim 512, 8 heads / 2 KV heads, ff 1408, 4 layers,
 *       vocab 4096, Llama-3 RoPE) at f32, f16 and bf16, teacher-forced top-1
 *       agreement with cpu_ref at the same precision, for batched prefill,
 *       one-token decode, and decode replayed from CUDA graphs, across a
 *       graph bucket boundary; a Q8_0 model with tied output; the session
 *       contract (context end, bad input, reset, memory, effective settings,
 *       copy bandwidth); for a JIT backend, the kernel cache cold then warm.
 *       With --model, also agreement at f16 on that model over N positions
 *       (default 32).
 * --backend defaults to eager_ops. --option KEY=VALUE (up to 4) passes a
 * per-backend option to every session of the backend under test
 * (jit_fused: decode=kernels checks its per-op decode instead of the
 * persistent step). --plugin FILE.so loads the backend under
 * test from that file instead of finding it by name. --emulated says it is
 * a CPU emulation build (tests/eager_ops_emulated.cc: its kernels run as
 * fibers, its GEMMs as loops): the same tests on a small model (width 64,
 * 4 heads / 2 KV heads of 16, ff 160, 2 layers, vocab 512), and the copy
 * bandwidth, then the host's memmove, need only be positive.
 */
#include <inttypes.h>
#include <time.h>

#include "check.h"
#include "cpu_ref_session.h"
#include "quant.h"
#include "synth.h"

static const fb_plugin *eager, *ref; /* eager: the backend under test, whichever it is */
static bool jit;                     /* it is a JIT backend (jit_fused): declares FB_CAP_JIT, reports a kernel cache */
static char cache_dir[600];          /* its kernel cache, inside TMP_DIR */
static bool emulated;                /* a CPU emulation build: small model, no bandwidth floor */
static fb_option options[4];         /* --option KEY=VALUE: per-backend options of the backend under test */
static uint32_t n_options;
static char option_text[4][2][128];

static fb_session *create(const fb_plugin *api, const test_model *tm, fb_precision precision, int graphs,
                          uint32_t max_context) {
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = precision,
                            .accumulate_precision = FB_PRECISION_F32,
                            .allow_jit = 1,
                            .allow_graphs = graphs,
                            .jit_cache = FB_JIT_CACHE_WARM,
                            .threads = 0,
                            .max_context = max_context,
                            .cache_dir = cache_dir[0] ? cache_dir : NULL,
                            .n_options = api == eager ? n_options : 0,
                            .options = options};
    fb_session *s = NULL;
    char message[512] = "";
    fb_status st = api->create(fb_host_services(), &tm->view.view, &settings, &s, message, sizeof message);
    if (st != FB_OK) printf("%s create failed (%d): %s\n", api->name, (int)st, message);
    return s;
}

static const char *precision_name(fb_precision p) {
    return p == FB_PRECISION_F32 ? "f32" : p == FB_PRECISION_F16 ? "f16" : p == FB_PRECISION_BF16 ? "bf16" : "native";
}

static void random_tokens(int32_t *t, uint32_t n, uint32_t n_vocab, uint64_t *seed) {
    for (uint32_t i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((*seed >> 33) % n_vocab);
    }
}

/* Logits of every position, teacher-forced: the first n_prefill tokens by
 * one prefill (FB_LOGITS_ALL), the rest one decode() at a time. Checks that
 * each call's next token is the argmax of its logits. NULL on failure. */
static float *run_logits(const fb_plugin *api, fb_session *s, const int32_t *tokens, uint32_t n, uint32_t n_prefill,
                         uint32_t n_vocab) {
    float *logits = malloc((size_t)n * n_vocab * sizeof *logits);
    int32_t next = -1;
    int bad_next = 0;
    api->reset(s);
    if (n_prefill && api->prefill(s, tokens, n_prefill, FB_LOGITS_ALL, logits, &next) != FB_OK) {
        printf("  prefill failed: %s\n", api->last_error(s));
        free(logits);
        return NULL;
    }
    if (n_prefill) bad_next += next != argmax_f(logits + (size_t)(n_prefill - 1) * n_vocab, n_vocab);
    for (uint32_t i = n_prefill; i < n; i++) {
        if (api->decode(s, tokens[i], logits + (size_t)i * n_vocab, &next) != FB_OK) {
            printf("  decode at %u failed: %s\n", i, api->last_error(s));
            free(logits);
            return NULL;
        }
        bad_next += next != argmax_f(logits + (size_t)i * n_vocab, n_vocab);
    }
    CHECK(bad_next == 0, "%s: next token is the argmax of the logits (%d mismatches)", api->name, bad_next);
    return logits;
}

/* Top-1 agreement of got with want over n positions. A flip must be near a
 * tie: the reference's margin between the two candidates within twice that
 * position's largest logit difference (random synthetic weights give
 * near-tied logits, where rounding may flip the odd top-1). */
static void agreement(const char *label, const float *got, const float *want, uint32_t n, uint32_t n_vocab,
                      double min_agree, double max_rel) {
    uint32_t agree = 0, unexplained = 0;
    for (uint32_t i = 0; i < n; i++) {
        const float *g = got + (size_t)i * n_vocab, *w = want + (size_t)i * n_vocab;
        int a = argmax_f(g, n_vocab), b = argmax_f(w, n_vocab);
        if (a == b) {
            agree++;
            continue;
        }
        double max_abs = 0;
        for (uint32_t v = 0; v < n_vocab; v++) max_abs = fabs(w[v]) > max_abs ? fabs(w[v]) : max_abs;
        double max_diff = rel_error(g, w, n_vocab) * max_abs, margin = (double)w[b] - (double)w[a];
        printf("    %s position %u: top-1 %d vs cpu_ref %d, cpu_ref margin %.3g, largest difference %.3g\n", label, i,
               a, b, margin, max_diff);
        unexplained += margin > 2 * max_diff;
    }
    double frac = (double)agree / n, rel = rel_error(got, want, (size_t)n * n_vocab);
    printf("  %-44s top-1 %u/%u (%.1f%%), logits relative error %.3g\n", label, agree, n, 100 * frac, rel);
    CHECK(frac >= min_agree && unexplained == 0, "%s: top-1 agreement %.3f (need %.2f), %u flips not near a tie", label,
          frac, min_agree, unexplained);
    CHECK(rel <= max_rel, "%s: logits relative error %.3g (at most %.3g)", label, rel, max_rel);
}

// ----------------------------------------------------------------------------
// No device needed

static void test_no_device(const char *tmp_dir) {
    uint32_t caps = eager->capabilities;
    CHECK((caps & FB_CAP_GPU) && !(caps & FB_CAP_CPU) && (caps & FB_CAP_PRECISION_F32) &&
              (caps & FB_CAP_PRECISION_F16) && (caps & FB_CAP_PRECISION_BF16) &&
              !(caps & FB_CAP_PRECISION_NATIVE) == !jit && (caps & FB_CAP_GRAPHS) && (caps & FB_CAP_COPY_PROBE) &&
              !(caps & FB_CAP_JIT) == !jit && !(caps & FB_CAP_THREADS),
          "capabilities: gpu, f32, f16, bf16, graphs, copy probe%s; not %s threads (0x%x)", jit ? ", jit, native" : "",
          jit ? "" : "native, jit or", caps);
    CHECK(eager->copy_bandwidth != NULL, "copy_bandwidth provided");
    fb_probe_result probe = {.struct_size = sizeof probe};
    CHECK(eager->probe(fb_host_services(), &probe) == FB_OK, "probe returns FB_OK whether or not a GPU is here");
    if (probe.available) printf("  probe: available: %s\n", probe.device);
    else
        printf("  probe: unavailable: %s\n", probe.reason);
    CHECK(probe.available ? probe.device[0] != '\0' : probe.reason[0] != '\0' && !strstr(probe.reason, "unavailable:"),
          "probe names the device or gives CUDA's reason alone: '%s'", probe.available ? probe.device : probe.reason);

    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    char path[512];
    snprintf(path, sizeof path, "%s/%s_no_device.gguf", tmp_dir, eager->name);
    fb_error err;
    CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
    test_model tm;
    if (test_model_open(path, &tm) != 0) return;
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = FB_PRECISION_NATIVE,
                            .accumulate_precision = FB_PRECISION_F32,
                            .allow_jit = 1,
                            .max_context = 16,
                            .cache_dir = cache_dir};
    char message[512] = "";
    fb_session *s = (fb_session *)&settings; /* must be reset to NULL on failure */
    if (!jit)                                /* jit_fused reads the file's block formats (docs/quantized-gpu.md) */
        CHECK(eager->create(fb_host_services(), &tm.view.view, &settings, &s, message, sizeof message) ==
                      FB_ERR_UNSUPPORTED &&
                  s == NULL && strstr(message, "native"),
              "native weights refused: %s", message);
    settings.weight_precision = FB_PRECISION_F16;
    settings.accumulate_precision = FB_PRECISION_F16;
    CHECK(eager->create(fb_host_services(), &tm.view.view, &settings, &s, message, sizeof message) ==
                  FB_ERR_UNSUPPORTED &&
              s == NULL && strstr(message, "f32"),
          "f16 accumulation refused: %s", message);
    settings.accumulate_precision = FB_PRECISION_F32;
    if (jit) {
        settings.allow_jit = 0;
        CHECK(eager->create(fb_host_services(), &tm.view.view, &settings, &s, message, sizeof message) ==
                      FB_ERR_UNSUPPORTED &&
                  s == NULL && strstr(message, "allow_jit"),
              "a profile without JIT refused: %s", message);
        settings.allow_jit = 1;
    }
    message[0] = '\0';
    fb_status st = eager->create(fb_host_services(), &tm.view.view, &settings, &s, message, sizeof message);
    if (!probe.available) {
        printf("  create without a device: status %d: %s\n", (int)st, message);
        CHECK(st == FB_ERR_UNAVAILABLE && s == NULL && strncmp(message, eager->name, strlen(eager->name)) == 0 &&
                  strlen(message) > 30,
              "create without a device is FB_ERR_UNAVAILABLE with a sentence: %d '%s'", (int)st, message);
    } else {
        CHECK(st == FB_OK && s != NULL, "create with a device: %s", message);
        if (s) eager->destroy(s);
    }
    eager->destroy(NULL);
    CHECK(strcmp(eager->last_error(NULL), "") == 0, "last_error(NULL) is empty");
    test_model_close(&tm);
}

// ----------------------------------------------------------------------------
// With a device

/* Per precision: prefill, decode and graph-replayed decode against cpu_ref. */
static void test_precision(const test_model *tm, fb_precision p, const int32_t *tokens, uint32_t n, double min_agree,
                           double max_rel) {
    const uint32_t n_vocab = tm->view.view.n_vocab;
    const char *pn = precision_name(p);
    char label[96];
    fb_session *r = create(ref, tm, p, 0, n + 1);
    float *want = r ? run_logits(ref, r, tokens, n, n, n_vocab) : NULL;
    if (r) ref->destroy(r);
    fb_session *s = create(eager, tm, p, 0, n + 1);
    fb_session *g = create(eager, tm, p, 1, n + 1);
    CHECK(want && s && g, "%s: sessions", pn);
    if (!want || !s || !g) goto done;
    float *prefilled = run_logits(eager, s, tokens, n, n, n_vocab);
    float *decoded = run_logits(eager, s, tokens, n, 1, n_vocab);
    float *graphed = run_logits(eager, g, tokens, n, 1, n_vocab);
    CHECK(prefilled && decoded && graphed, "%s: logits", pn);
    if (prefilled && decoded && graphed) {
        snprintf(label, sizeof label, "%s prefill vs cpu_ref", pn);
        agreement(label, prefilled, want, n, n_vocab, min_agree, max_rel);
        snprintf(label, sizeof label, "%s decode vs cpu_ref", pn);
        agreement(label, decoded, want, n, n_vocab, min_agree, max_rel);
        snprintf(label, sizeof label, "%s decode, CUDA graphs, vs cpu_ref", pn);
        agreement(label, graphed, want, n, n_vocab, min_agree, max_rel);
        double pd = rel_error(decoded, prefilled, (size_t)n * n_vocab),
               gd = rel_error(graphed, decoded, (size_t)n * n_vocab);
        printf("  %s: decode vs prefill relative error %.3g, graphs vs plain decode %.3g\n", pn, pd, gd);
        CHECK(pd <= max_rel, "%s: decode vs prefill %.3g", pn, pd);
        /* At f32 only the attention GEMMs' length differs (extra zero terms); at 16 bits a last-bit
         * difference can flip the rounding of a GEMM input, so the precision's own bound applies. */
        double gd_max = p == FB_PRECISION_F32 ? 1e-4 : max_rel;
        CHECK(gd <= gd_max, "%s: graph replay vs plain launches %.3g (at most %.3g)", pn, gd, gd_max);
        /* reset reproduces the same logits exactly */
        float *again = run_logits(eager, s, tokens, n, n, n_vocab);
        CHECK(again && memcmp(again, prefilled, (size_t)n * n_vocab * sizeof(float)) == 0,
              "%s: reset reproduces logits", pn);
        free(again);
    }
    fb_effective_settings es = {.struct_size = sizeof es}, eg = {.struct_size = sizeof eg};
    eager->effective_settings(s, &es);
    eager->effective_settings(g, &eg);
    CHECK(es.graphs == 0 && eg.graphs == 1 && es.weight_precision == p && eg.weight_precision == p &&
              es.accumulate_precision == FB_PRECISION_F32 && es.jit == jit && es.threads == 0 &&
              (jit ? es.kernel_cache_hit == 0 || es.kernel_cache_hit == 1 : es.kernel_cache_hit == -1),
          "%s: effective settings (graphs %d / %d)", pn, es.graphs, eg.graphs);
    printf("  %s effective: device '%s'; notes '%s'\n", pn, eg.device, eg.notes);
    free(prefilled), free(decoded), free(graphed);
done:
    free(want);
    if (s) eager->destroy(s);
    if (g) eager->destroy(g);
}

/* A long run: chunked prefill (over the 64-position chunk), then decode past
 * the 256-position graph bucket, graphs on and off, against cpu_ref. */
static void test_long(const test_model *tm, const int32_t *tokens, uint32_t n, uint32_t n_prefill) {
    const uint32_t n_vocab = tm->view.view.n_vocab;
    fb_session *r = create(ref, tm, FB_PRECISION_F16, 0, n);
    float *want = r ? run_logits(ref, r, tokens, n, n, n_vocab) : NULL;
    if (r) ref->destroy(r);
    for (int graphs = 0; graphs <= 1 && want; graphs++) {
        fb_session *s = create(eager, tm, FB_PRECISION_F16, graphs, n);
        float *got = s ? run_logits(eager, s, tokens, n, n_prefill, n_vocab) : NULL;
        char label[96];
        snprintf(label, sizeof label, "f16 %u prefilled + %u decoded, graphs %s", n_prefill, n - n_prefill,
                 graphs ? "on" : "off");
        CHECK(got != NULL, "%s: logits", label);
        if (got) agreement(label, got, want, n, n_vocab, 0.95, 3e-2);
        free(got);
        if (s) eager->destroy(s);
    }
    free(want);
}

static void test_contract(const test_model *tm, const int32_t *tokens) {
    fb_session *s = create(eager, tm, FB_PRECISION_F32, 1, 32);
    CHECK(s != NULL, "create f32 with 32 positions");
    if (!s) return;
    int32_t next, next2;
    CHECK(eager->prefill(s, tokens, 24, FB_LOGITS_NONE, NULL, &next) == FB_OK, "prefill 24");
    CHECK(eager->prefill(s, tokens, 9, FB_LOGITS_NONE, NULL, &next2) == FB_ERR_CONTEXT_FULL &&
              strstr(eager->last_error(s), "context"),
          "passing the context end is CONTEXT_FULL: %s", eager->last_error(s));
    CHECK(eager->prefill(s, tokens, 7, FB_LOGITS_NONE, NULL, &next2) == FB_OK, "to one before the end");
    CHECK(eager->decode(s, next2, NULL, &next2) == FB_OK, "the last position by decode (graph)");
    CHECK(eager->decode(s, tokens[0], NULL, &next2) == FB_ERR_CONTEXT_FULL, "one more is not");
    eager->reset(s);
    int32_t bad = (int32_t)tm->view.view.n_vocab;
    CHECK(eager->decode(s, bad, NULL, &next) == FB_ERR_INVALID_ARGUMENT && strstr(eager->last_error(s), "outside"),
          "token id = n_vocab refused: %s", eager->last_error(s));
    CHECK(eager->prefill(s, tokens, 0, FB_LOGITS_NONE, NULL, &next) == FB_ERR_INVALID_ARGUMENT, "zero tokens refused");
    CHECK(eager->prefill(s, tokens, 2, FB_LOGITS_ALL, NULL, &next) == FB_ERR_INVALID_ARGUMENT, "logits without buffer");
    CHECK(eager->decode(s, tokens[0], NULL, &next) == FB_OK, "decode after the refusals");
    fb_memory_stats mem = {.struct_size = sizeof mem};
    CHECK(eager->memory(s, &mem) == FB_OK && mem.device_bytes > 0 && mem.device_peak_bytes >= mem.device_bytes &&
              mem.host_bytes > 0,
          "memory: %" PRIu64 " bytes now, %" PRIu64 " peak, host %" PRIu64, mem.device_bytes, mem.device_peak_bytes,
          mem.host_bytes);
    printf("  memory: device %.1f MiB, peak %.1f MiB, host %.1f KiB\n", mem.device_bytes / 1048576.0,
           mem.device_peak_bytes / 1048576.0, mem.host_bytes / 1024.0);
    double bw = 0;
    CHECK(eager->copy_bandwidth(s, &bw) == FB_OK && bw > (emulated ? 0 : 1e10), "copy bandwidth %.1f GB/s", bw / 1e9);
    printf("  copy bandwidth (read + write): %.1f GB/s\n", bw / 1e9);
    eager->destroy(s);
    /* A device that is not there, in a request that is otherwise valid for
     * this backend (allow_jit on, which a JIT backend needs): the refusal
     * must be for the device. When a request is wrong twice, the backend
     * refuses for the first invalid setting in fb_settings field order
     * (weight precision, accumulation, JIT, graphs, ..., device_index last),
     * which is the order eager_ops and jit_fused check them in. */
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = FB_PRECISION_F32,
                            .accumulate_precision = FB_PRECISION_F32,
                            .allow_jit = 1,
                            .max_context = 16,
                            .device_index = 99};
    char message[512] = "";
    fb_session *none = NULL;
    CHECK(eager->create(fb_host_services(), &tm->view.view, &settings, &none, message, sizeof message) ==
                  FB_ERR_INVALID_ARGUMENT &&
              none == NULL,
          "device_index 99 refused: %s", message);
    CHECK(strstr(message, "device_index 99") != NULL, "the refusal names the device index: %s", message);
}

/* For a JIT backend: a cold cache compiles (and stores), a warm one then
 * hits, and both sessions compute the same logits. */
static void test_jit_cache(const test_model *tm, const int32_t *tokens, uint32_t n) {
    const uint32_t n_vocab = tm->view.view.n_vocab;
    float *logits[2] = {NULL, NULL};
    int hit[2] = {-2, -2};
    double ms[2] = {0, 0};
    for (int warm = 0; warm <= 1; warm++) {
        fb_settings settings = {.struct_size = sizeof settings,
                                .weight_precision = FB_PRECISION_F16,
                                .accumulate_precision = FB_PRECISION_F32,
                                .allow_jit = 1,
                                .allow_graphs = 1,
                                .jit_cache = warm ? FB_JIT_CACHE_WARM : FB_JIT_CACHE_COLD,
                                .max_context = n + 1,
                                .cache_dir = cache_dir};
        fb_session *s = NULL;
        char message[512] = "";
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        fb_status st = eager->create(fb_host_services(), &tm->view.view, &settings, &s, message, sizeof message);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms[warm] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        CHECK(st == FB_OK && s, "jit cache %s: create: %s", warm ? "warm" : "cold", message);
        if (!s) continue;
        fb_effective_settings es = {.struct_size = sizeof es};
        eager->effective_settings(s, &es);
        hit[warm] = es.kernel_cache_hit;
        logits[warm] = run_logits(eager, s, tokens, n, 4, n_vocab);
        printf("  jit cache %s: create %.0f ms, kernel_cache_hit %d; %s\n", warm ? "warm" : "cold", ms[warm],
               es.kernel_cache_hit, es.notes);
        eager->destroy(s);
    }
    CHECK(hit[0] == 0 && hit[1] == 1, "cold cache compiles (hit %d), warm cache then hits (hit %d)", hit[0], hit[1]);
    CHECK(logits[0] && logits[1] && memcmp(logits[0], logits[1], (size_t)n * n_vocab * sizeof(float)) == 0,
          "kernels from the cache compute exactly what freshly compiled ones do");
    free(logits[0]), free(logits[1]);
}

static int write_model(const char *tmp_dir, const char *name, uint32_t type, bool tied, bool llama3, uint64_t seed,
                       test_model *tm) {
    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    if (emulated)
        spec.n_embd = 64, spec.n_head = 4, spec.n_head_kv = 2, spec.n_ff = 160, spec.n_layer = 2, spec.n_vocab = 512;
    else
        spec.n_embd = 512, spec.n_head = 8, spec.n_head_kv = 2, spec.n_ff = 1408, spec.n_layer = 4, spec.n_vocab = 4096;
    spec.n_ctx = 1024;
    spec.type = type, spec.tied_output = tied, spec.llama3_rope = llama3, spec.seed = seed;
    char path[512];
    snprintf(path, sizeof path, "%s/%s%s_%s", tmp_dir, eager->name, emulated ? "_emulated" : "",
             name); /* ctest runs backends side by side */
    fb_error err;
    if (fb_synth_write(&spec, path, NULL, &err) != 0) {
        CHECK(0, "synth %s: %s", name, err.msg);
        return -1;
    }
    return test_model_open(path, tm);
}

/* Agreement at f16 on a given model (the GPU check's llama3.2-1b): tokens
 * are a fixed prompt and the backend's own greedy continuation; both backends
 * are then teacher-forced on them. */
/* The precision of test_model_file: f16, or native (--native: the file's own types). */
static fb_precision file_precision = FB_PRECISION_F16;

static void test_model_file(const char *path, uint32_t n) {
    test_model tm;
    if (test_model_open(path, &tm) != 0) {
        CHECK(0, "open %s", path);
        return;
    }
    const uint32_t n_vocab = tm.view.view.n_vocab;
    int32_t *tokens = malloc(n * sizeof *tokens);
    for (uint32_t i = 0; i < 4 && i < n; i++) tokens[i] = (int32_t)((i * 7919 + 13) % n_vocab);
    fb_session *g = create(eager, &tm, file_precision, 1, n + 1);
    if (g) {
        int32_t next;
        eager->prefill(g, tokens, 4, FB_LOGITS_NONE, NULL, &next);
        for (uint32_t i = 4; i < n; i++) {
            tokens[i] = next;
            eager->decode(g, next, NULL, &next);
        }
    }
    float *got = g ? run_logits(eager, g, tokens, n, 4, n_vocab) : NULL;
    if (g) eager->destroy(g);
    double t0 = (double)clock();
    fb_session *r = create(ref, &tm, file_precision, 0, n + 1);
    float *want = r ? run_logits(ref, r, tokens, n, n, n_vocab) : NULL;
    if (r) ref->destroy(r);
    printf("  cpu_ref on %s: %.1f s of CPU time\n", path, ((double)clock() - t0) / CLOCKS_PER_SEC);
    CHECK(got && want, "%s: logits", path);
    if (got && want) {
        char label[96];
        snprintf(label, sizeof label, "%s %s graphs on", tm.view.view.name[0] ? tm.view.view.name : "model",
                 file_precision == FB_PRECISION_NATIVE ? "native" : "f16");
        if (file_precision == FB_PRECISION_NATIVE) agreement(label, got, want, n, n_vocab, 0.99, 1e-4);
        else
            agreement(label, got, want, n, n_vocab, 0.90, 5e-2);
    }
    free(got), free(want), free(tokens);
    test_model_close(&tm);
}

int main(int argc, char **argv) {
    bool no_device = false;
    const char *tmp_dir = "/tmp", *model = NULL, *backend = "eager_ops", *plugin = NULL;
    uint32_t positions = 32;
    uint64_t seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-device") == 0) no_device = true;
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--positions") == 0 && i + 1 < argc)
            positions = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else if (strcmp(argv[i], "--plugin") == 0 && i + 1 < argc)
            plugin = argv[++i];
        else if (strcmp(argv[i], "--emulated") == 0)
            emulated = true;
        else if (strcmp(argv[i], "--native") == 0)
            file_precision = FB_PRECISION_NATIVE; /* with --model */
        else if (strcmp(argv[i], "--option") == 0 && i + 1 < argc && n_options < 4 && strchr(argv[i + 1], '=')) {
            const char *o = argv[++i], *eq = strchr(o, '=');
            snprintf(option_text[n_options][0], sizeof option_text[0][0], "%.*s", (int)(eq - o), o);
            snprintf(option_text[n_options][1], sizeof option_text[0][1], "%s", eq + 1);
            options[n_options] = (fb_option){option_text[n_options][0], option_text[n_options][1]};
            n_options++;
        } else
            tmp_dir = argv[i];
    }
    printf("test_gpu_backend --backend %s%s%s: seed %" PRIu64 "\n", backend, no_device ? " --no-device" : "",
           emulated ? " --emulated" : "", seed);
    jit = strcmp(backend, "jit_fused") == 0;
    snprintf(cache_dir, sizeof cache_dir, "%s/%s%s-kernel-cache", tmp_dir, backend, emulated ? "-emulated" : "");
    fb_backend_list list;
    fb_backend loaded;
    if (plugin) {
        fb_error err;
        eager = fb_backend_load(plugin, backend, &loaded, NULL, 0) == 0 ? loaded.api : NULL;
        if (!eager) printf("%s: not a usable %s plugin: %s\n", plugin, backend, loaded.reason);
        free(loaded.path); /* the plugin stays loaded, as discovered ones do */
        if (fb_backends_discover(NULL, 0, &list, &err)) {
            printf("plugin discovery failed: %s\n", err.msg);
            return 1;
        }
    } else {
        eager = test_find_backend(&list, backend);
    }
    ref = eager ? fb_backends_find(&list, "cpu_ref") ? fb_backends_find(&list, "cpu_ref")->api : NULL : NULL;
    CHECK(eager != NULL && ref != NULL, "%s and cpu_ref found by the loader", backend);
    if (!eager || !ref) return check_summary();
    if (no_device) {
        test_no_device(tmp_dir);
        fb_backends_free(&list);
        return check_summary();
    }
    fb_probe_result probe = {.struct_size = sizeof probe};
    eager->probe(fb_host_services(), &probe);
    if (!probe.available) {
        fb_backends_free(&list);
        if (emulated) { /* the emulation runs on any CPU: unavailable is a failure, never a skip */
            printf("FAIL test_gpu_backend: the emulated %s says it is unavailable: %s\n", backend, probe.reason);
            return 1;
        }
        printf("test_gpu_backend: skipped, %s unavailable: %s\n", backend, probe.reason);
        return 77;
    }
    printf("  device: %s\n", probe.device);
    if (model) {
        test_model_file(model, positions < 8 ? 8 : positions);
        fb_backends_free(&list);
        return check_summary();
    }
    test_model tm;
    if (write_model(tmp_dir, "gpu_backend_f32.gguf", GGUF_TYPE_F32, false, true, seed, &tm) == 0) {
        const uint32_t n = 64, n_long = 300;
        int32_t *tokens = malloc(n_long * sizeof *tokens);
        uint64_t s = seed;
        random_tokens(tokens, 4, tm.view.view.n_vocab, &s);
        /* the rest: cpu_ref's f32 greedy continuation */
        fb_session *r = create(ref, &tm, FB_PRECISION_F32, 0, n_long);
        int32_t next;
        if (r) {
            ref->prefill(r, tokens, 4, FB_LOGITS_NONE, NULL, &next);
            for (uint32_t i = 4; i < n_long; i++) {
                tokens[i] = next;
                ref->decode(r, next, NULL, &next);
            }
            ref->destroy(r);
        }
        test_contract(&tm, tokens);
        test_precision(&tm, FB_PRECISION_F32, tokens, n, 0.98, 1e-4);
        test_precision(&tm, FB_PRECISION_F16, tokens, n, 0.95, 3e-2);
        test_precision(&tm, FB_PRECISION_BF16, tokens, n, 0.90, 1e-1);
        test_long(&tm, tokens, n_long, 200);
        if (jit) test_jit_cache(&tm, tokens, 16);
        free(tokens);
        test_model_close(&tm);
    }
    if (write_model(tmp_dir, "gpu_backend_q8_0_tied.gguf", GGUF_TYPE_Q8_0, true, false, seed + 1, &tm) == 0) {
        int32_t tokens[64];
        uint64_t s = seed + 1;
        random_tokens(tokens, 64, tm.view.view.n_vocab, &s);
        test_precision(&tm, FB_PRECISION_F16, tokens, 64, 0.95, 3e-2);
        if (jit) test_precision(&tm, FB_PRECISION_NATIVE, tokens, 64, 0.98, 1e-4); /* Q8_0 read in place */
        test_model_close(&tm);
    }
    fb_backends_free(&list);
    return check_summary();
}
