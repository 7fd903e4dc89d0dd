/* profile.h - fairness profiles: the INI files that configure a run.
 *
 *   [run]        what to run and how often
 *   [fairness]   the settings every backend gets
 *   [backend.L]  one entry of the comparison, labelled L: which plugin, and
 *                any [fairness] key overridden for it alone
 *
 * Every key is documented in configs/profiles/fair.ini and docs/profiles.md.
 * An unknown section or key, a bad value, or a missing model is an error
 * "file:line: message"; the caller exits with status 2 and runs nothing.
 * In [backend.L], a key the host does not know (and that is not one edit
 * away from one it knows, which is taken for a typo) is a per-backend option
 * for the plugin, which vets it before the run (fb_options_vet). */
#ifndef FB_PROFILE_H
#define FB_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"
#include "fb_error.h"

#define FB_MAX_ENTRIES 16
#define FB_MAX_OPTIONS 16

/* A per-backend option (ABI 1.1): a key of [backend.L] that the host does
 * not know, handed to the plugin as written; the plugin vets it. */
typedef struct fb_profile_option {
    char key[64];
    char value[256];
    int line;              /* 0: from --set */
} fb_profile_option;

typedef enum fb_order { FB_ORDER_INTERLEAVED = 0, FB_ORDER_SEQUENTIAL = 1 } fb_order;

/* The [fairness] settings, as given for every entry or overridden for one. */
typedef struct fb_fairness {
    fb_precision weight_precision;     /* weight_precision = f32|f16|bf16|native (default f16) */
    fb_precision accumulate_precision; /* accumulate_precision = f32|f16|bf16 (default f32) */
    bool allow_jit;                    /* allow_jit = true|false (default true) */
    bool allow_graphs;                 /* allow_graphs = true|false (default true) */
    fb_jit_cache jit_cache;            /* jit_cache = cold|warm (default warm) */
    int threads;                       /* threads = N, 0 = all cores (default 0) */
} fb_fairness;

typedef struct fb_entry {
    char label[64];        /* as listed in [run] backends */
    char plugin[64];       /* [backend.L] plugin = NAME (default: the label) */
    fb_fairness fairness;  /* [fairness] with this entry's overrides applied */
    /* Which [fairness] keys [backend.L] overrode, for the fairness audit;
     * bit i set = the i-th key of fb_profile_fairness_keys(). */
    uint32_t overridden;
    int line;              /* line of its [backend.L] section, 0 if none */
    fb_profile_option options[FB_MAX_OPTIONS]; /* the plugin's own keys of [backend.L], in order */
    int n_options;
} fb_entry;

/* One [backend.L] section as written (or as --set made it), before
 * fb_profile_finish turns the labels of [run] backends into entries. */
typedef struct fb_backend_section {
    char label[64];
    char plugin[64];       /* "" when not given */
    fb_fairness fairness;  /* the fields named in `set` (others unused) */
    uint32_t set;          /* bit i: the i-th key of fb_profile_fairness_keys() was given */
    int line;              /* line of the first [backend.L] header, 0 if only --set */
    int key_lines[8];      /* where each key was set: [0] plugin, [1 + i] fairness key i */
    fb_profile_option options[FB_MAX_OPTIONS];
    int n_options;
} fb_backend_section;

/* Room for the line of each key of [run] and [fairness] (duplicate checks). */
#define FB_PROFILE_MAX_KEYS 32

