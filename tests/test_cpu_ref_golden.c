/* test_cpu_ref_golden.c - cpu_ref against the independent numpy reference
 * (tests/data/ref/llama_ref.py), at f32.
 *
 *   test_cpu_ref_golden GOLDEN.bin MODEL.gguf
 *
 * For the stored positions, cpu_ref's logits (through batched prefill and
 * through one-token decode) must be within 1e-4 relative error of the
 * reference (max |a - b| / max |b| per position); where only the top-k is
 * stored, the same ids must lead with values within the same bound; and the
 * greedy continuation must be the reference's, token for token. */
#include <inttypes.h>

#include "check.h"
#include "cpu_ref_session.h"

#define REL_TOL 1e-4

typedef struct golden {
    uint32_t n_vocab, n_prompt, n_pos, n_greedy, n_top;
    int32_t *prompt, *fed, *top_ids, *greedy;
    float *logits, *top_values;
} golden;

static int read_exact(FILE *fp, void *dst, size_t bytes) { return fread(dst, 1, bytes, fp) == bytes ? 0 : -1; }

static int golden_read(const char *path, golden *g) {
    memset(g, 0, sizeof *g);
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    char magic[4];
    uint32_t head[6];
    int rc = -1;
    if (read_exact(fp, magic, 4) || memcmp(magic, "FBRL", 4) || read_exact(fp, head, sizeof head) || head[0] != 1)
        goto out;
    g->n_vocab = head[1], g->n_prompt = head[2], g->n_pos = head[3], g->n_greedy = head[4], g->n_top = head[5];
    if (g->n_vocab == 0 || g->n_vocab > (1u << 20) || g->n_prompt > 4096 || g->n_pos > 4096 || g->n_greedy > 4096 ||
        g->n_top > 64)
        goto out;
    uint32_t n_pos_top = g->n_top ? 16 : 0;
    g->prompt = malloc((g->n_prompt + 1) * sizeof(int32_t));
    g->fed = malloc((g->n_pos + 1) * sizeof(int32_t));
    g->logits = malloc(((size_t)g->n_pos * g->n_vocab + 1) * sizeof(float));
    g->top_ids = malloc(((size_t)n_pos_top * g->n_top + 1) * sizeof(int32_t));
    g->top_values = malloc(((size_t)n_pos_top * g->n_top + 1) * sizeof(float));
    g->greedy = malloc((g->n_greedy + 1) * sizeof(int32_t));
    if (!g->prompt || !g->fed || !g->logits || !g->top_ids || !g->top_values || !g->greedy) goto out;
    if (read_exact(fp, g->prompt, g->n_prompt * sizeof(int32_t)) ||
        read_exact(fp, g->fed, g->n_pos * sizeof(int32_t)) ||
        read_exact(fp, g->logits, (size_t)g->n_pos * g->n_vocab * sizeof(float)) ||
        read_exact(fp, g->top_ids, (size_t)n_pos_top * g->n_top * sizeof(int32_t)) ||
        read_exact(fp, g->top_values, (size_t)n_pos_top * g->n_top * sizeof(float)) ||
        read_exact(fp, g->greedy, g->n_greedy * sizeof(int32_t)))
        goto out;
    rc = fgetc(fp) == EOF ? 0 : -1; /* nothing left over */
out:
    fclose(fp);
    return rc;
}

