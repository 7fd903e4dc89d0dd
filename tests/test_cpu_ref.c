/* test_cpu_ref.c - cpu_ref through the plugin ABI, on synthetic models:
 * the session contract (errors, reset, context end), batched prefill against
 * one-token decode, thread counts, and the agreement of f16, bf16 and native
 * storage with f32 over 64 teacher-forced positions: top-1, and the largest
 * logit difference relative to the largest |logit|, under a bound per
 * precision.
 *
 *   test_cpu_ref FAIRBENCH_TMP_DIR [MODEL.gguf]
 * With a model path, the agreement check also runs on that model. The seed
 * of the synthetic model and tokens is printed; FAIRBENCH_TEST_SEED=N
 * repeats a run. */
#include <inttypes.h>
#include <time.h>

#include "agreement.h"
#include "check.h"
#include "cpu_ref_session.h"
#include "quant.h"
#include "synth.h"

static const fb_plugin *api;

/* Logits of every position for tokens fed teacher-forced, via prefill. */
static float *all_logits(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t n_vocab) {
    float *logits = malloc((size_t)n * n_vocab * sizeof *logits);
    int32_t next;
    api->reset(s);
    if (api->prefill(s, tokens, n, FB_LOGITS_ALL, logits, &next) != FB_OK) {
        printf("prefill failed: %s\n", api->last_error(s));
        free(logits);
        return NULL;
    }
    return logits;
}

static void random_tokens(int32_t *t, uint32_t n, uint32_t n_vocab, uint64_t *seed) {
    for (uint32_t i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((*seed >> 33) % n_vocab);
    }
}

static void test_contract(const test_model *tm, uint64_t seed) {
    const uint32_t n_vocab = tm->view.view.n_vocab, n = 24;
    fb_session *s = test_create(api, tm, FB_PRECISION_F32, 2, 32);
    CHECK(s != NULL, "create f32");
    if (!s) return;
    int32_t tokens[24], next, next2;
    random_tokens(tokens, n, n_vocab, &seed);

    /* Batched prefill (matrix-matrix) against one token at a time (the decode kernels). */
    float *batched = all_logits(s, tokens, n, n_vocab);
    float *stepped = malloc((size_t)n * n_vocab * sizeof *stepped);
    api->reset(s);
    for (uint32_t i = 0; i < n; i++) CHECK(api->decode(s, tokens[i], stepped + (size_t)i * n_vocab, &next) == FB_OK, "decode");
    double err = rel_error(stepped, batched, (size_t)n * n_vocab);
    CHECK(batched && err < 1e-5, "prefill vs decode relative error %.3g", err);
    CHECK(next == argmax_f(stepped + (size_t)(n - 1) * n_vocab, n_vocab), "decode's next token is the argmax");

    /* Reset gives the same results again. */
    float *again = all_logits(s, tokens, n, n_vocab);
    CHECK(again && memcmp(again, batched, (size_t)n * n_vocab * sizeof(float)) == 0, "reset reproduces logits exactly");

    /* Logits are neither flat nor non-finite. */
    double lo = 1e30, hi = -1e30;
    bool finite = true;
    for (size_t i = 0; batched && i < (size_t)n * n_vocab; i++) {
        finite &= isfinite(batched[i]);
        lo = batched[i] < lo ? batched[i] : lo;
        hi = batched[i] > hi ? batched[i] : hi;
    }
    CHECK(finite && hi - lo > 1.0, "logits finite with spread %.3g", hi - lo);

    /* The context end: 32 positions allocated, 24 used. */
    api->reset(s);
    CHECK(api->prefill(s, tokens, 24, FB_LOGITS_NONE, NULL, &next) == FB_OK, "prefill 24");
    CHECK(api->prefill(s, tokens, 9, FB_LOGITS_NONE, NULL, &next2) == FB_ERR_CONTEXT_FULL &&
              strstr(api->last_error(s), "context"),
          "passing the context end is CONTEXT_FULL: %s", api->last_error(s));
    CHECK(api->prefill(s, tokens, 8, FB_LOGITS_NONE, NULL, &next2) == FB_OK, "exactly to the end is fine");
    CHECK(api->decode(s, tokens[0], NULL, &next2) == FB_ERR_CONTEXT_FULL, "one more is not");

    /* Bad arguments. */
    api->reset(s);
    int32_t bad = (int32_t)n_vocab;
    CHECK(api->decode(s, bad, NULL, &next) == FB_ERR_INVALID_ARGUMENT && strstr(api->last_error(s), "outside"),
          "token id = n_vocab refused: %s", api->last_error(s));
    CHECK(api->prefill(s, tokens, 0, FB_LOGITS_NONE, NULL, &next) == FB_ERR_INVALID_ARGUMENT, "zero tokens refused");
    CHECK(api->prefill(s, tokens, 2, FB_LOGITS_ALL, NULL, &next) == FB_ERR_INVALID_ARGUMENT, "logits without buffer");

    /* Memory and effective settings tell the truth. */
    fb_memory_stats mem = {.struct_size = sizeof mem};
    fb_effective_settings eff = {.struct_size = sizeof eff};
    CHECK(api->memory(s, &mem) == FB_OK && mem.host_bytes > 0 && mem.device_bytes == 0, "memory");
    CHECK(api->effective_settings(s, &eff) == FB_OK && eff.weight_precision == FB_PRECISION_F32 && eff.threads == 2 &&
              eff.jit == 0 && eff.graphs == 0 && eff.accumulate_precision == FB_PRECISION_F32,
          "effective settings");
    api->destroy(s);

    /* One thread gives the same logits up to summation order. */
    fb_session *s1 = test_create(api, tm, FB_PRECISION_F32, 1, 32);
    float *one = s1 ? all_logits(s1, tokens, n, n_vocab) : NULL;
    CHECK(one && rel_error(one, batched, (size_t)n * n_vocab) < 1e-6, "1 thread vs 2 threads");
    if (s1) api->destroy(s1);

    /* Settings it cannot honour are refused, not substituted. */
    fb_settings bad_settings = {.struct_size = sizeof bad_settings, .weight_precision = FB_PRECISION_F32,
                                .accumulate_precision = FB_PRECISION_F16};
    char message[512] = "";
    fb_session *none = NULL;
    CHECK(api->create(fb_host_services(), &tm->view.view, &bad_settings, &none, message, sizeof message) ==
                  FB_ERR_UNSUPPORTED && none == NULL && strstr(message, "f32"),
          "f16 accumulation refused: %s", message);
    free(batched);
    free(stepped);
    free(again);
    free(one);
}

