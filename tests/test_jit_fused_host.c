/* test_jit_fused_host.c - the host half of jit_fused, with no device:
 * shapes and row padding from a model view, the device-memory plan against
 * the tensors of a real synthetic model, threaded conversion into padded
 * rows from every storage type, the generated source's constants, the
 * compile options per architecture, the ptxas log parser, and the kernel
 * cache (key, round trip, and every way a cached file can be unusable).
 *
 *   test_jit_fused_host TMP_DIR
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cpu_ref_session.h"
#include "jf_host.h"
#include "jf_prefill.h"
#include "quant.h"
#include "synth.h"

static uint64_t rng_state = 12345;
static float rnd(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

/* An odd shape: no dimension a multiple of 8 f16 values, head_dim not a
 * multiple of 32, GQA. */
static const fb_model_view odd_view = {.struct_size = sizeof(fb_model_view),
                                       .n_embd = 90,
                                       .n_layer = 2,
                                       .n_head = 5,
                                       .n_head_kv = 1,
                                       .head_dim = 18,
                                       .n_ff = 250,
                                       .n_ctx = 64,
                                       .n_vocab = 1001,
                                       .n_rot = 18,
                                       .rope_freq_base = 10000.0f,
                                       .rms_eps = 1e-6f};

static void test_config(void) {
    CHECK(jf_padded(90, 2) == 96 && jf_padded(90, 4) == 92 && jf_padded(96, 2) == 96 && jf_padded(1, 4) == 4,
          "rows padded to 16 bytes");
    jf_config c;
    char msg[256] = "";
    CHECK(jf_config_from_view(&odd_view, 0, JF_F16, &c, msg, sizeof msg) == 0, "odd shape: %s", msg);
    CHECK(c.q_dim == 90 && c.kv_dim == 18 && c.ld_dim == 96 && c.ld_q == 96 && c.ld_ff == 256 && c.esize == 2 &&
              c.max_seq == 64 && c.nb == JF_PREFILL_POSITIONS && c.splits == 64,
          "odd shape at f16: q %d kv %d ld %d/%d/%d splits %d", c.q_dim, c.kv_dim, c.ld_dim, c.ld_q, c.ld_ff, c.splits);
    CHECK(jf_config_from_view(&odd_view, 1000, JF_F32, &c, msg, sizeof msg) == 0 && c.ld_dim == 92 && c.ld_ff == 252 &&
              c.max_seq == 64,
          "odd shape at f32: ld %d/%d, context capped at the model's: %d", c.ld_dim, c.ld_ff, c.max_seq);
    fb_model_view mv = odd_view;
    mv.head_dim = 17, mv.n_rot = 16;
    CHECK(jf_config_from_view(&mv, 0, JF_F16, &c, msg, sizeof msg) != 0 && strstr(msg, "odd"),
          "odd head_dim refused: %s", msg);
    mv = odd_view;
    mv.n_head = 4, mv.n_head_kv = 3;
    CHECK(jf_config_from_view(&mv, 0, JF_F16, &c, msg, sizeof msg) != 0 && strstr(msg, "multiple"),
          "heads not a multiple of KV heads refused: %s", msg);
    mv = odd_view;
    mv.n_rot = 20;
    CHECK(jf_config_from_view(&mv, 0, JF_F16, &c, msg, sizeof msg) != 0 && strstr(msg, "RoPE"),
          "n_rot > head_dim refused");
    /* llama3.2-1b: 8 KV heads -> up to 32 splits, nothing padded at f16 */
    mv = (fb_model_view){.struct_size = sizeof mv,
                         .n_embd = 2048,
                         .n_layer = 16,
                         .n_head = 32,
                         .n_head_kv = 8,
                         .head_dim = 64,
                         .n_ff = 8192,
                         .n_ctx = 131072,
                         .n_vocab = 128256,
                         .n_rot = 64,
                         .rope_freq_base = 500000.0f,
                         .rms_eps = 1e-5f,
                         .tied_output = 1};
    CHECK(jf_config_from_view(&mv, 4096, JF_F16, &c, msg, sizeof msg) == 0 && c.splits == 32 && c.ld_dim == 2048 &&
              c.ld_ff == 8192 && c.max_seq == 4096 && c.tied,
          "llama3.2-1b shapes");
    jf_plan plan;
    jf_plan_compute(&c, &plan);
    /* 1,235,814,400 matrix weights (16 layers of 60.8M + the tied 262.7M embedding) at 2 bytes */
    uint64_t matrices = 16ull * (2048ull * 2048 * 2 + 2048ull * 512 * 2 + 3ull * 2048 * 8192) + 128256ull * 2048;
    CHECK(plan.weights >= matrices * 2 && plan.weights < matrices * 2 + (1u << 20),
          "1B plan: %" PRIu64 " weight bytes for %" PRIu64 " matrix weights", plan.weights, matrices);
    CHECK(plan.kv_cache == 2ull * 16 * 4096 * 512 * 4, "1B plan: KV cache %" PRIu64, plan.kv_cache);
    CHECK(plan.total == plan.weights + plan.kv_cache + plan.activations, "plan total");
    /* the tensor-core prefill's chunk: 1024 positions of x (8 MiB), q (8 MiB) and two f16 planes of the
     * operands (8 MiB at the width, 32 MiB at ff): 56 MiB and the step inputs */
    uint64_t pf[6];
    uint64_t pf_total = jf_prefill_bytes(&c, pf);
    CHECK(c.pf_chunk == 1024 && pf[1] == 1024ull * 2048 * 4 && pf[2] == 1024ull * 2048 * 4 &&
              pf[3] == 2ull * 1024 * 2048 * 2 && pf[4] == 2ull * 1024 * 8192 * 2 && pf_total < 57ull << 20 &&
              pf_total > 56ull << 20 && plan.activations > pf_total,
          "1B plan: the prefill chunk's %" PRIu64 " bytes are in the activations", pf_total);
    CHECK(jf_prefill_use(&c, 2048) && jf_prefill_use(&c, JF_PF_MIN_POSITIONS) &&
              !jf_prefill_use(&c, JF_PF_MIN_POSITIONS - 1),
          "1B at f16: prompts of %d+ tokens prefill on tensor cores", JF_PF_MIN_POSITIONS);
}

