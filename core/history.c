/* history.c - the results history in SQLite (see history.h for the tables).
 *
 * The run's JSON report is the only input: the main job appends the same text
 * it writes with --format json, so the history holds nothing the report does
 * not. Each append is one transaction (BEGIN IMMEDIATE, so a second writer
 * waits on the busy timeout instead of failing half-way). */
#include "history.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stats.h"

struct fb_history {
    sqlite3 *db;
    char path[1024];
};

enum { BUSY_TIMEOUT_MS = 10000 };

// ----------------------------------------------------------------------------
// Schema: migration i (1-based) takes user_version i-1 to i. Released
// migrations are never edited; a change of schema is a new one at the end.

static const char *const migrations[] = {
    /* 1: the three tables */
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY,"
    " time TEXT NOT NULL,"
    " fairbench_version TEXT, git_commit TEXT,"
    " profile_path TEXT, profile_text TEXT, profile_sha256 TEXT,"
    " model_path TEXT, model_sha256 TEXT, model_bytes INTEGER,"
    " cpu TEXT, cores INTEGER, gpus TEXT, driver TEXT,"
    " verdict TEXT, fair INTEGER,"
    " tag TEXT UNIQUE,"
    " report_json TEXT NOT NULL);"
    "CREATE TABLE entries ("
    " id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " label TEXT NOT NULL, plugin TEXT, plugin_version TEXT, device TEXT,"
    " status TEXT, reason TEXT,"
    " settings_json TEXT, effective_settings_json TEXT,"
    " load_s REAL, cold_start_s REAL, prefill_tok_s REAL,"
    " decode_mean_ms REAL, decode_median_ms REAL, decode_ci95_low_ms REAL, decode_ci95_high_ms REAL,"
    " throughput_tok_s REAL, bandwidth_gb_s REAL, roofline_pct REAL,"
    " top1 REAL, mean_kl REAL, advantage REAL);"
    "CREATE TABLE samples ("
    " entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
    " repetition INTEGER NOT NULL, step INTEGER NOT NULL, latency_ms REAL NOT NULL,"
    " PRIMARY KEY (entry_id, repetition, step)) WITHOUT ROWID;",
    /* 2: look-ups by backend and by run, for history filters and trends */
    "CREATE INDEX entries_by_run ON entries(run_id);"
    "CREATE INDEX entries_by_label ON entries(label);",
};
enum { SCHEMA_VERSION = sizeof migrations / sizeof migrations[0] };

int fb_history_schema_version(void) { return SCHEMA_VERSION; }

static int db_error(fb_history *h, fb_error *err, const char *what) {
    return fb_error_set(err, "results database %s: %s: %s", h->path, what, sqlite3_errmsg(h->db));
}

