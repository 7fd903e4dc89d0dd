/* test_jit_fused_prefill_emulated.c - jit_fused's tensor-core prefill
 * (plugins/jit_fused/jit_fused_prefill.cuh), run on the CPU, against
 * cpu_ref, with no GPU.
 *
 *   test_jit_fused_prefill_emulated TMP_DIR CXX INCLUDE_DIR [--seed N] [--mutations]
 *
 * The generated source (jit_fused_kernels.cuh, then the prefill's template)
 * is built by the host C++ compiler with tests/jf_emulate.h: blocks as
 * fibers, and each warp's mma.sync a collective that computes exactly what
 * the PTX fragment layout says (see the template), so wrong fragment
 * indexing shows here. The weights go through the plugin's own
 * jf_layout_rows, the launches through the plugin's own jf_prefill_forward.
 *
 * Three synthetic models of odd shapes (nothing a multiple of the 64 x 128
 * GEMM tiles or the 32-wide k steps, so the zero-fill paths run):
 *   model 0: width 90, 5 heads / 1 KV head of 18, ff 250, vocab 1001,
 *            untied, Llama-3 RoPE; at f16 and at bf16
 *   model 1: width 128, 4 heads / 2 KV heads of 32 (GQA with two groups),
 *            ff 344, vocab 517, tied; at f16
 *   model 2: width 160, 2 heads / 1 KV head of 80 (head_dim over 64: the
 *            attention blocks of 2 warps and 16-key tiles), ff 200, vocab
 *            300, untied; at f16
 * with a chunk of 80 positions (two position tiles, the second partial)
 * instead of the plugin's 1024: a prompt of 161 tokens is three chunks, the
 * last of one position (one LM-head row), and spans six 32-key attention
 * tiles. Checked:
 *   - every position's logits of the prefill against cpu_ref's (top-1 and
 *     relative error: the tensor-core path must agree with cpu_ref as well
 *     as f32 activations do, 1e-5, not merely within the f16 bounds of
 *     test_jit_fused_emulated.c, 3e-2, which rounding the activations to
 *     f16 without a lo half would pass);
 *   - the argmax the kernels return is that of the last logits row;
 *   - the KV cache the prefill wrote: teacher-forced decode steps after it,
 *     through the persistent decode step and the per-op decode kernels in
 *     turn, against cpu_ref's.
 * With --mutations: model 1 at f16 with each JF_MUTATE_PF_* of the template
 * (and JF_MUTATE_PF_NO_LO at bf16 on model 0); each must fail the check.
 *
 * What this does not check: speed, cp.async's asynchrony, the real mma's
 * rounding inside its f32 accumulation, NVRTC's code (test_jit_fused_nvrtc
 * compiles it) and everything else a GPU run checks (scripts/gpu-check.sh). */
#include <inttypes.h>
#include <time.h>

#include "check.h"
#include "cpu_ref_session.h"
#include "jf_emu_host.h"
#include "jf_host.h"
#include "jf_prefill.h"
#include "quant.h"
#include "synth.h"

#define CHUNK 80     /* positions per prefill pass here (the plugin's: JF_PF_CHUNK) */
#define N_PROMPT 161 /* three chunks: 80, 80 and 1 */
#define N_DECODE 6   /* teacher-forced decode steps after the prefill */
#define N_TOKENS (N_PROMPT + N_DECODE)
#define LM_GRID 4
/* Relative error of the logits against cpu_ref: the split keeps ~22 (f16) or ~24 (bf16) bits of each
 * activation, and 1.3e-6 .. 2.9e-6 was seen here over seeds 1-20 (the decode kernels after it: ~1e-6);
 * without the split (JF_MUTATE_PF_NO_LO) 8.7e-4 at f16. (Dropping only bf16's third part gave 1.3e-5,
 * too close to this bound to be a mutation that must fail.) */
#define MAX_REL 1e-5
#define MIN_AGREE 0.99 /* top-1 agreement */

