/* history.h - the results history: every run's JSON report appended to a
 * SQLite database, so runs can be listed, compared and charted later.
 *
 * The database (default $XDG_DATA_HOME/fairbench/results.sqlite, else
 * ~/.local/share/fairbench/results.sqlite) holds three tables:
 *
 *   runs     one row per run: time, fairbench version and commit, profile
 *            path, text and SHA-256, model path and SHA-256, machine (CPU,
 *            cores, GPUs, driver), verdict, an optional unique tag, and the
 *            whole JSON report (so `history export` gives back the file).
 *   entries  one row per backend of a run: label, plugin, version, asked and
 *            effective settings (JSON), status, and the summary metrics.
 *   samples  every timed decode step: entry, repetition, step, latency (ms).
 *
 * The schema is versioned with PRAGMA user_version and grown by numbered
 * migrations (history.c); a database from a newer fairbench is refused. The
 * journal is WAL with a busy timeout, so two runs finishing at once both land.
 *
 * Errors: every function returns 0 or -1 with one sentence in err naming the
 * database file. Nothing here prints or exits. */
#ifndef FB_HISTORY_H
#define FB_HISTORY_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "fb_error.h"

typedef struct fb_history fb_history;

/* The default database path into buf: $FAIRBENCH_DB when set, else
 * $XDG_DATA_HOME (or ~/.local/share)/fairbench/results.sqlite; -1 when none
 * of these variables is set. */
int fb_history_default_path(char *buf, size_t n);

/* Open (creating the file and its folder if needed) and bring the schema up
 * to date. */
int fb_history_open(const char *path, fb_history **out, fb_error *err);
void fb_history_close(fb_history *h);

/* Append one run from its JSON report text; *run_id gets the new row's id. */
int fb_history_append(fb_history *h, const char *report_json, int64_t *run_id, fb_error *err);

/* Open path, append, close: what the main job calls after its report. */
int fb_history_append_json(const char *path, const char *report_json, int64_t *run_id, fb_error *err);

/* A run reference: a number (run id), "last" (the newest run), "first", or a
 * tag ("baseline", ...). */
int fb_history_resolve(fb_history *h, const char *ref, int64_t *run_id, fb_error *err);

/* The stored JSON report of a run (the caller frees it with cJSON_Delete). */
cJSON *fb_history_report(fb_history *h, int64_t run_id, fb_error *err);

/* Give run_id the tag `name` (moved from any run that had it). */
int fb_history_tag(fb_history *h, int64_t run_id, const char *name, fb_error *err);

/* One run as listed by `fairbench history`. */
typedef struct fb_history_run {
    int64_t id;
    const char *time, *commit, *profile, *model, *machine, *verdict, *tag, *backends;
} fb_history_run;

/* Filters: NULL or "" matches anything; otherwise a substring of the field
 * (backend: of any entry's label or plugin). */
typedef struct fb_history_filter {
    const char *backend, *model, *profile, *machine;
} fb_history_filter;

/* Calls fn for each matching run, oldest first (the strings live for the
 * call only). */
int fb_history_list(fb_history *h, const fb_history_filter *f, void (*fn)(const fb_history_run *run, void *ctx),
                    void *ctx, fb_error *err);

/* Per-repetition figures of one backend in one run, for trends and the
 * regression check: the median decode latency (ms) of each repetition, from
 * the samples table. *values is malloc'd (caller frees); n = 0 when the
 * backend has no samples in that run. */
int fb_history_rep_medians(fb_history *h, int64_t run_id, const char *label, double **values, size_t *n,
                           fb_error *err);

/* Every run id (oldest first) and every backend label seen in the history.
 * Arrays malloc'd; labels freed with fb_history_free_strings. */
int fb_history_run_ids(fb_history *h, int64_t **ids, size_t *n, fb_error *err);
int fb_history_labels(fb_history *h, char ***labels, size_t *n, fb_error *err);
void fb_history_free_strings(char **s, size_t n);

/* The time and commit of a run, into the caller's buffers. */
int fb_history_run_info(fb_history *h, int64_t run_id, char *time, size_t time_n, char *commit, size_t commit_n,
                        fb_error *err);

/* Resolve ref in the database at path and return that run's report: what
 * `fairbench compare` loads when given a run id or tag instead of a file. */
cJSON *fb_history_load_ref(const char *path, const char *ref, fb_error *err);

/* The schema version this build writes. */
int fb_history_schema_version(void);

/* For the tests: open with the schema brought only up to `version`. */
int fb_history_open_at_version(const char *path, int version, fb_history **out, fb_error *err);

#endif
