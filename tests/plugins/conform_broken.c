/* conform_broken.c - backends that break one rule of the ABI contract each,
 * for `fairbench conformance`'s tests. Compiled once per defect with
 * -DDEFECT=<n> -DPLUGIN_NAME="conform_<defect>" (tests/CMakeLists.txt).
 *
 * Each is the SDK's worked example (examples/plugin/example_naive.c, which
 * passes every check) with one call wrapped to misbehave, so the check that
 * catches the defect is the only reason it fails:
 *
 *   WRONG_ARGMAX          next token = argmax + 1            prefill_lengths/tiny (and every check that looks)
 *   IGNORES_RESET         reset() keeps the positions         reset
 *   CRASH_UNSUPPORTED     create() with a precision it does not claim dereferences NULL
 *                                                            unsupported_precision
 *   GRAPHS_WHEN_FORBIDDEN claims graphs and reports them on even when not allowed
 *                                                            no_jit_no_graphs
 *   WRONG_PRECISION       reports f16 weights while holding f32  effective_settings
 *   IGNORES_MAX_CONTEXT   allocates and checks the model's n_ctx, not settings.max_context
 *                                                            context_end/gqa
 *   IGNORES_ROPE_FREQS    drops the Llama-3 RoPE factors      prefill_lengths/gqa, decode/gqa
 *   LEAKS_SESSIONS        destroy() frees nothing             create_destroy
 *   HANGS_IN_MEMORY       memory() never returns              memory (time-out)
 *   WRITES_STDOUT         create() prints a line on stdout    create_destroy (and every check)
 *   ABORTS_ON_BAD_TOKEN   asserts token ids instead of refusing them  invalid_token
 *
 * Wrong guesses about the forward pass (docs/forward-pass.md), each of which
 * must fail agreement at the loosest bar (the test runs them with
 * --precision native: top-1 90%, mean KL 5e-2, largest |logit diff| 5%):
 *
 *   GQA_MODULO            query head h reads KV head h % n_head_kv      prefill_lengths/tiny, decode/gqa
 *   ROPE_SIGN             rotates by -theta                              prefill_lengths/tiny, decode/gqa
 *   ROPE_NEOX             rotates pairs (i, i + n_rot/2), not (2i, 2i+1) prefill_lengths/tiny, decode/gqa
 *   EPS_OUTSIDE_SQRT      x / (sqrt(mean(x^2)) + eps)                    prefill_lengths/tiny
 *   IGNORES_N_ROT         rotates all head_dim dimensions                prefill_lengths/tiny, decode/gqa
 *   ATTENTION_SCALE       scores scaled by 1/head_dim, not 1/sqrt(head_dim)
 *   LOGITS_WRONG_POSITION FB_LOGITS_LAST gives the next-to-last position's logits (and argmax)
 *   (and IGNORES_ROPE_FREQS above)
 *
 * Conventions plugin.h decides (all caught by `conventions`, except the device format):
 *
 *   INVALID_BEFORE_FULL   a call wrong twice (full context, invalid id) is FB_ERR_INVALID_ARGUMENT
 *   REFUSES_FLAG_BITS     refuses a reserved prefill flag bit instead of ignoring it
 *   ACCEPTS_NULL_NEXT     a NULL next_token is accepted (FB_OK)
 *   REFUSES_LONG_CONTEXT  max_context above n_ctx refused instead of clamped
 *   REFUSES_DEVICE_INDEX  a CPU backend refusing device_index != 0
 *   THREADS_UNRESOLVED    claims FB_CAP_THREADS, reports threads = 0 as asked, not the CPUs it used
 *   DEVICE_FORMAT         device string not "CPU: <model>, ..."   effective_settings, probe
 *
 * The first four and ATTENTION_SCALE are made exactly, at f32, by
 * rearranging the example's own f32 weights after create: RoPE by -theta is
 * RoPE by theta on q and k with the second of every pair negated; the NeoX
 * pairing is the adjacent one on q and k rows permuted; h % n_kv is h / group
 * on query heads (rows of wq, columns of wo) permuted; a scale of 1/head_dim
 * is wq times 1/sqrt(head_dim). So the example's forward pass stays the one
 * that passes, and each defect is one visible transformation. These defects
 * claim every precision (and compute at f32) so they can be held to the
 * loosest bar.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define EPS_OUTSIDE_SQRT 15
#if DEFECT == EPS_OUTSIDE_SQRT
/* The example calls sqrtf twice: on mean(x^2) + eps in rmsnorm, and on
 * head_dim for the attention scale. This one takes eps back out of the root
 * and adds it after, for the first. */
