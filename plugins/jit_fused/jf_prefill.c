/* jf_prefill.c - the tensor-core prefill's host half (see jf_prefill.h and
 * plugins/jit_fused/jit_fused_prefill.cuh). */
#include "jf_prefill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jf_prefill_use(const jf_config *c, int n) { return c->pf_chunk > 0 && n >= JF_PF_MIN_POSITIONS; }

const char *jf_prefill_note(const jf_config *c) {
    if (c->pf_chunk <= 0) return "prefill: CUDA cores";
    return c->wtype == JF_BF16 ? "prefill: tensor cores (bf16 mma, split activations)"
                               : "prefill: tensor cores (f16 mma, split activations)";
}

int jf_prefill_parts(const jf_config *c) { return c->wtype == JF_BF16 ? 3 : 2; }

char *jf_prefill_source(const jf_config *c) {
    if (c->pf_chunk <= 0) return calloc(1, 1);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "\n#line 1 \"jit_fused (the tensor-core prefill's constants)\"\n"
                     "#define JF_PF_CHUNK %d\n#define JF_PF_T %s\n#line 1 \"jit_fused_prefill.cuh\"\n",
                     c->pf_chunk, c->wtype == JF_BF16 ? "JF_T_BF16" : "JF_T_F16");
    if (n < 0 || (size_t)n >= sizeof head) return NULL;
    size_t tlen = strlen(jf_prefill_template);
    char *src = malloc((size_t)n + tlen + 1);
    if (!src) return NULL;
    memcpy(src, head, (size_t)n);
    memcpy(src + n, jf_prefill_template, tlen + 1);
    return src;
}

uint64_t jf_prefill_bytes(const jf_config *c, uint64_t bytes[6]) {
    memset(bytes, 0, 6 * sizeof bytes[0]);
    if (c->pf_chunk <= 0) return 0;
    const uint64_t P = (uint64_t)c->pf_chunk, parts = (uint64_t)jf_prefill_parts(c), f = sizeof(float);
    const uint64_t ld_act = (uint64_t)(c->ld_dim > c->ld_q ? c->ld_dim : c->ld_q);
    bytes[0] = (P + 1) * sizeof(int32_t);
    bytes[1] = P * (uint64_t)c->ld_dim * f;
    bytes[2] = P * (uint64_t)c->q_dim * f;
    bytes[3] = parts * P * ld_act * sizeof(uint16_t);
    bytes[4] = parts * P * (uint64_t)c->ld_ff * sizeof(uint16_t);
    bytes[5] = sizeof(uint64_t);
    return bytes[0] + bytes[1] + bytes[2] + bytes[3] + bytes[4] + bytes[5];
}

#define PF_THREADS 256 /* JF_PF_THREADS */
#define PF_BM 64       /* positions per GEMM tile (JF_PF_BM) */
#define PF_BN 128      /* weight rows per GEMM tile (JF_PF_BN); gate/up: 64 of each */

/* Warps of an attention block, 16 queries each (JF_PF_AW). */
static int attention_warps(const jf_config *c) { return c->head_dim <= 64 ? 4 : 2; }

static unsigned ceil_div(int a, int b) { return (unsigned)((a + b - 1) / b); }

