/* profile.c - fairness profiles: reading the INI file (with inih), --set,
 * the checks, and turning [run] backends into entries.
 *
 * inih 55 as Debian ships it calls the handler with section, name and value
 * only: no line number, and no call for a section header that has no keys.
 * So the file goes through ini_parse_stream over a reader of our own
 * (read_line) that hands inih one line at a time, counts the lines, and
 * checks each line's shape itself: a [section] header (which it also
 * records, because inih truncates section names at 49 characters), a
 * "key = value" line, a comment or a blank. When the handler runs, the
 * reader's line number and section are those of the key being handled.
 * inih is left to split "key = value" and strip comments and whitespace. */
#include "profile.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#define DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"
#define DEFAULT_PROMPT                                                                \
    "The old lighthouse keeper climbed the stairs one last time, and as the sun set " \
    "over the grey sea he began to tell the story of the storm that changed his life."
#define MAX_PROFILE_BYTES (1u << 20) /* a profile is a few KiB; anything larger is not one */
#define INI_LINE_BUFFER 8192         /* inih's line buffer while we parse (its default is 200) */

_Static_assert(sizeof(fb_precision) == sizeof(int) && sizeof(fb_jit_cache) == sizeof(int) &&
                   sizeof(fb_order) == sizeof(int),
               "the choice parser stores enums as int");

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

/* A value or name as it appears inside a message: at most 60 characters,
 * control characters shown as '?'. */
static const char *shown(const char *s, char *buf, size_t size) {
    size_t n = 0, limit = size - 4;
    if (limit > 60) limit = 60;
    for (; s[n] && n < limit; n++) buf[n] = iscntrl((unsigned char)s[n]) ? '?' : s[n];
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* A label or plugin name: 1-63 characters of a-z, 0-9 and _. */
static bool valid_name(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 63) return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_')) return false;
    return true;
}
#define NAME_RULE "1-63 characters of a-z, 0-9 and _"

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Levenshtein distance, for "did you mean"; names longer than 63 are "far". */
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The default model: the same rule as `scripts/fetch-model.sh --path`. */
static void default_model_path(char *out, size_t size) {
    const char *dir = getenv("FAIRBENCH_MODEL_DIR");
    if (dir && *dir) {
        snprintf(out, size, "%s/%s", dir, DEFAULT_MODEL_FILE);
    } else {
        const char *home = getenv("HOME");
        snprintf(out, size, "%s/.cache/fairbench/models/%s", home && *home ? home : "/root", DEFAULT_MODEL_FILE);
    }
}

/* ------------------------------------------------------------------------ */
/* The keys: where each may appear, how its value is read, where it goes.    */

enum { IN_RUN = 1, IN_FAIRNESS = 2, IN_BACKEND = 4 };

typedef struct key_def key_def;
typedef struct parse_ctx {
    fb_profile *p;
    const char *base_dir; /* relative model paths are relative to this ("": current folder) */
} parse_ctx;

/* Reads `value` into `dst`. On failure returns -1 and writes the reason to
 * `why`; an empty reason means "expected <k->expect>". */
typedef int (*value_parser)(const key_def *k, const char *value, void *dst, const parse_ctx *ctx, char *why,
                            size_t why_size);

struct key_def {
    const char *name;
    unsigned sections; /* IN_RUN, or IN_FAIRNESS | IN_BACKEND, or IN_BACKEND */
    value_parser parse;
    size_t offset, size;        /* the field: in fb_profile ([run] keys) or fb_fairness (the others) */
    double min, max;            /* numbers */
    const char *const *choices; /* choice keys: the names, in enum order, NULL-terminated */
    const char *expect;         /* what a good value looks like, for the message */
};

static int parse_int(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)ctx;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < k->min || x > k->max) {
        if (!k->expect) snprintf(why, n, "expected an integer from %.0f to %.0f", k->min, k->max);
        return -1;
    }
    *(int *)dst = (int)x;
    return 0;
}

static int parse_u64(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k, (void)ctx, (void)why, (void)n;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!isdigit((unsigned char)*v) || *end || errno) return -1; /* strtoull would take "-1" */
    *(uint64_t *)dst = (uint64_t)x;
    return 0;
}

/* A number in [min, max]; timeout_s excludes its min (0 s would time out at once). */
static int parse_number(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)ctx, (void)why, (void)n;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    bool exclusive_min = strcmp(k->name, "timeout_s") == 0;
    if (!*v || *end || errno || !isfinite(x) || x > k->max || x < k->min || (exclusive_min && x <= k->min)) return -1;
    *(double *)dst = x;
    return 0;
}

static int parse_bool(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k, (void)ctx, (void)why, (void)n;
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *(bool *)dst = true, 0;
        if (strcasecmp(v, no[i]) == 0) return *(bool *)dst = false, 0;
    }
    return -1;
}

/* One of k->choices (any case); stores its index, which is the enum value. */
static int parse_choice(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)ctx;
    size_t used = (size_t)snprintf(why, n, "expected one of");
    for (int i = 0; k->choices[i]; i++) {
        if (strcasecmp(v, k->choices[i]) == 0) {
            memcpy(dst, &i, sizeof i);
            return 0;
        }
        if (used < n) used += (size_t)snprintf(why + used, n - used, "%s %s", i ? "," : "", k->choices[i]);
    }
    return -1;
}

