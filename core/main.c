/* main.c - the fairbench command line. The only place that prints results
 * and chooses exit statuses: 0 ok, 1 the run finished with failures,
 * 2 bad input or usage (conformance adds 77: the plugin's hardware is not
 * here, so the checks that need it were skipped). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_backends.h"
#include "cmd_compare.h"
#include "cmd_conformance.h"
#include "cmd_run.h"
#include "cmd_tokenize.h"
#include "fb_version.h"
#include "inspect.h"
#include "quant.h"
#include "synth.h"

enum { EXIT_OK = 0, EXIT_FAILURES = 1, EXIT_USAGE = 2 };

static void print_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench -c PROFILE [--set SECTION.KEY=VALUE]... [--model FILE.gguf]\n"
            "                 [--backends A,B] [--format text|md|json|csv] [-o FILE] [-q]\n"
            "       fairbench COMMAND [ARGS]\n"
            "\n"
            "the main job (-c, or: fairbench run -c ...): every backend of the profile in a\n"
            "child process of its own under one timing harness, checked against the reference,\n"
            "with a fairness audit; fairbench run --help says more\n"
            "\n"
            "commands:\n"
            "  inspect FILE.gguf [--metadata] [--no-tensors]\n"
            "        architecture, hyper-parameters, tokenizer, tensor table, totals by type,\n"
            "        and the bytes one decode step reads at f32, f16 and the file's own types\n"
            "  synth -o FILE.gguf [--preset NAME] [--type TYPE] [--seed N] [--threads N]\n"
            "        [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ff N] [--vocab N]\n"
            "        [--ctx N] [--tied | --untied] [--llama3-rope]\n"
            "        write a LLaMA GGUF with seeded random weights of realistic scale and a\n"
            "        working byte-level BPE tokenizer; presets: %s\n"
            "        (default tiny); types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K;\n"
            "        --llama3-rope adds Llama-3 RoPE frequency factors, as llama3.2-1b has\n"
            "  plugins [--plugin-dir DIR]...\n"
            "        every backend found (name, version, ABI, capabilities, availability) and\n"
            "        every .so that cannot be used, with the reason\n"
            "  generate -m MODEL.gguf --ids ID,... [-n N] [--backend NAME] [--precision P]\n"
            "        [--threads N] [--dump-logits FILE] [--plugin-dir DIR]\n"
            "        greedy generation through one backend (default cpu_ref, f32)\n"
            "  conformance PLUGIN.so [--precision P] [--threads N] [--timeout S] [--plugin-dir DIR]\n"
            "        [--keep]\n"
            "        runs one plugin through the ABI contract on synthetic models against cpu_ref,\n"
            "        each check in its own process; one PASS/FAIL/SKIP line per check; exit\n"
            "        status 0 all passed, 1 a check failed, 77 its hardware is absent (skipped)\n"
            "  tokenize MODEL.gguf (TEXT | --file PATH) [--ids] [--parse-special] [--no-bos-eos]\n"
            "  tokenize MODEL.gguf --decode ID,ID,... [--skip-special]\n"
            "        the model's own tokenizer: ids and pieces of a text, or the text of ids\n"
            "  compare A.json B.json\n"
            "        per backend, B's figures against A's and whether the decode-latency\n"
            "        difference is significant (Mann-Whitney U on the raw samples)\n"
            "  version\n"
            "        version, git commit and build flavour\n"
            "  help\n"
            "\n"
            "exit status: 0 ok, 1 finished with failures, 2 bad input or usage\n"
            "(and 77 from conformance: the plugin's hardware is not here)\n",
            fb_synth_preset_names());
}

static int cmd_inspect(int argc, char **argv) {
    fb_inspect_options opt = {.show_metadata = false, .show_tensors = true};
    static const struct option longopts[] = {
        {"metadata", no_argument, NULL, 'm'}, {"no-tensors", no_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': opt.show_metadata = true; break;
        case 'T': opt.show_tensors = false; break;
        case 'h': print_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "fairbench inspect: expected one GGUF file (see fairbench help)\n");
        return EXIT_USAGE;
    }
    fb_error err;
    if (fb_inspect(argv[optind], &opt, stdout, &err)) {
        fprintf(stderr, "fairbench inspect: %s\n", err.msg);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* A positive integer option value, or -1 after printing why not. */
static long long parse_count(const char *opt, const char *s, long long max) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > max) {
        fprintf(stderr, "fairbench synth: --%s expects an integer from 0 to %lld, got '%s'\n", opt, max, s);
        return -1;
    }
    return v;
}