/* Top-1 agreement of each storage precision with f32 over `n` teacher-forced
 * positions: the f32 greedy continuation of a prompt. */
/* Top-1 agreement of each storage precision with f32 over `n` teacher-forced
 * positions (the f32 greedy continuation of a prompt). `min_agree` is the
 * share of positions that must agree at f16 and bf16. Random synthetic
 * weights give near-tied logits, where rounding may flip the odd top-1 (1 in
 * 64 seen at f16 and bf16), so every disagreement must also be explained: the
 * f32 margin between the two candidates must be within twice that position's
 * largest logit difference. Native storage decodes exactly: it must agree
 * everywhere. */
/* Relative error bounds (max |logit diff| / max |f32 logit|) over all
 * positions. Measured (tiny Q8_0 synthetic model, several seeds; SmolLM2
 * Q4_1): f16 0.8e-3 to 1e-3, bf16 5e-3 to 6.4e-3, native 0 (the same
 * dequantised values; summation order may differ). The bounds leave about
 * 4x, and stay inside the main job's bars (agreement.c). */
static double rel_error_bound(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F16: return 4e-3;
    case FB_PRECISION_BF16: return 2.5e-2;
    default: return 1e-5;
    }
}

/* Returns how many precisions were compared (3 when all ran). */
static int test_agreement(const test_model *tm, const char *label, int32_t *prompt, uint32_t n_prompt, uint32_t n,
                          double min_agree) {
    int compared = 0;
    const uint32_t n_vocab = tm->view.view.n_vocab;
    fb_session *ref = test_create(api, tm, FB_PRECISION_F32, 0, n + 1);
    if (!ref) {
        CHECK(0, "%s: create f32", label);
        return 0;
    }
    int32_t *tokens = malloc(n * sizeof *tokens);
    memcpy(tokens, prompt, n_prompt * sizeof *tokens);
    int32_t next;
    api->prefill(ref, tokens, n_prompt, FB_LOGITS_NONE, NULL, &next);
    for (uint32_t i = n_prompt; i < n; i++) {
        tokens[i] = next;
        api->decode(ref, next, NULL, &next);
    }
    float *want = all_logits(ref, tokens, n, n_vocab);
    api->destroy(ref);
    static const struct { fb_precision p; const char *name; } precisions[] = {
        {FB_PRECISION_F16, "f16"}, {FB_PRECISION_BF16, "bf16"}, {FB_PRECISION_NATIVE, "native"}};
    for (size_t k = 0; k < sizeof precisions / sizeof precisions[0]; k++) {
        fb_session *s = test_create(api, tm, precisions[k].p, 0, n + 1);
        float *got = s ? all_logits(s, tokens, n, n_vocab) : NULL;
        if (!got || !want) {
            CHECK(0, "%s %s: no logits", label, precisions[k].name);
        } else {
            uint32_t agree = 0, unexplained = 0;
            for (uint32_t i = 0; i < n; i++) {
                const float *g = got + (size_t)i * n_vocab, *w = want + (size_t)i * n_vocab;
                int a = argmax_f(g, n_vocab), b = argmax_f(w, n_vocab);
                if (a == b) {
                    agree++;
                    continue;
                }
                double max_diff = rel_error(g, w, n_vocab), max_abs = 0;
                for (uint32_t v = 0; v < n_vocab; v++) max_abs = fabs(w[v]) > max_abs ? fabs(w[v]) : max_abs;
                max_diff *= max_abs;
                double margin = (double)w[b] - (double)w[a];
                printf("  %s %s position %u: top-1 %d vs f32 %d, f32 margin %.3g, largest difference %.3g\n", label,
                       precisions[k].name, i, a, b, margin, max_diff);
                unexplained += margin > 2 * max_diff;
            }
            double frac = (double)agree / n, rel = rel_error(got, want, (size_t)n * n_vocab);
            printf("  %s: %s top-1 agreement with f32 %u/%u (%.1f%%), relative error %.3g\n", label,
                   precisions[k].name, agree, n, 100 * frac, rel);
            double bound = rel_error_bound(precisions[k].p);
            CHECK(rel <= bound && bound <= fb_agreement_bar_for(precisions[k].p).max_diff_share,
                  "%s %s relative error of the logits %.3g (bound %.3g, inside the main job's bar %.3g)", label,
                  precisions[k].name, rel, bound, fb_agreement_bar_for(precisions[k].p).max_diff_share);
            compared++;
            double need = precisions[k].p == FB_PRECISION_NATIVE ? 1.0 : min_agree;
            CHECK(frac >= need && unexplained == 0, "%s %s top-1 agreement %.3f (need %.2f), %u flips not near a tie",
                  label, precisions[k].name, frac, need, unexplained);
        }
        free(got);
        if (s) api->destroy(s);
    }
    free(want);
    free(tokens);
    return compared;
}