/* The plan against the bytes the tensors of a real (synthetic) model take
 * once padded: computed from the view's tensors, not from the formula. */
static void test_plan_against_model(const char *tmp_dir) {
    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    spec.n_embd = 90, spec.n_head = 5, spec.n_head_kv = 1, spec.n_ff = 250, spec.n_layer = 2, spec.n_vocab = 1001;
    spec.n_ctx = 64, spec.tied_output = false, spec.type = GGUF_TYPE_F16;
    char path[512];
    snprintf(path, sizeof path, "%s/jit_fused_host_odd.gguf", tmp_dir);
    fb_error err;
    CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
    test_model tm;
    if (test_model_open(path, &tm) != 0) return;
    const fb_model_view *mv = &tm.view.view;
    for (int w = JF_F32; w <= JF_BF16; w++) {
        jf_config c;
        char msg[256];
        CHECK(jf_config_from_view(mv, 0, (jf_wtype)w, &c, msg, sizeof msg) == 0, "config: %s", msg);
        uint64_t want = 0;
        const fb_tensor_view *mats[] = {mv->token_embd, mv->output};
        for (int i = 0; i < 2; i++)
            want += (uint64_t)mats[i]->ne[1] * (uint64_t)jf_padded((int)mats[i]->ne[0], c.esize) * (uint64_t)c.esize;
        want += (uint64_t)jf_padded((int)mv->output_norm->ne[0], c.esize) * 4 + (uint64_t)(mv->n_rot / 2) * 4;
        for (uint32_t l = 0; l < mv->n_layer; l++) {
            const fb_layer_view *L = FB_MODEL_LAYER(mv, l);
            const fb_tensor_view *t[] = {&L->attn_q,   &L->attn_k, &L->attn_v,  &L->attn_output,
                                         &L->ffn_gate, &L->ffn_up, &L->ffn_down};
            for (int i = 0; i < 7; i++)
                want += (uint64_t)t[i]->ne[1] * (uint64_t)jf_padded((int)t[i]->ne[0], c.esize) * (uint64_t)c.esize;
            want += 2 * (uint64_t)jf_padded((int)L->attn_norm.ne[0], c.esize) * 4;
        }
        jf_plan plan;
        jf_plan_compute(&c, &plan);
        CHECK(plan.weights == want, "wtype %d: plan %" PRIu64 " weight bytes, the tensors padded take %" PRIu64, w,
              plan.weights, want);
    }
    test_model_close(&tm);
}

