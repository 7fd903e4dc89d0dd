/* test_eager_ops_host.c - the host-side half of eager_ops, with no device:
 * shapes from a model view, the device-memory plan, weight conversion to
 * f32 / f16 / bf16 from every storage type, and the RoPE frequencies, each
 * against an independent computation. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "eager_ops_host.h"
#include "plugin_host.h"
#include "quant.h"

static uint64_t rng_state;
static float rnd(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

static void test_bf16(void) {
    /* Exact values pass through; halfway cases round to even; NaN stays NaN. */
    CHECK(fb_f32_to_bf16(1.0f) == 0x3F80, "1.0");
    CHECK(fb_f32_to_bf16(-2.0f) == 0xC000, "-2.0");
    uint32_t u = 0x3F808000u; /* 1 + 2^-8: exactly halfway between 0x3F80 and 0x3F81 -> even 0x3F80 */
    float f;
    memcpy(&f, &u, 4);
    CHECK(fb_f32_to_bf16(f) == 0x3F80, "halfway rounds to even (down)");
    u = 0x3F818000u; /* halfway between 0x3F81 and 0x3F82 -> even 0x3F82 */
    memcpy(&f, &u, 4);
    CHECK(fb_f32_to_bf16(f) == 0x3F82, "halfway rounds to even (up)");
    CHECK(isnan(bf16_to_f32(fb_f32_to_bf16(NAN))), "NaN stays NaN");
    CHECK(fb_f32_to_bf16(INFINITY) == 0x7F80, "inf");
    /* Relative error at most 2^-8 (half an ulp) for normal values. */
    double worst = 0;
    for (int i = 0; i < 100000; i++) {
        float x = rnd() * 100.0f;
        if (x == 0) continue;
        double e = fabs(bf16_to_f32(fb_f32_to_bf16(x)) - x) / fabs(x);
        worst = e > worst ? e : worst;
    }
    CHECK(worst <= 1.0 / 256 + 1e-12, "bf16 rounding error %.3g <= 2^-8 (half an ulp of 8 significant bits)", worst);
}

/* Every (storage type -> eo_dtype) conversion against the core's own f32
 * decode followed by an independent rounding. */
static void test_convert(void) {
    const fb_host *host = fb_host_services();
    const int64_t rows = 5, cols = 256; /* a multiple of every block size */
    static const uint32_t types[] = {GGUF_TYPE_F32, GGUF_TYPE_F16, GGUF_TYPE_BF16, GGUF_TYPE_Q8_0, GGUF_TYPE_Q4_0,
                                     GGUF_TYPE_Q4_1, GGUF_TYPE_Q5_0, GGUF_TYPE_Q5_1, GGUF_TYPE_Q4_K, GGUF_TYPE_Q5_K,
                                     GGUF_TYPE_Q6_K};
    float *values = malloc((size_t)(rows * cols) * sizeof *values), *want = malloc((size_t)cols * sizeof *want);
    float *scratch = malloc((size_t)cols * sizeof *scratch);
    uint8_t *encoded = malloc((size_t)(rows * cols) * 8), *out = malloc((size_t)(rows * cols) * 4);
    for (int64_t i = 0; i < rows * cols; i++) values[i] = rnd();
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        uint32_t type = types[t];
        size_t row_bytes = (size_t)host->row_bytes(type, cols);
        int enc_ok = 1;
        for (int64_t r = 0; r < rows && enc_ok; r++)
            enc_ok = quant_row_from_f32(type, values + r * cols, encoded + (size_t)r * row_bytes, cols) == 0;
        CHECK(enc_ok, "encode %s", host->type_name(type));
        if (!enc_ok) continue;
        for (int d = EO_F32; d <= EO_BF16; d++) {
            CHECK(eo_convert_rows(host, type, encoded, out, (eo_dtype)d, rows, cols, scratch) == 0, "convert %s -> %d",
                  host->type_name(type), d);
            int mismatches = 0;
            for (int64_t r = 0; r < rows; r++) {
                host->dequantize_row_f32(type, encoded + (size_t)r * row_bytes, want, cols);
                for (int64_t i = 0; i < cols; i++) {
                    float got;
                    size_t at = (size_t)(r * cols + i);
                    if (d == EO_F32) memcpy(&got, out + at * 4, 4);
                    else {
                        uint16_t h;
                        memcpy(&h, out + at * 2, 2);
                        got = d == EO_F16 ? fp16_to_f32(h) : bf16_to_f32(h);
                    }
                    float expect = d == EO_F32   ? want[i]
                                   : d == EO_F16 ? fp16_to_f32(f32_to_fp16(want[i]))
                                                 : bf16_to_f32(fb_f32_to_bf16(want[i]));
                    /* F16 from F16 (and from blocks with f16 scales) is decoded straight to f16 by the host:
                     * it must equal rounding the f32 decode, except where that is not exact. */
                    double tol = d == EO_F16 ? fabs(expect) * (1.0 / 1024) + 1e-7 : 0;
                    if (!(fabs((double)got - expect) <= tol)) mismatches++;
                }
            }
            CHECK(mismatches == 0, "%s -> %s: %d values differ from the reference", host->type_name(type),
                  d == EO_F32 ? "f32" : d == EO_F16 ? "f16" : "bf16", mismatches);
        }
    }
    /* A type that cannot be decoded is refused. */
    CHECK(eo_convert_rows(host, 999, encoded, out, EO_F32, 1, cols, scratch) != 0, "unknown type refused");
    free(values), free(want), free(scratch), free(encoded), free(out);
}

