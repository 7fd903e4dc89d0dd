/* main.c - the fairbench command line: one table of commands drives both
 * dispatch and `fairbench help`. Each command lives in its own cmd_<name>.c,
 * parses its arguments into options, then acts, and prints its own usage for
 * --help. Exit statuses are in cli.h. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "fb_version.h"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static void version_usage(FILE *out) { fprintf(out, "usage: fairbench version\nversion, git commit and build flavour\n"); }
static void help_usage(FILE *out) { fprintf(out, "usage: fairbench help [COMMAND]\nthe commands, or one command's usage\n"); }

typedef struct command {
    const char *name;
    const char *synopsis; /* one line, for `fairbench help` */
    int (*run)(int argc, char **argv);
    void (*usage)(FILE *out);
} command;

static const command commands[] = {
    {"run", "the main job: every backend of a profile under one harness, checked and audited", fb_cmd_run, fb_run_usage},
    {"inspect", "architecture, shapes, tensors and decode bytes of a GGUF file", fb_cmd_inspect, fb_inspect_usage},
    {"synth", "write a synthetic LLaMA GGUF of a preset's shapes and a chosen type", fb_cmd_synth, fb_synth_usage},
    {"tokenize", "the model's own tokenizer: ids and pieces of a text, or the text of ids", fb_cmd_tokenize,
     fb_tokenize_usage},
    {"plugins", "every backend found, and every .so that cannot be used, with the reason", fb_cmd_plugins,
     fb_plugins_usage},
    {"generate", "greedy generation through one backend", fb_cmd_generate, fb_generate_usage},
    {"conformance", "run one plugin through the ABI contract against cpu_ref", fb_cmd_conformance,
     fb_conformance_usage},
    {"compare", "two JSON reports, backend by backend, with significance", fb_cmd_compare, fb_compare_usage},
    {"report", "the HTML report (charts, offline) of JSON reports or stored runs", fb_cmd_report, fb_report_usage},
    {"history", "the results history: list, show, export and tag stored runs", fb_cmd_history, fb_history_usage},
    {"trend", "a metric across stored runs as an HTML chart; fail on a regression", fb_cmd_trend, fb_trend_usage},
    {"profile", "the profiling pass only: why each backend's decode step takes its time", fb_cmd_profile,
     fb_profile_usage},
    {"version", "version, git commit and build flavour", cmd_version, version_usage},
    {"help", "this list, or `fairbench help COMMAND` for one command's usage", cmd_help, help_usage},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void print_commands(FILE *out) {
    fprintf(out, "usage: fairbench -c PROFILE [OPTIONS]     the main job (same as: fairbench run -c ...)\n"
                 "       fairbench COMMAND [ARGS]           (fairbench COMMAND --help: its usage)\n"
                 "\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(out, "\nexit status: 0 ok, 1 finished with failures, 2 bad input or usage\n"
                 "(and 77 from conformance: the plugin's hardware is not here)\n");
}

static int cmd_version(int argc, char **argv) {
    (void)argv;
    if (argc != 1) {
        version_usage(stderr);
        return EXIT_USAGE;
    }
    printf("fairbench %s (commit %s, %s build)\n", FB_VERSION_STRING, FB_GIT_COMMIT, FB_BUILD_FLAVOUR);
    return EXIT_OK;
}

static int cmd_help(int argc, char **argv) {
    if (argc == 1) {
        print_commands(stdout);
        return EXIT_OK;
    }
    const command *c = argc == 2 ? find_command(argv[1]) : NULL;
    if (!c) {
        fprintf(stderr, "fairbench help: unknown command '%s'\n", argc >= 2 ? argv[1] : "");
        print_commands(stderr);
        return EXIT_USAGE;
    }
    c->usage(stdout);
    return EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_commands(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    /* The main job: fairbench -c PROFILE ... (fb_cmd_run parses from argv[1]). */
    if (strcmp(name, "-c") == 0 || strncmp(name, "--config", 8) == 0) return fb_cmd_run(argc, argv);
    if (strcmp(name, "--version") == 0) name = "version";
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "fairbench: unknown command '%s'\n\n", argv[1]);
        print_commands(stderr);
        return EXIT_USAGE;
    }
    /* `fairbench COMMAND --help` is the command's own usage, whatever else follows. */
    if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        c->usage(stdout);
        return EXIT_OK;
    }
    return c->run(argc - 1, argv + 1);
}