int main(int argc, char **argv) {
    const char *tmp_dir = argc > 1 ? argv[1] : "/tmp";
    const char *seed_env = getenv("FAIRBENCH_TEST_SEED");
    uint64_t seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    printf("test_cpu_ref: seed %" PRIu64 " (FAIRBENCH_TEST_SEED=%" PRIu64 " repeats this run)\n", seed, seed);
    fb_backend_list list;
    api = test_find_backend(&list, "cpu_ref");
    CHECK(api != NULL, "cpu_ref found by the loader");
    if (!api) return check_summary();

    /* A synthetic model at a quantised type, untied, with Llama-3 RoPE factors. */
    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    spec.seed = seed;
    spec.type = GGUF_TYPE_Q8_0;
    spec.llama3_rope = true;
    char path[512];
    snprintf(path, sizeof path, "%s/cpu_ref_tiny.gguf", tmp_dir);
    fb_error err;
    CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
    test_model tm;
    if (test_model_open(path, &tm) == 0) {
        test_contract(&tm, seed);
        int32_t prompt[4];
        uint64_t s = seed;
        random_tokens(prompt, 4, tm.view.view.n_vocab, &s);
        int compared = test_agreement(&tm, "tiny Q8_0", prompt, 4, 64, 0.95);
        CHECK(compared == 3, "tiny Q8_0: %d of 3 precisions compared with f32", compared);
        test_model_close(&tm);
    }
    FILE *exists = argc > 2 ? fopen(argv[2], "rb") : NULL;
    if (!exists && argc > 2) printf("  %s absent: agreement on the real model not checked\n", argv[2]);
    if (exists) {
        fclose(exists);
        test_model real;
        if (test_model_open(argv[2], &real) == 0) {
            int32_t prompt[] = {504, 3575, 282, 4649, 314}; /* SmolLM2: "The capital of France is" */
            CHECK(real.view.view.n_vocab == 49152, "%s is SmolLM2 (49152 tokens), whose prompt ids this test knows",
                  argv[2]);
            int compared = real.view.view.n_vocab == 49152 ? test_agreement(&real, argv[2], prompt, 5, 64, 0.99) : 0;
            CHECK(compared == 3, "%s: %d of 3 precisions compared with f32", argv[2], compared);
            test_model_close(&real);
        } else {
            CHECK(0, "%s exists but does not open as a model", argv[2]);
        }
    }
    fb_backends_free(&list);
    return check_summary();
}