static int exec(fb_history *h, const char *sql, fb_error *err, const char *what) {
    char *msg = NULL;
    if (sqlite3_exec(h->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fb_error_set(err, "results database %s: %s: %s", h->path, what, msg ? msg : sqlite3_errmsg(h->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int user_version(fb_history *h, int *version, fb_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_error(h, err, "cannot read the schema version");
    int rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_error(h, err, "cannot read the schema version");
}

/* Apply migrations up to `target`, all in one transaction. */
static int migrate(fb_history *h, int target, fb_error *err) {
    if (exec(h, "BEGIN IMMEDIATE", err, "cannot start the schema update")) return -1;
    int v;
    if (user_version(h, &v, err)) goto fail;
    if (v > SCHEMA_VERSION) {
        fb_error_set(err, "results database %s: schema version %d is newer than this fairbench's %d", h->path, v,
                     SCHEMA_VERSION);
        goto fail;
    }
    for (; v < target; v++) {
        char what[64], pragma[64];
        snprintf(what, sizeof what, "schema migration %d failed", v + 1);
        if (exec(h, migrations[v], err, what)) goto fail;
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (exec(h, pragma, err, what)) goto fail;
    }
    return exec(h, "COMMIT", err, "cannot commit the schema update");
fail:
    sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* mkdir -p of the folder that holds path. */
static void make_parent_dirs(const char *path) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
}

int fb_history_default_path(char *buf, size_t n) {
    const char *env = getenv("FAIRBENCH_DB"), *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (env && env[0]) snprintf(buf, n, "%s", env);
    else if (xdg && xdg[0] == '/') snprintf(buf, n, "%s/fairbench/results.sqlite", xdg);
    else if (home && home[0]) snprintf(buf, n, "%s/.local/share/fairbench/results.sqlite", home);
    else return -1;
    return 0;
}

int fb_history_open_at_version(const char *path, int version, fb_history **out, fb_error *err) {
    *out = NULL;
    if (version < 0 || version > SCHEMA_VERSION) return fb_error_set(err, "no schema version %d", version);
    fb_history *h = calloc(1, sizeof *h);
    if (!h) return fb_error_set(err, "results database %s: out of memory", path);
    snprintf(h->path, sizeof h->path, "%s", path);
    make_parent_dirs(path);
    if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        db_error(h, err, "cannot open");
        fb_history_close(h);
        return -1;
    }
    sqlite3_busy_timeout(h->db, BUSY_TIMEOUT_MS);
    /* WAL lets a reader and a writer work at once; the busy timeout makes a
     * second writer wait its turn. A garbage file fails here ("file is not
     * a database"). */
    if (exec(h, "PRAGMA journal_mode = WAL", err, "cannot use it") ||
        exec(h, "PRAGMA foreign_keys = ON", err, "cannot use it") || migrate(h, version, err)) {
        fb_history_close(h);
        return -1;
    }
    *out = h;
    return 0;
}

int fb_history_open(const char *path, fb_history **out, fb_error *err) {
    return fb_history_open_at_version(path, SCHEMA_VERSION, out, err);
}

void fb_history_close(fb_history *h) {
    if (!h) return;
    sqlite3_close(h->db);
    free(h);
}

// ----------------------------------------------------------------------------
// Appending a run

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static void bind_number(sqlite3_stmt *st, int i, const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) sqlite3_bind_double(st, i, v->valuedouble);
    else sqlite3_bind_null(st, i);
}

/* An object member as compact JSON text (NULL when absent; caller frees). */
static char *json_member(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v ? cJSON_PrintUnformatted(v) : NULL;
}

/* Newline-joined array of strings (caller frees). */
static char *joined(const cJSON *arr) {
    size_t len = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) if (cJSON_IsString(v)) len += strlen(v->valuestring) + 2;
    char *s = calloc(1, len);
    if (!s) return NULL;
    cJSON_ArrayForEach(v, arr) if (cJSON_IsString(v)) {
        if (s[0]) strcat(s, "; ");
        strcat(s, v->valuestring);
    }
    return s;
}

static int insert_run(fb_history *h, const cJSON *root, const char *report_json, int64_t *run_id, fb_error *err) {
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(root, "environment");
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(root, "profile");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *fair = cJSON_GetObjectItemCaseSensitive(root, "fairness");
    static const char sql[] =
        "INSERT INTO runs (time, fairbench_version, git_commit, profile_path, profile_text, profile_sha256,"
        " model_path, model_sha256, model_bytes, cpu, cores, gpus, driver, verdict, fair, report_json)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(h, err, "cannot add the run");
    const char *time = jstr(env, "date");
    bind_text(st, 1, time ? time : "unknown");
    bind_text(st, 2, jstr(env, "fairbench_version"));
    bind_text(st, 3, jstr(env, "git_commit"));
    bind_text(st, 4, jstr(prof, "path"));
    bind_text(st, 5, jstr(prof, "text"));
    bind_text(st, 6, jstr(prof, "sha256"));
    bind_text(st, 7, jstr(model, "path"));
    bind_text(st, 8, jstr(model, "sha256"));
    bind_number(st, 9, model, "bytes");
    bind_text(st, 10, jstr(env, "cpu"));
    bind_number(st, 11, env, "cores");
    /* nvidia-smi's "name, driver" lines: the GPUs, and the driver on its own */
    char *gpus = joined(cJSON_GetObjectItemCaseSensitive(env, "gpus"));
    bind_text(st, 12, gpus && gpus[0] ? gpus : NULL);
    const char *comma = gpus ? strrchr(gpus, ',') : NULL;
    bind_text(st, 13, comma ? comma + 1 + (comma[1] == ' ') : NULL);
    bind_text(st, 14, jstr(fair, "verdict"));
    const cJSON *is_fair = cJSON_GetObjectItemCaseSensitive(fair, "fair");
    if (cJSON_IsBool(is_fair)) sqlite3_bind_int(st, 15, cJSON_IsTrue(is_fair));
    else sqlite3_bind_null(st, 15);
    bind_text(st, 16, report_json);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    free(gpus);
    if (rc != SQLITE_DONE) return db_error(h, err, "cannot add the run");
    *run_id = sqlite3_last_insert_rowid(h->db);
    return 0;
}

static int insert_samples(fb_history *h, int64_t entry_id, const cJSON *backend, int gen_tokens, fb_error *err) {
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(backend, "samples"),
                                                       "decode_latency_ms");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "INSERT INTO samples VALUES (?,?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return db_error(h, err, "cannot add the samples");
    /* The report's samples are every timed repetition's gen_tokens steps,
     * one repetition after another. */
    int i = 0, rc = SQLITE_DONE;
    const cJSON *v;
    cJSON_ArrayForEach(v, lat) {
        if (!cJSON_IsNumber(v)) continue;
        sqlite3_bind_int64(st, 1, entry_id);
        sqlite3_bind_int(st, 2, i / gen_tokens);
        sqlite3_bind_int(st, 3, i % gen_tokens);
        sqlite3_bind_double(st, 4, v->valuedouble);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) break;
        i++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_error(h, err, "cannot add the samples");
}

static int insert_entry(fb_history *h, int64_t run_id, const cJSON *b, int gen_tokens, fb_error *err) {
    static const char sql[] =
        "INSERT INTO entries (run_id, label, plugin, plugin_version, device, status, reason, settings_json,"
        " effective_settings_json, load_s, cold_start_s, prefill_tok_s, decode_mean_ms, decode_median_ms,"
        " decode_ci95_low_ms, decode_ci95_high_ms, throughput_tok_s, bandwidth_gb_s, roofline_pct, top1, mean_kl,"
        " advantage) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    const char *label = jstr(b, "label");
    if (!label) return fb_error_set(err, "results database %s: a backend of the report has no label", h->path);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(h, err, "cannot add a backend");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(b, "metrics");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(b, "agreement");
    char *settings = json_member(b, "settings"), *effective = json_member(b, "effective_settings");
    sqlite3_bind_int64(st, 1, run_id);
    bind_text(st, 2, label);
    bind_text(st, 3, jstr(b, "plugin"));
    bind_text(st, 4, jstr(b, "plugin_version"));
    bind_text(st, 5, jstr(b, "device"));
    bind_text(st, 6, jstr(b, "status"));
    bind_text(st, 7, jstr(b, "reason"));
    bind_text(st, 8, settings);
    bind_text(st, 9, effective);
    static const char *const keys[] = {"load_s",           "cold_start_s",        "prefill_tok_s",
                                       "decode_mean_ms",   "decode_median_ms",    "decode_ci95_low_ms",
                                       "decode_ci95_high_ms", "throughput_tok_s", "bandwidth_gb_s",
                                       "roofline_pct"};
    for (int k = 0; k < 10; k++) bind_number(st, 10 + k, m, keys[k]);
    bind_number(st, 20, a, "top1");
    bind_number(st, 21, a, "mean_kl");
    bind_number(st, 22, m, "advantage");
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    free(settings);
    free(effective);
    if (rc != SQLITE_DONE) return db_error(h, err, "cannot add a backend");
    return insert_samples(h, sqlite3_last_insert_rowid(h->db), b, gen_tokens, err);
}

int fb_history_append(fb_history *h, const char *report_json, int64_t *run_id, fb_error *err) {
    cJSON *root = cJSON_Parse(report_json);
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema_version");
    if (!root || !cJSON_IsNumber(schema)) {
        cJSON_Delete(root);
        return fb_error_set(err, "results database %s: the run's report is not fairbench JSON", h->path);
    }
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "run"), "gen_tokens");
    int gen_tokens = cJSON_IsNumber(gen) && gen->valueint > 0 ? gen->valueint : 1;
    if (exec(h, "BEGIN IMMEDIATE", err, "cannot start writing")) {
        cJSON_Delete(root);
        return -1;
    }
    int rc = insert_run(h, root, report_json, run_id, err);
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(root, "backends")) {
        if (rc) break;
        rc = insert_entry(h, *run_id, b, gen_tokens, err);
    }
    if (!rc) rc = exec(h, "COMMIT", err, "cannot commit the run");
    if (rc) sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    cJSON_Delete(root);
    return rc;
}

