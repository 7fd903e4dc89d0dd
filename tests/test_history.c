/* test_history.c - the results history (core/history.c) on its own: reports
 * made here with known samples (seeded), appended and read back; schema
 * version and migration; two processes appending at once; a garbage file and
 * a database from a newer fairbench refused with a sentence. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "history.h"
#include "stats.h"

static int failures;
#define EXPECT(cond, ...)                                 \
    do {                                                  \
        if (!(cond)) {                                    \
            failures++;                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
            printf(__VA_ARGS__);                          \
            printf("\n");                                 \
        }                                                 \
    } while (0)

enum { GEN = 5, REPS = 4 };

static uint64_t rng_state;
static double uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* A report with two backends; the second's latencies are scaled by slow. */
static char *make_report(double slow, double latency[2][GEN * REPS]) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "schema_version", 1);
    cJSON *env = cJSON_AddObjectToObject(root, "environment");
    cJSON_AddStringToObject(env, "date", "2026-01-02T03:04:05Z");
    cJSON_AddStringToObject(env, "git_commit", "abc123");
    cJSON_AddStringToObject(env, "cpu", "Test CPU 9000");
    cJSON_AddNumberToObject(env, "cores", 4);
    cJSON *gpus = cJSON_AddArrayToObject(env, "gpus");
    cJSON_AddItemToArray(gpus, cJSON_CreateString("Test GPU, 555.42"));
    cJSON *prof = cJSON_AddObjectToObject(root, "profile");
    cJSON_AddStringToObject(prof, "path", "profiles/test.ini");
    cJSON_AddStringToObject(prof, "text", "[run]\n");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "path", "models/tiny.gguf");
    cJSON_AddStringToObject(model, "sha256", "deadbeef");
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddNumberToObject(run, "gen_tokens", GEN);
    cJSON_AddNumberToObject(run, "repetitions", REPS);
    cJSON *fair = cJSON_AddObjectToObject(root, "fairness");
    cJSON_AddBoolToObject(fair, "fair", 1);
    cJSON_AddStringToObject(fair, "verdict", "fair");
    cJSON *backends = cJSON_AddArrayToObject(root, "backends");
    for (int b = 0; b < 2; b++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "label", b ? "beta" : "alpha");
        cJSON_AddStringToObject(o, "plugin", "cpu_ref");
        cJSON_AddStringToObject(o, "status", "ok");
        cJSON *m = cJSON_AddObjectToObject(o, "metrics");
        cJSON_AddNumberToObject(m, "load_s", 0.5);
        cJSON *lat = cJSON_CreateArray();
        for (int i = 0; i < GEN * REPS; i++) {
            latency[b][i] = (1.0 + 0.2 * uniform()) * (b ? slow : 1.0);
            cJSON_AddItemToArray(lat, cJSON_CreateNumber(latency[b][i]));
        }
        cJSON_AddItemToObject(cJSON_AddObjectToObject(o, "samples"), "decode_latency_ms", lat);
        cJSON_AddItemToArray(backends, o);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static long long count(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static void count_run(const fb_history_run *run, void *ctx) {
    (void)run;
    ++*(int *)ctx;
}

static void test_append_and_read(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/basic/sub/results.sqlite", dir); /* folders made on open */
    fb_history *h;
    fb_error err;
    EXPECT(fb_history_open(path, &h, &err) == 0, "open: %s", err.msg);
    if (!h) return;
    double lat[3][2][GEN * REPS];
    int64_t ids[3];
    for (int r = 0; r < 3; r++) {
        char *text = make_report(r == 2 ? 1.5 : 1.0, lat[r]);
        EXPECT(fb_history_append(h, text, &ids[r], &err) == 0, "append %d: %s", r, err.msg);
        free(text);
    }
    EXPECT(count(path, "SELECT count(*) FROM runs") == 3, "3 runs");
    EXPECT(count(path, "SELECT count(*) FROM entries") == 6, "6 entries");
    EXPECT(count(path, "SELECT count(*) FROM samples") == 3 * 2 * GEN * REPS, "every sample stored");
    EXPECT(count(path, "SELECT max(repetition) FROM samples") == REPS - 1, "repetitions numbered 0..%d", REPS - 1);
    EXPECT(count(path, "SELECT count(*) FROM runs WHERE driver = '555.42' AND gpus = 'Test GPU, 555.42'") == 3,
           "GPU and driver stored");
    EXPECT(count(path, "PRAGMA user_version") == fb_history_schema_version(), "schema version set");

    /* per-repetition medians equal the medians of each repetition's samples */
    double *med;
    size_t n;
    EXPECT(fb_history_rep_medians(h, ids[2], "beta", &med, &n, &err) == 0, "rep medians: %s", err.msg);
    EXPECT(n == REPS, "%zu repetitions, not %d", n, REPS);
    double max_diff = 0;
    for (size_t r = 0; r < n && r < REPS; r++) {
        fb_summary s;
        fb_summarize(&lat[2][1][r * GEN], GEN, &s);
        max_diff = fmax(max_diff, fabs(s.median - med[r]) / s.median);
    }
    printf("rep medians: max relative diff %g\n", max_diff);
    EXPECT(max_diff <= 1e-14, "per-repetition medians differ by %g", max_diff);
    free(med);
    EXPECT(fb_history_rep_medians(h, ids[2], "gamma", &med, &n, &err) == 0 && n == 0, "absent backend: no values");
    free(med);

    /* references */
    int64_t id;
    EXPECT(fb_history_resolve(h, "last", &id, &err) == 0 && id == ids[2], "last");
    EXPECT(fb_history_resolve(h, "first", &id, &err) == 0 && id == ids[0], "first");
    char ref[32];
    snprintf(ref, sizeof ref, "%lld", (long long)ids[1]);
    EXPECT(fb_history_resolve(h, ref, &id, &err) == 0 && id == ids[1], "by id");
    EXPECT(fb_history_resolve(h, "baseline", &id, &err) == -1 && strstr(err.msg, "no run 'baseline'"),
           "unknown tag refused: %s", err.msg);
    EXPECT(fb_history_tag(h, ids[0], "baseline", &err) == 0, "tag: %s", err.msg);
    EXPECT(fb_history_tag(h, ids[1], "baseline", &err) == 0, "tag moved: %s", err.msg);
    EXPECT(fb_history_resolve(h, "baseline", &id, &err) == 0 && id == ids[1], "tag resolves to the run it moved to");
    EXPECT(count(path, "SELECT count(*) FROM runs WHERE tag = 'baseline'") == 1, "a tag names one run");
    EXPECT(fb_history_tag(h, ids[0], "42", &err) == -1, "a numeric tag is refused");
    EXPECT(fb_history_resolve(h, "999", &id, &err) == -1, "absent id refused");

    /* the stored report comes back whole (cJSON writes 15 significant
     * digits, so equal to 1e-14 relative) */
    cJSON *root = fb_history_report(h, ids[2], &err);
    const cJSON *b = root ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "backends"), 1) : NULL;
    const cJSON *first = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, "samples"), "decode_latency_ms"), 0);
    EXPECT(cJSON_IsNumber(first) && fabs(first->valuedouble - lat[2][1][0]) <= 1e-14 * lat[2][1][0], "exported report keeps the raw samples: %.17g vs %.17g", first ? first->valuedouble : NAN, lat[2][1][0]);
    cJSON_Delete(root);

    fb_history_filter f = {.backend = "beta"};
    int listed = 0;
    EXPECT(fb_history_list(h, &f, count_run, &listed, &err) == 0 && listed == 3, "filter by backend: %d", listed);
    f = (fb_history_filter){.machine = "GPU"};
    listed = 0;
    EXPECT(fb_history_list(h, &f, count_run, &listed, &err) == 0 && listed == 3, "filter by machine: %d", listed);
    f = (fb_history_filter){.model = "other.gguf"};
    listed = 0;
    EXPECT(fb_history_list(h, &f, count_run, &listed, &err) == 0 && listed == 0, "filter by model: %d", listed);
    fb_history_close(h);
}