/* Conversion into padded rows from every storage type, with 1 and 4
 * threads, against the core's own f32 decode and an independent rounding. */
static void test_convert(void) {
    const fb_host *host = fb_host_services();
    const int64_t rows = 67, cols = 256, ld = 264; /* 67 rows: uneven thread shares */
    static const uint32_t types[] = {GGUF_TYPE_F32,  GGUF_TYPE_F16,  GGUF_TYPE_BF16, GGUF_TYPE_Q8_0,
                                     GGUF_TYPE_Q4_1, GGUF_TYPE_Q5_0, GGUF_TYPE_Q4_K, GGUF_TYPE_Q6_K};
    float *values = malloc((size_t)(rows * cols) * sizeof *values), *want = malloc((size_t)cols * sizeof *want);
    uint8_t *encoded = malloc((size_t)(rows * cols) * 8), *out = malloc((size_t)(rows * ld) * 4);
    for (int64_t i = 0; i < rows * cols; i++) values[i] = rnd();
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t];
        size_t row_bytes = (size_t)host->row_bytes(type, cols);
        int enc_ok = 1;
        for (int64_t r = 0; r < rows && enc_ok; r++)
            enc_ok = quant_row_from_f32(type, values + r * cols, encoded + (size_t)r * row_bytes, cols) == 0;
        CHECK(enc_ok, "encode %s", host->type_name(type));
        for (int w = JF_F32; w <= JF_BF16 && enc_ok; w++) {
            for (int threads = 1; threads <= 4; threads += 3) {
                size_t esize = w == JF_F32 ? 4 : 2;
                memset(out, 0xAB, (size_t)(rows * ld) * 4); /* the padding must come back zero */
                CHECK(jf_convert_rows(host, type, encoded, rows, cols, out, ld, (jf_wtype)w, threads) == 0,
                      "convert %s -> %d", host->type_name(type), w);
                int mismatches = 0, dirty_padding = 0;
                for (int64_t r = 0; r < rows; r++) {
                    host->dequantize_row_f32(type, encoded + (size_t)r * row_bytes, want, cols);
                    const uint8_t *row = out + (size_t)(r * ld) * esize;
                    for (int64_t i = 0; i < cols; i++) {
                        float got;
                        if (w == JF_F32) memcpy(&got, row + i * 4, 4);
                        else {
                            uint16_t h;
                            memcpy(&h, row + i * 2, 2);
                            got = w == JF_F16 ? fp16_to_f32(h) : bf16_to_f32(h);
                        }
                        float expect = w == JF_F32   ? want[i]
                                       : w == JF_F16 ? fp16_to_f32(f32_to_fp16(want[i]))
                                                     : bf16_to_f32(f32_to_bf16(want[i]));
                        /* f16 straight from blocks with f16 scales may differ by the last bit */
                        double tol = w == JF_F16 ? fabs(expect) * (1.0 / 1024) + 1e-7 : 0;
                        if (!(fabs((double)got - expect) <= tol)) mismatches++;
                    }
                    for (size_t b = (size_t)cols * esize; b < (size_t)ld * esize; b++) dirty_padding += row[b] != 0;
                }
                CHECK(mismatches == 0 && dirty_padding == 0,
                      "%s -> wtype %d, %d threads: %d values differ, %d padding bytes not zero", host->type_name(type),
                      w, threads, mismatches, dirty_padding);
            }
        }
    }
    CHECK(jf_convert_rows(host, 999, encoded, 1, cols, out, ld, JF_F32, 1) != 0, "unknown type refused");
    CHECK(jf_convert_rows(host, GGUF_TYPE_F32, encoded, 1, cols, out, cols - 1, JF_F32, 1) != 0, "ld < cols refused");
    free(values), free(want), free(encoded), free(out);
    /* bf16 rounding: to nearest even, NaN stays NaN */
    uint32_t u = 0x3F808000u;
    float f;
    memcpy(&f, &u, 4);
    CHECK(fb_f32_to_bf16(f) == 0x3F80 && fb_f32_to_bf16(1.0f) == 0x3F80 && isnan(bf16_to_f32(fb_f32_to_bf16(NAN))),
          "bf16 rounding");
    float inv[9];
    jf_rope_inv_freq(inv, 18, 10000.0f, NULL);
    CHECK(inv[0] == 1.0f && fabs(inv[4] - pow(10000.0, -8.0 / 18)) < 1e-7, "RoPE frequencies");
}