int fb_history_append_json(const char *path, const char *report_json, int64_t *run_id, fb_error *err) {
    fb_history *h;
    if (fb_history_open(path, &h, err)) return -1;
    int rc = fb_history_append(h, report_json, run_id, err);
    fb_history_close(h);
    return rc;
}

// ----------------------------------------------------------------------------
// Reading

/* The first column of a one-row query with one optional text parameter. */
static int query_id(fb_history *h, const char *sql, const char *param, int64_t *id, bool *found, fb_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(h, err, "cannot read");
    if (param) bind_text(st, 1, param);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(h, err, "cannot read");
}

int fb_history_resolve(fb_history *h, const char *ref, int64_t *run_id, fb_error *err) {
    bool found;
    char *end;
    errno = 0;
    long long n = strtoll(ref, &end, 10);
    int rc;
    if (ref[0] && *end == '\0' && errno == 0) {
        rc = query_id(h, "SELECT id FROM runs WHERE id = ?", ref, run_id, &found, err);
        (void)n;
    } else if (strcmp(ref, "last") == 0) {
        rc = query_id(h, "SELECT max(id) FROM runs HAVING count(*) > 0", NULL, run_id, &found, err);
    } else if (strcmp(ref, "first") == 0) {
        rc = query_id(h, "SELECT min(id) FROM runs HAVING count(*) > 0", NULL, run_id, &found, err);
    } else {
        rc = query_id(h, "SELECT id FROM runs WHERE tag = ?", ref, run_id, &found, err);
    }
    if (rc) return -1;
    if (!found) return fb_error_set(err, "results database %s: no run '%s' (a run id, a tag, 'first' or 'last')", h->path, ref);
    return 0;
}

