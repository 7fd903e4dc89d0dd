/* cmd_compare.c - `fairbench compare A.json B.json`: per backend, how B's
 * figures compare with A's, and whether a decode-latency difference is more
 * than noise (two-sided Mann-Whitney U test on the raw samples). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats.h"

enum { EXIT_DIFFERENT = EXIT_FAILURES };

static cJSON *load_report(const char *path) {
    /* Not a file: a run of the results history (id, tag, first, last). */
    if (access(path, F_OK) != 0) return fb_cli_load_report("fairbench compare", path, NULL);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "fairbench compare: cannot open %s\n", path);
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = malloc(size > 0 ? (size_t)size + 1 : 1);
    size_t got = text ? fread(text, 1, (size_t)(size > 0 ? size : 0), fp) : 0;
    fclose(fp);
    if (!text) return NULL;
    text[got] = '\0';
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *schema = root ? cJSON_GetObjectItemCaseSensitive(root, "schema_version") : NULL;
    if (!root || !cJSON_IsNumber(schema) || schema->valueint != 1) {
        fprintf(stderr, "fairbench compare: %s is not a fairbench JSON report (schema version 1)\n", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static const cJSON *find_backend(const cJSON *root, const char *label) {
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(root, "backends")) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(b, "label");
        if (cJSON_IsString(l) && strcmp(l->valuestring, label) == 0) return b;
    }
    return NULL;
}

static double *samples(const cJSON *backend, size_t *n) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(backend, "samples"),
                                                        "decode_latency_ms");
    *n = (size_t)cJSON_GetArraySize(arr);
    double *x = malloc((*n ? *n : 1) * sizeof *x);
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) if (x && cJSON_IsNumber(v)) x[i++] = v->valuedouble;
    *n = i;
    return x;
}

static double metric(const cJSON *backend, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(backend, "metrics"), key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

void fb_compare_usage(FILE *out) {
    fprintf(out, "usage: fairbench compare A.json B.json\n"
                 "for each backend in both reports: B's figures as ratios of A's, and whether\n"
                 "the decode-latency difference is significant (two-sided Mann-Whitney U test on\n"
                 "every raw sample, p < 0.01). Exit status 1 when any difference is significant.\n");
}

int fb_cmd_compare(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fb_compare_usage(stdout);
        return EXIT_OK;
    }
    if (argc != 3) {
        fb_compare_usage(stderr);
        return EXIT_USAGE;
    }
    cJSON *a = load_report(argv[1]), *b = load_report(argv[2]);
    if (!a || !b) {
        cJSON_Delete(a);
        cJSON_Delete(b);
        return EXIT_USAGE;
    }
    printf("%-16s %12s %12s %8s %10s  %-28s %8s %8s\n", "backend", "A median ms", "B median ms", "B/A", "p-value",
           "verdict", "load B/A", "cold B/A");
    int n_compared = 0, n_significant = 0;
    const cJSON *ba;
    cJSON_ArrayForEach(ba, cJSON_GetObjectItemCaseSensitive(a, "backends")) {
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(ba, "label");
        if (!cJSON_IsString(label)) continue;
        const cJSON *bb = find_backend(b, label->valuestring);
        if (!bb) {
            printf("%-16s only in A\n", label->valuestring);
            continue;
        }
        size_t na, nb;
        double *xa = samples(ba, &na), *xb = samples(bb, &nb);
        if (!xa || !xb || na < 2 || nb < 2) {
            printf("%-16s no decode samples in %s\n", label->valuestring, na < 2 ? "A" : "B");
            free(xa);
            free(xb);
            continue;
        }
        fb_summary sa, sb;
        fb_summarize(xa, na, &sa);
        fb_summarize(xb, nb, &sb);
        double p = fb_mann_whitney_p(xa, na, xb, nb), ratio = sb.median / sa.median;
        bool significant = p < 0.01;
        char verdict[64];
        if (!significant) snprintf(verdict, sizeof verdict, "no significant difference");
        else snprintf(verdict, sizeof verdict, "B %s by %.1f%%", ratio < 1 ? "faster" : "slower", fabs(1 - ratio) * 100);
        printf("%-16s %12.4f %12.4f %8.3f %10.2g  %-28s %8.2f %8.2f\n", label->valuestring, sa.median, sb.median, ratio,
               p, verdict, metric(bb, "load_s") / metric(ba, "load_s"),
               metric(bb, "cold_start_s") / metric(ba, "cold_start_s"));
        n_compared++;
        n_significant += significant;
        free(xa);
        free(xb);
    }
    const cJSON *bb;
    cJSON_ArrayForEach(bb, cJSON_GetObjectItemCaseSensitive(b, "backends")) {
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(bb, "label");
        if (cJSON_IsString(label) && !find_backend(a, label->valuestring)) printf("%-16s only in B\n", label->valuestring);
    }
    printf("%d backends compared, %d with a significant decode-latency difference\n", n_compared, n_significant);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return n_significant ? EXIT_DIFFERENT : EXIT_OK;
}