static void test_source(void) {
    jf_config c;
    char msg[256];
    jf_config_from_view(&odd_view, 0, JF_BF16, &c, msg, sizeof msg);
    char *src = jf_generate_source(&c);
    CHECK(src != NULL, "source generated");
    if (!src) return;
    CHECK(strstr(src, "#define JF_DIM 90\n") && strstr(src, "#define JF_N_HEADS 5\n") &&
              strstr(src, "#define JF_N_KV_HEADS 1\n") && strstr(src, "#define JF_HEAD_DIM 18\n") &&
              strstr(src, "#define JF_N_FF 250\n") && strstr(src, "#define JF_VOCAB 1001\n") &&
              strstr(src, "#define JF_LD_DIM 96\n") && strstr(src, "#define JF_LD_FF 256\n") &&
              strstr(src, "#define JF_WTYPE 2 ") && strstr(src, "#define JF_SPLITS 64\n") &&
              strstr(src, "#define JF_N_LAYERS 2\n") && strstr(src, "case 0: jf_layer_op_of<JF_T_BF16"),
          "the shapes and precision are baked in");
    /* eps as its exact bits: 1e-6f is 0x358637bd */
    CHECK(strstr(src, "#define JF_RMS_EPS __int_as_float(0x358637bd)") != NULL, "rms eps carried bit-exactly");
    float scale = 1.0f / sqrtf(18.0f);
    uint32_t bits;
    memcpy(&bits, &scale, 4);
    char want[80];
    snprintf(want, sizeof want, "#define JF_ATT_SCALE __int_as_float(0x%08x)", bits);
    CHECK(strstr(src, want) != NULL, "attention scale carried bit-exactly");
    CHECK(strstr(src, jf_kernel_template) != NULL && strlen(jf_kernel_template) > 5000,
          "the embedded template follows");
    for (int k = 0; k < JF_K_COUNT; k++) {
        char decl[80];
        snprintf(decl, sizeof decl, "%s", jf_kernel_names[k]);
        /* _1 and _nb entry points come from one macro: their stem is in the template */
        char *suffix = strstr(decl, "_1");
        if (!suffix) suffix = strstr(decl, "_nb");
        if (suffix && k >= JF_K_QKV_ROPE_1 && k < JF_K_PF_NORM) *suffix = '\0';
        /* the tensor-core prefill's kernels are in their own template, appended at f16 and bf16 */
        const char *tmpl = k >= JF_K_PF_NORM ? jf_prefill_template : jf_kernel_template;
        CHECK(strstr(tmpl, decl) != NULL, "template defines %s", jf_kernel_names[k]);
        CHECK(jf_kernel_present(&c, (jf_kernel_id)k), "bf16 source has %s", jf_kernel_names[k]);
    }
    CHECK(c.pf_chunk == JF_PF_CHUNK && strstr(src, jf_prefill_template) != NULL &&
              strstr(src, "#define JF_PF_CHUNK 1024\n#define JF_PF_T JF_T_BF16\n") != NULL,
          "bf16: the tensor-core prefill's template and constants follow");
    free(src);
    /* f32 weights: no tensor-core prefill (an f16 operand would round them) */
    jf_config_from_view(&odd_view, 0, JF_F32, &c, msg, sizeof msg);
    src = jf_generate_source(&c);
    CHECK(src && c.pf_chunk == 0 && !strstr(src, "jf_pf_qkv") && !jf_kernel_present(&c, JF_K_PF_QKV) &&
              jf_kernel_present(&c, JF_K_QKV_ROPE_NB) && !jf_prefill_use(&c, 2048) &&
              strcmp(jf_prefill_note(&c), "prefill: CUDA cores") == 0,
          "f32: prefill on CUDA cores only");
    free(src);
}

