/* test_model.c - the model view and synthetic models.
 *
 * Synthetic models are written with `synth`, opened through the model view,
 * and checked for the hyper-parameters they were given, the tensor map, the
 * weights' statistics (realistic scale, never zeros), determinism, and the
 * errors of broken models (wrong shape, missing tensor, other architecture). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "synth.h"

static char tmp_dir[400];

static const char *tmp_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

static fb_model *open_synth(const fb_synth_spec *spec, const char *name) {
    fb_error err;
    fb_model *m = NULL;
    const char *path = tmp_path(name);
    if (fb_synth_write(spec, path, NULL, &err)) {
        CHECK(0, "synth %s: %s", name, err.msg);
        return NULL;
    }
    if (fb_model_open(path, &m, &err)) CHECK(0, "open %s: %s", name, err.msg);
    return m;
}

/* Mean and standard deviation of a tensor's values, decoded to f32. */
static void tensor_stats(const gguf_tensor *t, double *mean, double *std, int64_t *zeros) {
    float *row = malloc((size_t)t->ne[0] * sizeof *row);
    size_t row_bytes = quant_row_bytes(t->type, t->ne[0]);
    double sum = 0, sum2 = 0;
    *zeros = 0;
    for (int64_t r = 0; r < (int64_t)(t->n_elems / (uint64_t)t->ne[0]); r++) {
        quant_row_to_f32(t->type, (const uint8_t *)t->data + (size_t)r * row_bytes, row, t->ne[0]);
        for (int64_t i = 0; i < t->ne[0]; i++) {
            sum += row[i], sum2 += (double)row[i] * row[i];
            *zeros += row[i] == 0.0f;
        }
    }
    *mean = sum / (double)t->n_elems;
    *std = sqrt(sum2 / (double)t->n_elems - *mean * *mean);
    free(row);
}

static void test_tiny(void) {
    fb_synth_spec spec;
    CHECK(fb_synth_preset("tiny", &spec) == 0, "tiny preset");
    spec.seed = 1234;
    fb_model *m = open_synth(&spec, "tiny.gguf");
    if (!m) return;
    const fb_hparams *hp = &m->hp;
    CHECK(hp->n_embd == 64 && hp->n_layer == 2 && hp->n_head == 4 && hp->n_head_kv == 2 && hp->head_dim == 16 &&
              hp->n_ff == 192 && hp->n_vocab == 512 && hp->n_ctx == 512 && hp->n_rot == 16,
          "tiny hyper-parameters");
    CHECK(fabsf(hp->rope_freq_base - 10000.0f) < 1e-3f && fabsf(hp->rms_eps - 1e-5f) < 1e-9f, "rope base, eps");
    CHECK(!m->tied_output && m->output != m->token_embd && m->rope_freqs == NULL, "untied, no rope factors");
    CHECK(strcmp(m->tokenizer_model, "gpt2") == 0 && m->tokenizer_n_tokens == 512 && m->tokenizer_n_merges == 512 - 259,
          "tokenizer summary");
    CHECK(m->layers[1].ffn_down && m->layers[1].ffn_down->ne[0] == 192 && m->layers[1].ffn_down->ne[1] == 64,
          "ffn_down shape");

    /* Decode bytes at f32: 7 matrices a layer + norms + head + one embedding row. */
    uint64_t per_layer = (64 * 64 * 2 + 64 * 32 * 2 + 64 * 192 * 3) * 4 + 2 * 64 * 4;
    uint64_t want = 2 * per_layer + 64 * 4 + 64 * 512 * 4 + 64 * 4;
    CHECK(fb_model_decode_bytes(m, GGUF_TYPE_F32) == want, "decode bytes f32 %" PRIu64 " != %" PRIu64,
          fb_model_decode_bytes(m, GGUF_TYPE_F32), want);
    CHECK(fb_model_decode_bytes(m, -1) == want, "native == f32 for an F32 file");
    CHECK(fb_model_decode_bytes(m, GGUF_TYPE_Q4_K) == 0, "rows of 64 cannot be Q4_K");
    CHECK(fb_model_kv_bytes_per_pos(m, 2) == 2 * 2 * 2 * 16 * 2, "kv bytes per position");

    /* Realistic scale: matrices ~ 1/sqrt(fan_in), embedding 0.02, norms near 1, no zeros. */
    double mean, std;
    int64_t zeros;
    tensor_stats(m->layers[0].attn_q, &mean, &std, &zeros);
    CHECK(fabs(std - 1.0 / 8.0) < 0.01 && fabs(mean) < 0.01 && zeros == 0, "attn_q std %.4f mean %.4f zeros %" PRId64,
          std, mean, zeros);
    tensor_stats(m->layers[1].ffn_down, &mean, &std, &zeros);
    CHECK(fabs(std - 1.0 / sqrt(192.0)) < 0.01 && zeros == 0, "ffn_down std %.4f", std);
    tensor_stats(m->token_embd, &mean, &std, &zeros);
    CHECK(fabs(std - 0.02) < 0.002 && zeros == 0, "token_embd std %.4f", std);
    tensor_stats(m->output_norm, &mean, &std, &zeros);
    CHECK(fabs(mean - 1.0) < 0.05 && std > 0.05 && std < 0.2, "output_norm mean %.3f std %.3f", mean, std);

    /* Determinism: another thread count gives the same bytes; another seed does not. */
    spec.n_threads = 1;
    fb_model *same = open_synth(&spec, "tiny-1thread.gguf");
    spec.seed = 1235;
    fb_model *other = open_synth(&spec, "tiny-other-seed.gguf");
    if (same && other) {
        const gguf_tensor *a = m->layers[1].attn_v, *b = same->layers[1].attn_v, *c = other->layers[1].attn_v;
        CHECK(memcmp(a->data, b->data, a->n_bytes) == 0, "same seed, same weights");
        CHECK(memcmp(a->data, c->data, a->n_bytes) != 0, "other seed, other weights");
    }
    fb_model_close(same);
    fb_model_close(other);
    fb_model_close(m);
}

