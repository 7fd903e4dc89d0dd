/* synth.c - writes synthetic LLaMA GGUF files (see synth.h).
 *
 * Weights are uniform random with the standard deviation of a trained model's
 * initialisation (1/sqrt(fan_in) for matrices, 0.02 for the embedding), norms
 * are near 1: activations stay in a realistic range through every layer, so
 * logits are neither flat nor saturated, and never all zeros. Each row draws
 * from its own generator seeded by (seed, tensor, row), so the file is the
 * same whatever the number of threads. */
#include "synth.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"

// ----------------------------------------------------------------------------
// Presets: the real shapes of the models they are named after

static const struct preset {
    const char *name;
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_freq_base;
    bool tied, llama3_rope;
    const char *pre;
    uint32_t type;
} presets[] = {
    {"tiny", 64, 2, 4, 2, 192, 512, 512, 10000.0f, false, false, "gpt-2", GGUF_TYPE_F32},
    {"smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f, true, false, "smollm", GGUF_TYPE_F16},
    {"llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, true, true, "llama-bpe", GGUF_TYPE_F16},
    {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0f, false, false, "llama-bpe", GGUF_TYPE_F16},
};

int fb_synth_preset(const char *name, fb_synth_spec *spec) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const struct preset *p = &presets[i];
        if (strcmp(p->name, name) != 0) continue;
        memset(spec, 0, sizeof *spec);
        snprintf(spec->preset, sizeof spec->preset, "%s", p->name);
        spec->n_embd = p->n_embd;
        spec->n_layer = p->n_layer;
        spec->n_head = p->n_head;
        spec->n_head_kv = p->n_head_kv;
        spec->n_ff = p->n_ff;
        spec->n_vocab = p->n_vocab;
        spec->n_ctx = p->n_ctx;
        spec->rope_freq_base = p->rope_freq_base;
        spec->rms_eps = 1e-5f;
        spec->tied_output = p->tied;
        spec->llama3_rope = p->llama3_rope;
        snprintf(spec->tokenizer_pre, sizeof spec->tokenizer_pre, "%s", p->pre);
        spec->type = p->type;
        spec->seed = 1;
        return 0;
    }
    return -1;
}

const char *fb_synth_preset_names(void) { return "tiny, smollm2-135m, llama3.2-1b, llama3-8b"; }

// ----------------------------------------------------------------------------
// Mixes (see synth.h)

int fb_synth_mix_from_name(const char *name) {
    if (strcasecmp(name, "q4_k_m") == 0) return FB_SYNTH_MIX_Q4_K_M;
    if (strcasecmp(name, "q5_k_m") == 0) return FB_SYNTH_MIX_Q5_K_M;
    return -1;
}