#include <math.h>
static float broken_eps, broken_head_dim;
static float eps_outside_sqrt(float v) {
    return v == broken_head_dim ? sqrtf(v) : sqrtf(v - broken_eps) + broken_eps;
}
#define sqrtf(v) eps_outside_sqrt(v)
#endif

/* The example, with its entry point renamed out of the way. */
#define fb_plugin_entry example_plugin_entry_unused
#include "example_naive.c"
#undef fb_plugin_entry

#define WRONG_ARGMAX 1
#define IGNORES_RESET 2
#define CRASH_UNSUPPORTED 3
#define GRAPHS_WHEN_FORBIDDEN 4
#define WRONG_PRECISION 5
#define IGNORES_MAX_CONTEXT 6
#define IGNORES_ROPE_FREQS 7
#define LEAKS_SESSIONS 8
#define HANGS_IN_MEMORY 9
#define WRITES_STDOUT 10
#define ABORTS_ON_BAD_TOKEN 11
#define GQA_MODULO 12
#define ROPE_SIGN 13
#define ROPE_NEOX 14
/* EPS_OUTSIDE_SQRT 15, above */
#define IGNORES_N_ROT 16
#define ATTENTION_SCALE 17
#define LOGITS_WRONG_POSITION 18
#define INVALID_BEFORE_FULL 19
#define REFUSES_FLAG_BITS 20
#define ACCEPTS_NULL_NEXT 21
#define REFUSES_LONG_CONTEXT 22
#define REFUSES_DEVICE_INDEX 23
#define THREADS_UNRESOLVED 24
#define DEVICE_FORMAT 25
#if DEFECT == THREADS_UNRESOLVED
static int asked_threads;
#endif

#define MATHS_DEFECT ((DEFECT >= GQA_MODULO && DEFECT <= LOGITS_WRONG_POSITION) || DEFECT == IGNORES_ROPE_FREQS)
#if MATHS_DEFECT
static fb_precision asked_precision; /* reported back; the example computes at f32 */
#endif

#define WEIGHT_DEFECT (DEFECT == GQA_MODULO || DEFECT == ROPE_SIGN || DEFECT == ROPE_NEOX || DEFECT == ATTENTION_SCALE)
#if WEIGHT_DEFECT
/* Rows of an f32 matrix (rows of `cols` floats) rearranged: row r of the
 * result is row from[r] of m. */
static int permute_rows(float *m, int rows, int cols, const int *from) {
    float *copy = malloc((size_t)rows * cols * sizeof *copy);
    if (!copy) return -1;
    memcpy(copy, m, (size_t)rows * cols * sizeof *copy);
    for (int r = 0; r < rows; r++) memcpy(m + (size_t)r * cols, copy + (size_t)from[r] * cols, (size_t)cols * sizeof *m);
    free(copy);
    return 0;
}

/* Columns likewise: column j of the result is column from[j] of m. */
static int permute_cols(float *m, int rows, int cols, const int *from) {
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) return -1;
    for (int r = 0; r < rows; r++) {
        float *dst = m + (size_t)r * cols;
        memcpy(row, dst, (size_t)cols * sizeof *row);
        for (int j = 0; j < cols; j++) dst[j] = row[from[j]];
    }
    free(row);
    return 0;
}

/* The defect's transformation of the session's f32 weights (see the top). */
static int break_weights(fb_session *s) {
    const Config *c = &s->c;
    int hd = c->head_dim, half = c->n_rot / 2, group = c->n_heads / c->n_kv_heads;
    int *from_q = malloc((size_t)c->q_dim * sizeof *from_q), *from_k = malloc((size_t)c->kv_dim * sizeof *from_k);
    int rc = from_q && from_k ? 0 : -1;
    for (int i = 0; rc == 0 && i < c->q_dim; i++) from_q[i] = i;
    for (int i = 0; rc == 0 && i < c->kv_dim; i++) from_k[i] = i;
#if DEFECT == GQA_MODULO
    /* example head sigma(h) = (h % n_kv) * group + h / n_kv reads KV head sigma(h) / group = h % n_kv */
    for (int h = 0; rc == 0 && h < c->n_heads; h++)
        for (int i = 0; i < hd; i++)
            from_q[((h % c->n_kv_heads) * group + h / c->n_kv_heads) * hd + i] = h * hd + i;
#elif DEFECT == ROPE_NEOX
    for (int h = 0; rc == 0 && h < c->n_heads; h++)
        for (int i = 0; i < half; i++) from_q[h * hd + 2 * i] = h * hd + i, from_q[h * hd + 2 * i + 1] = h * hd + i + half;
    for (int h = 0; rc == 0 && h < c->n_kv_heads; h++)
        for (int i = 0; i < half; i++) from_k[h * hd + 2 * i] = h * hd + i, from_k[h * hd + 2 * i + 1] = h * hd + i + half;
#endif
    for (int l = 0; rc == 0 && l < c->n_layers; l++) {
        LayerWeights *lw = &s->w.layers[l];
        rc = permute_rows(lw->wq, c->q_dim, c->dim, from_q) || permute_rows(lw->wk, c->kv_dim, c->dim, from_k) ||
             permute_cols(lw->wo, c->dim, c->q_dim, from_q);
#if DEFECT == ROPE_SIGN
        for (int h = 0; h < c->n_heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < c->dim; j++) lw->wq[(size_t)(h * hd + 2 * i + 1) * c->dim + j] *= -1.0f;
        for (int h = 0; h < c->n_kv_heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < c->dim; j++) lw->wk[(size_t)(h * hd + 2 * i + 1) * c->dim + j] *= -1.0f;
#elif DEFECT == ATTENTION_SCALE
        for (size_t i = 0; i < (size_t)c->q_dim * c->dim; i++) lw->wq[i] /= sqrtf((float)hd);
#endif
    }
    (void)group, (void)half;
    free(from_q);
    free(from_k);
    return rc;
}
#endif