static int parse_name(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k, (void)ctx, (void)why, (void)n;
    if (!valid_name(v)) return -1;
    memcpy(dst, v, strlen(v) + 1); /* fits: at most 63 characters, fields are 64 */
    return 0;
}

static int parse_prompt(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k, (void)ctx, (void)why, (void)n;
    size_t len = strlen(v);
    if (len == 0 || len >= sizeof ctx->p->prompt) return -1;
    memcpy(dst, v, len + 1);
    return 0;
}

/* db = PATH | none: a file path, "~/" and relative paths as for model. */
static int parse_db(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k;
    char *out = dst;
    size_t size = sizeof ctx->p->db;
    int len;
    if (*v == '\0') return -1;
    if (strcmp(v, "none") == 0) len = snprintf(out, size, "none");
    else if (v[0] == '~' && v[1] == '/') {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            snprintf(why, n, "'~' needs $HOME, which is not set");
            return -1;
        }
        len = snprintf(out, size, "%s%s", home, v + 1);
    } else if (v[0] != '/' && ctx->base_dir[0])
        len = snprintf(out, size, "%s/%s", ctx->base_dir, v);
    else
        len = snprintf(out, size, "%s", v);
    if (len < 0 || (size_t)len >= size) {
        snprintf(why, n, "the path is longer than %zu characters", size - 1);
        out[0] = '\0';
        return -1;
    }
    return 0;
}

static int parse_model(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k;
    fb_profile *p = ctx->p;
    char path[sizeof p->model];
    bool is_default = false;
    int len;
    if (*v == '\0') {
        return -1;
    } else if (strcmp(v, "default") == 0) {
        default_model_path(path, sizeof path);
        len = (int)strlen(path);
        is_default = true;
    } else if (v[0] == '~' && (v[1] == '\0' || v[1] == '/')) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            snprintf(why, n, "'~' needs $HOME, which is not set");
            return -1;
        }
        len = snprintf(path, sizeof path, "%s%s", home, v + 1);
    } else if (v[0] != '/' && ctx->base_dir[0]) {
        len = snprintf(path, sizeof path, "%s/%s", ctx->base_dir, v);
    } else {
        len = snprintf(path, sizeof path, "%s", v);
    }
    if (len < 0 || (size_t)len >= sizeof path) {
        snprintf(why, n, "the path is longer than %zu characters", sizeof path - 1);
        return -1;
    }
    memcpy(dst, path, (size_t)len + 1);
    p->model_is_default = is_default;
    return 0;
}

/* backends = a, b, c: labels, no duplicates, 1 to FB_MAX_ENTRIES of them. */
static int parse_backends(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k, (void)dst;
    char labels[FB_MAX_ENTRIES][64];
    int count = 0;
    char list[8192];
    if (strlen(v) >= sizeof list || strspn(v, " \t,") == strlen(v)) return -1;
    strcpy(list, v);
    char *item = list;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma) *comma = '\0';
        char *label = trim(item), b[80];
        if (!*label) {
            snprintf(why, n, "an empty label (two commas in a row, or one at an end)");
            return -1;
        }
        if (!valid_name(label)) {
            snprintf(why, n, "'%s' is not a valid label: use " NAME_RULE, shown(label, b, sizeof b));
            return -1;
        }
        for (int i = 0; i < count; i++) {
            if (strcmp(labels[i], label) == 0) {
                snprintf(why, n, "'%s' is listed twice (give each entry its own label and [backend.LABEL] plugin = %s)",
                         label, label);
                return -1;
            }
        }
        if (count == FB_MAX_ENTRIES) {
            snprintf(why, n, "more than %d backends", FB_MAX_ENTRIES);
            return -1;
        }
        strcpy(labels[count++], label);
        if (!comma) break;
        item = comma + 1;
    }
    memcpy(ctx->p->backend_labels, labels, sizeof labels);
    ctx->p->n_backend_labels = count;
    return 0;
}

/* The order of fb_entry.overridden's bits (and of fb_profile.vary's). */
static const char *const fairness_key_names[] = {
    "weight_precision", "accumulate_precision", "allow_jit", "allow_graphs", "jit_cache", "threads"};
#define N_FAIRNESS_KEYS 6