/* llama.cpp's use_more_bits(i_layer, n_layers). */
static bool use_more_bits(uint32_t i, uint32_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

uint32_t fb_synth_tensor_type(const fb_synth_spec *s, const char *name) {
    if (s->mix == FB_SYNTH_MIX_NONE) return s->type;
    uint32_t base = s->mix == FB_SYNTH_MIX_Q5_K_M ? GGUF_TYPE_Q5_K : GGUF_TYPE_Q4_K;
    if (strcmp(name, "output.weight") == 0 || (s->tied_output && strcmp(name, "token_embd.weight") == 0))
        return GGUF_TYPE_Q6_K;
    unsigned layer;
    char rest[32];
    if (sscanf(name, "blk.%u.%31s", &layer, rest) == 2 &&
        (strcmp(rest, "attn_v.weight") == 0 || strcmp(rest, "ffn_down.weight") == 0) && use_more_bits(layer, s->n_layer))
        return GGUF_TYPE_Q6_K;
    return base;
}

// ----------------------------------------------------------------------------
// Random numbers: splitmix64 to seed each row, xorshift64* along it

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* n values uniform in [center - half_width, center + half_width). */
static void random_row(uint64_t seed, int tensor, int64_t row, float center, float half_width, float *out, int64_t n) {
    uint64_t s = splitmix64(seed ^ splitmix64(((uint64_t)tensor << 40) ^ (uint64_t)row)) | 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t r = s * 0x2545F4914F6CDD1Dull;
        float u = (float)(r >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        out[i] = center + half_width * (2.0f * u - 1.0f);
    }
}

// ----------------------------------------------------------------------------
// Tensor contents

typedef struct synth_tensor {
    uint32_t type;
    int64_t ne0;
    float center, half_width;  /* random rows */
    const float *values;       /* or fixed values (rope_freqs), ne0 of them */
} synth_tensor;

typedef struct synth_ctx {
    const fb_synth_spec *spec;
    synth_tensor *tensors;
    int n_threads;
} synth_ctx;

typedef struct fill_job {
    const synth_ctx *ctx;
    int tensor;
    int64_t row0, n_rows;
    uint8_t *dst;
    int rc;
} fill_job;

static void *fill_rows(void *arg) {
    fill_job *job = arg;
    const synth_tensor *t = &job->ctx->tensors[job->tensor];
    size_t row_bytes = quant_row_bytes(t->type, t->ne0);
    float *row = malloc((size_t)t->ne0 * sizeof *row);
    job->rc = row ? 0 : -1;
    for (int64_t r = 0; r < job->n_rows && job->rc == 0; r++) {
        if (t->values) memcpy(row, t->values, (size_t)t->ne0 * sizeof *row);
        else random_row(job->ctx->spec->seed, job->tensor, job->row0 + r, t->center, t->half_width, row, t->ne0);
        job->rc = quant_row_from_f32(t->type, row, job->dst + (size_t)r * row_bytes, t->ne0);
    }
    free(row);
    return NULL;
}

static int fill_tensor(void *vctx, int tensor, int64_t row0, int64_t n_rows, void *dst, fb_error *err) {
    const synth_ctx *ctx = vctx;
    const synth_tensor *t = &ctx->tensors[tensor];
    size_t row_bytes = quant_row_bytes(t->type, t->ne0);
    enum { MAX_THREADS = 64 };
    fill_job jobs[MAX_THREADS];
    pthread_t threads[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    int n = ctx->n_threads < MAX_THREADS ? ctx->n_threads : MAX_THREADS;
    if (n > n_rows) n = (int)n_rows;
    if (n < 1) n = 1;
    int64_t per = (n_rows + n - 1) / n;
    int used = 0;
    for (int i = 0; i < n; i++) {
        int64_t begin = i * per, count = n_rows - begin < per ? n_rows - begin : per;
        if (count <= 0) break;
        jobs[i] = (fill_job){ctx, tensor, row0 + begin, count, (uint8_t *)dst + (size_t)begin * row_bytes, 0};
        used = i + 1;
        /* The first share runs on this thread, the others on new ones. */
        if (i > 0 && pthread_create(&threads[i], NULL, fill_rows, &jobs[i]) == 0) started[i] = true;
        else if (i > 0) fill_rows(&jobs[i]);
    }
    fill_rows(&jobs[0]);
    int rc = 0;
    for (int i = 0; i < used; i++) {
        if (started[i]) pthread_join(threads[i], NULL);
        if (jobs[i].rc) rc = -1;
    }
    return rc ? fb_error_set(err, "synth: cannot encode tensor %d as %s (out of memory or unsupported type)", tensor,
                             quant_type_get(t->type)->name)
              : 0;
}

// ----------------------------------------------------------------------------
// Vocabulary: a byte-level BPE tokenizer (GPT-2 conventions) that really works.
//
// Tokens: 3 control tokens, the 256 byte tokens, then merged tokens built
// from 'Ġ' (the byte-level spelling of a space) and lower-case letters:
// every two-symbol string, then three, and so on until the vocabulary is full.
// Each merged token is a merge of its prefix and its last letter, so the
// merge list is consistent and text really tokenizes into multi-byte tokens.

typedef struct vocab {
    char **tokens;  /* n_vocab strings */
    int32_t *types; /* llama.cpp token types: 1 normal, 3 control */
    char **merges;  /* "left right" */
    uint32_t n_tokens, n_merges;
    char *storage;
} vocab;

/* UTF-8 of the byte-level symbol for byte b (GPT-2's bytes-to-unicode map:
 * printable Latin-1 bytes stand for themselves, the rest move to U+0100+). */
static int byte_symbol(int b, char *out) {
    int cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = b;
    } else {
        int n = 0; /* rank of b among the non-printable bytes */
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
    return 2;
}

static void vocab_free(vocab *v) {
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->storage);
}

static int vocab_build(uint32_t n_vocab, vocab *v) {
    static const char *control[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    const uint32_t n_control = 3, n_base = n_control + 256;
    memset(v, 0, sizeof *v);
    if (n_vocab < n_base) return -1;
    v->n_tokens = n_vocab;
    v->n_merges = n_vocab - n_base;
    v->tokens = calloc(n_vocab, sizeof *v->tokens);
    v->types = calloc(n_vocab, sizeof *v->types);
    v->merges = calloc(v->n_merges ? v->n_merges : 1, sizeof *v->merges);
    /* Merged tokens are at most ~8 symbols of 2 bytes; merges add a space. */
    size_t cap = (size_t)n_vocab * 48 + 4096, used = 0;
    v->storage = malloc(cap);
    if (!v->tokens || !v->types || !v->merges || !v->storage) return -1;

    uint32_t id = 0;
    for (uint32_t i = 0; i < n_control; i++, id++) {
        v->tokens[id] = strcpy(v->storage + used, control[i]);
        used += strlen(control[i]) + 1;
        v->types[id] = 3;
    }
    for (int b = 0; b < 256; b++, id++) {
        v->tokens[id] = v->storage + used;
        used += (size_t)byte_symbol(b, v->storage + used) + 1;
        v->types[id] = 1;
    }
    /* Symbols: "Ġ" and 'a'..'z'; level 1 = the symbols themselves. */
    char symbols[27][3];
    strcpy(symbols[0], "\xC4\xA0");
    for (int i = 0; i < 26; i++) symbols[i + 1][0] = (char)('a' + i), symbols[i + 1][1] = 0;
    /* Walk strings level by level: level k strings are (level k-1 string) + letter.
     * Level 1 strings are the 27 symbols (already byte tokens). */
    uint32_t level_begin = 0, level_end = 0; /* range of merged-token ids of the previous level */
    bool first_level = true;
    while (id < n_vocab) {
        uint32_t n_prev = first_level ? 27 : level_end - level_begin;
        uint32_t this_begin = id;
        for (uint32_t p = 0; p < n_prev && id < n_vocab; p++) {
            const char *left = first_level ? symbols[p] : v->tokens[level_begin + p];
            for (int letter = 0; letter < 26 && id < n_vocab; letter++) {
                const char *right = symbols[letter + 1];
                size_t ll = strlen(left), rl = strlen(right);
                if (used + 2 * (ll + rl) + 4 > cap) return -1;
                v->tokens[id] = v->storage + used;
                memcpy(v->storage + used, left, ll);
                memcpy(v->storage + used + ll, right, rl + 1);
                used += ll + rl + 1;
                v->types[id] = 1;
                v->merges[id - n_base] = v->storage + used;
                used += (size_t)sprintf(v->storage + used, "%s %s", left, right) + 1;
                id++;
            }
        }
        level_begin = this_begin;
        level_end = id;
        first_level = false;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// Llama-3 RoPE frequency factors (scale 32, low 1, high 4, original context 8192)

static void llama3_rope_factors(const fb_synth_spec *s, uint32_t n_rot, float *out) {
    const double scale = 32.0, low = 1.0, high = 4.0, orig_ctx = 8192.0;
    const double low_wavelen = orig_ctx / low, high_wavelen = orig_ctx / high;
    for (uint32_t i = 0; i < n_rot / 2; i++) {
        double freq = pow(s->rope_freq_base, -2.0 * i / n_rot);
        double wavelen = 2.0 * M_PI / freq;
        if (wavelen < high_wavelen) out[i] = 1.0f;
        else if (wavelen > low_wavelen) out[i] = (float)scale;
        else {
            double smooth = (orig_ctx / wavelen - low) / (high - low);
            out[i] = (float)(1.0 / ((1.0 - smooth) / scale + smooth));
        }
    }
}

// ----------------------------------------------------------------------------
// Writing the file

int fb_synth_write(const fb_synth_spec *s, const char *path, int *n_fallback, fb_error *err) {
    if (n_fallback) *n_fallback = 0;
    const quant_type_info *ti = quant_type_get(s->type);
    if (!ti || !ti->can_encode)
        return fb_error_set(err, "synth: cannot write weights of type %s", ti ? ti->name : "(unknown)");
    if (!s->n_embd || !s->n_layer || !s->n_head || !s->n_head_kv || !s->n_ff || !s->n_vocab || !s->n_ctx)
        return fb_error_set(err, "synth: every dimension must be positive");
    if (s->n_embd % s->n_head || s->n_head % s->n_head_kv || (s->n_embd / s->n_head) % 2)
        return fb_error_set(err, "synth: heads (%" PRIu32 ") must divide the width (%" PRIu32 ") into an even head "
                            "dimension, and KV heads (%" PRIu32 ") must divide heads",
                            s->n_head, s->n_embd, s->n_head_kv);
    if (s->n_vocab < 259) return fb_error_set(err, "synth: the vocabulary needs at least 259 tokens (3 control + 256 bytes)");
    if (s->n_layer > 4096 || s->n_embd > (1u << 16) || s->n_ff > (1u << 18) || s->n_vocab > (1u << 20))
        return fb_error_set(err, "synth: dimensions too large for a synthetic model");

    const uint32_t head_dim = s->n_embd / s->n_head, n_rot = s->n_rot ? s->n_rot : head_dim;
    if (n_rot > head_dim || n_rot % 2)
        return fb_error_set(err, "synth: RoPE dimensions (%" PRIu32 ") must be even and at most the head dimension "
                            "(%" PRIu32 ")", n_rot, head_dim);
    const int64_t q_dim = s->n_embd, kv_dim = (int64_t)s->n_head_kv * head_dim;
    int rc = -1;
    vocab v;
    float *rope = NULL;
    size_t max_tensors = 9 * (size_t)s->n_layer + 4;
    synth_ctx ctx = {.spec = s, .tensors = calloc(max_tensors, sizeof(synth_tensor))};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ctx.n_threads = s->n_threads > 0 ? s->n_threads : (cores > 0 ? (int)cores : 1);
    gguf_writer *w = gguf_writer_new(GGUF_DEFAULT_ALIGNMENT);
    if (vocab_build(s->n_vocab, &v) || !w || !ctx.tensors) {
        fb_error_set(err, "synth: out of memory");
        goto out;
    }

    /* Metadata */
    char name[96];
    snprintf(name, sizeof name, "fairbench synth %s seed %" PRIu64, s->preset[0] ? s->preset : "custom", s->seed);
    int bad = gguf_writer_str(w, "general.architecture", "llama") || gguf_writer_str(w, "general.name", name) ||
              gguf_writer_u64(w, "fairbench.synth.seed", s->seed) ||
              gguf_writer_u32(w, "llama.context_length", s->n_ctx) ||
              gguf_writer_u32(w, "llama.embedding_length", s->n_embd) ||
              gguf_writer_u32(w, "llama.block_count", s->n_layer) ||
              gguf_writer_u32(w, "llama.feed_forward_length", s->n_ff) ||
              gguf_writer_u32(w, "llama.attention.head_count", s->n_head) ||
              gguf_writer_u32(w, "llama.attention.head_count_kv", s->n_head_kv) ||
              gguf_writer_u32(w, "llama.rope.dimension_count", n_rot) ||
              gguf_writer_f32(w, "llama.rope.freq_base", s->rope_freq_base) ||
              gguf_writer_f32(w, "llama.attention.layer_norm_rms_epsilon", s->rms_eps) ||
              gguf_writer_u32(w, "llama.vocab_size", s->n_vocab) ||
              gguf_writer_str(w, "tokenizer.ggml.model", "gpt2") ||
              gguf_writer_str(w, "tokenizer.ggml.pre", s->tokenizer_pre[0] ? s->tokenizer_pre : "gpt-2") ||
              gguf_writer_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.n_tokens) ||
              gguf_writer_array(w, "tokenizer.ggml.token_type", GGUF_VT_I32, v.types, v.n_tokens) ||
              gguf_writer_str_array(w, "tokenizer.ggml.merges", (const char *const *)v.merges, v.n_merges) ||
              gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
              gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", 2) ||
              gguf_writer_bool(w, "tokenizer.ggml.add_bos_token", false);
    if (bad) {
        fb_error_set(err, "synth: out of memory");
        goto out;
    }

    /* Tensors, in llama.cpp's order. */
    int fallback = 0;
    int n = 0;
#define ADD_TENSOR(NAME, NDIMS, NE0, NE1, CENTER, HALF)                                                         \
    do {                                                                                                        \
        int64_t ne_[2] = {(NE0), (NE1)};                                                                        \
        uint32_t type_ = (NDIMS) == 1 ? GGUF_TYPE_F32 : fb_synth_tensor_type(s, (NAME));                       \
        if (quant_row_bytes(type_, ne_[0]) == 0) type_ = GGUF_TYPE_F16, fallback++;                             \
        ctx.tensors[n] = (synth_tensor){type_, ne_[0], (CENTER), (HALF), NULL};                                 \
        if (gguf_writer_tensor(w, (NAME), type_, (NDIMS), ne_, fill_tensor, &ctx) != n) goto oom;               \
        n++;                                                                                                    \
    } while (0)
    /* Uniform on [-h, h] has standard deviation h / sqrt(3). */
    const float sqrt3 = 1.7320508f;
    ADD_TENSOR("token_embd.weight", 2, s->n_embd, s->n_vocab, 0.0f, 0.02f * sqrt3);
    if (s->llama3_rope || s->rope_freqs) {
        rope = malloc(n_rot / 2 * sizeof *rope);
        if (!rope) goto oom;
        if (s->rope_freqs) memcpy(rope, s->rope_freqs, n_rot / 2 * sizeof *rope);
        else llama3_rope_factors(s, n_rot, rope);
        int64_t ne = n_rot / 2;
        ctx.tensors[n] = (synth_tensor){GGUF_TYPE_F32, ne, 0, 0, rope};
        if (gguf_writer_tensor(w, "rope_freqs.weight", GGUF_TYPE_F32, 1, &ne, fill_tensor, &ctx) != n) goto oom;
        n++;
    }
    for (uint32_t l = 0; l < s->n_layer; l++) {
        char tn[64];
#define LAYER(SUFFIX, NDIMS, NE0, NE1, CENTER, HALF)                                     \
    snprintf(tn, sizeof tn, "blk.%" PRIu32 "." SUFFIX ".weight", l);                     \
    ADD_TENSOR(tn, NDIMS, NE0, NE1, CENTER, HALF)
        LAYER("attn_norm", 1, s->n_embd, 1, 1.0f, 0.2f);
        LAYER("attn_q", 2, s->n_embd, q_dim, 0.0f, sqrt3 / sqrtf((float)s->n_embd));
        LAYER("attn_k", 2, s->n_embd, kv_dim, 0.0f, sqrt3 / sqrtf((float)s->n_embd));
        LAYER("attn_v", 2, s->n_embd, kv_dim, 0.0f, sqrt3 / sqrtf((float)s->n_embd));
        LAYER("attn_output", 2, q_dim, s->n_embd, 0.0f, sqrt3 / sqrtf((float)q_dim));
        LAYER("ffn_norm", 1, s->n_embd, 1, 1.0f, 0.2f);
        LAYER("ffn_gate", 2, s->n_embd, s->n_ff, 0.0f, sqrt3 / sqrtf((float)s->n_embd));
        LAYER("ffn_up", 2, s->n_embd, s->n_ff, 0.0f, sqrt3 / sqrtf((float)s->n_embd));
        LAYER("ffn_down", 2, s->n_ff, s->n_embd, 0.0f, sqrt3 / sqrtf((float)s->n_ff));
#undef LAYER
    }
    ADD_TENSOR("output_norm.weight", 1, s->n_embd, 1, 1.0f, 0.2f);
    if (!s->tied_output) ADD_TENSOR("output.weight", 2, s->n_embd, s->n_vocab, 0.0f, sqrt3 / sqrtf((float)s->n_embd));
#undef ADD_TENSOR

    if (gguf_writer_write(w, path, err)) goto out;
    if (n_fallback) *n_fallback = fallback;
    rc = 0;
    goto out;
oom:
    fb_error_set(err, "synth: out of memory");
out:
    gguf_writer_free(w);
    vocab_free(&v);
    free(rope);
    free(ctx.tensors);
    return rc;
}
