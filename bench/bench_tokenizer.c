/* bench_tokenizer.c - how fast fb_tokenize is on 1 MiB of English prose.
 * Not a test: it prints figures and checks nothing but that tokenizing works.
 *
 *   bench_tokenizer [MODEL.gguf ...]
 *
 * Without arguments it runs on the committed test vocabularies
 * (tests/data/tokenizer/) and on the default model when it has been fetched.
 * The text is tests/data/tokenizer/prose.txt repeated to 1 MiB. Each model:
 * one warm-up run, then 5 timed runs; the best and the median wall time are
 * printed, and the best CPU time of the thread (which other processes on a
 * busy machine do not inflate). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf.h"
#include "tokenizer.h"

#ifndef FB_TOKENIZER_DATA
#define FB_TOKENIZER_DATA "tests/data/tokenizer"
#endif
#ifndef FB_FETCH_MODEL
#define FB_FETCH_MODEL "scripts/fetch-model.sh"
#endif

enum { TEXT_BYTES = 1 << 20, RUNS = 5 };

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* prose.txt repeated to TEXT_BYTES (the file is ASCII and UTF-8 safe to cut
 * at a line end; the last copy is cut at a space). */
static char *make_text(size_t *len) {
    FILE *f = fopen(FB_TOKENIZER_DATA "/prose.txt", "rb");
    if (!f) return NULL;
    static char prose[1 << 16];
    size_t n = fread(prose, 1, sizeof prose, f);
    fclose(f);
    if (n == 0) return NULL;
    char *text = malloc(TEXT_BYTES);
    size_t used = 0;
    while (used < TEXT_BYTES) {
        size_t take = n < TEXT_BYTES - used ? n : TEXT_BYTES - used;
        memcpy(text + used, prose, take);
        used += take;
    }
    while (used > 0 && (unsigned char)text[used - 1] >= 0x80) used--; /* never split a character */
    *len = used;
    return text;
}

static void bench(const char *path, const char *text, size_t len) {
    gguf_file *g;
    fb_error err;
    double t0 = now_s();
    if (gguf_open(path, &g, &err)) {
        printf("%s: %s\n", path, err.msg);
        return;
    }
    fb_tokenizer *t;
    int rc = fb_tokenizer_load(g, &t, &err);
    gguf_close(g);
    double load_s = now_s() - t0;
    if (rc) {
        printf("%s: %s\n", path, err.msg);
        return;
    }
    double secs[RUNS], cpu[RUNS];
    size_t n_ids = 0;
    for (int r = -1; r < RUNS; r++) {
        int32_t *ids;
        double a = now_s(), ca = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (fb_tokenize(t, text, len, false, false, &ids, &n_ids, &err)) {
            printf("%s: %s\n", path, err.msg);
            fb_tokenizer_free(t);
            return;
        }
        double b = now_s(), cb = clock_s(CLOCK_THREAD_CPUTIME_ID);
        free(ids);
        if (r >= 0) secs[r] = b - a, cpu[r] = cb - ca;
    }
    qsort(secs, RUNS, sizeof secs[0], cmp_double);
    qsort(cpu, RUNS, sizeof cpu[0], cmp_double);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    double mb = (double)len / 1e6;
    printf("%-32s %-5s %-9s %7zu ids  wall best %.3f s (%5.1f MB/s) median %.3f s  cpu best %.3f s (%5.1f MB/s)"
           "  load %.3f s\n",
           base, fb_tokenizer_model(t), fb_tokenizer_pre(t), n_ids, secs[0], mb / secs[0], secs[RUNS / 2], cpu[0],
           mb / cpu[0], load_s);
    fb_tokenizer_free(t);
}

int main(int argc, char **argv) {
    size_t len;
    char *text = make_text(&len);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: cannot read %s/prose.txt\n", FB_TOKENIZER_DATA);
        return 2;
    }
    printf("bench_tokenizer: %zu bytes (%.2f MB) of English prose, %d runs after one warm-up, no BOS/EOS\n", len,
           (double)len / 1e6, RUNS);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) bench(argv[i], text, len);
    } else {
        static const char *vocabs[] = {"spm", "bpe-llama3", "bpe-smollm", "bpe-gpt2", "bpe-default"};
        for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s.gguf", FB_TOKENIZER_DATA, vocabs[i]);
            bench(path, text, len);
        }
        char path[2048] = "";
        FILE *p = popen("'" FB_FETCH_MODEL "' --path", "r");
        if (p) {
            if (!fgets(path, sizeof path, p)) path[0] = '\0';
            pclose(p);
        }
        path[strcspn(path, "\n")] = '\0';
        struct stat st;
        if (path[0] && stat(path, &st) == 0) bench(path, text, len);
        else
            printf("default model absent (%s): run scripts/fetch-model.sh\n", path);
    }
    free(text);
    return 0;
}