/* Version 1 databases are brought to the current schema on open. */
static void test_migration(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/old.sqlite", dir);
    fb_history *h;
    fb_error err;
    EXPECT(fb_history_open_at_version(path, 1, &h, &err) == 0, "open at v1: %s", err.msg);
    double lat[2][GEN * REPS];
    char *text = make_report(1.0, lat);
    int64_t id;
    EXPECT(h && fb_history_append(h, text, &id, &err) == 0, "append at v1: %s", err.msg);
    fb_history_close(h);
    EXPECT(count(path, "PRAGMA user_version") == 1, "v1 written");
    EXPECT(count(path, "SELECT count(*) FROM sqlite_master WHERE name = 'entries_by_label'") == 0, "no v2 index yet");
    EXPECT(fb_history_open(path, &h, &err) == 0, "open migrates: %s", err.msg);
    fb_history_close(h);
    EXPECT(count(path, "PRAGMA user_version") == fb_history_schema_version(), "migrated to the current version");
    EXPECT(count(path, "SELECT count(*) FROM sqlite_master WHERE name = 'entries_by_label'") == 1, "v2 index made");
    EXPECT(count(path, "SELECT count(*) FROM runs") == 1, "the run survives the migration");
    free(text);

    /* a newer fairbench's database is refused, not damaged */
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    EXPECT(fb_history_open(path, &h, &err) == -1 && strstr(err.msg, "schema version 99 is newer"),
           "newer schema refused: %s", err.msg);
}