/* vary = KEY, KEY: [fairness] keys whose differences are the experiment; "none": none. */
static int parse_vary(const key_def *k, const char *v, void *dst, const parse_ctx *ctx, char *why, size_t n) {
    (void)k, (void)ctx;
    uint32_t bits = 0;
    char list[1024], b[80];
    if (strlen(v) >= sizeof list) return -1;
    strcpy(list, v);
    if (strcmp(trim(list), "none") == 0) {
        *(uint32_t *)dst = 0;
        return 0;
    }
    char *item = list;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma) *comma = '\0';
        char *name = trim(item);
        int bit = -1;
        for (int i = 0; i < N_FAIRNESS_KEYS; i++)
            if (strcmp(name, fairness_key_names[i]) == 0) bit = i;
        if (bit < 0) {
            int best = -1, best_distance = 3;
            for (int i = 0; i < N_FAIRNESS_KEYS; i++) {
                int d = edit_distance(name, fairness_key_names[i]);
                if (d < best_distance) best = i, best_distance = d;
            }
            if (best >= 0)
                snprintf(why, n, "'%s' is not a [fairness] key; did you mean '%s'?", shown(name, b, sizeof b),
                         fairness_key_names[best]);
            return -1;
        }
        bits |= 1u << bit;
        if (!comma) break;
        item = comma + 1;
    }
    *(uint32_t *)dst = bits;
    return 0;
}

static const char *const precision_names[] = {"f32", "f16", "bf16", "native", NULL};
static const char *const accumulate_names[] = {"f32", "f16", "bf16", NULL};
static const char *const jit_cache_names[] = {"cold", "warm", NULL};
static const char *const order_names[] = {"interleaved", "sequential", NULL};
#define BOOL_EXPECT "true or false (also yes/no, on/off, 1/0)"

#define RUN(field) offsetof(fb_profile, field), sizeof(((fb_profile *)0)->field)
#define FAIR(field) offsetof(fb_fairness, field), sizeof(((fb_fairness *)0)->field)
static const key_def keys[] = {
    /* name                  sections                  parser          field                min  max    choices expect
     */
    {"model", IN_RUN, parse_model, RUN(model), 0, 0, NULL, "a path to a GGUF file, or default"},
    {"prompt", IN_RUN, parse_prompt, RUN(prompt), 0, 0, NULL, "non-empty text of at most 4095 characters, on one line"},
    {"prompt_tokens", IN_RUN, parse_int, RUN(prompt_tokens), 0, 100000, NULL,
     "an integer from 0 to 100000 (0: the prompt as tokenized)"},
    {"gen_tokens", IN_RUN, parse_int, RUN(gen_tokens), 1, 100000, NULL, NULL},
    {"warmup", IN_RUN, parse_int, RUN(warmup), 0, 1000, NULL, NULL},
    {"repetitions", IN_RUN, parse_int, RUN(repetitions), 1, 100000, NULL, NULL},
    {"backends", IN_RUN, parse_backends, RUN(backend_labels), 0, 0, NULL,
     "a comma-separated list of 1 to 16 backend labels"},
    {"reference", IN_RUN, parse_name, RUN(reference), 0, 0, NULL, "a backend label or plugin name of " NAME_RULE},
    {"db", IN_RUN, parse_db, RUN(db), 0, 0, NULL, "a path to the results database, or none"},
    {"timeout_s", IN_RUN, parse_number, RUN(timeout_s), 0, 86400, NULL,
     "a number of seconds greater than 0 and at most 86400"},
    {"seed", IN_RUN, parse_u64, RUN(seed), 0, 0, NULL, "an integer from 0 to 18446744073709551615"},
    {"order", IN_RUN, parse_choice, RUN(order), 0, 0, order_names, NULL},
    {"vary", IN_RUN, parse_vary, RUN(vary), 0, 0, NULL,
     "a comma-separated list of [fairness] keys (weight_precision, accumulate_precision, allow_jit, allow_graphs, "
     "jit_cache, threads), or none"},
    {"cv_warn", IN_RUN, parse_number, RUN(cv_warn), 0, 10, NULL, "a number from 0 to 10 (0.05 means 5%)"},
    {"why_steps", IN_RUN, parse_int, RUN(why_steps), 0, 4096, NULL, "an integer from 0 to 4096 (0: no profiling pass)"},
    /* [fairness], and the same keys as overrides in [backend.L] */
    {"weight_precision", IN_FAIRNESS | IN_BACKEND, parse_choice, FAIR(weight_precision), 0, 0, precision_names, NULL},
    {"accumulate_precision", IN_FAIRNESS | IN_BACKEND, parse_choice, FAIR(accumulate_precision), 0, 0, accumulate_names,
     NULL},
    {"allow_jit", IN_FAIRNESS | IN_BACKEND, parse_bool, FAIR(allow_jit), 0, 0, NULL, BOOL_EXPECT},
    {"allow_graphs", IN_FAIRNESS | IN_BACKEND, parse_bool, FAIR(allow_graphs), 0, 0, NULL, BOOL_EXPECT},
    {"jit_cache", IN_FAIRNESS | IN_BACKEND, parse_choice, FAIR(jit_cache), 0, 0, jit_cache_names, NULL},
    {"threads", IN_FAIRNESS | IN_BACKEND, parse_int, FAIR(threads), 0, 4096, NULL,
     "an integer from 0 to 4096 (0: all cores)"},
    /* [backend.L] only */
    {"plugin", IN_BACKEND, parse_name, 0, 64, 0, 0, NULL, "a plugin name of " NAME_RULE},
};
#define N_KEYS (int)(sizeof keys / sizeof keys[0])
_Static_assert(sizeof keys / sizeof keys[0] <= FB_PROFILE_MAX_KEYS, "fb_profile.key_lines is too small");