/* The model as the plugin lays it out (tests/jf_emu_host.h), and the
 * tensor-core prefill's own buffers at the sizes the plugin allocates. */
typedef struct HostModel {
    jf_emu_model m;
    jf_prefill_buffers pb;
} HostModel;

static int host_load(HostModel *h, const jf_config *c, const fb_model_view *mv) {
    if (jf_emu_model_load(&h->m, c, mv) != 0) return -1;
    uint64_t bytes[6];
    jf_prefill_bytes(c, bytes);
    jf_prefill_buffers *pb = &h->pb;
    memset(pb, 0, sizeof *pb);
    pb->step = jf_emu_take(&h->m, bytes[0]);
    pb->x = jf_emu_take(&h->m, bytes[1]);
    pb->q = jf_emu_take(&h->m, bytes[2]);
    pb->act = jf_emu_take(&h->m, bytes[3]);
    pb->act_h = jf_emu_take(&h->m, bytes[4]);
    pb->scratch_key = jf_emu_take(&h->m, bytes[5]);
    return h->m.n_blocks >= 128 || !pb->scratch_key ? -1 : 0;
}

/* Where the LM head's logits go: every position's rows into `all`. */
typedef struct Emit {
    const HostModel *h;
    float *all;
    int done, vocab;
} Emit;

static int emit_logits(void *ctx, int first, int count) {
    Emit *e = ctx;
    memcpy(e->all + (size_t)(e->done + first) * e->vocab, e->h->m.b.logits, (size_t)count * e->vocab * sizeof(float));
    return 0;
}

/* As the plugin's prefill: chunks of c->pf_chunk, every position's logits
 * into got. Returns the argmax token, or -1. */
static int32_t emu_prefill(jf_emu *e, const jf_config *c, HostModel *h, const int32_t *tokens, int n, float *got) {
    Emit em = {.h = h, .all = got, .vocab = c->vocab};
    for (int done = 0; done < n;) {
        int batch = n - done < c->pf_chunk ? n - done : c->pf_chunk;
        h->pb.step[0] = done;
        memcpy(h->pb.step + 1, tokens + done, (size_t)batch * sizeof(int32_t));
        em.done = done;
        if (jf_prefill_forward(c, &h->m.b, &h->pb, LM_GRID, batch, 0, 1, emit_logits, &em, jf_emu_launch_kernel, e) !=
            0)
            return -1;
        done += batch;
    }
    return jf_token_of_key(*h->m.b.argmax_key);
}

typedef struct Env {
    const char *tmp_dir, *cxx, *inc;
    const fb_plugin *ref;
} Env;

/* The prefill at precision w (f16 or bf16) against cpu_ref; with
 * `mutation`: the prefill only, and the check is that it FAILS. */