static fb_plugin broken;

static fb_status broken_create(const fb_host *host, const fb_model_view *mv, const fb_settings *settings,
                               fb_session **out, char *message, size_t message_size) {
    fb_settings changed = *settings;
    fb_model_view view = *mv;
#if DEFECT == CRASH_UNSUPPORTED
    if (settings->weight_precision != FB_PRECISION_F32) {
        volatile int *null = NULL;
        *null = 1; /* SIGSEGV instead of FB_ERR_UNSUPPORTED */
    }
#elif DEFECT == IGNORES_MAX_CONTEXT
    changed.max_context = 0;
#elif DEFECT == IGNORES_ROPE_FREQS
    view.rope_freqs = NULL;
#elif DEFECT == WRITES_STDOUT
    printf("conform_writes_stdout: loading the model\n");
#elif DEFECT == IGNORES_N_ROT
    /* every dimension rotated; the RoPE factors (if any) read as 1 past n_rot / 2 */
    static float factors[512];
    static fb_tensor_view freqs;
    if (mv->rope_freqs && mv->head_dim / 2 <= 512) {
        for (uint32_t i = 0; i < mv->head_dim / 2; i++)
            factors[i] = i < mv->n_rot / 2 ? ((const float *)mv->rope_freqs->data)[i] : 1.0f;
        freqs = *mv->rope_freqs;
        freqs.data = factors;
        view.rope_freqs = &freqs;
    }
    view.n_rot = mv->head_dim;
#elif DEFECT == REFUSES_LONG_CONTEXT
    if (settings->max_context > mv->n_ctx) {
        snprintf(message, message_size, PLUGIN_NAME ": max_context %u is above the model's %u", settings->max_context,
                 mv->n_ctx);
        *out = NULL;
        return FB_ERR_INVALID_ARGUMENT;
    }
#elif DEFECT == REFUSES_DEVICE_INDEX
    if (settings->device_index != 0) {
        snprintf(message, message_size, PLUGIN_NAME ": there is no device %d", (int)settings->device_index);
        *out = NULL;
        return FB_ERR_UNAVAILABLE;
    }
#elif DEFECT == THREADS_UNRESOLVED
    if (settings->threads < 0) {
        snprintf(message, message_size, PLUGIN_NAME ": threads = %d is negative", (int)settings->threads);
        *out = NULL;
        return FB_ERR_INVALID_ARGUMENT;
    }
    asked_threads = settings->threads;
#endif
#if MATHS_DEFECT
    if (settings->weight_precision > FB_PRECISION_NATIVE) {
        snprintf(message, message_size, PLUGIN_NAME ": unknown weight precision %d", (int)settings->weight_precision);
        *out = NULL;
        return FB_ERR_UNSUPPORTED;
    }
    asked_precision = settings->weight_precision;
    changed.weight_precision = FB_PRECISION_F32;
#endif
#if DEFECT == EPS_OUTSIDE_SQRT
    broken_eps = mv->rms_eps;
    broken_head_dim = (float)mv->head_dim;
#endif
    fb_status st = example_create(host, &view, &changed, out, message, message_size);
#if WEIGHT_DEFECT
    if (st == FB_OK && break_weights(*out) != 0) {
        example_destroy(*out);
        *out = NULL;
        snprintf(message, message_size, PLUGIN_NAME ": out of memory");
        return FB_ERR_OUT_OF_MEMORY;
    }
#endif
    return st;
}