_Static_assert(sizeof fairness_key_names / sizeof fairness_key_names[0] == N_FAIRNESS_KEYS, "");

const char *const *fb_profile_fairness_keys(int *n) {
    if (n) *n = N_FAIRNESS_KEYS;
    return fairness_key_names;
}

static const key_def *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

/* Bit / index of a fairness key, -1 for the others. */
static int fairness_index(const key_def *k) {
    for (int i = 0; i < N_FAIRNESS_KEYS; i++)
        if (strcmp(fairness_key_names[i], k->name) == 0) return i;
    return -1;
}

const char *fb_precision_name(fb_precision p) { return (unsigned)p < 4 ? precision_names[p] : "unknown"; }

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

typedef struct section_ref {
    int scope; /* IN_RUN, IN_FAIRNESS, IN_BACKEND; 0 before any section */
    int index; /* IN_BACKEND: into p->sections */
} section_ref;

static void section_title(const fb_profile *p, section_ref s, char *out, size_t size) {
    if (s.scope == IN_RUN) snprintf(out, size, "[run]");
    else if (s.scope == IN_FAIRNESS)
        snprintf(out, size, "[fairness]");
    else
        snprintf(out, size, "[backend.%s]", p->sections[s.index].label);
}

/* Finds or adds [backend.label]; line is that of its header (0 for --set). */
static int backend_section(fb_profile *p, const char *label, int line, const char *where, fb_error *err) {
    for (int i = 0; i < p->n_sections; i++) {
        if (strcmp(p->sections[i].label, label) == 0) {
            if (!p->sections[i].line) p->sections[i].line = line;
            return i;
        }
    }
    if (p->n_sections == FB_MAX_ENTRIES)
        return fb_error_set(err, "%s: more than %d [backend.*] sections", where, FB_MAX_ENTRIES);
    fb_backend_section *s = &p->sections[p->n_sections];
    memset(s, 0, sizeof *s);
    strcpy(s->label, label);
    s->line = line;
    return p->n_sections++;
}

/* "run", "fairness" or "backend.LABEL" -> a section (adding a backend one). */
static int open_section(fb_profile *p, const char *name, int line, const char *where, section_ref *out, fb_error *err) {
    char b[80];
    if (strcmp(name, "run") == 0) {
        *out = (section_ref){IN_RUN, 0};
        return 0;
    }
    if (strcmp(name, "fairness") == 0) {
        *out = (section_ref){IN_FAIRNESS, 0};
        return 0;
    }
    if (strncmp(name, "backend.", 8) == 0) {
        if (!valid_name(name + 8)) {
            char whole[80];
            return fb_error_set(err, "%s: bad backend label '%s' in [%s]: a label is " NAME_RULE, where,
                                shown(name + 8, b, sizeof b), shown(name, whole, sizeof whole));
        }
        int i = backend_section(p, name + 8, line, where, err);
        if (i < 0) return -1;
        *out = (section_ref){IN_BACKEND, i};
        return 0;
    }
    return fb_error_set(err, "%s: unknown section [%s]; the sections are [run], [fairness] and [backend.LABEL]", where,
                        shown(name, b, sizeof b));
}

/* ------------------------------------------------------------------------ */
/* One key = value, from the file or from --set                              */

static int unknown_key(const fb_profile *p, section_ref s, const char *name, const char *where, fb_error *err) {
    char title[96], b[80];
    section_title(p, s, title, sizeof title);
    shown(name, b, sizeof b);
    const key_def *k = find_key(name);
    if (k) {
        const char *home = k->sections == IN_RUN       ? "[run]"
                           : k->sections == IN_BACKEND ? "[backend.LABEL]"
                                                       : "[fairness] or [backend.LABEL]";
        return fb_error_set(err, "%s: unknown key '%s' in %s; '%s' belongs in %s", where, b, title, b, home);
    }
    const key_def *best = NULL;
    int best_distance = 3;
    for (int i = 0; i < N_KEYS; i++) {
        int d = (keys[i].sections & s.scope) ? edit_distance(name, keys[i].name) : 99;
        if (d < best_distance) best = &keys[i], best_distance = d;
    }
    if (best) return fb_error_set(err, "%s: unknown key '%s' in %s; did you mean '%s'?", where, b, title, best->name);
    char known[400] = "";
    size_t used = 0;
    for (int i = 0; i < N_KEYS; i++)
        if ((keys[i].sections & s.scope) && used < sizeof known)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", keys[i].name);
    return fb_error_set(err, "%s: unknown key '%s' in %s (its keys: %s)", where, b, title, known);
}

/* A key of [backend.L] the host does not know: a per-backend option for the
 * plugin (ABI 1.1), unless it looks like a typo of a host key. */
static bool option_name_ok(const char *name) {
    if (!*name || strlen(name) >= sizeof((fb_profile_option *)0)->key) return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
            return false;
    return true;
}