static int cmd_synth(int argc, char **argv) {
    enum { O_DIM = 256, O_LAYERS, O_HEADS, O_KV_HEADS, O_FF, O_VOCAB, O_CTX, O_TIED, O_UNTIED, O_SEED, O_THREADS, O_LLAMA3_ROPE };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"preset", required_argument, NULL, 'p'},
        {"type", required_argument, NULL, 't'},   {"seed", required_argument, NULL, O_SEED},
        {"threads", required_argument, NULL, O_THREADS},
        {"dim", required_argument, NULL, O_DIM},  {"layers", required_argument, NULL, O_LAYERS},
        {"heads", required_argument, NULL, O_HEADS}, {"kv-heads", required_argument, NULL, O_KV_HEADS},
        {"ff", required_argument, NULL, O_FF},    {"vocab", required_argument, NULL, O_VOCAB},
        {"ctx", required_argument, NULL, O_CTX},  {"tied", no_argument, NULL, O_TIED},
        {"untied", no_argument, NULL, O_UNTIED},  {"llama3-rope", no_argument, NULL, O_LLAMA3_ROPE},
        {"help", no_argument, NULL, 'h'}, {0}};
    /* First pass: the preset, which the other options then modify. */
    const char *preset = "tiny", *output = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) preset = argv[i + 1];
        else if (strncmp(argv[i], "--preset=", 9) == 0) preset = argv[i] + 9;
    }
    fb_synth_spec spec;
    if (fb_synth_preset(preset, &spec)) {
        fprintf(stderr, "fairbench synth: unknown preset '%s' (known: %s)\n", preset, fb_synth_preset_names());
        return EXIT_USAGE;
    }
    bool custom = false;
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, "o:p:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'p': break;
        case 't': {
            int type = quant_type_from_name(optarg);
            const quant_type_info *ti = type >= 0 ? quant_type_get((uint32_t)type) : NULL;
            if (!ti || !ti->can_encode) {
                fprintf(stderr, "fairbench synth: cannot write type '%s' (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 "
                                "Q4_K Q5_K Q6_K)\n", optarg);
                return EXIT_USAGE;
            }
            spec.type = (uint32_t)type;
            break;
        }
        case O_SEED:
            if ((v = parse_count("seed", optarg, INT64_MAX)) < 0) return EXIT_USAGE;
            spec.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if ((v = parse_count("threads", optarg, 1024)) < 0) return EXIT_USAGE;
            spec.n_threads = (int)v;
            break;
#define DIM(OPT, NAME, FIELD, MAX) \
        case OPT: \
            if ((v = parse_count(NAME, optarg, MAX)) < 0) return EXIT_USAGE; \
            spec.FIELD = (uint32_t)v; custom = true; \
            break;
        DIM(O_DIM, "dim", n_embd, 1 << 16)
        DIM(O_LAYERS, "layers", n_layer, 4096)
        DIM(O_HEADS, "heads", n_head, 1024)
        DIM(O_KV_HEADS, "kv-heads", n_head_kv, 1024)
        DIM(O_FF, "ff", n_ff, 1 << 18)
        DIM(O_VOCAB, "vocab", n_vocab, 1 << 20)
        DIM(O_CTX, "ctx", n_ctx, 1 << 24)
#undef DIM
        case O_TIED: spec.tied_output = true; custom = true; break;
        case O_UNTIED: spec.tied_output = false; custom = true; break;
        case O_LLAMA3_ROPE: spec.llama3_rope = true; custom = true; break;
        case 'h': print_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (!output || optind != argc) {
        fprintf(stderr, "fairbench synth: expected -o FILE.gguf and no other arguments (see fairbench help)\n");
        return EXIT_USAGE;
    }
    if (custom) {
        size_t len = strlen(spec.preset);
        if (len + sizeof "+custom" <= sizeof spec.preset) memcpy(spec.preset + len, "+custom", sizeof "+custom");
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n_fallback;
    fb_error err;
    if (fb_synth_write(&spec, output, &n_fallback, &err)) {
        fprintf(stderr, "fairbench synth: %s\n", err.msg);
        return EXIT_USAGE;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "fairbench synth: wrote %s (%s, %s, seed %" PRIu64 ") in %.2f s\n", output, spec.preset,
            quant_type_get(spec.type)->name, spec.seed, seconds);
    if (n_fallback)
        fprintf(stderr, "fairbench synth: %d matrices stored as F16: their row length is not a multiple of %s's "
                        "block of %" PRId32 "\n", n_fallback, quant_type_get(spec.type)->name,
                quant_type_get(spec.type)->block_elems);
    return EXIT_OK;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    /* The main job: fairbench -c PROFILE ... (also: fairbench run -c ...). */
    if (strcmp(cmd, "-c") == 0 || strncmp(cmd, "--config", 8) == 0) return fb_cmd_run(argc, argv);
    if (strcmp(cmd, "run") == 0) return fb_cmd_run(argc - 1, argv + 1);
    /* Subcommands parse their own options from argv[1] on. */
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0) return cmd_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "tokenize") == 0) return fb_cmd_tokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "plugins") == 0) return fb_cmd_plugins(argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0) return fb_cmd_compare(argc - 1, argv + 1);
    if (strcmp(cmd, "generate") == 0) return fb_cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "conformance") == 0) return fb_cmd_conformance(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("fairbench %s (commit %s, %s build)\n", FB_VERSION_STRING, FB_GIT_COMMIT, FB_BUILD_FLAVOUR);
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        print_usage(stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "fairbench: unknown command '%s'\n\n", cmd);
    print_usage(stderr);
    return EXIT_USAGE;
}