static void test_tied_and_llama3_rope(void) {
    fb_synth_spec spec;
    fb_synth_preset("tiny", &spec);
    spec.tied_output = true;
    spec.llama3_rope = true;
    spec.type = GGUF_TYPE_Q8_0;
    fb_model *m = open_synth(&spec, "tiny-tied.gguf");
    if (!m) return;
    CHECK(m->tied_output && m->output == m->token_embd, "tied output");
    CHECK(m->token_embd->type == GGUF_TYPE_Q8_0 && m->output_norm->type == GGUF_TYPE_F32, "types");
    CHECK(m->rope_freqs && m->rope_freqs->ne[0] == 8, "rope_freqs present with n_rot/2 values");
    if (m->rope_freqs) {
        const float *fac = m->rope_freqs->data;
        /* Highest frequency (i = 0, wavelength 2*pi) is unscaled; the lowest
         * (wavelength 2*pi*10000^(14/16) ~ 20000 > 8192) is scaled by 32. */
        CHECK(fac[0] == 1.0f && fac[7] == 32.0f, "factors %g .. %g", fac[0], fac[7]);
    }
    uint64_t q8 = fb_model_decode_bytes(m, -1);
    CHECK(q8 > 0 && q8 < fb_model_decode_bytes(m, GGUF_TYPE_F16), "native Q8_0 reads less than f16");
    fb_model_close(m);
}

// ----------------------------------------------------------------------------
// Broken models, built with the writer

static int fill_ones(void *ctx, int tensor, int64_t row0, int64_t n_rows, void *dst, fb_error *err) {
    (void)tensor, (void)row0, (void)err;
    int64_t ne0 = *(const int64_t *)ctx;
    for (int64_t i = 0; i < n_rows * ne0; i++) ((float *)dst)[i] = 1.0f;
    return 0;
}

/* A 1-layer model of width 8 (2 heads of 4), ff 16, vocab 4; `break_what`
 * selects one defect. Returns the error message of opening it ("" if none). */
static const char *open_broken(const char *break_what) {
    static fb_error err;
    static int64_t ne0_8 = 8, ne0_16 = 16;
    const char *path = tmp_path("broken.gguf");
    gguf_writer *w = gguf_writer_new(0);
    gguf_writer_str(w, "general.architecture", strcmp(break_what, "arch") == 0 ? "falcon" : "llama");
    gguf_writer_u32(w, "llama.embedding_length", 8);
    gguf_writer_u32(w, "llama.block_count", strcmp(break_what, "huge_layers") == 0 ? 1000000000u : 1);
    gguf_writer_u32(w, "llama.attention.head_count", 2);
    gguf_writer_u32(w, "llama.feed_forward_length", 16);
    gguf_writer_u32(w, "llama.context_length", 32);
    gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_u32(w, "llama.vocab_size", 4);
    struct {
        const char *name;
        int64_t ne0, ne1;
    } t[] = {
        {"token_embd.weight", 8, 4},
        {"output_norm.weight", 8, 0},
        {"blk.0.attn_norm.weight", 8, 0},
        {"blk.0.attn_q.weight", 8, 8},
        {"blk.0.attn_k.weight", 8, strcmp(break_what, "shape") == 0 ? 6 : 8},
        {"blk.0.attn_v.weight", 8, 8},
        {"blk.0.attn_output.weight", 8, 8},
        {"blk.0.ffn_norm.weight", 8, 0},
        {"blk.0.ffn_gate.weight", 8, 16},
        {"blk.0.ffn_up.weight", 8, 16},
        {"blk.0.ffn_down.weight", 16, 8},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(break_what, "missing") == 0 && strcmp(t[i].name, "blk.0.ffn_up.weight") == 0) continue;
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        gguf_writer_tensor(w, t[i].name, GGUF_TYPE_F32, t[i].ne1 ? 2 : 1, ne, fill_ones,
                           t[i].ne0 == 8 ? &ne0_8 : &ne0_16);
    }
    err.msg[0] = '\0';
    if (gguf_writer_write(w, path, &err) == 0) {
        fb_model *m;
        if (fb_model_open(path, &m, &err) == 0) {
            fb_model_close(m);
            err.msg[0] = '\0';
        }
    }
    gguf_writer_free(w);
    return err.msg;
}

static void test_broken_models(void) {
    const char *msg = open_broken("none");
    CHECK(msg[0] == '\0', "the unbroken model opens: %s", msg);
    msg = open_broken("shape");
    CHECK(strstr(msg, "tensor 'blk.0.attn_k.weight' has shape [8, 6], expected [8, 8]"), "%s", msg);
    msg = open_broken("missing");
    CHECK(strstr(msg, "tensor 'blk.0.ffn_up.weight' is missing"), "%s", msg);
    msg = open_broken("arch");
    CHECK(strstr(msg, "unsupported architecture 'falcon'"), "%s", msg);
    msg = open_broken("huge_layers");
    CHECK(strstr(msg, "block_count = 1000000000 but the file holds only 11 tensors"), "%s", msg);
}

int main(int argc, char **argv) {
    snprintf(tmp_dir, sizeof tmp_dir, "%s", argc > 1 ? argv[1] : "/tmp");
    test_tiny();
    test_tied_and_llama3_rope();
    test_broken_models();
    return check_summary();
}
