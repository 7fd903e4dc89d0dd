/* cmd_history.c - `fairbench history`: the runs of the results database
 * (list with filters, show one, export its JSON, tag it), and the two hooks
 * other commands use: recording a finished run, and loading a report named
 * by a file or by a stored run. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "history.h"
#include "profile.h"
#include "report_html.h"
#include "runner.h"

void fb_history_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench history [--db FILE] [--backend B] [--model M] [--profile P] [--machine M]\n"
            "       fairbench history [--db FILE] show RUN\n"
            "       fairbench history [--db FILE] export RUN [-o FILE]\n"
            "       fairbench history [--db FILE] tag RUN NAME\n"
            "the runs appended to the results database by `fairbench -c PROFILE` (every run,\n"
            "unless --no-db). Filters match a part of the backend label or plugin, the model\n"
            "path or hash, the profile path, the CPU or GPU name. RUN is a run id, a tag\n"
            "(e.g. baseline), first or last. export writes the run's JSON report as it was\n"
            "written; tag moves NAME to RUN. The database is FILE, else $FAIRBENCH_DB, else\n"
            "$XDG_DATA_HOME/fairbench/results.sqlite (~/.local/share/... without it).\n");
}

static const char *db_or_default(const char *db_path, char *buf, size_t n) {
    if (db_path) return db_path;
    return fb_history_default_path(buf, n) == 0 ? buf : NULL;
}

void fb_cli_record_run(const char *db_path, const fb_profile *p, const fb_run_result *r, int quiet) {
    char buf[1100];
    const char *path = db_or_default(db_path, buf, sizeof buf);
    if (!path) {
        fprintf(stderr, "fairbench: warning: no results database (HOME is not set; use --db FILE); the run is not "
                        "recorded\n");
        return;
    }
    char *json = fb_report_json_string(p, r);
    int64_t id = 0;
    fb_error err = {{0}};
    if (!json) fb_error_set(&err, "out of memory writing the run's JSON");
    if (!json || fb_history_append_json(path, json, &id, &err)) {
        fprintf(stderr, "fairbench: warning: %s; the run is not recorded there (the report is written all the "
                        "same)\n", err.msg);
    } else if (!quiet) {
        fprintf(stderr, "fairbench: run %" PRId64 " recorded in %s\n", id, path);
    }
    free(json);
}

cJSON *fb_cli_load_report(const char *who, const char *arg, const char *db_path) {
    if (access(arg, F_OK) == 0) {
        FILE *fp = fopen(arg, "rb");
        if (!fp) {
            fprintf(stderr, "%s: cannot open %s\n", who, arg);
            return NULL;
        }
        size_t len = 0, cap = 4096, got;
        char *text = malloc(cap);
        bool failed = !text;
        while (!failed && (got = fread(text + len, 1, cap - len - 1, fp)) > 0) {
            len += got;
            if (len + 1 == cap) {
                char *grown = realloc(text, cap * 2);
                if (!grown) failed = true;
                else text = grown, cap *= 2;
            }
        }
        failed = failed || ferror(fp);
        fclose(fp);
        cJSON *root = NULL;
        if (!failed) {
            text[len] = '\0';
            root = cJSON_Parse(text);
        }
        free(text);
        if (!root || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "schema_version"))) {
            fprintf(stderr, "%s: %s is not a fairbench JSON report\n", who, arg);
            cJSON_Delete(root);
            return NULL;
        }
        return root;
    }
    char buf[1100];
    const char *path = db_or_default(db_path, buf, sizeof buf);
    if (!path) {
        fprintf(stderr, "%s: %s: no such file, and no results database to look it up in\n", who, arg);
        return NULL;
    }
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "%s: %s: no such file, and no results database at %s\n", who, arg, path);
        return NULL;
    }
    fb_error err;
    cJSON *root = fb_history_load_ref(path, arg, &err);
    if (!root) fprintf(stderr, "%s: %s: no such file; %s\n", who, arg, err.msg);
    return root;
}

// ----------------------------------------------------------------------------

typedef struct options {
    const char *db, *output;
    fb_history_filter filter;
    const char *action; /* NULL: list */
    char **args;
    int n_args;
} options;

static void print_run(const fb_history_run *r, void *ctx) {
    (void)ctx;
    printf("%5" PRId64 "  %-20s  %-14s  %-10s  %s\n", r->id, r->time, r->commit, r->tag[0] ? r->tag : "-",
           r->verdict);
    printf("       profile %s; model %s\n       machine %s\n       %s\n", r->profile, r->model, r->machine,
           r->backends);
}

