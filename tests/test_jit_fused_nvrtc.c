/* test_jit_fused_nvrtc.c - the kernels jit_fused generates for one model
 * shape, compiled by NVRTC for sm_80 (A100) and sm_90 (H100) at f32, f16 and
 * bf16, with no GPU: each compilation must succeed and give a cubin for the
 * real architecture, every entry point the plugin looks up must be in it,
 * and ptxas must report no register spills (a spilling matvec would read
 * local memory on every step). At f16 and bf16 that includes the
 * tensor-core prefill's kernels (jit_fused_prefill.cuh: jf_pf_*), whose
 * registers and shared memory are printed.
 *
 *   test_jit_fused_nvrtc SHAPE [native]
 *
 * With `native`: the kernels that read GGUF block formats in place instead,
 * one source per type (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K; those whose
 * blocks divide the shape's rows) and a Q4_K_M mix (two kinds of layer,
 * a Q6_K LM head), same checks.
 *
 * SHAPE: a synth preset (tiny, smollm2-135m, llama3.2-1b, llama3-8b), or
 * odd-a (width 90, 5 heads / 1 KV head of 18, ff 250, vocab 1001: nothing a
 * multiple of 8 f16 values, head_dim under a warp) or odd-b (width 560, 7
 * heads of 80, ff 1500, vocab 32003: head_dim not a multiple of 32). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jf_host.h"
#include "synth.h"

static int view_of(const char *shape, fb_model_view *mv) {
    memset(mv, 0, sizeof *mv);
    mv->struct_size = sizeof *mv;
    if (strcmp(shape, "odd-a") == 0) {
        mv->n_embd = 90, mv->n_head = 5, mv->n_head_kv = 1, mv->n_ff = 250, mv->n_vocab = 1001;
    } else if (strcmp(shape, "odd-b") == 0) {
        mv->n_embd = 560, mv->n_head = 7, mv->n_head_kv = 7, mv->n_ff = 1500, mv->n_vocab = 32003;
    } else {
        fb_synth_spec spec;
        if (fb_synth_preset(shape, &spec) != 0) return -1;
        mv->n_embd = spec.n_embd, mv->n_head = spec.n_head, mv->n_head_kv = spec.n_head_kv, mv->n_ff = spec.n_ff;
        mv->n_vocab = spec.n_vocab, mv->tied_output = spec.tied_output;
    }
    mv->n_layer = 2, mv->n_ctx = 256, mv->head_dim = mv->n_embd / mv->n_head, mv->n_rot = mv->head_dim;
    mv->rope_freq_base = 10000.0f, mv->rms_eps = 1e-5f;
    return 0;
}

static int memmem_str(const void *hay, size_t n, const char *needle) {
    size_t k = strlen(needle) + 1; /* with the NUL: the symbol name, not a prefix of a longer one */
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp((const char *)hay + i, needle, k) == 0) return 1;
    return 0;
}

/* Compile c for sm_80 and sm_90 and check the image; `what` names it. */
static void compile_and_check(jf_config *c, const char *what) {
    static const int archs[][2] = {{8, 0}, {9, 0}};
    char msg[1024] = "";
    for (size_t a = 0; a < 2; a++) {
        c->pdl = archs[a][0] >= 9; /* as the plugin sets it: programmatic dependent launch on sm_90+ */
        char *src = jf_generate_source(c);
        CHECK(src != NULL && (strstr(src, "#define JF_PDL 1") != NULL) == (c->pdl != 0), "source");
        if (!src) continue;
        jf_image img;
        int rc = jf_compile(src, archs[a][0], archs[a][1], &img, msg, sizeof msg);
        free(src);
        CHECK(rc == 0, "%s sm_%d%d: compile: %s", what, archs[a][0], archs[a][1], msg);
        if (rc != 0) continue;
        CHECK(!img.is_ptx && img.size > 1000 && memcmp(img.data, "\177ELF", 4) == 0,
              "%s sm_%d%d: a cubin (ELF) for the real architecture", what, archs[a][0], archs[a][1]);
        int missing = 0, expected = 0;
        for (int k = 0; k < JF_K_COUNT; k++)
            for (int kind = 0; kind < (jf_kernel_per_layer((jf_kernel_id)k) ? c->n_kinds : 1); kind++) {
                if (!jf_kernel_present(c, (jf_kernel_id)k)) continue;
                char name[64];
                jf_kernel_name((jf_kernel_id)k, kind, name, sizeof name);
                expected++;
                if (!memmem_str(img.data, img.size, name)) {
                    printf("  missing entry point %s\n", name);
                    missing++;
                }
            }
        CHECK(missing == 0, "%s sm_%d%d: all %d entry points present", what, archs[a][0], archs[a][1], expected);
        long spill = jf_log_spill_bytes(img.log);
        CHECK(spill == 0, "%s sm_%d%d: ptxas reports %ld bytes of spills (-1: no statistics)", what, archs[a][0],
              archs[a][1], spill);
        /* the most registers a kernel uses (ptxas -v: "Used N registers"): 256-thread blocks fit
         * 65536 / (256 N) per SM, which sets how many weight loads are in flight */
        int max_regs = 0;
        for (const char *q = img.log; q && (q = strstr(q, "Used ")) != NULL; q += 5) {
            int regs = atoi(q + 5);
            if (regs > max_regs) max_regs = regs;
        }
        printf("  %-7s sm_%d%d: %zu-byte cubin in %.0f ms, spills %ld, at most %d registers\n", what, archs[a][0],
               archs[a][1], img.size, img.compile_ms, spill, max_regs);
        /* registers of each decode kernel (the _1 ones, attention) and of the persistent step */
        char line[512];
        int len = 0;
        for (const char *q = img.log; q && (q = strstr(q, "entry function '")) != NULL;) {
            q += 16;
            const char *end = strchr(q, '\'');
            const char *used = end ? strstr(end, "Used ") : NULL;
            if (!end || !used) break;
            int n = (int)(end - q);
            if ((n > 2 && memcmp(end - 2, "_1", 2) == 0) || (n > 5 && memcmp(end - 5, "_1_k", 4) == 0) ||
                (n == 14 && memcmp(q, "jf_decode_step", 14) == 0) ||
                (n == 18 && memcmp(q, "jf_attention_split", 18) == 0))
                len += snprintf(line + len, sizeof line - (size_t)len, " %.*s %d", n - 3, q + 3, atoi(used + 5));
            if (len >= (int)sizeof line) break;
        }
        if (len > 0 && len < (int)sizeof line) printf("    registers:%s\n", line);
        /* registers, spill and shared bytes of each tensor-core prefill kernel (jf_pf_*) */
        len = 0;
        for (const char *q = img.log; q && (q = strstr(q, "entry function 'jf_pf_")) != NULL;) {
            q += 16;
            const char *end = strchr(q, '\'');
            const char *used = end ? strstr(end, "Used ") : NULL;
            if (!end || !used) break;
            const char *smem = strstr(used, "bytes smem");
            int smem_bytes = 0;
            if (smem && smem - used < 200) { /* "Used 96 registers, used 1 barriers, 40960 bytes smem" */
                const char *b = smem - 1;
                while (b > used && b[-1] >= '0' && b[-1] <= '9') b--;
                smem_bytes = atoi(b);
            }
            len += snprintf(line + len, sizeof line - (size_t)len, " %.*s %d (%d B smem)", (int)(end - q) - 3, q + 3,
                            atoi(used + 5), smem_bytes);
            if (len >= (int)sizeof line) break;
        }
        if (len > 0 && len < (int)sizeof line) printf("    prefill registers:%s\n", line);
        jf_image_free(&img);
    }
}

