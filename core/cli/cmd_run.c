/* cmd_run.c - the main job's command line: fairbench -c PROFILE [options]. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "report_html.h"
#include "runner.h"


void fb_run_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench -c PROFILE [--set SECTION.KEY=VALUE]... [--model FILE.gguf]\n"
            "                 [--backends A,B,...] [--format text|md|json|csv|html] [-o FILE]\n"
            "                 [-q] [--plugin-dir DIR]... [--db FILE | --no-db]\n"
            "runs the profile's backends, each in a child process of its own, under one timing\n"
            "harness; checks every backend against the reference; writes the report (stdout,\n"
            "or FILE) with the fairness audit and verdict. PROFILE is looked up as given, then\n"
            "in the installed and the source profile folders (e.g. profiles/fair.ini).\n"
            "--model and --backends are shortcuts for --set run.model=... and run.backends=...\n"
            "every run is appended to the results database (see fairbench history): --db FILE\n"
            "chooses it, --no-db skips it; --format html is the charted, offline HTML report\n"
            "exit status: 0 ok, 1 a backend failed, crashed, timed out or computed wrong\n"
            "results (the report is still written), 2 bad profile or usage\n");
}

static int write_report(const fb_profile *p, const fb_run_result *r, fb_report_format format, bool html, FILE *out) {
    return html ? fb_report_write_html(p, r, out, NULL, 0) : fb_report_write(p, r, format, out);
}

int fb_cmd_run(int argc, char **argv) {
    const char *profile_name = NULL, *output = NULL;
    const char *sets[64];
    int n_sets = 0;
    const char *dirs[16];
    size_t n_dirs = 0;
    bool quiet = false;
    fb_report_format format = FB_REPORT_TEXT;
    bool html = false, no_db = false;
    const char *db = NULL;
    char set_buf[2][1200];
    enum { O_SET = 256, O_MODEL, O_BACKENDS, O_FORMAT, O_PLUGIN_DIR, O_DB, O_NO_DB };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},      {"set", required_argument, NULL, O_SET},
        {"model", required_argument, NULL, O_MODEL},   {"backends", required_argument, NULL, O_BACKENDS},
        {"format", required_argument, NULL, O_FORMAT}, {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},             {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
        {"help", no_argument, NULL, 'h'},              {"db", required_argument, NULL, O_DB},
        {"no-db", no_argument, NULL, O_NO_DB},         {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': profile_name = optarg; break;
        case 'o': output = optarg; break;
        case 'q': quiet = true; break;
        case O_SET:
        case O_MODEL:
        case O_BACKENDS:
            if (n_sets == 62) {
                fprintf(stderr, "fairbench: too many --set options\n");
                return EXIT_USAGE;
            }
            if (c == O_SET) sets[n_sets++] = optarg;
            else {
                char *b = set_buf[c == O_MODEL ? 0 : 1];
                snprintf(b, sizeof set_buf[0], "run.%s=%s", c == O_MODEL ? "model" : "backends", optarg);
                sets[n_sets++] = b;
            }
            break;
        case O_FORMAT:
            if (strcmp(optarg, "text") == 0) format = FB_REPORT_TEXT;
            else if (strcmp(optarg, "md") == 0) format = FB_REPORT_MARKDOWN;
            else if (strcmp(optarg, "json") == 0) format = FB_REPORT_JSON;
            else if (strcmp(optarg, "csv") == 0) format = FB_REPORT_CSV;
            else if (strcmp(optarg, "html") == 0) html = true;
            else {
                fprintf(stderr, "fairbench: --format must be text, md, json, csv or html, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_PLUGIN_DIR:
            if (n_dirs == 16) return EXIT_USAGE;
            dirs[n_dirs++] = optarg;
            break;
        case O_DB: db = optarg; break;
        case O_NO_DB: no_db = true; break;
        case 'h': fb_run_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (!profile_name || optind != argc) {
        fb_run_usage(stderr);
        return EXIT_USAGE;
    }
    static fb_profile profile; /* large: keep it off the stack */
    char path[1024];
    fb_error err;
    if (fb_profile_resolve(profile_name, path, sizeof path, &err) || fb_profile_load(path, &profile, &err)) {
        fprintf(stderr, "fairbench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    for (int i = 0; i < n_sets; i++)
        if (fb_profile_set(&profile, sets[i], &err)) {
            fprintf(stderr, "fairbench: %s\n", err.msg);
            return EXIT_USAGE;
        }
    if (fb_profile_finish(&profile, &err)) {
        fprintf(stderr, "fairbench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    fb_run_options opt = {.plugin_dirs = dirs, .n_plugin_dirs = n_dirs, .progress = !quiet && isatty(STDERR_FILENO)};
    static fb_run_result result;
    if (fb_run(&profile, &opt, &result, &err)) {
        fprintf(stderr, "fairbench: %s\n", err.msg);
        return EXIT_USAGE;
    }
    int rc = fb_run_has_failures(&result) ? EXIT_FAILURES : EXIT_OK;
    if (output) {
        /* Written whole to a temporary file, then renamed: no half reports. */
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.partial", output);
        FILE *fp = fopen(tmp, "w");
        if (!fp || write_report(&profile, &result, format, html, fp) || fclose(fp) != 0 || rename(tmp, output) != 0) {
            fprintf(stderr, "fairbench: cannot write the report to %s; writing it to stdout\n", output);
            write_report(&profile, &result, format, html, stdout);
            rc = EXIT_FAILURES;
        } else if (!quiet) {
            fprintf(stderr, "fairbench: report written to %s (%s)\n", output, result.verdict);
        }
    } else {
        write_report(&profile, &result, format, html, stdout);
    }
    if (!no_db) fb_cli_record_run(db, &profile, &result, quiet);
    fb_run_result_free(&result);
    return rc;
}
