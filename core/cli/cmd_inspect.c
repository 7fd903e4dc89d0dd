/* cmd_inspect.c - `fairbench inspect FILE.gguf`: what a GGUF file holds. */
#include "cli.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "inspect.h"

void fb_inspect_usage(FILE *out) {
    fprintf(out, "usage: fairbench inspect FILE.gguf [--metadata] [--no-tensors]\n"
                 "architecture, hyper-parameters, tokenizer, tensor table, totals by type, and\n"
                 "the bytes one decode step reads at f32, f16 and the file's own types;\n"
                 "--metadata also lists every key-value pair, --no-tensors leaves out the table\n");
}

int fb_cmd_inspect(int argc, char **argv) {
    fb_inspect_options opt = {.show_metadata = false, .show_tensors = true};
    static const struct option longopts[] = {{"metadata", no_argument, NULL, 'm'},
                                             {"no-tensors", no_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': opt.show_metadata = true; break;
        case 'T': opt.show_tensors = false; break;
        case 'h': fb_inspect_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "fairbench inspect: expected one GGUF file (see fairbench inspect --help)\n");
        return EXIT_USAGE;
    }
    fb_error err;
    if (fb_inspect(argv[optind], &opt, stdout, &err)) {
        fprintf(stderr, "fairbench inspect: %s\n", err.msg);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}