static int add_option(fb_profile *p, section_ref s, const char *name, const char *value, const char *where, int line,
                      fb_error *err) {
    fb_backend_section *sec = &p->sections[s.index];
    for (int i = 0; i < sec->n_options; i++) {
        fb_profile_option *o = &sec->options[i];
        if (strcmp(o->key, name) != 0) continue;
        if (line > 0 && o->line > 0)
            return fb_error_set(err, "%s: duplicate key '%s' in [backend.%s] (first set on line %d)", where, name,
                                sec->label, o->line);
        if (strlen(value) >= sizeof o->value)
            return fb_error_set(err, "%s: the value of '%s' is longer than %zu characters", where, name,
                                sizeof o->value - 1);
        snprintf(o->value, sizeof o->value, "%s", value);
        o->line = line;
        return 0;
    }
    if (sec->n_options == FB_MAX_OPTIONS)
        return fb_error_set(err, "%s: more than %d plugin options in [backend.%s]", where, FB_MAX_OPTIONS, sec->label);
    if (strlen(value) >= sizeof sec->options[0].value)
        return fb_error_set(err, "%s: the value of '%s' is longer than %zu characters", where, name,
                            sizeof sec->options[0].value - 1);
    fb_profile_option *o = &sec->options[sec->n_options++];
    snprintf(o->key, sizeof o->key, "%s", name);
    snprintf(o->value, sizeof o->value, "%s", value);
    o->line = line;
    return 0;
}

