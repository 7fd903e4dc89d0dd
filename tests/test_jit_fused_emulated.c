/* test_jit_fused_emulated.c - jit_fused's generated kernels, run on the CPU,
 * against cpu_ref, with no GPU.
 *
 *   test_jit_fused_emulated TMP_DIR CXX INCLUDE_DIR [--seed N]
 *
 * For two synthetic models, at f32, f16 and bf16: one of odd shape (width
 * 90, 5 heads / 1 KV head of 18, ff 250, vocab 1001, 2 layers, Llama-3
 * RoPE, untied, F16: nothing a multiple of the 16-byte vectors, so every
 * padding path runs; at f32 with one attention split, so a lane's online
 * softmax runs over two positions and rescales) and one with many small
 * heads (width 128, 32 heads / 2 KV heads of 4, ff 256, vocab 512, Q8_0,
 * tied: 16 query heads per KV head, attention in two passes of 8, two KV
 * groups):
 * the kernel source the plugin would hand NVRTC is built instead by the host
 * C++ compiler CXX with tests/jf_emulate.h (every block as fibers, warp
 * shuffles and barriers emulated), the weights are converted by the plugin's
 * own jf_convert_rows into its padded layout, and jf_forward (the plugin's
 * own launch sequence) runs: a chunked prefill with logits for every
 * position, then teacher-forced decode steps, then a prefill that asks for
 * the last logits only. Logits must agree with cpu_ref's at the same
 * precision (top-1 and relative error, the bounds the GPU test uses), and
 * every argmax the kernels return must be the argmax of their logits.
 *
 * What this does not check: speed, the CUDA graph, device memory, the
 * driver and NVRTC calls; those need a GPU (scripts/gpu-check.sh). */
#include <inttypes.h>
#include <time.h>

#include "check.h"
#include "cpu_ref_session.h"
#include "jf_emu_host.h"
#include "jf_host.h"
#include "quant.h"
#include "synth.h"

#define N_TOKENS 40  /* teacher-forced positions: attention splits reach 2 positions each */
#define N_PREFILL 11 /* the first ones by prefill: a pass of 8, then one of 3 */
#define LM_GRID 4    /* the LM head's grid-stride loop runs 32 times over 1001 rows */

#define PERSISTENT_GRID 3 /* blocks of the persistent decode step, run at once */

/* As jit_fused_prefill: chunks of c->nb; logits of every position (all) or
 * of the last. Returns the argmax token, or -1. */
static int32_t emu_prefill(jf_emu *e, const jf_config *c, jf_emu_model *h, int pos, const int32_t *tokens, int n,
                           int all, float *logits) {
    for (int done = 0; done < n;) {
        int batch = n - done < c->nb ? n - done : c->nb;
        int last = done + batch == n;
        h->b.step[0] = pos + done;
        memcpy(h->b.step + 1, tokens + done, (size_t)batch * sizeof(int32_t));
        if (jf_forward(c, &h->b, LM_GRID, batch, all ? 0 : batch - 1, all || last, jf_emu_launch_kernel, e) != 0)
            return -1;
        if (all) memcpy(logits + (size_t)done * c->vocab, h->b.logits, (size_t)batch * c->vocab * sizeof(float));
        else if (last)
            memcpy(logits, h->b.logits, (size_t)c->vocab * sizeof(float));
        done += batch;
    }
    return jf_token_of_key(*h->b.argmax_key);
}

typedef struct Env {
    const char *tmp_dir, *cxx, *inc;
    const fb_plugin *ref;
} Env;

/* The bounds of agreement with cpu_ref at the same precision: f32, f16,
 * bf16, native (the file's own types: weights decode to the same f32 values
 * on both sides, so only the order of the sums differs). */
static const char *prec_names[] = {"f32", "f16", "bf16", "native"};
static const double min_agree[] = {1.0, 0.95, 0.90, 1.0}, max_rel[] = {1e-4, 3e-2, 1e-1, 1e-5};

/* Decode step i (teacher-forced token tokens[i]) on the emulated kernels:
 * the persistent step (one launch, PERSISTENT_GRID blocks at once) or the
 * per-op kernels. 0, or -1 with the error in e->error. */