typedef struct fb_profile {
    char path[512];        /* the file read ("" when built from defaults) */
    /* [run] */
    char model[1024];      /* model = PATH (relative: to the profile's folder; default: the default model) */
    char prompt[4096];     /* prompt = TEXT (default: an English sentence) */
    int prompt_tokens;     /* prompt_tokens = N: the prompt is repeated/cut to exactly N tokens (default 0: as tokenized) */
    int gen_tokens;        /* gen_tokens = N: decode steps timed per repetition (default 64) */
    int warmup;            /* warmup = N: untimed repetitions first (default 1) */
    int repetitions;       /* repetitions = N: timed repetitions (default 5) */
    char reference[64];    /* reference = LABEL or plugin name (default cpu_ref): checks agreement */
    double timeout_s;      /* timeout_s = SECONDS per backend call (create, one repetition) (default 600) */
    uint64_t seed;         /* seed = N: the shuffle of the interleaved order (default 1) */
    fb_order order;        /* order = interleaved|sequential (default interleaved) */
    uint32_t vary;         /* vary = KEY, KEY: the [fairness] keys the profile varies on purpose (bit i: the
                              i-th key of fb_profile_fairness_keys()); their differences are not unfair (default none) */
    double cv_warn;        /* cv_warn = FRACTION: warn above this coefficient of variation (default 0.05) */
    /* [fairness] */
    fb_fairness fairness;
    /* entries, in the order of [run] backends */
    fb_entry entries[FB_MAX_ENTRIES];
    int n_entries;
    char text[16384];      /* the profile file's text, for the report (truncated if longer) */
    int model_line;        /* where model was set (0: default or --set), for messages */
    char sets[2048];       /* the --set assignments applied, "; "-separated, for the report */
    bool model_is_default; /* model is the default model (absent, or "model = default") */
    /* What load and set gathered for finish; callers read entries instead. */
    char backend_labels[FB_MAX_ENTRIES][64]; /* [run] backends, in order */
    int n_backend_labels;
    int backends_line;     /* where backends was set (0: not in the file) */
    fb_backend_section sections[FB_MAX_ENTRIES];
    int n_sections;
    int key_lines[FB_PROFILE_MAX_KEYS]; /* line of each [run]/[fairness] key, 0: not in the file */
} fb_profile;

/* Find a profile named on the command line: as given (relative to the current
 * folder), else in the installed profile folder (<bin>/../share/fairbench/profiles),
 * else in the source tree's configs/profiles (FB_SOURCE_PROFILE_DIR; only when
 * the installed folder does not exist, so an installed binary never reads the
 * source tree); a name
 * like "profiles/fair.ini" is also tried as "fair.ini" there. Writes the path
 * found to out; -1 with a message listing the places tried. */
int fb_profile_resolve(const char *name, char *out, size_t out_size, fb_error *err);

/* Defaults (every key at its default, no entries). */
void fb_profile_defaults(fb_profile *p);

/* Read an INI file over the defaults (it starts from fb_profile_defaults, so
 * p need not be initialised). -1 with "file:line: message". Comments start a
 * line with ';' or '#', or follow a value after whitespace (" ; ...", " # ..."). */
int fb_profile_load(const char *path, fb_profile *p, fb_error *err);

/* Apply "section.key=value" (e.g. "run.repetitions=3", "backend.cpu_ref.threads=1")
 * as if it were in the file; the message names the --set argument. A
 * relative run.model is relative to the current folder. */
int fb_profile_set(fb_profile *p, const char *assignment, fb_error *err);

/* After loading and --set: resolve entries (every label in backends gets
 * the [fairness] settings plus its overrides), check what depends on several
 * keys, and check that the model file exists. A [backend.L] whose L is not
 * in backends is an error, unless backends came from --set (which may pick a
 * subset of the file's entries). An entry's `overridden` bit is
 * set only where its value differs from [fairness]: an override that repeats
 * the common setting changes nothing and is not reported as unfair. */
int fb_profile_finish(fb_profile *p, fb_error *err);

/* The [fairness] key names, in the order of fb_entry.overridden's bits. */
const char *const *fb_profile_fairness_keys(int *n);

const char *fb_precision_name(fb_precision p); /* "f32" ... */

/* The name of `names` closest to `name` (at most 2 edits), for "did you
 * mean"; NULL when none is that close. */
const char *fb_closest_name(const char *name, const char *const *names, size_t n);

#endif