static int apply_key(fb_profile *p, section_ref s, const char *name, const char *value, const char *where, int line,
                     const char *base_dir, fb_error *err) {
    if (!*name) return fb_error_set(err, "%s: missing key name before '='", where);
    const key_def *k = find_key(name);
    if (!k && s.scope == IN_BACKEND && option_name_ok(name)) {
        bool typo = false;
        for (int i = 0; i < N_KEYS; i++)
            typo |= (keys[i].sections & IN_BACKEND) && edit_distance(name, keys[i].name) <= 2;
        if (!typo) return add_option(p, s, name, value, where, line, err);
    }
    if (!k || !(k->sections & s.scope)) return unknown_key(p, s, name, where, err);

    fb_backend_section *sec = s.scope == IN_BACKEND ? &p->sections[s.index] : NULL;
    int fi = fairness_index(k);
    int *line_slot = sec ? &sec->key_lines[fi < 0 ? 0 : 1 + fi] : &p->key_lines[k - keys];
    char title[96];
    section_title(p, s, title, sizeof title);
    if (line > 0 && *line_slot > 0)
        return fb_error_set(err, "%s: duplicate key '%s' in %s (first set on line %d)", where, name, title, *line_slot);

    void *dst = s.scope == IN_RUN        ? (void *)((char *)p + k->offset)
                : s.scope == IN_FAIRNESS ? (void *)((char *)&p->fairness + k->offset)
                : fi < 0                 ? (void *)sec->plugin
                                         : (void *)((char *)&sec->fairness + k->offset);
    parse_ctx ctx = {p, base_dir};
    char why[256] = "", b[80];
    if (k->parse(k, value, dst, &ctx, why, sizeof why) != 0) {
        if (!why[0]) snprintf(why, sizeof why, "expected %s", k->expect);
        return fb_error_set(err, "%s: %s = '%s': %s", where, name, shown(value, b, sizeof b), why);
    }
    *line_slot = line;
    if (sec && fi >= 0) sec->set |= 1u << fi;
    if (s.scope == IN_RUN && strcmp(name, "model") == 0) p->model_line = line;
    if (s.scope == IN_RUN && strcmp(name, "backends") == 0) p->backends_line = line;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading the file through inih                                             */

typedef struct ini_source {
    const char *text; /* the whole file */
    size_t len, pos;
    int line; /* of the line last handed to inih */
    section_ref section;
    fb_profile *p;
    const char *base_dir;
    fb_error *err;
    bool failed; /* an error is in err: stop */
} ini_source;

/* inih's rule: a comment inside a line starts with ';' or '#' after whitespace. */
static bool inline_comment_at(const char *start, const char *at) {
    return at > start && isspace((unsigned char)at[-1]) && (*at == ';' || *at == '#');
}

/* Checks the shape of one line (no newline, NUL-terminated) and follows its
 * [section]; inih will then accept exactly the lines this accepts. */
static int check_line(ini_source *src, char *line) {
    char where[600], b[80];
    snprintf(where, sizeof where, "%s:%d", src->p->path, src->line);
    char *start = trim(line);
    if (!*start || *start == ';' || *start == '#') return 0;
    if (*start == '[') {
        char *close = strchr(start, ']');
        if (!close) return fb_error_set(src->err, "%s: '[' without a closing ']'", where);
        char *rest = close + 1;
        while (isspace((unsigned char)*rest)) rest++;
        if (*rest && !inline_comment_at(start, rest))
            return fb_error_set(src->err, "%s: unexpected text '%s' after the section header", where,
                                shown(rest, b, sizeof b));
        *close = '\0';
        return open_section(src->p, trim(start + 1), src->line, where, &src->section, src->err);
    }
    for (const char *c = start; *c; c++) {
        if (*c == '=' || *c == ':') return 0;
        if (inline_comment_at(start, c)) break;
    }
    return fb_error_set(src->err, "%s: expected 'key = value', a [section] or a comment, not '%s'", where,
                        shown(start, b, sizeof b));
}

/* inih's reader: one whole line per call, checked first. */
static char *read_line(char *str, int num, void *stream) {
    ini_source *src = stream;
    if (src->failed || src->pos >= src->len) return NULL;
    const char *line = src->text + src->pos;
    const char *nl = memchr(line, '\n', src->len - src->pos);
    size_t n = nl ? (size_t)(nl - line) : src->len - src->pos;
    src->pos += n + (nl != NULL);
    src->line++;
    char where[600];
    snprintf(where, sizeof where, "%s:%d", src->p->path, src->line);
    if (memchr(line, '\0', n)) {
        fb_error_set(src->err, "%s: the line contains a NUL byte (not a text file?)", where);
        src->failed = true;
        return NULL;
    }
    if (n + 2 > (size_t)num) {
        fb_error_set(src->err, "%s: the line is longer than %d characters", where, num - 2);
        src->failed = true;
        return NULL;
    }
    char copy[INI_LINE_BUFFER];
    memcpy(copy, line, n);
    copy[n] = '\0';
    if (check_line(src, copy) != 0) {
        src->failed = true;
        return NULL;
    }
    memcpy(str, line, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

/* inih's handler. Its `section` is cut at 49 characters: the reader's is used. */
static int on_key(void *user, const char *section, const char *name, const char *value) {
    (void)section;
    ini_source *src = user;
    if (src->failed) return 0;
    char where[600], b[80];
    snprintf(where, sizeof where, "%s:%d", src->p->path, src->line);
    if (src->section.scope == 0) {
        fb_error_set(src->err,
                     "%s: key '%s' comes before any section; put it under [run], [fairness] or [backend.LABEL]", where,
                     shown(name, b, sizeof b));
        src->failed = true;
        return 0;
    }
    if (apply_key(src->p, src->section, name, value, where, src->line, src->base_dir, src->err) != 0) {
        src->failed = true;
        return 0;
    }
    return 1;
}

/* Keeps the file's text for the report; a long one is cut at a line end. */
static void keep_text(fb_profile *p, const char *text, size_t len) {
    if (len < sizeof p->text) {
        memcpy(p->text, text, len);
        p->text[len] = '\0';
        return;
    }
    char note[128];
    int note_len =
        snprintf(note, sizeof note, "\n; [fairbench: the profile is cut here; the file has %zu bytes]\n", len);
    size_t room = sizeof p->text - 1 - (size_t)note_len, cut = room;
    while (cut > 0 && text[cut - 1] != '\n') cut--;
    if (cut == 0) cut = room;
    memcpy(p->text, text, cut);
    memcpy(p->text + cut, note, (size_t)note_len + 1);
}

static int read_file(const char *path, char **out, size_t *out_len, fb_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fb_error_set(err, "%s: cannot open the profile: %s", path, strerror(errno));
    char *buf = malloc(MAX_PROFILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        return fb_error_set(err, "%s: out of memory", path);
    }
    size_t len = fread(buf, 1, MAX_PROFILE_BYTES + 1, f);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (read_errno) {
        free(buf);
        return fb_error_set(err, "%s: cannot read the profile: %s", path, strerror(read_errno));
    }
    if (len > MAX_PROFILE_BYTES) {
        free(buf);
        return fb_error_set(err, "%s: larger than %u KiB: not a profile", path, MAX_PROFILE_BYTES / 1024);
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The public functions                                                      */

void fb_profile_defaults(fb_profile *p) {
    memset(p, 0, sizeof *p);
    default_model_path(p->model, sizeof p->model);
    p->model_is_default = true;
    snprintf(p->prompt, sizeof p->prompt, "%s", DEFAULT_PROMPT);
    p->prompt_tokens = 0;
    p->gen_tokens = 64;
    p->warmup = 1;
    p->repetitions = 5;
    snprintf(p->reference, sizeof p->reference, "cpu_ref");
    p->timeout_s = 600;
    p->seed = 1;
    p->order = FB_ORDER_INTERLEAVED;
    p->cv_warn = 0.05;
    p->why_steps = 16;
    p->fairness = (fb_fairness){
        .weight_precision = FB_PRECISION_F16,
        .accumulate_precision = FB_PRECISION_F32,
        .allow_jit = true,
        .allow_graphs = true,
        .jit_cache = FB_JIT_CACHE_WARM,
        .threads = 0,
    };
}

int fb_profile_load(const char *path, fb_profile *p, fb_error *err) {
    fb_profile_defaults(p);
    if (strlen(path) >= sizeof p->path)
        return fb_error_set(err, "profile path longer than %zu characters", sizeof p->path - 1);
    strcpy(p->path, path);

    char *text = NULL;
    size_t len = 0;
    if (read_file(path, &text, &len, err) != 0) return -1;
    keep_text(p, text, len);

    char base_dir[sizeof p->path];
    strcpy(base_dir, path);
    char *slash = strrchr(base_dir, '/');
    if (!slash) base_dir[0] = '\0';
    else if (slash == base_dir)
        base_dir[1] = '\0';
    else
        *slash = '\0';

    ini_source src = {.text = text, .len = len, .p = p, .base_dir = base_dir, .err = err};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) src.pos = 3; /* UTF-8 byte-order mark */

    /* Debian's inih takes its options at run time: lines up to 8 KiB (a long
     * prompt), no indented continuation lines, "#" comments after a value
     * too, stop at the first error. Restored afterwards. */
    static char comment_prefixes[] = ";#";
    int saved_max_line = ini_max_line;
    bool saved_multiline = ini_allow_multiline, saved_stop = ini_stop_on_first_error;
    bool saved_use_stack = ini_use_stack, saved_no_value = ini_allow_no_value;
    char *saved_inline = ini_inline_comment_prefixes, *saved_start = ini_start_comment_prefixes;
    ini_max_line = INI_LINE_BUFFER;
    ini_allow_multiline = false;
    ini_stop_on_first_error = true;
    ini_use_stack = true;
    ini_allow_no_value = false;
    ini_inline_comment_prefixes = comment_prefixes;
    ini_start_comment_prefixes = comment_prefixes;
    int rc = ini_parse_stream(read_line, &src, on_key, &src);
    ini_max_line = saved_max_line;
    ini_allow_multiline = saved_multiline;
    ini_stop_on_first_error = saved_stop;
    ini_use_stack = saved_use_stack;
    ini_allow_no_value = saved_no_value;
    ini_inline_comment_prefixes = saved_inline;
    ini_start_comment_prefixes = saved_start;
    free(text);

    if (src.failed) return -1;
    if (rc == -2) return fb_error_set(err, "%s: out of memory while parsing", path);
    if (rc != 0) return fb_error_set(err, "%s:%d: syntax error", path, rc);
    return 0;
}

int fb_profile_set(fb_profile *p, const char *assignment, fb_error *err) {
    char where[300], b[200];
    snprintf(where, sizeof where, "--set %s", shown(assignment, b, sizeof b));
    char buf[INI_LINE_BUFFER];
    if (strlen(assignment) >= sizeof buf)
        return fb_error_set(err, "%s: longer than %zu characters", where, sizeof buf - 1);
    strcpy(buf, assignment);
    char *eq = strchr(buf, '=');
    char *dot = eq ? memchr(buf, '.', (size_t)(eq - buf)) : NULL;
    if (!eq || !dot) return fb_error_set(err, "%s: expected SECTION.KEY=VALUE (e.g. run.repetitions=3)", where);
    *eq = '\0';
    char *lhs = trim(buf), *value = trim(eq + 1);
    char *key = strrchr(lhs, '.');
    *key++ = '\0';
    key = trim(key);
    section_ref s;
    if (open_section(p, trim(lhs), 0, where, &s, err) != 0) return -1;
    if (apply_key(p, s, key, value, where, 0, "", err) != 0) return -1;

    size_t used = strlen(p->sets);
    int n = snprintf(p->sets + used, sizeof p->sets - used, "%s%s", used ? "; " : "", assignment);
    if (n < 0 || (size_t)n >= sizeof p->sets - used) memcpy(p->sets + sizeof p->sets - 4, "...", 4);
    return 0;
}

int fb_profile_finish(fb_profile *p, fb_error *err) {
    const char *file = p->path[0] ? p->path : "(default profile)";
    char list[FB_MAX_ENTRIES * 66] = "";
    for (int i = 0; i < p->n_backend_labels; i++) {
        if (i) strcat(list, ", ");
        strcat(list, p->backend_labels[i]);
    }
    if (p->n_backend_labels == 0)
        return fb_error_set(err, "%s: [run] backends is not set: name the backends to compare, e.g. backends = cpu_ref",
                            file);

    /* Every [backend.L] must be an entry, except that a backends list given
     * by --set (--backends) may pick a subset of the file's sections. */
    for (int i = 0; i < p->n_sections; i++) {
        const fb_backend_section *s = &p->sections[i];
        bool listed = false;
        for (int j = 0; j < p->n_backend_labels; j++) listed |= strcmp(p->backend_labels[j], s->label) == 0;
        if (listed || (s->line && !p->backends_line)) continue;
        if (s->line)
            return fb_error_set(err, "%s:%d: [backend.%s] is not in [run] backends (%s)", file, s->line, s->label,
                                list);
        return fb_error_set(err, "--set backend.%s...: [backend.%s] is not in [run] backends (%s)", s->label, s->label,
                            list);
    }

    /* entries: [fairness], then each entry's overrides */
    memset(p->entries, 0, sizeof p->entries);
    p->n_entries = p->n_backend_labels;
    for (int i = 0; i < p->n_entries; i++) {
        fb_entry *e = &p->entries[i];
        strcpy(e->label, p->backend_labels[i]);
        strcpy(e->plugin, e->label);
        e->fairness = p->fairness;
        for (int j = 0; j < p->n_sections; j++) {
            const fb_backend_section *s = &p->sections[j];
            if (strcmp(s->label, e->label) != 0) continue;
            e->line = s->line;
            if (s->plugin[0]) strcpy(e->plugin, s->plugin);
            memcpy(e->options, s->options, sizeof e->options);
            e->n_options = s->n_options;
            for (int bit = 0; bit < N_FAIRNESS_KEYS; bit++) {
                if (!(s->set & (1u << bit))) continue;
                const key_def *k = find_key(fairness_key_names[bit]);
                size_t offset = k->offset, size = k->size;
                const char *theirs = (const char *)&s->fairness + offset;
                if (memcmp((const char *)&p->fairness + offset, theirs, size) == 0) continue; /* same as everyone */
                memcpy((char *)&e->fairness + offset, theirs, size);
                e->overridden |= 1u << bit;
            }
        }
    }

    /* the model */
    struct stat st;
    const char *problem = NULL;
    char why[160];
    if (stat(p->model, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) problem = "does not exist";
        else
            snprintf(why, sizeof why, "cannot be read: %s", strerror(errno)), problem = why;
    } else if (!S_ISREG(st.st_mode)) {
        problem = "is not a file";
    }
    if (problem) {
        if (p->model_is_default && p->model_line)
            return fb_error_set(err, "%s:%d: the default model '%s' %s (run scripts/fetch-model.sh)", file,
                                p->model_line, p->model, problem);
        if (p->model_is_default)
            return fb_error_set(err, "%s: the default model '%s' %s (run scripts/fetch-model.sh)", file, p->model,
                                problem);
        if (p->model_line) return fb_error_set(err, "%s:%d: model '%s' %s", file, p->model_line, p->model, problem);
        return fb_error_set(err, "--set run.model: model '%s' %s", p->model, problem);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Finding a profile by name                                                 */

/* Appends s to buf, cutting at its size. */
static void append_text(char *buf, size_t size, const char *s) {
    size_t used = strlen(buf), n = strlen(s);
    if (n > size - 1 - used) n = size - 1 - used;
    memcpy(buf + used, s, n);
    buf[used + n] = '\0';
}

/* Appends sep (unless buf is empty) and s. */
static void append(char *buf, size_t size, const char *sep, const char *s) {
    if (buf[0]) append_text(buf, size, sep);
    append_text(buf, size, s);
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Tries dir/name (dir NULL: name as given), and dir/name.ini when name lacks
 * the suffix; records each path tried. */
static bool try_place(const char *dir, const char *name, char *out, size_t out_size, char *tried, size_t tried_size) {
    size_t name_len = strlen(name);
    bool has_suffix = name_len >= 4 && strcmp(name + name_len - 4, ".ini") == 0;
    for (int with_suffix = 0; with_suffix <= !has_suffix; with_suffix++) {
        char path[4096];
        int n =
            snprintf(path, sizeof path, "%s%s%s%s", dir ? dir : "", dir ? "/" : "", name, with_suffix ? ".ini" : "");
        if (n < 0 || (size_t)n >= sizeof path) continue;
        append(tried, tried_size, ", ", path);
        if (is_file(path) && (size_t)n < out_size) {
            memcpy(out, path, (size_t)n + 1);
            return true;
        }
    }
    return false;
}

int fb_profile_resolve(const char *name, char *out, size_t out_size, fb_error *err) {
    if (!name || !*name) return fb_error_set(err, "no profile named");
    char tried[1024] = "";
    if (try_place(NULL, name, out, out_size, tried, sizeof tried)) return 0;
    if (name[0] != '/') {
        const char *dirs[2] = {NULL, NULL};
        char installed[4096];
        ssize_t n = readlink("/proc/self/exe", installed, sizeof installed - 64);
        if (n > 0) {
            installed[n] = '\0';
            char *slash = strrchr(installed, '/');
            if (slash) {
                strcpy(slash, "/../share/fairbench/profiles");
                dirs[0] = installed;
            }
        }
#ifdef FB_SOURCE_PROFILE_DIR
        /* The source tree only for a binary that is not installed: an
         * installed one reads the profiles installed with it. */
        struct stat st;
        if (!dirs[0] || stat(dirs[0], &st) != 0 || !S_ISDIR(st.st_mode)) dirs[1] = FB_SOURCE_PROFILE_DIR;
#endif
        const char *base = strrchr(name, '/');
        base = base && base[1] ? base + 1 : NULL;
        for (int i = 0; i < 2; i++) {
            if (!dirs[i]) continue;
            if (try_place(dirs[i], name, out, out_size, tried, sizeof tried)) return 0;
            if (base && try_place(dirs[i], base, out, out_size, tried, sizeof tried)) return 0;
        }
    }
    return fb_error_set(err, "profile '%s' not found; tried %s", name, tried);
}

const char *fb_closest_name(const char *name, const char *const *names, size_t n) {
    const char *best = NULL;
    int best_distance = 3;
    for (size_t i = 0; i < n; i++) {
        int d = edit_distance(name, names[i]);
        if (d < best_distance) best = names[i], best_distance = d;
    }
    return best;
}