static void test_rope(void) {
    float inv[64], factors[64];
    for (int i = 0; i < 64; i++) factors[i] = 1.0f + (float)i / 8;
    eo_rope_inv_freq(inv, 128, 500000.0f, factors);
    double worst = 0;
    for (int i = 0; i < 64; i++) {
        double want = exp(-2.0 * i / 128 * log(500000.0)) / factors[i];
        worst = fmax(worst, fabs(inv[i] - want) / want);
    }
    CHECK(worst < 1e-6, "RoPE frequencies with factors: relative error %.3g", worst);
    eo_rope_inv_freq(inv, 64, 10000.0f, NULL);
    CHECK(inv[0] == 1.0f && fabs(inv[1] - pow(10000.0, -2.0 / 64)) < 1e-7, "RoPE frequencies without factors");
}

static void test_config_and_plan(void) {
    /* llama3.2-1b's shapes, as the model view gives them. */
    fb_model_view mv = {.struct_size = sizeof mv, .n_embd = 2048, .n_layer = 16, .n_head = 32, .n_head_kv = 8,
                        .head_dim = 64, .n_ff = 8192, .n_ctx = 131072, .n_vocab = 128256, .n_rot = 64,
                        .rope_freq_base = 500000.0f, .rms_eps = 1e-5f, .tied_output = 1};
    eo_config c;
    char msg[256] = "";
    CHECK(eo_config_from_view(&mv, 1024, 64, &c, msg, sizeof msg) == 0, "config: %s", msg);
    CHECK(c.kv_dim == 512 && c.q_dim == 2048 && c.widest == 8192 && c.max_seq == 1024 && c.max_batch == 64 && c.tied,
          "derived shapes");
    eo_plan p16, p32;
    eo_plan_compute(&c, EO_F16, &p16);
    eo_plan_compute(&c, EO_F32, &p32);
    /* 1B parameters without the tied embedding: 16 x (2048*2048*2 + 2*2048*512 + 3*2048*8192) = 973,078,528. */
    uint64_t layer_params = 16ull * (2048ull * 2048 * 2 + 2ull * 2048 * 512 + 3ull * 2048 * 8192);
    uint64_t want16 = (layer_params + 128256ull * 2048) * 2 + 16ull * 2 * 2048 * 4 + 2048 * 4 + 32 * 4;
    CHECK(p16.weights == want16, "f16 weights %" PRIu64 " bytes, want %" PRIu64, p16.weights, want16);
    CHECK(p32.weights == (layer_params + 128256ull * 2048) * 4 + 16ull * 2 * 2048 * 4 + 2048 * 4 + 32 * 4,
          "f32 weights");
    CHECK(p16.kv_cache == 2ull * 16 * 1024 * 512 * 4, "KV cache 64 MiB for 1024 positions");
    CHECK(p16.total == p16.weights + p16.kv_cache + p16.activations + p16.workspace && p16.activations > 0,
          "plan adds up");
    CHECK(p16.activations - p32.activations == 64ull * (8192 * 2 - 2048 * 4),
          "GEMM inputs: (batch, dim) f32 at f32; (batch, widest) 16-bit at 16-bit precisions");
    printf("  llama3.2-1b plan at f16, 1024 positions: %.2f GiB (weights %.2f, KV %.3f, activations %.3f)\n",
           p16.total / 1073741824.0, p16.weights / 1073741824.0, p16.kv_cache / 1073741824.0,
           p16.activations / 1073741824.0);
    /* max_context 0 means n_ctx; larger is capped by it; a tiny context caps the batch. */
    CHECK(eo_config_from_view(&mv, 0, 64, &c, msg, sizeof msg) == 0 && c.max_seq == 131072, "max_context 0");
    CHECK(eo_config_from_view(&mv, 1u << 20, 64, &c, msg, sizeof msg) == 0 && c.max_seq == 131072, "capped by n_ctx");
    CHECK(eo_config_from_view(&mv, 8, 64, &c, msg, sizeof msg) == 0 && c.max_batch == 8, "batch capped by context");
    /* Shapes the backend cannot run are refused with a sentence. */
    fb_model_view bad = mv;
    bad.n_head_kv = 5;
    CHECK(eo_config_from_view(&bad, 0, 64, &c, msg, sizeof msg) != 0 && strstr(msg, "KV heads"), "GQA ratio: %s", msg);
    bad = mv;
    bad.n_rot = 63;
    CHECK(eo_config_from_view(&bad, 0, 64, &c, msg, sizeof msg) != 0 && strstr(msg, "RoPE"), "odd n_rot: %s", msg);
}

int main(void) {
    rng_state = (uint64_t)time(NULL);
    printf("test_eager_ops_host: seed %" PRIu64 "\n", rng_state);
    test_bf16();
    test_convert();
    test_rope();
    test_config_and_plan();
    return check_summary();
}
