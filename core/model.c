/* model.c - the LLaMA model view: hyper-parameters and validated tensor map. */
#include "model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

// ----------------------------------------------------------------------------
// Hyper-parameters

/* Read an integer key into a positive uint32 (absent: default, or an error
 * when dflt is 0). */
static int get_dim(const gguf_file *f, const char *key, uint32_t dflt, uint32_t *out, fb_error *err) {
    int64_t v;
    if (!gguf_find_kv(f, key)) {
        if (dflt == 0) return fb_error_set(err, "%s: metadata key '%s' is missing", gguf_path(f), key);
        *out = dflt;
        return 0;
    }
    if (gguf_get_int(f, key, &v, err)) return -1;
    if (v < 1 || v > (int64_t)1 << 30)
        return fb_error_set(err, "%s: metadata key '%s' = %" PRId64 " is out of range (1 to 2^30)", gguf_path(f), key,
                            v);
    *out = (uint32_t)v;
    return 0;
}

static int get_positive_float(const gguf_file *f, const char *key, float dflt, float *out, fb_error *err) {
    double v;
    if (!gguf_find_kv(f, key)) {
        if (dflt <= 0) return fb_error_set(err, "%s: metadata key '%s' is missing", gguf_path(f), key);
        *out = dflt;
        return 0;
    }
    if (gguf_get_float(f, key, &v, err)) return -1;
    if (!(v > 0 && v < 1e30))
        return fb_error_set(err, "%s: metadata key '%s' = %g must be a positive number", gguf_path(f), key, v);
    *out = (float)v;
    return 0;
}

static void copy_str_key(const gguf_file *f, const char *key, char *dst, size_t dst_size) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    dst[0] = '\0';
    if (kv && kv->value.type == GGUF_VT_STRING) snprintf(dst, dst_size, "%s", kv->value.str.data);
}

static int read_hparams(const gguf_file *f, const char *arch, fb_hparams *hp, fb_error *err) {
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    if (get_dim(f, KEY("embedding_length"), 0, &hp->n_embd, err) ||
        get_dim(f, KEY("block_count"), 0, &hp->n_layer, err) ||
        get_dim(f, KEY("attention.head_count"), 0, &hp->n_head, err) ||
        get_dim(f, KEY("attention.head_count_kv"), hp->n_head, &hp->n_head_kv, err) ||
        get_dim(f, KEY("feed_forward_length"), 0, &hp->n_ff, err) ||
        get_dim(f, KEY("context_length"), 0, &hp->n_ctx, err) ||
        get_positive_float(f, KEY("rope.freq_base"), 10000.0f, &hp->rope_freq_base, err) ||
        get_positive_float(f, KEY("attention.layer_norm_rms_epsilon"), 0, &hp->rms_eps, err))
        return -1;
    if (hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0)
        return fb_error_set(err, "%s: %s = %" PRIu32 " must divide head_count = %" PRIu32, gguf_path(f),
                            KEY("attention.head_count_kv"), hp->n_head_kv, hp->n_head);
    uint32_t default_head_dim = hp->n_embd / hp->n_head;
    if (!gguf_find_kv(f, KEY("attention.key_length")) && hp->n_embd % hp->n_head != 0)
        return fb_error_set(err,
                            "%s: embedding_length %" PRIu32 " is not a multiple of head_count %" PRIu32
                            " and attention.key_length is absent",
                            gguf_path(f), hp->n_embd, hp->n_head);
    if (get_dim(f, KEY("attention.key_length"), default_head_dim, &hp->head_dim, err)) return -1;
    uint32_t value_length;
    if (get_dim(f, KEY("attention.value_length"), hp->head_dim, &value_length, err)) return -1;
    if (value_length != hp->head_dim)
        return fb_error_set(
            err, "%s: attention.value_length %" PRIu32 " differs from key_length %" PRIu32 " (not supported)",
            gguf_path(f), value_length, hp->head_dim);
    if (get_dim(f, KEY("rope.dimension_count"), hp->head_dim, &hp->n_rot, err)) return -1;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return fb_error_set(err,
                            "%s: rope.dimension_count %" PRIu32 " must be even and at most the head "
                            "dimension %" PRIu32,
                            gguf_path(f), hp->n_rot, hp->head_dim);
    if (hp->head_dim % 2 != 0)
        return fb_error_set(err, "%s: head dimension %" PRIu32 " must be even", gguf_path(f), hp->head_dim);
#undef KEY
    return 0;
}