static void golden_free(golden *g) {
    free(g->prompt), free(g->fed), free(g->logits), free(g->top_ids), free(g->top_values), free(g->greedy);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_cpu_ref_golden GOLDEN.bin MODEL.gguf\n");
        return 2;
    }
    golden g;
    if (golden_read(argv[1], &g)) {
        CHECK(0, "cannot read golden file %s", argv[1]);
        return check_summary();
    }
    test_model tm;
    fb_backend_list list;
    const fb_plugin *api = test_find_backend(&list, "cpu_ref");
    if (!api || test_model_open(argv[2], &tm)) {
        CHECK(0, "cpu_ref or the model is missing");
        return check_summary();
    }
    CHECK(tm.view.view.n_vocab == g.n_vocab, "vocabulary %u vs golden %u", tm.view.view.n_vocab, g.n_vocab);
    uint32_t n_ctx = g.n_prompt + g.n_greedy + g.n_pos + 1;
    fb_session *s = test_create(api, &tm, FB_PRECISION_F32, 0, n_ctx);
    CHECK(s != NULL, "create");
    if (!s || tm.view.view.n_vocab != g.n_vocab) return check_summary();
    const uint32_t V = g.n_vocab;
    int32_t next;

    /* Stored logits: batched prefill over every stored position, then one token at a time. */
    if (g.n_pos) {
        float *batched = malloc((size_t)g.n_pos * V * sizeof(float)), *step = malloc((size_t)V * sizeof(float));
        CHECK(api->prefill(s, g.fed, g.n_pos, FB_LOGITS_ALL, batched, &next) == FB_OK, "prefill: %s",
              api->last_error(s));
        double worst_batched = 0, worst_step = 0;
        api->reset(s);
        for (uint32_t i = 0; i < g.n_pos; i++) {
            CHECK(api->decode(s, g.fed[i], step, &next) == FB_OK, "decode %u", i);
            double eb = rel_error(batched + (size_t)i * V, g.logits + (size_t)i * V, V);
            double es = rel_error(step, g.logits + (size_t)i * V, V);
            worst_batched = eb > worst_batched ? eb : worst_batched;
            worst_step = es > worst_step ? es : worst_step;
            CHECK(argmax_f(step, V) == argmax_f(g.logits + (size_t)i * V, V), "position %u top-1", i);
        }
        printf("  %u positions: relative error %.3g (prefill), %.3g (decode); bound %.0e\n", g.n_pos, worst_batched,
               worst_step, REL_TOL);
        CHECK(worst_batched <= REL_TOL && worst_step <= REL_TOL, "logits within %.0e", REL_TOL);
        free(batched);
        free(step);
    }

    /* Stored top-k (16 positions): the prompt, then the reference's greedy tokens. */
    if (g.n_top) {
        int32_t *fed = malloc(16 * sizeof *fed);
        for (uint32_t i = 0; i < 16; i++) fed[i] = i < g.n_prompt ? g.prompt[i] : g.greedy[i - g.n_prompt];
        float *logits = malloc((size_t)16 * V * sizeof(float));
        api->reset(s);
        CHECK(api->prefill(s, fed, 16, FB_LOGITS_ALL, logits, &next) == FB_OK, "prefill top-k positions");
        double worst = 0;
        for (uint32_t i = 0; i < 16; i++) {
            const float *row = logits + (size_t)i * V;
            double max_abs = 0;
            for (uint32_t v = 0; v < V; v++) max_abs = fabs(row[v]) > max_abs ? fabs(row[v]) : max_abs;
            CHECK(argmax_f(row, V) == g.top_ids[i * g.n_top], "position %u top-1 id", i);
            for (uint32_t k = 0; k < g.n_top; k++) {
                double d = fabs(row[g.top_ids[i * g.n_top + k]] - g.top_values[i * g.n_top + k]) / max_abs;
                worst = d > worst ? d : worst;
            }
        }
        printf("  top-%u at 16 positions: relative error %.3g\n", g.n_top, worst);
        CHECK(worst <= REL_TOL, "top-k values within %.0e", REL_TOL);
        free(fed);
        free(logits);
    }

    /* Greedy continuation. */
    api->reset(s);
    CHECK(api->prefill(s, g.prompt, g.n_prompt, FB_LOGITS_NONE, NULL, &next) == FB_OK, "prefill prompt");
    uint32_t same = 0;
    for (uint32_t i = 0; i < g.n_greedy; i++) {
        if (next != g.greedy[i]) {
            printf("  greedy token %u: cpu_ref %d, reference %d\n", i, next, g.greedy[i]);
            break;
        }
        same++;
        if (i + 1 < g.n_greedy) api->decode(s, next, NULL, &next);
    }
    printf("  greedy: %u of %u tokens as the reference\n", same, g.n_greedy);
    CHECK(same == g.n_greedy, "greedy continuation matches");

    api->destroy(s);
    test_model_close(&tm);
    fb_backends_free(&list);
    golden_free(&g);
    return check_summary();
}