int main(int argc, char **argv) {
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "native") == 0)) {
        fprintf(stderr, "usage: test_jit_fused_nvrtc SHAPE [native]\n");
        return 2;
    }
    fb_model_view mv;
    if (view_of(argv[1], &mv) != 0) {
        fprintf(stderr, "unknown shape %s\n", argv[1]);
        return 2;
    }
    printf("%s: width %u, heads %u/%u of %u, ff %u, vocab %u; NVRTC %s\n", argv[1], mv.n_embd, mv.n_head, mv.n_head_kv,
           mv.head_dim, mv.n_ff, mv.n_vocab, jf_nvrtc_version());
    if (argc == 2) {
        static const char *wnames[] = {"f32", "f16", "bf16"};
        for (int w = JF_F32; w <= JF_BF16; w++) {
            jf_config c;
            char msg[1024] = "";
            CHECK(jf_config_from_view(&mv, 0, (jf_wtype)w, &c, msg, sizeof msg) == 0, "config: %s", msg);
            compile_and_check(&c, wnames[w]);
        }
        return check_summary();
    }
    /* native: the view has no tensors, so the types are set here as a file would give them */
    static const struct {
        const char *name;
        uint32_t t;
        int block;
    } types[] = {{"Q8_0", JF_T_Q8_0, 32},   {"Q4_0", JF_T_Q4_0, 32},  {"Q4_1", JF_T_Q4_1, 32},
                 {"Q4_K", JF_T_Q4_K, 256},  {"Q5_K", JF_T_Q5_K, 256}, {"Q6_K", JF_T_Q6_K, 256},
                 {"Q4_K_M", JF_T_Q4_K, 256}};
    int compiled = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const int b = types[i].block;
        if (mv.n_embd % b || mv.n_ff % b || (mv.n_head * mv.head_dim) % b) {
            printf("  %-7s skipped: rows of %u, %u, %u values are not whole blocks of %d\n", types[i].name, mv.n_embd,
                   mv.n_ff, mv.n_head * mv.head_dim, b);
            continue;
        }
        jf_config c;
        char msg[1024] = "";
        /* the shapes at f16's padding (native's), then the types by hand */
        CHECK(jf_config_from_view(&mv, 0, JF_F16, &c, msg, sizeof msg) == 0, "config: %s", msg);
        c.wtype = JF_NATIVE;
        const uint32_t t = types[i].t;
        c.embd_type = c.out_type = t;
        c.kinds[0] = (jf_layer_types){t, t, t, t, t, t, t};
        c.n_kinds = 1;
        c.kind_layers[0] = c.n_layers;
        if (strcmp(types[i].name, "Q4_K_M") == 0) { /* as fb_synth_tensor_type lays the mix out */
            c.out_type = JF_T_Q6_K;
            c.tied = 0;
            c.kinds[1] = (jf_layer_types){t, t, JF_T_Q6_K, t, t, t, JF_T_Q6_K};
            c.n_kinds = 2;
            c.kind_layers[0] = c.kind_layers[1] = 1;
        }
        compile_and_check(&c, types[i].name);
        compiled++;
    }
    CHECK(compiled > 0, "%s: at least one native type fits the shape", argv[1]);
    return check_summary();
}
