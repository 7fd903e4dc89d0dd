/* cmd_generate.c - `fairbench generate`: greedy generation through one
 * backend, so anyone can see the model really runs. */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abi_names.h"
#include "backends.h"
#include "model.h"
#include "plugin_host.h"
#include "tokenizer.h"

#define MAX_PLUGIN_DIRS 16

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ----------------------------------------------------------------------------
// fairbench generate

/* "1,2,3" -> ids; -1 on a malformed list. */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, count = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
            free(v);
            return -1;
        }
        if (count == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[count++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (count == 0) {
        free(v);
        return -1;
    }
    *ids = v;
    *n = count;
    return 0;
}

/* Logits dump: "FBLG", u32 version 1, u32 n_vocab, u32 n_pos, i32 tokens[n_pos]
 * (the token fed at each position), f32 logits[n_pos][n_vocab]. */
typedef struct logits_dump {
    FILE *fp;
    const char *path;
    uint32_t n_vocab;
    int32_t *tokens;
    float *logits;
    uint32_t n_pos, cap;
} logits_dump;

static int dump_add(logits_dump *d, int32_t token, const float *logits) {
    if (d->n_pos == d->cap) {
        uint32_t cap = d->cap ? 2 * d->cap : 64;
        int32_t *t = realloc(d->tokens, cap * sizeof *t);
        if (!t) return -1;
        d->tokens = t;
        float *l = realloc(d->logits, (size_t)cap * d->n_vocab * sizeof *l);
        if (!l) return -1;
        d->logits = l;
        d->cap = cap;
    }
    d->tokens[d->n_pos] = token;
    memcpy(d->logits + (size_t)d->n_pos * d->n_vocab, logits, d->n_vocab * sizeof(float));
    d->n_pos++;
    return 0;
}

static int dump_write(logits_dump *d) {
    uint32_t head[3] = {1, d->n_vocab, d->n_pos};
    FILE *fp = fopen(d->path, "wb");
    if (!fp) return -1;
    int ok = fwrite("FBLG", 1, 4, fp) == 4 && fwrite(head, 4, 3, fp) == 3 &&
             fwrite(d->tokens, 4, d->n_pos, fp) == d->n_pos &&
             fwrite(d->logits, sizeof(float) * d->n_vocab, d->n_pos, fp) == d->n_pos;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

void fb_generate_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench generate -m MODEL.gguf (-p TEXT | --ids ID,ID,...) [-n N]\n"
            "                          [--backend NAME] [--precision f32|f16|bf16|native]\n"
            "                          [--threads N] [--special] [--ignore-eos] [--print-ids]\n"
            "                          [--dump-logits FILE] [--plugin-dir DIR]\n"
            "greedy generation of up to N tokens (default 32) after the prompt, stopping at\n"
            "the end-of-sequence token unless --ignore-eos. Prints the prompt and the\n"
            "generated text (--print-ids: the generated ids instead), and the speed on\n"
            "stderr. -p TEXT is tokenized with the model's tokenizer (BOS as its metadata\n"
            "says; --special: control-token texts such as <|im_start|> become those tokens).\n"
            "--dump-logits writes the logits of every position fed (prompt and generated).\n");
}