static void run_case(const test_model *tm, const char *tag, jf_wtype w, const int32_t *tokens, const Env *env,
                     const char *mutation) {
    const fb_precision p = w == JF_F16 ? FB_PRECISION_F16 : FB_PRECISION_BF16;
    const char *name = w == JF_F16 ? "f16" : "bf16";
    const fb_model_view *mv = &tm->view.view;
    const int n_vocab = (int)mv->n_vocab;
    jf_config c;
    char msg[256];
    CHECK(jf_config_from_view(mv, N_TOKENS + 1, w, &c, msg, sizeof msg) == 0, "config: %s", msg);
    CHECK(c.pf_chunk == JF_PF_CHUNK && jf_prefill_use(&c, N_PROMPT) && !jf_prefill_use(&c, JF_PF_MIN_POSITIONS - 1),
          "%s: the tensor-core prefill applies to a prompt of %d, not of %d", name, N_PROMPT, JF_PF_MIN_POSITIONS - 1);
    c.pf_chunk = CHUNK;
    c.pdl = 1; /* the sm_90 source: its launch-dependency instructions are no-ops on the CPU */

    float *want = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
    fb_session *r = test_create(env->ref, tm, p, 1, N_TOKENS + 1);
    int32_t next;
    CHECK(r && env->ref->prefill(r, tokens, N_TOKENS, FB_LOGITS_ALL, want, &next) == FB_OK, "cpu_ref %s", name);
    if (r) env->ref->destroy(r);

    void *handle = NULL;
    char full_tag[80], defines[96] = "";
    snprintf(full_tag, sizeof full_tag, "%s_%s%s%s", tag, name, mutation ? "_" : "", mutation ? mutation : "");
    if (mutation) snprintf(defines, sizeof defines, "#define %s 1\n", mutation);
    jf_emu e;
    HostModel h;
    if (jf_emu_build(&c, env->tmp_dir, env->cxx, env->inc, "jit_fused_prefill_emulated", full_tag, defines, &e,
                     &handle) != 0 ||
        host_load(&h, &c, mv) != 0) {
        if (e.launch) {
            CHECK(0, "%s: weights laid out", full_tag);
            jf_emu_model_free(&h.m);
        }
        free(want);
        if (handle) dlclose(handle);
        return;
    }
    float *got = malloc((size_t)N_TOKENS * n_vocab * sizeof(float));
    char label[128];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t tok = emu_prefill(&e, &c, &h, tokens, N_PROMPT, got);
    CHECK(tok >= 0, "%s: prefill: %s", full_tag, e.error);
    if (mutation) {
        snprintf(label, sizeof label, "%s prefill %d", mutation, N_PROMPT);
        int ok = tok >= 0 && jf_emu_agreement(label, got, want, N_PROMPT, n_vocab, MIN_AGREE, MAX_REL, 1);
        CHECK(tok >= 0 && !ok, "%s: the mutated kernels (%s) must fail the agreement check", tag, mutation);
    } else if (tok >= 0) {
        snprintf(label, sizeof label, "%s prefill %d (chunks of %d) vs cpu_ref", name, N_PROMPT, CHUNK);
        jf_emu_agreement(label, got, want, N_PROMPT, n_vocab, MIN_AGREE, MAX_REL, 0);
        CHECK(tok == argmax_f(got + (size_t)(N_PROMPT - 1) * n_vocab, (size_t)n_vocab),
              "%s: the returned argmax is the last logits row's", full_tag);
        /* the KV cache the prefill wrote, through the decode kernels */
        int bad = 0;
        for (int i = N_PROMPT; i < N_TOKENS; i++) {
            h.m.b.step[0] = i;
            h.m.b.step[1] = tokens[i];
            /* the persistent step and the per-op kernels in turn */
            if ((i % 2 ? jf_forward(&c, &h.m.b, LM_GRID, 1, 0, 1, jf_emu_launch_kernel, &e)
                       : jf_decode_persistent(&c, &h.m.b, 3, jf_emu_launch_kernel, &e)) != 0) {
                CHECK(0, "%s: decode at %d: %s", full_tag, i, e.error);
                bad = 1;
                break;
            }
            memcpy(got + (size_t)i * n_vocab, h.m.b.logits, (size_t)n_vocab * sizeof(float));
        }
        if (!bad) {
            snprintf(label, sizeof label, "%s decode %d after it vs cpu_ref", name, N_DECODE);
            jf_emu_agreement(label, got + (size_t)N_PROMPT * n_vocab, want + (size_t)N_PROMPT * n_vocab, N_DECODE,
                             n_vocab, MIN_AGREE, MAX_REL, 0);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("  %s: %d launches emulated in %.1f s\n", full_tag, e.launches,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    jf_emu_model_free(&h.m);
    free(got);
    free(want);
    dlclose(handle);
}

static int make_model(int m, uint64_t seed, const char *tmp_dir, test_model *tm, int32_t tokens[N_TOKENS]) {
    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    if (m == 0) {
        spec.n_embd = 90, spec.n_head = 5, spec.n_head_kv = 1, spec.n_ff = 250, spec.n_vocab = 1001;
        spec.tied_output = false, spec.llama3_rope = true;
    } else if (m == 1) {
        spec.n_embd = 128, spec.n_head = 4, spec.n_head_kv = 2, spec.n_ff = 344, spec.n_vocab = 517;
        spec.tied_output = true, spec.llama3_rope = false;
    } else {
        spec.n_embd = 160, spec.n_head = 2, spec.n_head_kv = 1, spec.n_ff = 200, spec.n_vocab = 300;
        spec.tied_output = false, spec.llama3_rope = false;
    }
    spec.type = GGUF_TYPE_F16, spec.n_layer = 2, spec.n_ctx = 256, spec.seed = seed + (uint64_t)m;
    char path[512];
    snprintf(path, sizeof path, "%s/jit_fused_prefill_emulated_%d.gguf", tmp_dir, m);
    fb_error err;
    int n_fallback = 0;
    CHECK(fb_synth_write(&spec, path, &n_fallback, &err) == 0, "synth: %s", err.msg);
    printf("model %d: width %u, heads %u/%u, ff %u, vocab %u, %s\n", m, spec.n_embd, spec.n_head, spec.n_head_kv,
           spec.n_ff, spec.n_vocab, spec.tied_output ? "tied" : "untied");
    uint64_t s = seed + (uint64_t)m;
    for (int i = 0; i < N_TOKENS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((s >> 33) % spec.n_vocab);
    }
    return test_model_open(path, tm);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_jit_fused_prefill_emulated TMP_DIR CXX INCLUDE_DIR [--seed N] [--mutations]\n");
        return 2;
    }
    Env env = {.tmp_dir = argv[1], .cxx = argv[2], .inc = argv[3]};
    uint64_t seed = (uint64_t)time(NULL);
    int mutations = 0;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mutations") == 0)
            mutations = 1;
    }
    printf("test_jit_fused_prefill_emulated: seed %" PRIu64 "%s\n", seed, mutations ? ", mutations" : "");
    char check_cxx[600];
    snprintf(check_cxx, sizeof check_cxx, "%s --version >/dev/null 2>&1", env.cxx);
    if (system(check_cxx) != 0) {
        printf("test_jit_fused_prefill_emulated: skipped, no C++ compiler '%s'\n", env.cxx);
        return 77;
    }
    fb_backend_list list;
    env.ref = test_find_backend(&list, "cpu_ref");
    CHECK(env.ref != NULL, "cpu_ref found");
    const char *only = getenv("JF_PF_ONLY"); /* one mutation, when debugging */
    for (int m = 0; env.ref && m < (mutations ? 2 : 3); m++) {
        test_model tm;
        int32_t tokens[N_TOKENS];
        if (make_model(m, seed, env.tmp_dir, &tm, tokens) != 0) break;
        char tag[16];
        snprintf(tag, sizeof tag, "%d", m);
        if (!mutations) {
            run_case(&tm, tag, JF_F16, tokens, &env, NULL);
            if (m == 0) run_case(&tm, tag, JF_BF16, tokens, &env, NULL);
        } else if (m == 0) {
            if (!only || strcmp(only, "JF_MUTATE_PF_NO_LO") == 0)
                run_case(&tm, tag, JF_BF16, tokens, &env, "JF_MUTATE_PF_NO_LO");
        } else if (m == 1) {
            static const char *muts[] = {"JF_MUTATE_PF_LANE", "JF_MUTATE_PF_ATT_LANE", "JF_MUTATE_PF_NO_LO",
                                         "JF_MUTATE_PF_CAUSAL", "JF_MUTATE_PF_ROPE"};
            for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++)
                if (!only || strcmp(only, muts[i]) == 0) run_case(&tm, tag, JF_F16, tokens, &env, muts[i]);
        }
        test_model_close(&tm);
    }
    fb_backends_free(&list);
    return check_summary();
}