static fb_status broken_prefill(fb_session *s, const int32_t *tokens, uint32_t n, uint32_t flags, float *logits,
                                int32_t *next) {
#if DEFECT == ABORTS_ON_BAD_TOKEN
    for (uint32_t i = 0; tokens && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->c.vocab_size) abort();
#endif
#if DEFECT == INVALID_BEFORE_FULL
    for (uint32_t i = 0; tokens && i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= s->c.vocab_size)
            return fail(s, FB_ERR_INVALID_ARGUMENT, PLUGIN_NAME ": token id %d is outside the vocabulary", (int)tokens[i]);
#elif DEFECT == REFUSES_FLAG_BITS
    if (flags & ~(FB_LOGITS_LAST | FB_LOGITS_ALL))
        return fail(s, FB_ERR_INVALID_ARGUMENT, PLUGIN_NAME ": unknown flag bits 0x%x", flags);
#elif DEFECT == ACCEPTS_NULL_NEXT
    int32_t ignored;
    if (!next) next = &ignored;
#endif
#if DEFECT == LOGITS_WRONG_POSITION
    if (n >= 2 && (flags & FB_LOGITS_LAST) && !(flags & FB_LOGITS_ALL) && logits) {
        size_t V = (size_t)s->c.vocab_size;
        float *all = malloc(n * V * sizeof *all);
        if (!all) return fail(s, FB_ERR_OUT_OF_MEMORY, PLUGIN_NAME ": out of memory");
        fb_status st = example_prefill(s, tokens, n, FB_LOGITS_ALL, all, next);
        if (st == FB_OK) {
            memcpy(logits, all + (n - 2) * V, V * sizeof *logits); /* off by one */
            *next = argmax(logits, (int)V);
        }
        free(all);
        return st;
    }
#endif
    fb_status st = example_prefill(s, tokens, n, flags, logits, next);
#if DEFECT == WRONG_ARGMAX
    if (st == FB_OK) *next = (*next + 1) % s->c.vocab_size;
#endif
    return st;
}

static fb_status broken_decode(fb_session *s, int32_t token, float *logits, int32_t *next) {
#if DEFECT == ACCEPTS_NULL_NEXT
    int32_t ignored;
    if (!next) next = &ignored;
#endif
#if DEFECT == ABORTS_ON_BAD_TOKEN
    if (token < 0 || token >= s->c.vocab_size) abort();
#endif
    fb_status st = example_decode(s, token, logits, next);
#if DEFECT == WRONG_ARGMAX
    if (st == FB_OK) *next = (*next + 1) % s->c.vocab_size;
#endif
    return st;
}

static fb_status broken_reset(fb_session *s) {
#if DEFECT == IGNORES_RESET
    (void)s;
    return FB_OK;
#else
    return example_reset(s);
#endif
}

static fb_status broken_memory(fb_session *s, fb_memory_stats *out) {
#if DEFECT == HANGS_IN_MEMORY
    for (;;) sleep(1);
#endif
    return example_memory(s, out);
}

static fb_status broken_effective(fb_session *s, fb_effective_settings *out) {
    fb_status st = example_effective_settings(s, out);
#if DEFECT == GRAPHS_WHEN_FORBIDDEN
    out->graphs = 1;
#elif DEFECT == WRONG_PRECISION
    out->weight_precision = FB_PRECISION_F16;
#elif MATHS_DEFECT
    out->weight_precision = asked_precision;
#elif DEFECT == THREADS_UNRESOLVED
    out->threads = asked_threads;
#elif DEFECT == DEVICE_FORMAT
    snprintf(out->device, sizeof out->device, "plain C loops, one thread");
#endif
    return st;
}

static void broken_destroy(fb_session *s) {
#if DEFECT == LEAKS_SESSIONS
    (void)s;
#else
    example_destroy(s);
#endif
}

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) {
    broken = example_plugin;
    broken.name = PLUGIN_NAME;
    broken.description = "the example with one deliberate defect, for conformance tests";
#if DEFECT == GRAPHS_WHEN_FORBIDDEN
    broken.capabilities |= FB_CAP_GRAPHS;
#elif MATHS_DEFECT
    broken.capabilities |= FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 | FB_CAP_PRECISION_NATIVE;
#elif DEFECT == THREADS_UNRESOLVED
    broken.capabilities |= FB_CAP_THREADS;
#endif
    broken.create = broken_create;
    broken.prefill = broken_prefill;
    broken.decode = broken_decode;
    broken.reset = broken_reset;
    broken.memory = broken_memory;
    broken.effective_settings = broken_effective;
    broken.destroy = broken_destroy;
    return &broken;
}