cJSON *fb_history_report(fb_history *h, int64_t run_id, fb_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT report_json FROM runs WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        db_error(h, err, "cannot read a report");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, run_id);
    cJSON *root = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        root = cJSON_Parse((const char *)sqlite3_column_text(st, 0));
        if (!root) fb_error_set(err, "results database %s: run %lld's report is not valid JSON", h->path, (long long)run_id);
    } else {
        fb_error_set(err, "results database %s: no run %lld", h->path, (long long)run_id);
    }
    sqlite3_finalize(st);
    return root;
}

int fb_history_tag(fb_history *h, int64_t run_id, const char *name, fb_error *err) {
    if (!name[0] || strspn(name, "0123456789") == strlen(name) || !strcmp(name, "last") || !strcmp(name, "first"))
        return fb_error_set(err, "tag '%s' would be read as a run id or as first/last; choose another name", name);
    bool found;
    int64_t id;
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)run_id);
    if (query_id(h, "SELECT id FROM runs WHERE id = ?", idtext, &id, &found, err)) return -1;
    if (!found) return fb_error_set(err, "results database %s: no run %lld", h->path, (long long)run_id);
    if (exec(h, "BEGIN IMMEDIATE", err, "cannot start writing")) return -1;
    sqlite3_stmt *clear = NULL, *set = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(h->db, "UPDATE runs SET tag = NULL WHERE tag = ?", -1, &clear, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h->db, "UPDATE runs SET tag = ? WHERE id = ?", -1, &set, NULL) == SQLITE_OK) {
        bind_text(clear, 1, name);
        bind_text(set, 1, name);
        sqlite3_bind_int64(set, 2, run_id);
        if (sqlite3_step(clear) == SQLITE_DONE && sqlite3_step(set) == SQLITE_DONE) rc = 0;
    }
    if (rc) db_error(h, err, "cannot tag the run");
    sqlite3_finalize(clear);
    sqlite3_finalize(set);
    if (!rc) rc = exec(h, "COMMIT", err, "cannot commit the tag");
    if (rc) sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static const char *col(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

int fb_history_list(fb_history *h, const fb_history_filter *f, void (*fn)(const fb_history_run *run, void *ctx),
                    void *ctx, fb_error *err) {
    static const char sql[] =
        "SELECT r.id, r.time, r.git_commit, r.profile_path, r.model_path,"
        " coalesce(r.cpu, '') || coalesce(' + ' || r.gpus, ''), r.verdict, r.tag,"
        " (SELECT group_concat(e.label || ':' || e.status, ' ') FROM entries e WHERE e.run_id = r.id)"
        " FROM runs r"
        " WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM entries e WHERE e.run_id = r.id"
        "                              AND (instr(e.label, ?1) OR instr(e.plugin, ?1))))"
        "   AND (?2 IS NULL OR instr(r.model_path, ?2) OR instr(r.model_sha256, ?2))"
        "   AND (?3 IS NULL OR instr(r.profile_path, ?3))"
        "   AND (?4 IS NULL OR instr(coalesce(r.cpu, '') || ' ' || coalesce(r.gpus, ''), ?4))"
        " ORDER BY r.id";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(h, err, "cannot list the runs");
    const char *params[4] = {f ? f->backend : NULL, f ? f->model : NULL, f ? f->profile : NULL, f ? f->machine : NULL};
    for (int i = 0; i < 4; i++) bind_text(st, i + 1, params[i] && params[i][0] ? params[i] : NULL);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fb_history_run run = {sqlite3_column_int64(st, 0), col(st, 1), col(st, 2), col(st, 3), col(st, 4),
                              col(st, 5), col(st, 6), col(st, 7), col(st, 8)};
        fn(&run, ctx);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_error(h, err, "cannot list the runs");
}

int fb_history_rep_medians(fb_history *h, int64_t run_id, const char *label, double **values, size_t *n,
                           fb_error *err) {
    *values = NULL;
    *n = 0;
    static const char sql[] = "SELECT s.repetition, s.latency_ms FROM samples s JOIN entries e ON e.id = s.entry_id"
                              " WHERE e.run_id = ? AND e.label = ? ORDER BY s.repetition, s.step";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, sql, -1, &st, NULL) != SQLITE_OK) return db_error(h, err, "cannot read samples");
    sqlite3_bind_int64(st, 1, run_id);
    bind_text(st, 2, label);
    double *rep = NULL, *out = NULL;
    size_t n_rep = 0, cap = 0, n_out = 0;
    int current = -1, rc;
    /* One pass: samples arrive grouped by repetition; each group's median. */
    for (;;) {
        rc = sqlite3_step(st);
        int r = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -2;
        if (r != current && n_rep > 0) {
            double *grown = realloc(out, (n_out + 1) * sizeof *out);
            if (!grown) break;
            out = grown;
            fb_summary s;
            fb_summarize(rep, n_rep, &s);
            out[n_out++] = s.median;
            n_rep = 0;
        }
        if (rc != SQLITE_ROW) break;
        current = r;
        if (n_rep == cap) {
            cap = cap ? cap * 2 : 64;
            double *grown = realloc(rep, cap * sizeof *rep);
            if (!grown) break;
            rep = grown;
        }
        rep[n_rep++] = sqlite3_column_double(st, 1);
    }
    sqlite3_finalize(st);
    free(rep);
    if (rc != SQLITE_DONE) {
        free(out);
        return rc == SQLITE_ROW ? fb_error_set(err, "out of memory reading samples") : db_error(h, err, "cannot read samples");
    }
    *values = out;
    *n = n_out;
    return 0;
}