static void test_garbage(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/garbage.sqlite", dir);
    FILE *fp = fopen(path, "w");
    for (int i = 0; fp && i < 4096; i++) fputc("not a database "[i % 15], fp);
    if (fp) fclose(fp);
    double lat[2][GEN * REPS];
    char *text = make_report(1.0, lat);
    int64_t id;
    fb_error err;
    EXPECT(fb_history_append_json(path, text, &id, &err) == -1, "garbage file refused");
    printf("garbage: %s\n", err.msg);
    EXPECT(strstr(err.msg, path) && strstr(err.msg, "not a database"), "the sentence names the file and the cause");
    free(text);
}

/* Two processes append 15 runs each at the same time: all 30 land. */
static void test_concurrent(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/concurrent.sqlite", dir);
    enum { PER_CHILD = 15 };
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            rng_state += (uint64_t)k * 7919;
            int bad = 0;
            for (int i = 0; i < PER_CHILD; i++) {
                double lat[2][GEN * REPS];
                char *text = make_report(1.0, lat);
                int64_t id;
                fb_error err;
                if (fb_history_append_json(path, text, &id, &err)) {
                    printf("child %d: %s\n", k, err.msg);
                    bad++;
                }
                free(text);
            }
            _exit(bad ? 1 : 0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status = 0;
        waitpid(kids[k], &status, 0);
        EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", k);
    }
    long long runs = count(path, "SELECT count(*) FROM runs");
    printf("concurrent: %lld runs\n", runs);
    EXPECT(runs == 2 * PER_CHILD, "%lld runs, not %d", runs, 2 * PER_CHILD);
    EXPECT(count(path, "SELECT count(*) FROM samples") == 2LL * PER_CHILD * 2 * GEN * REPS, "every sample landed");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_history TMPDIR\n");
        return 2;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", argv[1], argv[1]);
    if (system(cmd) != 0) return 2;
    rng_state = 20261127;
    printf("seed %llu\n", (unsigned long long)rng_state);
    test_append_and_read(argv[1]);
    test_migration(argv[1]);
    test_garbage(argv[1]);
    test_concurrent(argv[1]);
    printf("%s (%d failures)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