// ----------------------------------------------------------------------------
// Tensors

static int tensor_shape_error(const gguf_file *f, const gguf_tensor *t, uint32_t n_dims, int64_t ne0, int64_t ne1,
                              fb_error *err) {
    char got[96] = "", want[64];
    size_t n = 0;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n += (size_t)snprintf(got + n, sizeof got - n, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    if (n_dims == 1) snprintf(want, sizeof want, "%" PRId64, ne0);
    else
        snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, ne0, ne1);
    return fb_error_set(err, "%s: tensor '%s' has shape [%s], expected [%s] from the hyper-parameters", gguf_path(f),
                        t->name, got, want);
}

/* Find `name` and check its shape: a vector of ne0 (n_dims 1) or a matrix
 * ne0 x ne1 (n_dims 2). Missing: error unless optional. */
static int find_checked(const gguf_file *f, const char *name, uint32_t n_dims, int64_t ne0, int64_t ne1, bool optional,
                        const gguf_tensor **out, fb_error *err) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    *out = t;
    if (!t) return optional ? 0 : fb_error_set(err, "%s: tensor '%s' is missing", gguf_path(f), name);
    bool ok = t->n_dims == n_dims && t->ne[0] == ne0 && (n_dims == 1 || t->ne[1] == ne1);
    return ok ? 0 : tensor_shape_error(f, t, n_dims, ne0, ne1, err);
}