int jf_prefill_forward(const jf_config *c, const jf_buffers *b, const jf_prefill_buffers *pb, int lm_grid, int n,
                       int logits_first, int with_lm_head, jf_logits_fn emit, void *emit_ctx, jf_launch_fn launch,
                       void *ctx) {
    const unsigned T = PF_THREADS, pos_tiles = ceil_div(n, PF_BM);
    int rc;
    // x = token_embd[tokens]; clears the argmax key
    {
        void *args[] = {(void *)&pb->step, (void *)&b->token_embd, (void *)&pb->x, (void *)&b->argmax_key};
        if ((rc = launch(ctx, JF_K_EMBED, 0, (unsigned)n, 1, 1, JF_WARPS * 32, args))) return rc;
    }
    for (int l = 0; l < c->n_layers; l++) {
        const jf_layer_buffers *lw = &b->layers[l];
        float *kc = b->key_cache + (size_t)l * (size_t)c->max_seq * (size_t)c->kv_dim;
        float *vc = b->value_cache + (size_t)l * (size_t)c->max_seq * (size_t)c->kv_dim;
        // act = split(RMSNorm(x)), one block per position
        void *norm[] = {(void *)&pb->x, (void *)&lw->attn_norm, (void *)&pb->act};
        if ((rc = launch(ctx, JF_K_PF_NORM, 0, (unsigned)n, 1, 1, T, norm))) return rc;
        // Q, K, V + RoPE + KV write: (position tiles, row tiles of the stacked matrix)
        void *qkv[] = {(void *)&pb->step,
                       &n,
                       (void *)&pb->act,
                       (void *)&lw->w_qkv,
                       (void *)&b->rope_inv_freq,
                       (void *)&pb->q,
                       &kc,
                       &vc};
        if ((rc = launch(ctx, JF_K_PF_QKV, 0, pos_tiles, ceil_div(c->q_dim + 2 * c->kv_dim, PF_BN), 1, T, qkv)))
            return rc;
        // causal attention on tensor cores: (query tiles of 16 per warp, heads); act = split(attention output)
        void *att[] = {(void *)&pb->step, &n, (void *)&pb->q, &kc, &vc, (void *)&pb->act};
        const int aw = attention_warps(c);
        if ((rc = launch(ctx, JF_K_PF_ATTENTION, 0, ceil_div(n, 16 * aw), (unsigned)c->n_heads, 1, 32u * (unsigned)aw,
                         att)))
            return rc;
        // x += W_o . att
        void *out[] = {&n, (void *)&pb->act, (void *)&lw->w_o, (void *)&pb->x};
        if ((rc = launch(ctx, JF_K_PF_OUT, 0, pos_tiles, ceil_div(c->dim, PF_BN), 1, T, out))) return rc;
        // act = split(RMSNorm(x)); act_h = split(silu(W_gate . act) * (W_up . act))
        void *fnorm[] = {(void *)&pb->x, (void *)&lw->ffn_norm, (void *)&pb->act};
        if ((rc = launch(ctx, JF_K_PF_NORM, 0, (unsigned)n, 1, 1, T, fnorm))) return rc;
        void *gu[] = {&n, (void *)&pb->act, (void *)&lw->w_gate, (void *)&lw->w_up, (void *)&pb->act_h};
        if ((rc = launch(ctx, JF_K_PF_GATE_UP, 0, pos_tiles, ceil_div(c->ld_ff, PF_BN / 2), 1, T, gu))) return rc;
        // x += W_down . h
        void *down[] = {&n, (void *)&pb->act_h, (void *)&lw->w_down, (void *)&pb->x};
        if ((rc = launch(ctx, JF_K_PF_DOWN, 0, pos_tiles, ceil_div(c->dim, PF_BN), 1, T, down))) return rc;
    }
    if (!with_lm_head) return 0;
    // The LM head for the positions asked for, c->nb at a time (its logits buffer's rows); the groups
    // before the last send their argmax to a scratch key, so b->argmax_key is position n - 1's.
    for (int first = logits_first; first < n; first += c->nb) {
        int count = n - first < c->nb ? n - first : c->nb;
        float *x_first = pb->x + (size_t)first * (size_t)c->ld_dim;
        uint64_t *key = first + count == n ? b->argmax_key : pb->scratch_key;
        void *lm[] = {&count, &x_first, (void *)&b->output_norm, (void *)&b->output, (void *)&b->logits, &key};
        if ((rc = launch(ctx, count == 1 ? JF_K_LM_HEAD_1 : JF_K_LM_HEAD_NB, 0, (unsigned)lm_grid, 1, 1, JF_WARPS * 32,
                         lm)))
            return rc;
        if (emit && (rc = emit(emit_ctx, first, count))) return rc;
    }
    return 0;
}
