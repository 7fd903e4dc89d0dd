/* cmd_report.c - `fairbench report RUN... -o report.html`: the HTML report of
 * saved JSON reports or of runs of the results history, every figure
 * recomputed from the raw samples. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_html.h"

void fb_report_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench report RUN... [-o report.html] [--db FILE]\n"
            "one self-contained HTML page (no network: style, script and SVG charts inline)\n"
            "for each RUN: a JSON report (fairbench -c PROFILE --format json -o run.json) or\n"
            "a run of the results history (an id, a tag such as baseline, first or last).\n"
            "Every figure is recomputed from the report's raw samples; a stored figure that\n"
            "differs is named on stderr and at the top of the page.\n"
            "exit status: 0 written, 1 written but stored figures differ from the samples,\n"
            "2 bad input or usage\n");
}

int fb_cmd_report(int argc, char **argv) {
    const char *output = NULL, *db = NULL;
    enum { O_DB = 256 };
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"db", required_argument, NULL, O_DB},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case O_DB: db = optarg; break;
        case 'h': fb_report_usage(stdout); return EXIT_OK;
        default: fb_report_usage(stderr); return EXIT_USAGE;
        }
    }
    int n = argc - optind;
    if (n < 1) {
        fb_report_usage(stderr);
        return EXIT_USAGE;
    }
    cJSON **reports = calloc((size_t)n, sizeof *reports);
    if (!reports) return EXIT_USAGE;
    int rc = EXIT_OK;
    for (int i = 0; i < n && rc == EXIT_OK; i++)
        if (!(reports[i] = fb_cli_load_report("fairbench report", argv[optind + i], db))) rc = EXIT_USAGE;
    static char notes[16384];
    if (rc == EXIT_OK) {
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.partial", output ? output : "");
        FILE *fp = output ? fopen(tmp, "w") : stdout;
        int wrote = fp ? fb_html_report_write(fp, (const cJSON *const *)reports, (const char *const *)(argv + optind), n,
                                              notes, sizeof notes)
                       : -1;
        if (fp && fp != stdout && (fclose(fp) != 0 || (wrote == 0 && rename(tmp, output) != 0))) wrote = -1;
        if (wrote) {
            fprintf(stderr, "fairbench report: %s%s\n", notes[0] ? notes : "cannot write the report to ",
                    notes[0] ? "" : output ? output : "stdout");
            if (output) remove(tmp);
            rc = notes[0] ? EXIT_USAGE : EXIT_FAILURES;
        } else {
            for (const char *line = notes; *line;) {
                const char *nl = strchr(line, '\n');
                int len = nl ? (int)(nl - line) : (int)strlen(line);
                fprintf(stderr, "fairbench report: warning: %.*s\n", len, line);
                line += len + (nl ? 1 : 0);
                rc = EXIT_FAILURES;
            }
            if (output) fprintf(stderr, "fairbench report: HTML report written to %s\n", output);
        }
    }
    for (int i = 0; i < n; i++) cJSON_Delete(reports[i]);
    free(reports);
    return rc;
}