static void test_options(void) {
    char opts[256], msg[256] = "";
    int is_ptx = -1;
    CHECK(jf_nvrtc_version()[0] != '\0', "NVRTC answers: %s", jf_nvrtc_version());
    CHECK(jf_compile_options(9, 0, opts, sizeof opts, &is_ptx, msg, sizeof msg) == 0 && is_ptx == 0 &&
              strstr(opts, "--gpu-architecture=sm_90"),
          "sm_90 options: %s %s", opts, msg);
    CHECK(jf_compile_options(8, 0, opts, sizeof opts, &is_ptx, msg, sizeof msg) == 0 && is_ptx == 0 &&
              strstr(opts, "sm_80"),
          "sm_80 options: %s", opts);
    CHECK(jf_compile_options(7, 5, opts, sizeof opts, &is_ptx, msg, sizeof msg) != 0 && strstr(msg, "8.0"),
          "compute capability 7.5 refused: %s", msg);
    /* 9.9 is newer than sm_90 but no NVRTC knows it: PTX for the newest architecture at most 9.9 */
    CHECK(jf_compile_options(9, 9, opts, sizeof opts, &is_ptx, msg, sizeof msg) == 0 && is_ptx == 1 &&
              strstr(opts, "compute_9"),
          "unknown 9.9: PTX (%s) %s", opts, msg);
}

