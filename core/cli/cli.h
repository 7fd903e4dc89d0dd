/* cli.h - the command-line layer: one function per command, each in its own
 * cmd_<command>.c, linked only into the fairbench executable. A command parses
 * its arguments into a struct of options, then acts; it prints its own usage
 * for --help. Only this layer prints results and chooses exit statuses. */
#ifndef FB_CLI_H
#define FB_CLI_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* Exit statuses, for every command. */
enum {
    EXIT_OK = 0,          /* done, nothing failed */
    EXIT_FAILURES = 1,    /* the work finished, with failures (or differences, for compare) */
    EXIT_USAGE = 2,       /* bad input or usage; nothing ran */
    EXIT_UNAVAILABLE = 77 /* conformance only: the plugin's hardware is not here */
};

#define MAX_PLUGIN_DIRS 16

/* argv[0] is the command's name; each returns the exit status. */
int fb_cmd_run(int argc, char **argv);
int fb_cmd_inspect(int argc, char **argv);
int fb_cmd_synth(int argc, char **argv);
int fb_cmd_tokenize(int argc, char **argv);
int fb_cmd_plugins(int argc, char **argv);
int fb_cmd_generate(int argc, char **argv);
int fb_cmd_conformance(int argc, char **argv);
int fb_cmd_compare(int argc, char **argv);
int fb_cmd_report(int argc, char **argv);
int fb_cmd_history(int argc, char **argv);
int fb_cmd_trend(int argc, char **argv);
int fb_cmd_profile(int argc, char **argv);

/* Usage texts: `fairbench COMMAND --help` prints the command's own. */
void fb_run_usage(FILE *out);
void fb_inspect_usage(FILE *out);
void fb_synth_usage(FILE *out);
void fb_tokenize_usage(FILE *out);
void fb_plugins_usage(FILE *out);
void fb_generate_usage(FILE *out);
void fb_conformance_usage(FILE *out);
void fb_compare_usage(FILE *out);
void fb_report_usage(FILE *out);
void fb_history_usage(FILE *out);
void fb_trend_usage(FILE *out);

/* The main job's hook into the results history (cmd_history.c): appends the
 * run to db_path (NULL: the default database) and says so on stderr, or
 * warns there and carries on when the database cannot take it. */
struct fb_profile;
struct fb_run_result;
void fb_cli_record_run(const char *db_path, const struct fb_profile *p, const struct fb_run_result *r, int quiet);

/* A report named on a command line: a JSON file when one exists at arg, else
 * a run of the results history (an id, a tag, first or last) in db_path
 * (NULL: the default database). Errors go to stderr under `who`; NULL then. */
cJSON *fb_cli_load_report(const char *who, const char *arg, const char *db_path);
void fb_profile_usage(FILE *out);

#endif