int fb_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *ids_text = NULL, *prompt_text = NULL, *backend_name = "cpu_ref", *dump_path = NULL;
    bool parse_special = false, ignore_eos = false, print_ids = false;
    const char *dirs[MAX_PLUGIN_DIRS];
    size_t n_dirs = 0;
    long n_generate = 32, threads = 0;
    fb_precision precision = FB_PRECISION_F32;
    enum { O_IDS = 256, O_BACKEND, O_PRECISION, O_THREADS, O_DUMP, O_PLUGIN_DIR, O_SPECIAL, O_IGNORE_EOS, O_PRINT_IDS };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},      {"ids", required_argument, NULL, O_IDS},
        {"backend", required_argument, NULL, O_BACKEND}, {"precision", required_argument, NULL, O_PRECISION},
        {"threads", required_argument, NULL, O_THREADS}, {"dump-logits", required_argument, NULL, O_DUMP},
        {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR}, {"prompt", required_argument, NULL, 'p'},
        {"special", no_argument, NULL, O_SPECIAL}, {"ignore-eos", no_argument, NULL, O_IGNORE_EOS},
        {"print-ids", no_argument, NULL, O_PRINT_IDS}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "m:n:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': prompt_text = optarg; break;
        case O_SPECIAL: parse_special = true; break;
        case O_IGNORE_EOS: ignore_eos = true; break;
        case O_PRINT_IDS: print_ids = true; break;
        case 'n':
            n_generate = strtol(optarg, &end, 10);
            if (*end || n_generate < 1 || n_generate > 1000000) {
                fprintf(stderr, "fairbench generate: -n expects 1 to 1000000, got '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_IDS: ids_text = optarg; break;
        case O_BACKEND: backend_name = optarg; break;
        case O_PRECISION:
            if (fb_precision_parse(optarg, &precision)) {
                fprintf(stderr, "fairbench generate: --precision must be f32, f16, bf16 or native, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_THREADS:
            threads = strtol(optarg, &end, 10);
            if (*end || threads < 0 || threads > 4096) {
                fprintf(stderr, "fairbench generate: --threads expects 0 (all cores) to 4096, got '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_DUMP: dump_path = optarg; break;
        case O_PLUGIN_DIR:
            if (n_dirs == MAX_PLUGIN_DIRS) return EXIT_USAGE;
            dirs[n_dirs++] = optarg;
            break;
        case 'h': fb_generate_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (!model_path || !ids_text == !prompt_text || optind != argc) {
        fb_generate_usage(stderr);
        return EXIT_USAGE;
    }
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    if (ids_text && parse_ids(ids_text, &prompt, &n_prompt)) {
        fprintf(stderr, "fairbench generate: --ids expects comma-separated token ids, got '%s'\n", ids_text);
        return EXIT_USAGE;
    }

    int rc = EXIT_USAGE;
    fb_error err;
    fb_model *model = NULL;
    fb_model_view_owner view = {0};
    fb_backend_list backends = {0};
    fb_session *session = NULL;
    const fb_backend *b = NULL;
    logits_dump dump = {.path = dump_path};
    int32_t *generated = NULL;
    fb_tokenizer *tok = NULL;
    long n_done = 0;

    if (fb_model_open(model_path, &model, &err) || fb_model_view_build(model, &view, &err)) {
        fprintf(stderr, "fairbench generate: %s\n", err.msg);
        goto out;
    }
    /* The tokenizer: needed for -p and for printing text; optional with --ids --print-ids. */
    if (fb_tokenizer_load(model->file, &tok, &err) && (prompt_text || !print_ids)) {
        fprintf(stderr, "fairbench generate: %s\n", err.msg);
        goto out;
    }
    if (prompt_text && fb_tokenize(tok, prompt_text, strlen(prompt_text), true, parse_special, &prompt, &n_prompt, &err)) {
        fprintf(stderr, "fairbench generate: %s\n", err.msg);
        goto out;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "fairbench generate: the prompt is empty (no tokens)\n");
        goto out;
    }
    for (size_t i = 0; i < n_prompt; i++)
        if ((uint32_t)prompt[i] >= model->hp.n_vocab) {
            fprintf(stderr, "fairbench generate: token id %d is outside the vocabulary of %u\n", prompt[i], model->hp.n_vocab);
            goto out;
        }
    if (n_prompt + (size_t)n_generate > model->hp.n_ctx) {
        fprintf(stderr, "fairbench generate: %zu prompt + %ld generated tokens pass the context length %u\n", n_prompt,
                n_generate, model->hp.n_ctx);
        goto out;
    }
    if (fb_backends_discover(dirs, n_dirs, &backends, &err)) {
        fprintf(stderr, "fairbench generate: %s\n", err.msg);
        goto out;
    }
    b = fb_backends_find(&backends, backend_name);
    if (!b) {
        fprintf(stderr, "fairbench generate: no usable backend named '%s' (see fairbench plugins)\n", backend_name);
        goto out;
    }
    const fb_host *host = fb_host_services();
    fb_probe_result probe = {.struct_size = sizeof probe};
    if (b->api->probe(host, &probe) != FB_OK || !probe.available) {
        fprintf(stderr, "fairbench generate: backend '%s' is unavailable: %s\n", backend_name, probe.reason);
        rc = EXIT_FAILURES;
        goto out;
    }
    fb_settings settings = {
        .struct_size = sizeof settings,
        .weight_precision = precision,
        .accumulate_precision = FB_PRECISION_F32,
        .allow_jit = 1,
        .allow_graphs = 1,
        .jit_cache = FB_JIT_CACHE_WARM,
        .threads = (int32_t)threads,
        .max_context = (uint32_t)(n_prompt + (size_t)n_generate),
        .cache_dir = NULL,
        .device_index = 0,
    };
    char message[512] = "";
    double t0 = now_seconds();
    fb_status st = b->api->create(host, &view.view, &settings, &session, message, sizeof message);
    double t_load = now_seconds() - t0;
    if (st != FB_OK) {
        fprintf(stderr, "fairbench generate: backend '%s' cannot run this model: %s\n", backend_name, message);
        rc = st == FB_ERR_UNSUPPORTED || st == FB_ERR_INVALID_ARGUMENT ? EXIT_USAGE : EXIT_FAILURES;
        goto out;
    }

    uint32_t n_vocab = model->hp.n_vocab;
    float *logits = NULL;
    if (dump_path) {
        dump.n_vocab = n_vocab;
        logits = malloc((size_t)(n_prompt > 1 ? n_prompt : 1) * n_vocab * sizeof *logits);
        if (!logits) goto oom;
    }
    generated = malloc((size_t)n_generate * sizeof *generated);
    if (!generated) goto oom;

    // prefill: the prompt, all positions' logits when dumping
    int32_t next;
    t0 = now_seconds();
    st = b->api->prefill(session, prompt, (uint32_t)n_prompt, dump_path ? FB_LOGITS_ALL : FB_LOGITS_NONE, logits, &next);
    double t_prefill = now_seconds() - t0;
    if (st != FB_OK) goto backend_failed;
    for (size_t i = 0; dump_path && i < n_prompt; i++)
        if (dump_add(&dump, prompt[i], logits + i * n_vocab)) goto oom;

    // decode: feed each generated token back, until N tokens or end of sequence
    int32_t eos = tok && !ignore_eos ? fb_tokenizer_eos(tok) : -1;
    generated[0] = next;
    n_done = 1;
    t0 = now_seconds();
    while (n_done < n_generate && generated[n_done - 1] != eos) {
        st = b->api->decode(session, generated[n_done - 1], logits, &next);
        if (st != FB_OK) goto backend_failed;
        if (dump_path && dump_add(&dump, generated[n_done - 1], logits)) goto oom;
        generated[n_done++] = next;
    }
    double t_decode = now_seconds() - t0;
    free(logits);
    logits = NULL;

    if (print_ids) {
        for (long i = 0; i < n_done; i++) printf("%s%d", i ? "," : "", generated[i]);
        printf("\n");
    } else {
        char *text[2] = {NULL, NULL};
        size_t len[2];
        if (fb_detokenize(tok, prompt, n_prompt, true, &text[0], &len[0], &err) ||
            fb_detokenize(tok, generated, (size_t)n_done, true, &text[1], &len[1], &err)) {
            fprintf(stderr, "fairbench generate: %s\n", err.msg);
            free(text[0]);
            rc = EXIT_FAILURES;
            goto out;
        }
        fwrite(text[0], 1, len[0], stdout);
        fwrite(text[1], 1, len[1], stdout);
        printf("\n");
        free(text[0]);
        free(text[1]);
    }
    fb_effective_settings eff = {.struct_size = sizeof eff};
    b->api->effective_settings(session, &eff);
    fprintf(stderr,
            "fairbench generate: %s (%s), load %.3f s, prefill %zu tokens %.1f tok/s, decode %ld tokens %.2f tok/s\n",
            backend_name, eff.notes, t_load, n_prompt, (double)n_prompt / t_prefill, n_done - 1,
            n_done > 1 ? (double)(n_done - 1) / t_decode : 0.0);
    if (dump_path && dump_write(&dump)) {
        fprintf(stderr, "fairbench generate: cannot write %s: %s\n", dump_path, strerror(errno));
        rc = EXIT_FAILURES;
        goto out;
    }
    rc = EXIT_OK;
    goto out;
backend_failed:
    fprintf(stderr, "fairbench generate: backend '%s' failed: %s\n", backend_name, b->api->last_error(session));
    free(logits);
    rc = EXIT_FAILURES;
    goto out;
oom:
    fprintf(stderr, "fairbench generate: out of memory\n");
    free(logits);
    rc = EXIT_FAILURES;
out:
    if (session) b->api->destroy(session);
    fb_backends_free(&backends);
    fb_model_view_free(&view);
    fb_model_close(model);
    free(dump.tokens);
    free(dump.logits);
    free(generated);
    free(prompt);
    fb_tokenizer_free(tok);
    return rc;
}