static void test_spill_parser(void) {
    const char *clean = "ptxas info    : Function properties for k\n"
                        "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n";
    const char *spilled = "ptxas         .     8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads\n"
                          "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 4 bytes spill loads\n";
    CHECK(jf_log_spill_bytes(clean) == 0, "no spills read as 0");
    CHECK(jf_log_spill_bytes(spilled) == 32, "spills summed: %ld", jf_log_spill_bytes(spilled));
    CHECK(jf_log_spill_bytes("no statistics") == -1 && jf_log_spill_bytes(NULL) == -1, "no statistics read as -1");
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_cache(const char *tmp_dir) {
    char dir[600], key[65], k2[65], why[512], msg[512];
    snprintf(dir, sizeof dir, "%s/jit_fused_host_cache/a/b", tmp_dir); /* created with its parents */
    CHECK(jf_cache_key("source", "opts", "13.0", 9, 0, key) == 0, "key computed");
    CHECK(strlen(key) == 64, "key is 64 hex characters");
    jf_cache_key("source", "opts", "13.0", 9, 0, k2);
    CHECK(strcmp(key, k2) == 0, "same inputs, same key");
    const char *variants[][3] = {{"sourcE", "opts", "13.0"}, {"source", "opts ", "13.0"}, {"source", "opts", "13.1"}};
    for (int i = 0; i < 3; i++) {
        jf_cache_key(variants[i][0], variants[i][1], variants[i][2], 9, 0, k2);
        CHECK(strcmp(key, k2) != 0, "key changes with input %d", i);
    }
    jf_cache_key("source", "opts", "13.0", 8, 0, k2);
    CHECK(strcmp(key, k2) != 0, "key changes with the architecture");

    jf_image img = {0}, back = {0};
    char path[700];
    snprintf(path, sizeof path, "%s/%s.fbjit", dir, key);
    unlink(path); /* left by an earlier run */
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 0 && strstr(why, "absent"), "empty cache misses: %s", why);
    img.size = 5000;
    img.data = malloc(img.size);
    for (size_t i = 0; i < img.size; i++) ((uint8_t *)img.data)[i] = (uint8_t)(i * 31 + 7);
    CHECK(jf_cache_write(dir, key, &img, msg, sizeof msg) == 0, "write: %s", msg);
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 1 && back.size == img.size && back.is_ptx == 0 &&
              memcmp(back.data, img.data, img.size) == 0,
          "round trip: %s", why);
    jf_image_free(&back);
    /* every damaged form is a miss that says why, never a crash or a bad image */
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    uint8_t *whole = malloc(img.size + 200);
    if (f) {
        n = fread(whole, 1, img.size + 200, f);
        fclose(f);
    }
    CHECK(n > img.size, "cache file read back (%zu bytes)", n);
    write_file(path, whole, n - 1);
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 0 && strstr(why, "truncated"), "truncated: %s", why);
    whole[n - 10] ^= 0x40;
    write_file(path, whole, n);
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 0 && strstr(why, "corrupt"), "flipped bit: %s", why);
    whole[n - 10] ^= 0x40;
    whole[0] = 'X';
    write_file(path, whole, n);
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 0 && strstr(why, "header"), "bad magic: %s", why);
    write_file(path, whole, 10);
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 0 && strstr(why, "header"), "short file: %s", why);
    CHECK(back.data == NULL, "a miss leaves no image");
    /* a PTX image keeps its kind */
    img.is_ptx = 1;
    CHECK(jf_cache_write(dir, key, &img, msg, sizeof msg) == 0, "rewrite over the damaged file");
    CHECK(jf_cache_read(dir, key, &back, why, sizeof why) == 1 && back.is_ptx == 1, "PTX kind kept");
    jf_image_free(&back);
    /* an unwritable folder is an error with a sentence, not a crash */
    snprintf(path, sizeof path, "%s/jit_fused_host_cache/file", tmp_dir);
    write_file(path, "x", 1);
    snprintf(dir, sizeof dir, "%s/jit_fused_host_cache/file/sub", tmp_dir);
    CHECK(jf_cache_write(dir, key, &img, msg, sizeof msg) != 0 && strstr(msg, "cannot"), "unwritable folder: %s", msg);
    jf_image_free(&img);
    free(whole);

    /* where the cache lives */
    char out[600];
    CHECK(jf_cache_dir("/given", out, sizeof out) == 0 && strcmp(out, "/given") == 0, "cache_dir setting wins");
    setenv("FAIRBENCH_JIT_CACHE", "/from-env", 1);
    CHECK(jf_cache_dir(NULL, out, sizeof out) == 0 && strcmp(out, "/from-env") == 0, "then FAIRBENCH_JIT_CACHE");
    unsetenv("FAIRBENCH_JIT_CACHE");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    CHECK(jf_cache_dir(NULL, out, sizeof out) == 0 && strcmp(out, "/xdg/fairbench/jit") == 0, "then XDG_CACHE_HOME");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    CHECK(jf_cache_dir(NULL, out, sizeof out) == 0 && strcmp(out, "/home/u/.cache/fairbench/jit") == 0, "then HOME");
}