int fb_history_run_ids(fb_history *h, int64_t **ids, size_t *n, fb_error *err) {
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT id FROM runs ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return db_error(h, err, "cannot list the runs");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t *grown = realloc(*ids, (*n + 1) * sizeof **ids);
        if (!grown) break;
        *ids = grown;
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return fb_error_set(err, "results database %s: cannot list the runs", h->path);
    }
    return 0;
}

int fb_history_labels(fb_history *h, char ***labels, size_t *n, fb_error *err) {
    *labels = NULL;
    *n = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT DISTINCT label FROM entries ORDER BY label", -1, &st, NULL) != SQLITE_OK)
        return db_error(h, err, "cannot list the backends");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **grown = realloc(*labels, (*n + 1) * sizeof **labels);
        char *s = strdup(col(st, 0));
        if (!grown || !s) {
            free(s);
            if (grown) *labels = grown;
            break;
        }
        *labels = grown;
        (*labels)[(*n)++] = s;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fb_history_free_strings(*labels, *n);
        *labels = NULL;
        *n = 0;
        return fb_error_set(err, "results database %s: cannot list the backends", h->path);
    }
    return 0;
}

void fb_history_free_strings(char **s, size_t n) {
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

int fb_history_run_info(fb_history *h, int64_t run_id, char *time, size_t time_n, char *commit, size_t commit_n,
                        fb_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h->db, "SELECT time, git_commit FROM runs WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return db_error(h, err, "cannot read a run");
    sqlite3_bind_int64(st, 1, run_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(time, time_n, "%s", col(st, 0));
        snprintf(commit, commit_n, "%s", col(st, 1));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : fb_error_set(err, "results database %s: no run %lld", h->path, (long long)run_id);
}

cJSON *fb_history_load_ref(const char *path, const char *ref, fb_error *err) {
    fb_history *h;
    if (fb_history_open(path, &h, err)) return NULL;
    int64_t id;
    cJSON *root = fb_history_resolve(h, ref, &id, err) ? NULL : fb_history_report(h, id, err);
    fb_history_close(h);
    return root;
}