static int emu_decode(jf_emu *e, const jf_config *c, jf_emu_model *h, int i, int32_t token, int persistent) {
    h->b.step[0] = i;
    h->b.step[1] = token;
    return persistent ? jf_decode_persistent(c, &h->b, PERSISTENT_GRID, jf_emu_launch_kernel, e)
                      : jf_forward(c, &h->b, LM_GRID, 1, 0, 1, jf_emu_launch_kernel, e);
}

/* The generated kernels for model tm at precision w against cpu_ref's logits:
 * a prefill with every position's logits, teacher-forced decode steps (the
 * persistent step and the per-op kernels in turn, on one KV cache), a
 * last-only prefill. splits: JF_SPLITS when not 0 (fewer splits: longer
 * runs of positions per lane, where the online softmax rescales). With
 * `mutation` (a JF_MUTATE_* macro): the prefill and persistent decode steps,
 * and the check is that agreement FAILS (JF_MUTATE_WAIT_MORE: that the
 * emulation reports the deadlock). */
static void run_case(const test_model *tm, const char *tag, jf_wtype w, const int32_t *tokens, const Env *env,
                     const char *mutation, int splits) {
    const fb_precision p = w == JF_F32    ? FB_PRECISION_F32
                           : w == JF_F16  ? FB_PRECISION_F16
                           : w == JF_BF16 ? FB_PRECISION_BF16
                                          : FB_PRECISION_NATIVE;
    const char *name = prec_names[w];
    const fb_model_view *mv = &tm->view.view;
    const int n_vocab = (int)mv->n_vocab;
    jf_config c;
    char msg[256];
    CHECK(jf_config_from_view(mv, N_TOKENS + 1, w, &c, msg, sizeof msg) == 0, "config: %s", msg);
    c.pdl = 1; /* the sm_90 source: its launch-dependency instructions are no-ops on the CPU */
    if (splits) c.splits = splits;
    if (!mutation) printf("  %s: attention splits at most %d\n", name, c.splits);
    if (w == JF_NATIVE) printf("  %d kind%s of layer\n", c.n_kinds, c.n_kinds > 1 ? "s" : "");

    /* cpu_ref's logits at this precision, teacher-forced */
    float *want = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
    fb_session *r = test_create(env->ref, tm, p, 1, N_TOKENS + 1);
    int32_t next;
    CHECK(r && env->ref->prefill(r, tokens, N_TOKENS, FB_LOGITS_ALL, want, &next) == FB_OK, "cpu_ref %s", name);
    if (r) env->ref->destroy(r);

    void *handle = NULL;
    char full_tag[96], defines[96] = "";
    snprintf(full_tag, sizeof full_tag, "%s_%s%s%s_s%d", tag, name, mutation ? "_" : "", mutation ? mutation : "",
             c.splits);
    if (mutation) snprintf(defines, sizeof defines, "#define %s 1\n", mutation);
    jf_emu e;
    jf_emu_model h;
    if (jf_emu_build(&c, env->tmp_dir, env->cxx, env->inc, "jit_fused_emulated", full_tag, defines, &e, &handle) != 0 ||
        jf_emu_model_load(&h, &c, mv) != 0) {
        if (e.launch) {
            CHECK(0, "%s: weights laid out", full_tag);
            jf_emu_model_free(&h);
        }
        free(want);
        if (handle) dlclose(handle);
        return;
    }
    float *got = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
    char label[128];
    if (mutation) {
        /* a prefill with every position's logits, then persistent decode steps, must disagree */
        int32_t tok = emu_prefill(&e, &c, &h, 0, tokens, N_PREFILL, 1, got);
        for (int i = N_PREFILL; i < N_TOKENS && tok >= 0; i++) {
            if (emu_decode(&e, &c, &h, i, tokens[i], 1) != 0) tok = -1;
            memcpy(got + (size_t)i * n_vocab, h.b.logits, (size_t)n_vocab * sizeof(float));
        }
        if (strcmp(mutation, "JF_MUTATE_WAIT_MORE") == 0) {
            CHECK(tok < 0 && strstr(e.error, "deadlock") != NULL,
                  "%s: waiting for an item that never comes is reported as a deadlock (%s)", full_tag,
                  tok < 0 ? e.error : "it ran to the end");
            printf("  %-34s %s\n", mutation, tok < 0 ? e.error : "no error");
        } else {
            CHECK(tok >= 0, "%s: %s", full_tag, e.error);
            snprintf(label, sizeof label, "%s prefill %d + decode %d", mutation, N_PREFILL, N_TOKENS - N_PREFILL);
            int ok = tok >= 0 && jf_emu_agreement(label, got, want, N_TOKENS, n_vocab, min_agree[w], max_rel[w], 1);
            CHECK(tok >= 0 && !ok, "%s: the mutated kernels (%s) must fail the agreement check", tag, mutation);
        }
        jf_emu_model_free(&h);
        free(got);
        free(want);
        dlclose(handle);
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* prefill with every position's logits, then teacher-forced decode: the
     * persistent step at even positions, the per-op kernels at odd ones */
    int32_t tok = emu_prefill(&e, &c, &h, 0, tokens, N_PREFILL, 1, got);
    CHECK(tok >= 0, "%s: prefill: %s", full_tag, e.error);
    int bad_argmax = tok != argmax_f(got + (size_t)(N_PREFILL - 1) * n_vocab, (size_t)n_vocab);
    long spins0 = e.spins();
    for (int i = N_PREFILL; i < N_TOKENS && tok >= 0; i++) {
        if (emu_decode(&e, &c, &h, i, tokens[i], i % 2 == 0) != 0) {
            CHECK(0, "%s: decode at %d (%s): %s", full_tag, i, i % 2 == 0 ? "persistent" : "kernels", e.error);
            tok = -1;
            break;
        }
        memcpy(got + (size_t)i * n_vocab, h.b.logits, (size_t)n_vocab * sizeof(float));
        bad_argmax += jf_token_of_key(*h.b.argmax_key) != argmax_f(h.b.logits, (size_t)n_vocab);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("  %s: %d launches emulated in %.1f s; the persistent step's blocks paused %ld times for each other\n", name,
           e.launches, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, e.spins() - spins0);
    if (tok >= 0) {
        snprintf(label, sizeof label, "%s prefill %d + decode %d vs cpu_ref", name, N_PREFILL, N_TOKENS - N_PREFILL);
        jf_emu_agreement(label, got, want, N_TOKENS, n_vocab, min_agree[w], max_rel[w], 0);
        /* each decode path on its own positions */
        for (int persistent = 0; persistent < 2; persistent++) {
            int n = 0;
            float *g = malloc((size_t)N_TOKENS * n_vocab * sizeof(float)),
                  *wv = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
            for (int i = N_PREFILL; i < N_TOKENS; i++)
                if ((i % 2 == 0) == persistent) {
                    memcpy(g + (size_t)n * n_vocab, got + (size_t)i * n_vocab, (size_t)n_vocab * sizeof(float));
                    memcpy(wv + (size_t)n * n_vocab, want + (size_t)i * n_vocab, (size_t)n_vocab * sizeof(float));
                    n++;
                }
            snprintf(label, sizeof label, "%s decode, %s", name, persistent ? "persistent step" : "per-op kernels");
            jf_emu_agreement(label, g, wv, n, n_vocab, min_agree[w], max_rel[w], 0);
            free(g);
            free(wv);
        }
        CHECK(bad_argmax == 0, "%s: the kernels' argmax is the argmax of their logits (%d mismatches)", full_tag,
              bad_argmax);
        CHECK(e.spins() > spins0, "%s: the persistent step's blocks waited for each other at least once", full_tag);
        /* a fresh prefill of every token, the last logits only (the KV cache is simply overwritten) */
        float *last = malloc((size_t)n_vocab * sizeof(float));
        int32_t t2 = emu_prefill(&e, &c, &h, 0, tokens, N_TOKENS, 0, last);
        CHECK(t2 == argmax_f(last, (size_t)n_vocab), "%s: last-only prefill's argmax", full_tag);
        snprintf(label, sizeof label, "%s prefill %d, last logits only", name, N_TOKENS);
        jf_emu_agreement(label, last, want + (size_t)(N_TOKENS - 1) * n_vocab, 1, n_vocab, min_agree[w], max_rel[w], 0);
        free(last);
    }
    jf_emu_model_free(&h);
    free(got);
    free(want);
    dlclose(handle);
}

/* Write spec as a model under tmp_dir and open it; 0 on success. */
static int make_model(const fb_synth_spec *spec, const char *tmp_dir, const char *tag, test_model *tm) {
    char path[512];
    snprintf(path, sizeof path, "%s/jit_fused_emulated_%s.gguf", tmp_dir, tag);
    fb_error err;
    int n_fallback = 0;
    CHECK(fb_synth_write(spec, path, &n_fallback, &err) == 0, "synth: %s", err.msg);
    CHECK(n_fallback == 0, "%s: every matrix in the asked type (%d stored as F16)", tag, n_fallback);
    return test_model_open(path, tm);
}

static void random_tokens(uint64_t s, uint32_t n_vocab, int32_t tokens[N_TOKENS]) {
    for (int i = 0; i < N_TOKENS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((s >> 33) % n_vocab);
    }
}

/* The f32/f16/bf16 path: two models of odd shapes, at each precision. */
static void plain_models(const Env *env, uint64_t seed) {
    for (int m = 0; m < 2; m++) {
        fb_synth_spec spec;
        fb_synth_preset("tiny", &spec);
        if (m == 0) {
            spec.n_embd = 90, spec.n_head = 5, spec.n_head_kv = 1, spec.n_ff = 250, spec.n_vocab = 1001;
            spec.tied_output = false, spec.llama3_rope = true, spec.type = GGUF_TYPE_F16;
        } else {
            spec.n_embd = 128, spec.n_head = 32, spec.n_head_kv = 2, spec.n_ff = 256, spec.n_vocab = 512;
            spec.tied_output = true, spec.llama3_rope = false, spec.type = GGUF_TYPE_Q8_0;
        }
        spec.n_layer = 2, spec.n_ctx = 64, spec.seed = seed + (uint64_t)m;
        char tag[16];
        snprintf(tag, sizeof tag, "%d", m);
        test_model tm;
        if (make_model(&spec, env->tmp_dir, tag, &tm) != 0) return;
        printf("model %d: width %u, heads %u/%u, ff %u, vocab %u, %s, %s\n", m, spec.n_embd, spec.n_head,
               spec.n_head_kv, spec.n_ff, spec.n_vocab, spec.type == GGUF_TYPE_F16 ? "F16" : "Q8_0",
               spec.tied_output ? "tied" : "untied");
        int32_t tokens[N_TOKENS];
        random_tokens(seed + (uint64_t)m, spec.n_vocab, tokens);
#if defined(__SANITIZE_ADDRESS__)
        /* under ASan (kernels instrumented too), f16 alone: the three take about 8 minutes */
        run_case(&tm, tag, JF_F16, tokens, env, NULL, 0);
#else
        /* model 0 at f32 with one attention split: 40 positions over lanes that take 4 at a time */
        for (int w = JF_F32; w <= JF_BF16; w++)
            run_case(&tm, tag, (jf_wtype)w, tokens, env, NULL, m == 0 && w == JF_F32);
        /* mutations of the attention and of the persistent step's waits, each of which must be caught */
        if (m == 0) run_case(&tm, tag, JF_F32, tokens, env, "JF_MUTATE_RESCALE", 1);
        if (m == 1) {
            run_case(&tm, tag, JF_F32, tokens, env, "JF_MUTATE_KV_GROUP", 0);
            run_case(&tm, tag, JF_F32, tokens, env, "JF_MUTATE_NO_WAIT", 0);
            run_case(&tm, tag, JF_F32, tokens, env, "JF_MUTATE_WAIT_MORE", 0);
        }
#endif
        test_model_close(&tm);
    }
}

/* The native path: a model per block type (odd shapes: legacy types at a
 * width of 5 heads of 32, K-quants at 256-value rows with 999 tokens), and a
 * Q4_K_M mix of 2 layers (two kinds of layer: Q6_K attn_v and ffn_down in
 * layer 1, a Q6_K LM head, a Q4_K embedding); then the mutations, each of
 * which must be caught. */
static void native_models(const Env *env, uint64_t seed) {
    static const struct {
        const char *tag;
        uint32_t type;
        int mix;
    } models[] = {
        {"q8_0", GGUF_TYPE_Q8_0, 0},
        {"q4_0", GGUF_TYPE_Q4_0, 0},
        {"q4_1", GGUF_TYPE_Q4_1, 0},
        {"q4_k", GGUF_TYPE_Q4_K, 0},
        {"q5_k", GGUF_TYPE_Q5_K, 0},
        {"q6_k", GGUF_TYPE_Q6_K, 0},
        {"q4_k_m", GGUF_TYPE_Q4_K, FB_SYNTH_MIX_Q4_K_M},
    };
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        fb_synth_spec spec;
        fb_synth_preset("tiny", &spec);
        const int k_quant = models[m].type >= GGUF_TYPE_Q4_K;
        if (!k_quant) { /* rows of 160 and 416: 5 and 13 blocks, no row a multiple of 256 */
            spec.n_embd = 160, spec.n_head = 5, spec.n_head_kv = 1, spec.n_ff = 416, spec.n_vocab = 1001;
            spec.tied_output = m % 2 == 0, spec.n_layer = 2;
        } else { /* rows of 256 and 768 (1 and 3 super-blocks), GQA 8 / 2 heads of 32 */
            spec.n_embd = 256, spec.n_head = 8, spec.n_head_kv = 2, spec.n_ff = 768, spec.n_vocab = 999;
            spec.tied_output = m % 2 == 0, spec.n_layer = models[m].mix ? 2 : 1;
        }
        spec.llama3_rope = m % 2 == 1;
        spec.type = models[m].type, spec.mix = models[m].mix;
        spec.n_ctx = 64, spec.seed = seed + 10 + m;
        if (models[m].mix) spec.tied_output = false;
        test_model tm;
        if (make_model(&spec, env->tmp_dir, models[m].tag, &tm) != 0) return;
        printf("model %s: width %u, heads %u/%u, ff %u, vocab %u, %u layer%s, %s\n", models[m].tag, spec.n_embd,
               spec.n_head, spec.n_head_kv, spec.n_ff, spec.n_vocab, spec.n_layer, spec.n_layer > 1 ? "s" : "",
               spec.tied_output ? "tied" : "untied");
        int32_t tokens[N_TOKENS];
        random_tokens(seed + 10 + m, spec.n_vocab, tokens);
#if defined(__SANITIZE_ADDRESS__)
        /* under ASan (kernels instrumented too; the mix alone took 4.5 minutes on the shared 2-core machine),
         * the two split layouts with a scale plane after the quants: Q8_0 and Q6_K */
        if (strcmp(models[m].tag, "q8_0") != 0 && strcmp(models[m].tag, "q6_k") != 0) {
            test_model_close(&tm);
            continue;
        }
#endif
        run_case(&tm, models[m].tag, JF_NATIVE, tokens, env, NULL, 0);
#if !defined(__SANITIZE_ADDRESS__)
        /* each mutation of the decode must fail: on a legacy type and on the K-quant mix */
        if (strcmp(models[m].tag, "q4_0") == 0 || strcmp(models[m].tag, "q4_k_m") == 0) {
            run_case(&tm, models[m].tag, JF_NATIVE, tokens, env, "JF_MUTATE_SCALE", 0);
            run_case(&tm, models[m].tag, JF_NATIVE, tokens, env, "JF_MUTATE_NIBBLE", 0);
        }
        if (strcmp(models[m].tag, "q4_k_m") == 0)
            run_case(&tm, models[m].tag, JF_NATIVE, tokens, env, "JF_MUTATE_SUBBLOCK", 0);
#endif
        test_model_close(&tm);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_jit_fused_emulated TMP_DIR CXX INCLUDE_DIR [--seed N] [--native]\n");
        return 2;
    }
    Env env = {.tmp_dir = argv[1], .cxx = argv[2], .inc = argv[3]};
    uint64_t seed = (uint64_t)time(NULL);
    int native = 0;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--native") == 0)
            native = 1;
    }
    printf("test_jit_fused_emulated: seed %" PRIu64 "%s\n", seed, native ? ", native types" : "");
    char check_cxx[600];
    snprintf(check_cxx, sizeof check_cxx, "%s --version >/dev/null 2>&1", env.cxx);
    if (system(check_cxx) != 0) {
        printf("test_jit_fused_emulated: skipped, no C++ compiler '%s'\n", env.cxx);
        return 77;
    }
    fb_backend_list list;
    env.ref = test_find_backend(&list, "cpu_ref");
    CHECK(env.ref != NULL, "cpu_ref found");
    if (env.ref) {
        if (native) native_models(&env, seed);
        else
            plain_models(&env, seed);
    }
    fb_backends_free(&list);
    return check_summary();
}