/* weight_precision = native: row layouts, kinds of layer, the plan, the
 * source and its cache key, and a type the kernels cannot read refused. */
static void test_native(const char *tmp_dir) {
    CHECK(jf_row_bytes(JF_T_Q8_0, 160) == 160 + 16 && jf_row_bytes(JF_T_Q4_0, 160) == 80 + 16 &&
              jf_row_bytes(JF_T_Q4_1, 160) == 80 + 32 && jf_row_bytes(JF_T_Q4_K, 512) == 288 &&
              jf_row_bytes(JF_T_Q5_K, 256) == 176 && jf_row_bytes(JF_T_Q6_K, 512) == 416 + 16 &&
              jf_row_bytes(JF_T_F16, 90) == 192 && jf_row_bytes(JF_T_F32, 90) == 368,
          "device row bytes of each type");
    CHECK(jf_row_bytes(JF_T_Q4_0, 100) == 0 && jf_row_bytes(JF_T_Q4_K, 288) == 0 &&
              jf_row_bytes(6 /* Q5_0 */, 256) == 0,
          "rows that are not whole blocks, and types without kernels, have no layout");
    /* Q8_0 re-laid out: quants first, then the scales */
    uint8_t block[2 * 34], dev[96];
    for (int i = 0; i < (int)sizeof block; i++) block[i] = (uint8_t)(i * 7 + 1);
    CHECK(jf_layout_rows(fb_host_services(), GGUF_TYPE_Q8_0, block, 1, 64, dev, JF_T_Q8_0, 1) == 0 &&
              memcmp(dev, block + 2, 32) == 0 && memcmp(dev + 32, block + 36, 32) == 0 &&
              memcmp(dev + 64, block, 2) == 0 && memcmp(dev + 66, block + 34, 2) == 0 && dev[68] == 0 && dev[79] == 0,
          "Q8_0 row: qs of both blocks, then both d, padding zero");
    CHECK(jf_layout_rows(fb_host_services(), GGUF_TYPE_Q8_0, block, 1, 64, dev, JF_T_Q4_0, 1) != 0,
          "a block type is never converted into another");

    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    spec.n_embd = 256, spec.n_head = 4, spec.n_head_kv = 2, spec.n_ff = 512, spec.n_layer = 2, spec.n_vocab = 300;
    spec.tied_output = false, spec.mix = FB_SYNTH_MIX_Q4_K_M;
    char path[512];
    snprintf(path, sizeof path, "%s/jit_fused_host_q4_k_m.gguf", tmp_dir);
    fb_error err;
    CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
    test_model tm;
    if (test_model_open(path, &tm) != 0) return;
    const fb_model_view *mv = &tm.view.view;
    jf_config c, c8;
    char msg[256] = "";
    CHECK(jf_config_from_view(mv, 0, JF_NATIVE, &c, msg, sizeof msg) == 0, "native config: %s", msg);
    CHECK(c.n_kinds == 2 && c.kind_layers[0] == 1 && c.kind_layers[1] == 1 && c.embd_type == JF_T_Q4_K &&
              c.out_type == JF_T_Q6_K && c.kinds[0].v == JF_T_Q4_K && c.kinds[1].v == JF_T_Q6_K &&
              c.kinds[1].down == JF_T_Q6_K && c.kinds[1].q == JF_T_Q4_K && jf_layer_kind(&c, mv, 0) == 0 &&
              jf_layer_kind(&c, mv, 1) == 1,
          "Q4_K_M of 2 layers: two kinds (Q6_K attn_v and ffn_down in layer 1), a Q6_K LM head");
    /* the plan against the tensors' device rows */
    uint64_t want =
        (uint64_t)mv->token_embd->ne[1] * (uint64_t)jf_row_bytes(mv->token_embd->type, mv->token_embd->ne[0]) +
        (uint64_t)mv->output->ne[1] * (uint64_t)jf_row_bytes(mv->output->type, mv->output->ne[0]) +
        (uint64_t)c.ld_dim * 4 + (uint64_t)(mv->n_rot / 2) * 4;
    for (uint32_t l = 0; l < mv->n_layer; l++) {
        const fb_layer_view *L = FB_MODEL_LAYER(mv, l);
        const fb_tensor_view *t[] = {&L->attn_q,   &L->attn_k, &L->attn_v,  &L->attn_output,
                                     &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (int i = 0; i < 7; i++) want += (uint64_t)t[i]->ne[1] * (uint64_t)jf_row_bytes(t[i]->type, t[i]->ne[0]);
        want += 2 * (uint64_t)c.ld_dim * 4;
    }
    jf_plan plan;
    jf_plan_compute(&c, &plan);
    CHECK(plan.weights == want, "native plan: %" PRIu64 " weight bytes, the device rows take %" PRIu64, plan.weights,
          want);
    char *src = jf_generate_source(&c);
    CHECK(src && strstr(src, "#define JF_T_EMBD JF_T_Q4_K\n") && strstr(src, "#define JF_T_OUT JF_T_Q6_K\n") &&
              strstr(src, "JF_LAYER_ENTRY_POINTS(k1, JF_T_Q4_K, JF_T_Q4_K, JF_T_Q6_K, JF_T_Q4_K, JF_T_Q4_K, JF_T_Q4_K, "
                          "JF_T_Q6_K)") &&
              strstr(src, "JF_LAYER_ENTRY_POINTS(k0, JF_T_Q4_K,"),
          "the source names every type and one set of entry points per kind");
    /* another type set gives another source, so another cache key */
    c8 = c;
    c8.kinds[0].q = JF_T_Q8_0;
    char *src8 = jf_generate_source(&c8);
    char k1[65] = "", k2[65] = "";
    CHECK(src && src8 && jf_cache_key(src, "o", "13.0", 9, 0, k1) == 0 &&
              jf_cache_key(src8, "o", "13.0", 9, 0, k2) == 0 && strcmp(k1, k2) != 0,
          "the cache key depends on the types");
    free(src);
    free(src8);
    char name[64];
    jf_kernel_name(JF_K_GATE_UP_NB, 1, name, sizeof name);
    CHECK(strcmp(name, "jf_gate_up_nb_k1") == 0, "per-kind entry point name: %s", name);
    jf_kernel_name(JF_K_LM_HEAD_1, 1, name, sizeof name);
    CHECK(strcmp(name, "jf_lm_head_1") == 0, "global entry point name: %s", name);
    test_model_close(&tm);

    /* Q5_0 has no kernel: native refused with the tensor's name */
    spec.mix = FB_SYNTH_MIX_NONE, spec.type = GGUF_TYPE_Q5_0;
    snprintf(path, sizeof path, "%s/jit_fused_host_q5_0.gguf", tmp_dir);
    CHECK(fb_synth_write(&spec, path, NULL, &err) == 0, "synth: %s", err.msg);
    if (test_model_open(path, &tm) != 0) return;
    CHECK(jf_config_from_view(&tm.view.view, 0, JF_NATIVE, &c, msg, sizeof msg) != 0 &&
              strstr(msg, "token_embd.weight") && strstr(msg, "in place"),
          "Q5_0 refused at native: %s", msg);
    CHECK(jf_config_from_view(&tm.view.view, 0, JF_F16, &c, msg, sizeof msg) == 0, "Q5_0 at f16: %s", msg);
    test_model_close(&tm);
}

int main(int argc, char **argv) {
    const char *tmp_dir = argc > 1 ? argv[1] : "/tmp";
    test_config();
    test_plan_against_model(tmp_dir);
    test_convert();
    test_source();
    test_options();
    test_spill_parser();
    test_cache(tmp_dir);
    test_native(tmp_dir);
    return check_summary();
}
