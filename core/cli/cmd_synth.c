/* cmd_synth.c - `fairbench synth -o FILE.gguf`: a LLaMA GGUF with seeded
 * random weights of realistic scale and a working tokenizer. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant.h"
#include "synth.h"

void fb_synth_usage(FILE *out) {
    fprintf(out,
            "usage: fairbench synth -o FILE.gguf [--preset NAME] [--type TYPE | --mix MIX] [--seed N] [--threads N]\n"
            "                       [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ff N] [--vocab N]\n"
            "                       [--ctx N] [--tied | --untied] [--llama3-rope]\n"
            "write a LLaMA GGUF with seeded random weights of realistic scale and a working\n"
            "byte-level BPE tokenizer; presets: %s (default tiny);\n"
            "types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K; mixes (types per tensor as\n"
            "llama.cpp's quantizer lays them out): q4_k_m q5_k_m; the dimension options\n"
            "change the preset's shape; --llama3-rope adds Llama-3 RoPE frequency factors\n",
            fb_synth_preset_names());
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

int fb_cmd_synth(int argc, char **argv) {
    enum { O_DIM = 256, O_LAYERS, O_HEADS, O_KV_HEADS, O_FF, O_VOCAB, O_CTX, O_TIED, O_UNTIED, O_SEED, O_THREADS, O_LLAMA3_ROPE, O_MIX };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"preset", required_argument, NULL, 'p'},
        {"type", required_argument, NULL, 't'},   {"seed", required_argument, NULL, O_SEED},
        {"mix", required_argument, NULL, O_MIX},
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
        case O_MIX:
            if ((spec.mix = fb_synth_mix_from_name(optarg)) < 0) {
                fprintf(stderr, "fairbench synth: unknown mix '%s' (q4_k_m q5_k_m)\n", optarg);
                return EXIT_USAGE;
            }
            spec.type = spec.mix == FB_SYNTH_MIX_Q5_K_M ? GGUF_TYPE_Q5_K : GGUF_TYPE_Q4_K;
            break;
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
        case 'h': fb_synth_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (!output || optind != argc) {
        fprintf(stderr, "fairbench synth: expected -o FILE.gguf and no other arguments (see fairbench synth --help)\n");
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
            spec.mix == FB_SYNTH_MIX_Q4_K_M   ? "mix Q4_K_M"
            : spec.mix == FB_SYNTH_MIX_Q5_K_M ? "mix Q5_K_M"
                                              : quant_type_get(spec.type)->name,
            spec.seed, seconds);
    if (n_fallback)
        fprintf(stderr, "fairbench synth: %d matrices stored as F16: their row length is not a multiple of %s's "
                        "block of %" PRId32 "\n", n_fallback, quant_type_get(spec.type)->name,
                quant_type_get(spec.type)->block_elems);
    return EXIT_OK;
}

