/* cmd_run.c - the main job's command line: fairbench -c PROFILE [options]. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
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
            "                 [-q] [--allow-skips] [--plugin-dir DIR]... [--db FILE | --no-db]\n"
            "runs the profile's backends, each in a child process of its own, under one timing\n"
            "harness; checks every backend against the reference; writes the report (stdout,\n"
            "or FILE) with the fairness audit and verdict. PROFILE is looked up as given, then\n"
            "in the installed and the source profile folders (e.g. profiles/fair.ini).\n"
            "--model and --backends are shortcuts for --set run.model=... and run.backends=...\n"
            "--allow-skips: a backend that cannot run here (no GPU) does not fail the run\n"
            "every run is appended to the results database (see fairbench history): --db FILE\n"
            "chooses it, --no-db skips it; --format html is the charted, offline HTML report\n"
            "exit status: 0 ok, 1 a backend was skipped, failed, crashed, timed out or computed\n"
            "wrong results (the report is still written), 2 bad profile, usage, a backend no\n"
            "plugin provides or an output file that cannot be written (nothing ran), 130 Ctrl-C\n"
            "(children stopped; partial results in FILE.interrupted, or fairbench.interrupted.json\n"
            "without -o)\n");
}

static void on_interrupt(int sig) {
    (void)sig;
    fb_run_interrupt();
}

static int write_report(const fb_profile *p, const fb_run_result *r, fb_report_format format, bool html, FILE *out) {
    return html ? fb_report_write_html(p, r, out, NULL, 0) : fb_report_write(p, r, format, out);
}

/* Ctrl-C: what was measured so far, in a file whose name says it is partial. */
static int write_interrupted(const fb_profile *profile, const fb_run_result *result, const char *output,
                             fb_report_format format) {
    char path[1100];
    if (output) snprintf(path, sizeof path, "%s.interrupted", output);
    else snprintf(path, sizeof path, "fairbench.interrupted.json"), format = FB_REPORT_JSON;
    FILE *fp = fopen(path, "w");
    if (!fp || fb_report_write(profile, result, format, fp) || fclose(fp) != 0) {
        fprintf(stderr, "fairbench: interrupted; the partial results could not be written to %s\n", path);
        return 130;
    }
    fprintf(stderr, "fairbench: interrupted (Ctrl-C): children stopped; partial results in %s\n", path);
    return 130;
}

int fb_cmd_run(int argc, char **argv) {
    const char *profile_name = NULL, *output = NULL;
    const char *sets[64];
    int n_sets = 0;
    const char *dirs[16];
    size_t n_dirs = 0;
    bool quiet = false, allow_skips = false;
    fb_report_format format = FB_REPORT_TEXT;
    bool html = false, no_db = false;
    const char *db = NULL;
    char set_buf[2][1200];
    enum { O_SET = 256, O_MODEL, O_BACKENDS, O_FORMAT, O_PLUGIN_DIR, O_ALLOW_SKIPS, O_DB, O_NO_DB };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},      {"set", required_argument, NULL, O_SET},
        {"model", required_argument, NULL, O_MODEL},   {"backends", required_argument, NULL, O_BACKENDS},
        {"format", required_argument, NULL, O_FORMAT}, {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},             {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
        {"allow-skips", no_argument, NULL, O_ALLOW_SKIPS}, {"db", required_argument, NULL, O_DB},
        {"no-db", no_argument, NULL, O_NO_DB},
        {"help", no_argument, NULL, 'h'},              {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': profile_name = optarg; break;
        case 'o': output = optarg; break;
        case 'q': quiet = true; break;
        case O_ALLOW_SKIPS: allow_skips = true; break;
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
    /* The report is written whole to a temporary file, then renamed: no
     * half reports. The file is opened now, so that a path that cannot be
     * written stops the run before it starts. */
    char tmp[1100];
    FILE *fp = NULL;
    if (output) {
        snprintf(tmp, sizeof tmp, "%s.partial", output);
        fp = fopen(tmp, "w");
        if (!fp) {
            fprintf(stderr, "fairbench: cannot write the report to %s: %s\n", output, strerror(errno));
            return EXIT_USAGE;
        }
    }
    fb_run_options opt = {.plugin_dirs = dirs, .n_plugin_dirs = n_dirs, .progress = !quiet && isatty(STDERR_FILENO)};
    static fb_run_result result;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int run_rc = fb_run(&profile, &opt, &result, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (run_rc) {
        fprintf(stderr, "fairbench: %s\n", err.msg);
        if (fp) fclose(fp), remove(tmp);
        return EXIT_USAGE;
    }
    if (result.interrupted) {
        if (fp) fclose(fp), remove(tmp);
        int rc = write_interrupted(&profile, &result, output, format);
        fb_run_result_free(&result);
        return rc;
    }
    int rc = fb_run_has_failures(&result, allow_skips) ? EXIT_FAILURES : EXIT_OK;
    if (output) {
        if (write_report(&profile, &result, format, html, fp) || fclose(fp) != 0 || rename(tmp, output) != 0) {
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