static int map_tensors(fb_model *m, fb_error *err) {
    const gguf_file *f = m->file;
    const fb_hparams *hp = &m->hp;
    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];

    if (find_checked(f, "token_embd.weight", 2, hp->n_embd, hp->n_vocab, false, &m->token_embd, err) ||
        find_checked(f, "output_norm.weight", 1, hp->n_embd, 0, false, &m->output_norm, err) ||
        find_checked(f, "output.weight", 2, hp->n_embd, hp->n_vocab, true, &m->output, err) ||
        find_checked(f, "rope_freqs.weight", 1, hp->n_rot / 2, 0, true, &m->rope_freqs, err))
        return -1;
    m->tied_output = m->output == NULL;
    if (m->tied_output) m->output = m->token_embd;
    if (m->rope_freqs && m->rope_freqs->type != GGUF_TYPE_F32)
        return fb_error_set(err, "%s: tensor 'rope_freqs.weight' must be F32", gguf_path(f));

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        fb_layer *L = &m->layers[l];
        struct {
            const char *suffix;
            uint32_t n_dims;
            int64_t ne0, ne1;
            const gguf_tensor **slot;
        } want[] = {
            {"attn_norm", 1, hp->n_embd, 0, &L->attn_norm},         {"attn_q", 2, hp->n_embd, q_dim, &L->attn_q},
            {"attn_k", 2, hp->n_embd, kv_dim, &L->attn_k},          {"attn_v", 2, hp->n_embd, kv_dim, &L->attn_v},
            {"attn_output", 2, q_dim, hp->n_embd, &L->attn_output}, {"ffn_norm", 1, hp->n_embd, 0, &L->ffn_norm},
            {"ffn_gate", 2, hp->n_embd, hp->n_ff, &L->ffn_gate},    {"ffn_up", 2, hp->n_embd, hp->n_ff, &L->ffn_up},
            {"ffn_down", 2, hp->n_ff, hp->n_embd, &L->ffn_down},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            snprintf(name, sizeof name, "blk.%" PRIu32 ".%s.weight", l, want[i].suffix);
            if (find_checked(f, name, want[i].n_dims, want[i].ne0, want[i].ne1, false, want[i].slot, err)) return -1;
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------
// Opening

int fb_model_from_gguf(gguf_file *f, fb_model **out, fb_error *err) {
    *out = NULL;
    const char *arch;
    if (gguf_get_str(f, "general.architecture", &arch, err)) return -1;
    if (strcmp(arch, "llama") != 0)
        return fb_error_set(err, "%s: unsupported architecture '%.40s' (fairbench supports: llama)", gguf_path(f),
                            arch);

    fb_model *m = calloc(1, sizeof *m);
    if (!m) return fb_error_set(err, "%s: out of memory", gguf_path(f));
    m->file = f;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    copy_str_key(f, "general.name", m->name, sizeof m->name);
    copy_str_key(f, "tokenizer.ggml.model", m->tokenizer_model, sizeof m->tokenizer_model);
    copy_str_key(f, "tokenizer.ggml.pre", m->tokenizer_pre, sizeof m->tokenizer_pre);
    const gguf_kv *tokens = gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (tokens && tokens->value.type == GGUF_VT_ARRAY) m->tokenizer_n_tokens = tokens->value.arr.count;
    const gguf_kv *merges = gguf_find_kv(f, "tokenizer.ggml.merges");
    if (merges && merges->value.type == GGUF_VT_ARRAY) m->tokenizer_n_merges = merges->value.arr.count;

    if (read_hparams(f, arch, &m->hp, err)) goto fail;

    /* Vocabulary size: the explicit key, else the tokenizer, else the embedding. */
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    uint32_t fallback = m->tokenizer_n_tokens > 0 && m->tokenizer_n_tokens <= (1u << 30)
                            ? (uint32_t)m->tokenizer_n_tokens
                        : embd && embd->n_dims == 2 && embd->ne[1] <= (1 << 30) ? (uint32_t)embd->ne[1]
                                                                                : 0;
    if (get_dim(f, "llama.vocab_size", fallback, &m->hp.n_vocab, err)) goto fail;
    if (m->tokenizer_n_tokens && m->tokenizer_n_tokens != m->hp.n_vocab) {
        fb_error_set(err, "%s: the tokenizer has %" PRIu64 " tokens but the vocabulary size is %" PRIu32, gguf_path(f),
                     m->tokenizer_n_tokens, m->hp.n_vocab);
        goto fail;
    }

    /* A layer needs 9 tensors: a block count the file cannot hold is refused
     * before anything is allocated for it. */
    if (m->hp.n_layer > gguf_n_tensors(f) / 9) {
        fb_error_set(err, "%s: llama.block_count = %" PRIu32 " but the file holds only %" PRIu64 " tensors",
                     gguf_path(f), m->hp.n_layer, gguf_n_tensors(f));
        goto fail;
    }
    m->layers = calloc(m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        fb_error_set(err, "%s: out of memory", gguf_path(f));
        goto fail;
    }
    if (map_tensors(m, err)) goto fail;
    *out = m;
    return 0;
fail:
    m->file = NULL; /* not ours on failure */
    fb_model_close(m);
    return -1;
}

int fb_model_open(const char *path, fb_model **out, fb_error *err) {
    gguf_file *f;
    *out = NULL;
    if (gguf_open(path, &f, err)) return -1;
    if (fb_model_from_gguf(f, out, err)) {
        gguf_close(f);
        return -1;
    }
    return 0;
}

void fb_model_close(fb_model *m) {
    if (!m) return;
    gguf_close(m->file);
    free(m->layers);
    free(m);
}

// ----------------------------------------------------------------------------
// Sizes

/* Bytes of tensor t stored as `type` (< 0: its own type); 0 if impossible. */
static uint64_t stored_bytes(const gguf_tensor *t, int type, uint64_t n_rows) {
    uint32_t ty = type < 0 ? t->type : (uint32_t)type;
    uint64_t row = quant_row_bytes(ty, t->ne[0]);
    return row * n_rows;
}

uint64_t fb_model_decode_bytes(const fb_model *m, int type) {
    const fb_hparams *hp = &m->hp;
    uint64_t total = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const fb_layer *L = &m->layers[l];
        const gguf_tensor *mats[] = {L->attn_q,   L->attn_k, L->attn_v,  L->attn_output,
                                     L->ffn_gate, L->ffn_up, L->ffn_down};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            uint64_t b = stored_bytes(mats[i], type, (uint64_t)mats[i]->ne[1]);
            if (b == 0) return 0;
            total += b;
        }
        total += 2ull * hp->n_embd * sizeof(float); /* the two norms */
    }
    total += (uint64_t)hp->n_embd * sizeof(float); /* output_norm */
    uint64_t head = stored_bytes(m->output, type, (uint64_t)m->output->ne[1]);
    uint64_t embd_row = stored_bytes(m->token_embd, type, 1);
    if (head == 0 || embd_row == 0) return 0;
    total += head;
    if (!m->tied_output) total += embd_row; /* tied: the row is part of the head's read */
    return total;
}

uint64_t fb_model_kv_bytes_per_pos(const fb_model *m, uint32_t elem_bytes) {
    return 2ull * m->hp.n_layer * m->hp.n_head_kv * m->hp.head_dim * elem_bytes;
}

uint64_t fb_model_n_params(const fb_model *m) {
    uint64_t n = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(m->file); i++) n += gguf_tensor_at(m->file, i)->n_elems;
    return n;
}