static int show(fb_history *h, int64_t id) {
    fb_error err;
    cJSON *root = fb_history_report(h, id, &err);
    if (!root) {
        fprintf(stderr, "fairbench history: %s\n", err.msg);
        return EXIT_USAGE;
    }
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(root, "environment");
    const cJSON *fair = cJSON_GetObjectItemCaseSensitive(root, "fairness");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(root, "profile");
#define S(o, k) (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, k)) ? cJSON_GetObjectItemCaseSensitive(o, k)->valuestring : "")
    printf("run %" PRId64 ": %s, fairbench %s (commit %s)\n", id, S(env, "date"), S(env, "fairbench_version"),
           S(env, "git_commit"));
    printf("profile %s (sha256 %s)\nmodel %s (sha256 %s)\nmachine %s\nverdict: %s\n", S(prof, "path"),
           S(prof, "sha256"), S(model, "path"), S(model, "sha256"), S(env, "cpu"), S(fair, "verdict"));
    printf("%-16s %-10s %12s %12s %12s %10s\n", "backend", "status", "median ms", "tok/s", "load ms", "top-1");
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(root, "backends")) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(b, "metrics"), *a = cJSON_GetObjectItemCaseSensitive(b, "agreement");
        const cJSON *med = cJSON_GetObjectItemCaseSensitive(m, "decode_median_ms"),
                    *thr = cJSON_GetObjectItemCaseSensitive(m, "throughput_tok_s"),
                    *load = cJSON_GetObjectItemCaseSensitive(m, "load_s"), *top1 = cJSON_GetObjectItemCaseSensitive(a, "top1");
        printf("%-16s %-10s %12.4f %12.2f %12.1f %9.1f%%\n", S(b, "label"), S(b, "status"),
               cJSON_IsNumber(med) ? med->valuedouble : NAN, cJSON_IsNumber(thr) ? thr->valuedouble : NAN,
               cJSON_IsNumber(load) ? 1e3 * load->valuedouble : NAN, cJSON_IsNumber(top1) ? 100 * top1->valuedouble : NAN);
    }
#undef S
    cJSON_Delete(root);
    return EXIT_OK;
}

static int export_run(fb_history *h, int64_t id, const char *output) {
    fb_error err;
    cJSON *root = fb_history_report(h, id, &err);
    if (!root) {
        fprintf(stderr, "fairbench history: %s\n", err.msg);
        return EXIT_USAGE;
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *fp = output ? fopen(output, "w") : stdout;
    int rc = EXIT_OK;
    if (!text || !fp || fputs(text, fp) < 0 || fputc('\n', fp) == EOF) {
        fprintf(stderr, "fairbench history: cannot write the report to %s\n", output ? output : "stdout");
        rc = EXIT_FAILURES;
    }
    if (fp && fp != stdout && fclose(fp) != 0) rc = EXIT_FAILURES;
    free(text);
    return rc;
}

int fb_cmd_history(int argc, char **argv) {
    options o = {0};
    enum { O_DB = 256, O_BACKEND, O_MODEL, O_PROFILE, O_MACHINE };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, O_DB},           {"backend", required_argument, NULL, O_BACKEND},
        {"model", required_argument, NULL, O_MODEL},     {"profile", required_argument, NULL, O_PROFILE},
        {"machine", required_argument, NULL, O_MACHINE}, {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},                {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DB: o.db = optarg; break;
        case O_BACKEND: o.filter.backend = optarg; break;
        case O_MODEL: o.filter.model = optarg; break;
        case O_PROFILE: o.filter.profile = optarg; break;
        case O_MACHINE: o.filter.machine = optarg; break;
        case 'o': o.output = optarg; break;
        case 'h': fb_history_usage(stdout); return EXIT_OK;
        default: fb_history_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) o.action = argv[optind++];
    o.args = argv + optind;
    o.n_args = argc - optind;
    int want = !o.action ? 0 : !strcmp(o.action, "show") || !strcmp(o.action, "export") ? 1 : !strcmp(o.action, "tag") ? 2 : -1;
    if (want < 0 || o.n_args != want) {
        if (want < 0) fprintf(stderr, "fairbench history: unknown action '%s' (show, export, tag)\n", o.action);
        fb_history_usage(stderr);
        return EXIT_USAGE;
    }
    char buf[1100];
    const char *path = db_or_default(o.db, buf, sizeof buf);
    if (!path) {
        fprintf(stderr, "fairbench history: no results database (HOME is not set; use --db FILE)\n");
        return EXIT_USAGE;
    }
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "fairbench history: no results database at %s (no run recorded yet)\n", path);
        return EXIT_USAGE;
    }
    fb_history *h;
    fb_error err;
    if (fb_history_open(path, &h, &err)) {
        fprintf(stderr, "fairbench history: %s\n", err.msg);
        return EXIT_USAGE;
    }
    int rc = EXIT_OK;
    int64_t id = 0;
    if (o.action && fb_history_resolve(h, o.args[0], &id, &err)) {
        fprintf(stderr, "fairbench history: %s\n", err.msg);
        rc = EXIT_USAGE;
    } else if (!o.action) {
        if (fb_history_list(h, &o.filter, print_run, NULL, &err)) {
            fprintf(stderr, "fairbench history: %s\n", err.msg);
            rc = EXIT_USAGE;
        }
    } else if (!strcmp(o.action, "show")) {
        rc = show(h, id);
    } else if (!strcmp(o.action, "export")) {
        rc = export_run(h, id, o.output);
    } else if (fb_history_tag(h, id, o.args[1], &err)) {
        fprintf(stderr, "fairbench history: %s\n", err.msg);
        rc = EXIT_USAGE;
    } else {
        printf("run %" PRId64 " tagged %s\n", id, o.args[1]);
    }
    fb_history_close(h);
    return rc;
}
