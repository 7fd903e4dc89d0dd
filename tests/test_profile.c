/* test_profile.c - fairness profiles: every malformed profile gives its exact
 * "file:line: message"; defaults, overrides, --set, resolve order, relative
 * model paths, and every shipped profile in configs/profiles parses.
 *
 *   test_profile TMPDIR PROFILE_DIR
 *
 * TMPDIR is created if needed; the test writes its INI files there. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "profile.h"

static char tmp[PATH_MAX];         /* absolute */
static char profile_dir[PATH_MAX]; /* absolute */
static char model_file[PATH_MAX + 32];  /* an existing (empty) "model" */
static fb_profile prof;            /* large: not on the stack */

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, len, f) != len) {
        printf("cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fclose(f);
}

/* Writes tmp/name and returns its path (valid until the next call). */
static const char *ini(const char *name, const char *text) {
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    write_file(path, text, strlen(text));
    return path;
}

enum { AT_LOAD, AT_FINISH /* with run.model set to an existing file */, AT_FINISH_RAW };

/* Loads (and finishes) text; expects failure with path + tail exactly. */
#define EXPECT_ERROR(stage, text, tail) expect_error(__LINE__, stage, text, tail)
static void expect_error(int src_line, int stage, const char *text, const char *tail) {
    char name[64], expected[1024], set[sizeof model_file + 16];
    snprintf(name, sizeof name, "bad_%d.ini", src_line);
    const char *path = ini(name, text);
    snprintf(expected, sizeof expected, "%s%s", path, tail);
    fb_error err = {""};
    int rc = fb_profile_load(path, &prof, &err);
    if (rc == 0 && stage != AT_LOAD) {
        snprintf(set, sizeof set, "run.model=%s", model_file);
        if (stage == AT_FINISH) CHECK(fb_profile_set(&prof, set, &err) == 0, "line %d: %s", src_line, err.msg);
        rc = fb_profile_finish(&prof, &err);
    }
    CHECK(rc == -1, "test line %d: expected an error, got success", src_line);
    CHECK(strcmp(err.msg, expected) == 0, "test line %d:\n  got      %s\n  expected %s", src_line, err.msg, expected);
}

/* Loads text and finishes it with the model set; returns 0 on success. */
static int load_ok(const char *name, const char *text, fb_error *err) {
    char set[sizeof model_file + 16];
    snprintf(set, sizeof set, "run.model=%s", model_file);
    if (fb_profile_load(ini(name, text), &prof, err) != 0) return -1;
    if (fb_profile_set(&prof, set, err) != 0) return -1;
    return fb_profile_finish(&prof, err);
}

static void expect_set_error(const char *assignment, const char *expected) {
    fb_error err = {""};
    CHECK(fb_profile_set(&prof, assignment, &err) == -1, "--set %s should fail", assignment);
    CHECK(strcmp(err.msg, expected) == 0, "\n  got      %s\n  expected %s", err.msg, expected);
}

static const fb_entry *entry(const char *label) {
    for (int i = 0; i < prof.n_entries; i++)
        if (strcmp(prof.entries[i].label, label) == 0) return &prof.entries[i];
    return NULL;
}

static uint32_t bit(const char *key) {
    int n;
    const char *const *names = fb_profile_fairness_keys(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], key) == 0) return 1u << i;
    printf("no fairness key %s\n", key);
    exit(1);
}

/* ------------------------------------------------------------------------ */

static void test_defaults(void) {
    fb_profile_defaults(&prof);
    char expected_model[PATH_MAX + 64];
    snprintf(expected_model, sizeof expected_model, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", tmp);
    CHECK(strcmp(prof.model, expected_model) == 0, "default model %s", prof.model);
    CHECK(prof.model_is_default, "default model flag");
    CHECK(prof.prompt[0] != '\0', "default prompt");
    CHECK(prof.prompt_tokens == 0 && prof.gen_tokens == 64 && prof.warmup == 1 && prof.repetitions == 5, "counts");
    CHECK(strcmp(prof.reference, "cpu_ref") == 0, "reference %s", prof.reference);
    CHECK(prof.timeout_s == 600 && prof.seed == 1 && prof.order == FB_ORDER_INTERLEAVED && prof.cv_warn == 0.05,
          "run defaults");
    CHECK(prof.fairness.weight_precision == FB_PRECISION_F16 && prof.fairness.accumulate_precision == FB_PRECISION_F32,
          "precision defaults");
    CHECK(prof.fairness.allow_jit && prof.fairness.allow_graphs && prof.fairness.jit_cache == FB_JIT_CACHE_WARM &&
              prof.fairness.threads == 0,
          "fairness defaults");
    CHECK(prof.n_entries == 0 && prof.path[0] == '\0', "no entries");

    int n;
    const char *const *names = fb_profile_fairness_keys(&n);
    CHECK(n == 6 && strcmp(names[0], "weight_precision") == 0 && strcmp(names[5], "threads") == 0, "fairness keys");
    CHECK(strcmp(fb_precision_name(FB_PRECISION_F32), "f32") == 0 && strcmp(fb_precision_name(FB_PRECISION_BF16), "bf16") == 0 &&
              strcmp(fb_precision_name(FB_PRECISION_NATIVE), "native") == 0 &&
              strcmp(fb_precision_name((fb_precision)9), "unknown") == 0,
          "precision names");

    /* defaults only: finish wants backends */
    fb_error err = {""};
    CHECK(fb_profile_finish(&prof, &err) == -1, "finish without backends");
    CHECK(strcmp(err.msg, "(default profile): [run] backends is not set: name the backends to compare, e.g. backends = cpu_ref") == 0,
          "%s", err.msg);
}

static void test_malformed(void) {
    /* sections */
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = a\n\n[foo]\nx = 1\n",
                 ":4: unknown section [foo]; the sections are [run], [fairness] and [backend.LABEL]");
    EXPECT_ERROR(AT_LOAD, "[run]\n[backend]\n", ":2: unknown section [backend]; the sections are [run], [fairness] and [backend.LABEL]");
    EXPECT_ERROR(AT_LOAD, "; empty unknown sections count too\n[Run]\n",
                 ":2: unknown section [Run]; the sections are [run], [fairness] and [backend.LABEL]");
    EXPECT_ERROR(AT_LOAD, "[run]\n[backend.Eager]\n",
                 ":2: bad backend label 'Eager' in [backend.Eager]: a label is 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[backend.a-b]\n", ":1: bad backend label 'a-b' in [backend.a-b]: a label is 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[backend.]\n", ":1: bad backend label '' in [backend.]: a label is 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[backend.a234567890123456789012345678901234567890123456789012345678901234]\n",
                 ":1: bad backend label 'a23456789012345678901234567890123456789012345678901234567890...' in "
                 "[backend.a234567890123456789012345678901234567890123456789012...]: a label is 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[run]\n\n[fairness\nthreads = 1\n", ":3: '[' without a closing ']'");
    EXPECT_ERROR(AT_LOAD, "[run] extra\n", ":1: unexpected text 'extra' after the section header");

    /* lines that are not key = value */
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions 3\n", ":2: expected 'key = value', a [section] or a comment, not 'repetitions 3'");
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions ; = 3\n",
                 ":2: expected 'key = value', a [section] or a comment, not 'repetitions ; = 3'");
    EXPECT_ERROR(AT_LOAD, "[run]\n = 3\n", ":2: missing key name before '='");
    EXPECT_ERROR(AT_LOAD, "; a comment\nrepetitions = 3\n[run]\n",
                 ":2: key 'repetitions' comes before any section; put it under [run], [fairness] or [backend.LABEL]");

    /* unknown keys, with the closest known one or where the key belongs */
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = a\nrepetiton = 3\n", ":3: unknown key 'repetiton' in [run]; did you mean 'repetitions'?");
    EXPECT_ERROR(AT_LOAD, "[run]\nwarmpu = 3\n", ":2: unknown key 'warmpu' in [run]; did you mean 'warmup'?");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nthread = 3\n", ":2: unknown key 'thread' in [fairness]; did you mean 'threads'?");
    EXPECT_ERROR(AT_LOAD, "[backend.a]\nplugn = cpu_ref\n", ":2: unknown key 'plugn' in [backend.a]; did you mean 'plugin'?");
    EXPECT_ERROR(AT_LOAD, "[run]\nthreads = 3\n", ":2: unknown key 'threads' in [run]; 'threads' belongs in [fairness] or [backend.LABEL]");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nplugin = x\n", ":2: unknown key 'plugin' in [fairness]; 'plugin' belongs in [backend.LABEL]");
    EXPECT_ERROR(AT_LOAD, "[backend.a]\ngen_tokens = 3\n", ":2: unknown key 'gen_tokens' in [backend.a]; 'gen_tokens' belongs in [run]");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nprocess_isolation = yes\n",
                 ":2: unknown key 'process_isolation' in [fairness] (its keys: weight_precision, accumulate_precision, "
                 "allow_jit, allow_graphs, jit_cache, threads)");
    EXPECT_ERROR(AT_LOAD, "[run]\nRepetitions = 3\n", ":2: unknown key 'Repetitions' in [run]; did you mean 'repetitions'?");

    /* duplicates name both lines */
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions = 3\nwarmup = 1\nrepetitions = 4\n",
                 ":4: duplicate key 'repetitions' in [run] (first set on line 2)");
    EXPECT_ERROR(AT_LOAD, "[run]\nseed = 3\n[fairness]\nthreads = 1\n[run]\nseed = 4\n",
                 ":6: duplicate key 'seed' in [run] (first set on line 2)");
    EXPECT_ERROR(AT_LOAD, "[backend.a]\nthreads = 1\n[backend.b]\nthreads = 1\n[backend.a]\nthreads = 2\n",
                 ":6: duplicate key 'threads' in [backend.a] (first set on line 2)");
    EXPECT_ERROR(AT_LOAD, "[backend.a]\nplugin = x\nplugin = y\n", ":3: duplicate key 'plugin' in [backend.a] (first set on line 2)");

    /* bad values state what is expected */
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions = abc\n", ":2: repetitions = 'abc': expected an integer from 1 to 100000");
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions = 0\n", ":2: repetitions = '0': expected an integer from 1 to 100000");
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions = 3.5\n", ":2: repetitions = '3.5': expected an integer from 1 to 100000");
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions =\n", ":2: repetitions = '': expected an integer from 1 to 100000");
    EXPECT_ERROR(AT_LOAD, "[run]\ngen_tokens = 100001\n", ":2: gen_tokens = '100001': expected an integer from 1 to 100000");
    EXPECT_ERROR(AT_LOAD, "[run]\ngen_tokens = 99999999999999999999\n",
                 ":2: gen_tokens = '99999999999999999999': expected an integer from 1 to 100000");
    EXPECT_ERROR(AT_LOAD, "[run]\nwarmup = -1\n", ":2: warmup = '-1': expected an integer from 0 to 1000");
    EXPECT_ERROR(AT_LOAD, "[run]\nprompt_tokens = x\n",
                 ":2: prompt_tokens = 'x': expected an integer from 0 to 100000 (0: the prompt as tokenized)");
    EXPECT_ERROR(AT_LOAD, "[run]\ntimeout_s = 0\n", ":2: timeout_s = '0': expected a number of seconds greater than 0 and at most 86400");
    EXPECT_ERROR(AT_LOAD, "[run]\ntimeout_s = 1e9\n", ":2: timeout_s = '1e9': expected a number of seconds greater than 0 and at most 86400");
    EXPECT_ERROR(AT_LOAD, "[run]\ntimeout_s = nan\n", ":2: timeout_s = 'nan': expected a number of seconds greater than 0 and at most 86400");
    EXPECT_ERROR(AT_LOAD, "[run]\ncv_warn = 11\n", ":2: cv_warn = '11': expected a number from 0 to 10 (0.05 means 5%)");
    EXPECT_ERROR(AT_LOAD, "[run]\nseed = -1\n", ":2: seed = '-1': expected an integer from 0 to 18446744073709551615");
    EXPECT_ERROR(AT_LOAD, "[run]\nseed = 18446744073709551616\n",
                 ":2: seed = '18446744073709551616': expected an integer from 0 to 18446744073709551615");
    EXPECT_ERROR(AT_LOAD, "[run]\norder = random\n", ":2: order = 'random': expected one of interleaved, sequential");
    EXPECT_ERROR(AT_LOAD, "[run]\nreference = CPU\n",
                 ":2: reference = 'CPU': expected a backend label or plugin name of 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[run]\nprompt =\n", ":2: prompt = '': expected non-empty text of at most 4095 characters, on one line");
    EXPECT_ERROR(AT_LOAD, "[run]\nmodel =\n", ":2: model = '': expected a path to a GGUF file, or default");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nweight_precision = f8\n", ":2: weight_precision = 'f8': expected one of f32, f16, bf16, native");
    EXPECT_ERROR(AT_LOAD, "[fairness]\naccumulate_precision = native\n",
                 ":2: accumulate_precision = 'native': expected one of f32, f16, bf16");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nallow_jit = maybe\n", ":2: allow_jit = 'maybe': expected true or false (also yes/no, on/off, 1/0)");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nallow_graphs = 2\n", ":2: allow_graphs = '2': expected true or false (also yes/no, on/off, 1/0)");
    EXPECT_ERROR(AT_LOAD, "[fairness]\njit_cache = hot\n", ":2: jit_cache = 'hot': expected one of cold, warm");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nthreads = 4097\n", ":2: threads = '4097': expected an integer from 0 to 4096 (0: all cores)");
    EXPECT_ERROR(AT_LOAD, "[backend.a]\nthreads = many\n", ":2: threads = 'many': expected an integer from 0 to 4096 (0: all cores)");
    EXPECT_ERROR(AT_LOAD, "[backend.a]\nplugin = cpu-ref\n", ":2: plugin = 'cpu-ref': expected a plugin name of 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[run]\nrepetitions = 3 # comment after a value is fine\nwarmup = two ; but this is not\n",
                 ":3: warmup = 'two': expected an integer from 0 to 1000");

    /* backends */
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = a, b, a\n",
                 ":2: backends = 'a, b, a': 'a' is listed twice (give each entry its own label and [backend.LABEL] plugin = a)");
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = a,,b\n", ":2: backends = 'a,,b': an empty label (two commas in a row, or one at an end)");
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = a, b,\n", ":2: backends = 'a, b,': an empty label (two commas in a row, or one at an end)");
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends =  , \n", ":2: backends = ',': expected a comma-separated list of 1 to 16 backend labels");
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = cpu_ref, Eager_ops\n",
                 ":2: backends = 'cpu_ref, Eager_ops': 'Eager_ops' is not a valid label: use 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = cpu ref\n",
                 ":2: backends = 'cpu ref': 'cpu ref' is not a valid label: use 1-63 characters of a-z, 0-9 and _");
    EXPECT_ERROR(AT_LOAD, "[run]\nbackends = a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n",
                 ":2: backends = 'a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q': more than 16 backends");

    /* what finish checks */
    EXPECT_ERROR(AT_FINISH, "[run]\nbackends = a\n\n[backend.a]\nthreads = 1\n[backend.b]\nthreads = 1\n",
                 ":6: [backend.b] is not in [run] backends (a)");
    EXPECT_ERROR(AT_FINISH, "[run]\nrepetitions = 3\n", ": [run] backends is not set: name the backends to compare, e.g. backends = cpu_ref");
    {
        char tail[PATH_MAX * 2];
        snprintf(tail, sizeof tail, ":3: model '%s/nothere.gguf' does not exist", tmp);
        EXPECT_ERROR(AT_FINISH_RAW, "[run]\nbackends = a\nmodel = nothere.gguf\n", tail);
        snprintf(tail, sizeof tail, ": the default model '%s/models/SmolLM2-135M-Instruct.Q4_1.gguf' does not exist "
                 "(run scripts/fetch-model.sh)", tmp);
        EXPECT_ERROR(AT_FINISH_RAW, "[run]\nbackends = a\n", tail);
        snprintf(tail, sizeof tail, ":2: the default model '%s/models/SmolLM2-135M-Instruct.Q4_1.gguf' does not exist "
                 "(run scripts/fetch-model.sh)", tmp);
        EXPECT_ERROR(AT_FINISH_RAW, "[run]\nmodel = default\nbackends = a\n", tail);
        snprintf(tail, sizeof tail, ":2: model '%s' is not a file", tmp);
        char text[PATH_MAX + 64];
        snprintf(text, sizeof text, "[run]\nmodel = %s\nbackends = a\n", tmp);
        EXPECT_ERROR(AT_FINISH_RAW, text, tail);
    }

    /* bytes that are not a profile */
    {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/nul.ini", tmp);
        write_file(path, "[run]\nrepetitions = 3\nwarm\0up = 1\n", 33);
        fb_error err = {""};
        char expected[PATH_MAX + 128];
        snprintf(expected, sizeof expected, "%s:3: the line contains a NUL byte (not a text file?)", path);
        CHECK(fb_profile_load(path, &prof, &err) == -1 && strcmp(err.msg, expected) == 0, "%s", err.msg);

        static char text[20000];
        memset(text, 'x', sizeof text);
        memcpy(text, "[run]\nprompt = ", 15);
        text[sizeof text - 2] = '\n';
        text[sizeof text - 1] = '\0';
        EXPECT_ERROR(AT_LOAD, text, ":2: the line is longer than 8190 characters");
        text[15 + 4096] = '\n'; /* one character too many */
        text[15 + 4097] = '\0';
        EXPECT_ERROR(AT_LOAD, text,
                     ":2: prompt = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...': "
                     "expected non-empty text of at most 4095 characters, on one line");

        snprintf(path, sizeof path, "%s/absent.ini", tmp);
        snprintf(expected, sizeof expected, "%s: cannot open the profile: No such file or directory", path);
        CHECK(fb_profile_load(path, &prof, &err) == -1 && strcmp(err.msg, expected) == 0, "%s", err.msg);
        snprintf(expected, sizeof expected, "%s: cannot read the profile: Is a directory", tmp);
        CHECK(fb_profile_load(tmp, &prof, &err) == -1 && strcmp(err.msg, expected) == 0, "%s", err.msg);
    }
}

static void test_good_syntax(void) {
    fb_error err = {""};
    /* BOM, CRLF, indentation, comments of both kinds, ':' separator, a long
     * prompt, a 63-character label (inih alone would cut it at 49) */
    static char text[8192];
    char prompt[4096];
    memset(prompt, 'p', 4095);
    prompt[4095] = '\0';
    const char *label63 = "b23456789012345678901234567890123456789012345678901234567890123";
    snprintf(text, sizeof text,
             "\xEF\xBB\xBF; profile\r\n"
             "[run]\r\n"
             "  backends = cpu_ref ,%s\r\n"
             "\trepetitions = 7 ; seven\r\n"
             "# a comment\r\n"
             "warmup: 2 # two\r\n"
             "prompt = Hello; world = yes: %s\r\n"
             "seed = 18446744073709551615\r\n"
             "timeout_s = 0.5\n"
             "order = Sequential\n"
             "[ fairness ]\n"
             "allow_jit = OFF\n"
             "[backend.%s]\n"
             "threads = 3\n",
             label63, prompt + 20, label63);
    CHECK(load_ok("syntax.ini", text, &err) == 0, "%s", err.msg);
    CHECK(prof.repetitions == 7 && prof.warmup == 2, "rep %d warmup %d", prof.repetitions, prof.warmup);
    CHECK(strncmp(prof.prompt, "Hello; world = yes: ppp", 23) == 0 && strlen(prof.prompt) == 4095, "prompt %.30s (%zu)",
          prof.prompt, strlen(prof.prompt));
    CHECK(prof.seed == UINT64_MAX && prof.timeout_s == 0.5 && prof.order == FB_ORDER_SEQUENTIAL, "run values");
    CHECK(!prof.fairness.allow_jit, "allow_jit off");
    CHECK(prof.n_entries == 2 && strcmp(prof.entries[1].label, label63) == 0 && prof.entries[1].fairness.threads == 3 &&
              prof.entries[1].overridden == bit("threads") && prof.entries[1].line == 13,
          "63-character label, line %d", prof.entries[1].line);
    CHECK(strstr(prof.text, "[backend.b234") != NULL, "text kept");
}

static void test_entries(void) {
    fb_error err = {""};
    const char *text =
        "[run]\n"                                      /* 1 */
        "backends = jit, eager, plain , again\n"       /* 2 */
        "reference = cpu_ref\n"                        /* 3 */
        "[fairness]\n"                                 /* 4 */
        "weight_precision = f16\n"                     /* 5 */
        "threads = 4\n"                                /* 6 */
        "[backend.eager]\n"                            /* 7 */
        "plugin = eager_ops\n"                         /* 8 */
        "weight_precision = f32\n"                     /* 9 */
        "allow_jit = no\n"                             /* 10 */
        "allow_graphs = false\n"                       /* 11 */
        "[backend.jit]\n"                              /* 12 */
        "plugin = jit_fused\n"                         /* 13 */
        "threads = 4\n"                                /* 14: same as [fairness]: no override */
        "jit_cache = cold\n"                           /* 15 */
        "[backend.again]\n"                            /* 16 */
        "plugin = eager_ops\n"                         /* 17 */
        "accumulate_precision = bf16\n";               /* 18 */
    CHECK(load_ok("entries.ini", text, &err) == 0, "%s", err.msg);
    CHECK(prof.n_entries == 4, "n_entries %d", prof.n_entries);
    CHECK(strcmp(prof.entries[0].label, "jit") == 0 && strcmp(prof.entries[1].label, "eager") == 0 &&
              strcmp(prof.entries[2].label, "plain") == 0 && strcmp(prof.entries[3].label, "again") == 0,
          "entries in backends order");
    const fb_entry *e = entry("eager");
    CHECK(e && strcmp(e->plugin, "eager_ops") == 0 && e->line == 7, "eager plugin/line");
    CHECK(e && e->fairness.weight_precision == FB_PRECISION_F32 && !e->fairness.allow_jit && !e->fairness.allow_graphs &&
              e->fairness.threads == 4 && e->fairness.jit_cache == FB_JIT_CACHE_WARM,
          "eager fairness");
    CHECK(e && e->overridden == (bit("weight_precision") | bit("allow_jit") | bit("allow_graphs")), "eager overridden %#x",
          e ? e->overridden : 0);
    e = entry("jit");
    CHECK(e && strcmp(e->plugin, "jit_fused") == 0 && e->fairness.jit_cache == FB_JIT_CACHE_COLD &&
              e->fairness.weight_precision == FB_PRECISION_F16 && e->fairness.threads == 4,
          "jit fairness");
    CHECK(e && e->overridden == bit("jit_cache"), "jit overridden %#x (threads = common value is not an override)",
          e ? e->overridden : 0);
    e = entry("plain");
    CHECK(e && strcmp(e->plugin, "plain") == 0 && e->overridden == 0 && e->line == 0 && e->fairness.threads == 4 &&
              e->fairness.weight_precision == FB_PRECISION_F16,
          "plain: plugin = label, common settings");
    e = entry("again");
    CHECK(e && strcmp(e->plugin, "eager_ops") == 0 && e->overridden == bit("accumulate_precision") &&
              e->fairness.accumulate_precision == FB_PRECISION_BF16,
          "again");

    /* --set after the file: run, fairness and backend keys */
    CHECK(fb_profile_load(ini("entries.ini", text), &prof, &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "run.repetitions=3", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, " fairness.threads = 2 ", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "backend.plain.threads=1", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "backend.plain.plugin=cpu_ref", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "backend.eager.weight_precision=f16", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "run.prompt=a = b", &err) == 0, "%s", err.msg);
    char set[sizeof model_file + 16];
    snprintf(set, sizeof set, "run.model=%s", model_file);
    CHECK(fb_profile_set(&prof, set, &err) == 0, "%s", err.msg);
    CHECK(fb_profile_finish(&prof, &err) == 0, "%s", err.msg);
    CHECK(prof.repetitions == 3 && strcmp(prof.prompt, "a = b") == 0 && prof.model_line == 0 && !prof.model_is_default,
          "run --set");
    e = entry("plain");
    CHECK(e && strcmp(e->plugin, "cpu_ref") == 0 && e->fairness.threads == 1 && e->overridden == bit("threads"),
          "backend --set");
    e = entry("jit");
    CHECK(e && e->fairness.threads == 4 && e->overridden == (bit("threads") | bit("jit_cache")),
          "fairness --set: jit's threads = 4 now differs from the common 2");
    e = entry("again");
    CHECK(e && e->fairness.threads == 2, "fairness --set reaches the entries");
    e = entry("eager");
    CHECK(e && e->overridden == (bit("allow_jit") | bit("allow_graphs")), "eager back to f16: %#x", e ? e->overridden : 0);
    char expected_sets[PATH_MAX + 256];
    snprintf(expected_sets, sizeof expected_sets,
             "run.repetitions=3;  fairness.threads = 2 ; backend.plain.threads=1; backend.plain.plugin=cpu_ref; "
             "backend.eager.weight_precision=f16; run.prompt=a = b; %s", set);
    CHECK(strcmp(prof.sets, expected_sets) == 0, "sets '%s'", prof.sets);

    /* bad --set */
    expect_set_error("run.repetitions=abc", "--set run.repetitions=abc: repetitions = 'abc': expected an integer from 1 to 100000");
    expect_set_error("repetitions=3", "--set repetitions=3: expected SECTION.KEY=VALUE (e.g. run.repetitions=3)");
    expect_set_error("run.repetitions", "--set run.repetitions: expected SECTION.KEY=VALUE (e.g. run.repetitions=3)");
    expect_set_error("foo.x=1", "--set foo.x=1: unknown section [foo]; the sections are [run], [fairness] and [backend.LABEL]");
    expect_set_error("run.threads=1", "--set run.threads=1: unknown key 'threads' in [run]; 'threads' belongs in [fairness] or [backend.LABEL]");
    expect_set_error("run.repetitons=3", "--set run.repetitons=3: unknown key 'repetitons' in [run]; did you mean 'repetitions'?");
    expect_set_error("backend.Plain.threads=1",
                     "--set backend.Plain.threads=1: bad backend label 'Plain' in [backend.Plain]: a label is 1-63 characters of a-z, 0-9 and _");
    expect_set_error("fairness.allow_jit=sometimes",
                     "--set fairness.allow_jit=sometimes: allow_jit = 'sometimes': expected true or false (also yes/no, on/off, 1/0)");
    expect_set_error("run.=3", "--set run.=3: missing key name before '='");

    /* --set of a backend that is not an entry fails at finish */
    CHECK(fb_profile_set(&prof, "backend.ghost.threads=1", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_finish(&prof, &err) == -1 &&
              strcmp(err.msg, "--set backend.ghost...: [backend.ghost] is not in [run] backends (jit, eager, plain, again)") == 0,
          "%s", err.msg);
    /* ... unless backends names it; a backends list from --set picks a
     * subset: the file's other sections are then left unused (not those of
     * --set: plain was made by --set backend.plain.*) */
    CHECK(fb_profile_set(&prof, "run.backends=ghost, eager, plain", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_finish(&prof, &err) == 0, "%s", err.msg);
    CHECK(prof.n_entries == 3 && strcmp(prof.entries[0].label, "ghost") == 0 && prof.entries[0].fairness.threads == 1 &&
              prof.entries[0].overridden == bit("threads") && strcmp(prof.entries[1].plugin, "eager_ops") == 0,
          "--set backends subset");
    CHECK(fb_profile_set(&prof, "backend.ghost2.threads=1", &err) == 0, "%s", err.msg);
    CHECK(fb_profile_finish(&prof, &err) == -1 &&
              strcmp(err.msg, "--set backend.ghost2...: [backend.ghost2] is not in [run] backends (ghost, eager, plain)") == 0,
          "%s", err.msg);

    /* --set overrides a value of the file without a duplicate error; a --set model that is missing */
    CHECK(fb_profile_load(ini("entries.ini", text), &prof, &err) == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "run.reference=eager", &err) == 0 && strcmp(prof.reference, "eager") == 0, "%s", err.msg);
    CHECK(fb_profile_set(&prof, "run.model=no/such.gguf", &err) == 0, "%s", err.msg);
    CHECK(strcmp(prof.model, "no/such.gguf") == 0, "--set model relative to the current folder: %s", prof.model);
    CHECK(fb_profile_finish(&prof, &err) == -1 && strcmp(err.msg, "--set run.model: model 'no/such.gguf' does not exist") == 0,
          "%s", err.msg);
}

static void test_model_paths(void) {
    fb_error err = {""};
    char dir[PATH_MAX + 16], path[PATH_MAX + 32], expected[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/sub", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    write_file(path, "", 0);

    CHECK(fb_profile_load(ini("sub/rel.ini", "[run]\nbackends = a\nmodel = m.gguf\n"), &prof, &err) == 0, "%s", err.msg);
    snprintf(expected, sizeof expected, "%s/sub/m.gguf", tmp);
    CHECK(strcmp(prof.model, expected) == 0 && prof.model_line == 3 && !prof.model_is_default, "relative model %s",
          prof.model);
    CHECK(fb_profile_finish(&prof, &err) == 0, "relative model exists: %s", err.msg);

    CHECK(fb_profile_load(ini("sub/rel.ini", "[run]\nmodel = ../sub/m.gguf\n"), &prof, &err) == 0, "%s", err.msg);
    snprintf(expected, sizeof expected, "%s/sub/../sub/m.gguf", tmp);
    CHECK(strcmp(prof.model, expected) == 0, "../ model %s", prof.model);

    CHECK(fb_profile_load(ini("sub/rel.ini", "[run]\nmodel = ~/sub/m.gguf\n"), &prof, &err) == 0, "%s", err.msg);
    snprintf(expected, sizeof expected, "%s/sub/m.gguf", tmp); /* HOME is tmp */
    CHECK(strcmp(prof.model, expected) == 0, "~ model %s", prof.model);

    CHECK(fb_profile_load(ini("sub/rel.ini", "[run]\nmodel = /abs/m.gguf\n"), &prof, &err) == 0, "%s", err.msg);
    CHECK(strcmp(prof.model, "/abs/m.gguf") == 0, "absolute model %s", prof.model);

    CHECK(fb_profile_load(ini("sub/rel.ini", "[run]\nmodel = default\n"), &prof, &err) == 0, "%s", err.msg);
    snprintf(expected, sizeof expected, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", tmp);
    CHECK(strcmp(prof.model, expected) == 0 && prof.model_is_default && prof.model_line == 2, "default model %s",
          prof.model);

    /* FAIRBENCH_MODEL_DIR unset: $HOME/.cache/fairbench/models */
    unsetenv("FAIRBENCH_MODEL_DIR");
    fb_profile_defaults(&prof);
    snprintf(expected, sizeof expected, "%s/.cache/fairbench/models/SmolLM2-135M-Instruct.Q4_1.gguf", tmp);
    CHECK(strcmp(prof.model, expected) == 0, "default model under HOME: %s", prof.model);
    snprintf(expected, sizeof expected, "%s/models", tmp);
    setenv("FAIRBENCH_MODEL_DIR", expected, 1);
}

static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void test_resolve(void) {
    fb_error err = {""};
    char out[PATH_MAX], path[PATH_MAX + 64], cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    char rdir[PATH_MAX + 16];
    snprintf(rdir, sizeof rdir, "%s/resolve", tmp);
    mkdir(rdir, 0755);
    CHECK(chdir(rdir) == 0, "chdir %s", rdir);
    unlink("fair.ini");

    /* as given */
    snprintf(path, sizeof path, "%s/mine.ini", rdir);
    write_file(path, "[run]\n", 6);
    CHECK(fb_profile_resolve(path, out, sizeof out, &err) == 0 && strcmp(out, path) == 0, "absolute: %s", err.msg);
    CHECK(fb_profile_resolve("mine.ini", out, sizeof out, &err) == 0 && strcmp(out, "mine.ini") == 0, "relative");
    CHECK(fb_profile_resolve("mine", out, sizeof out, &err) == 0 && strcmp(out, "mine.ini") == 0, "without .ini: %s", out);

    /* not here: the source tree's profiles (nothing is installed next to the test) */
    char shipped[PATH_MAX + 32];
    snprintf(shipped, sizeof shipped, "%s/fair.ini", profile_dir);
    CHECK(fb_profile_resolve("fair.ini", out, sizeof out, &err) == 0 && same_file(out, shipped), "source dir: %s %s", out,
          err.msg);
    CHECK(fb_profile_resolve("profiles/fair.ini", out, sizeof out, &err) == 0 && same_file(out, shipped),
          "profiles/fair.ini: %s %s", out, err.msg);
    CHECK(fb_profile_resolve("configs/profiles/fair.ini", out, sizeof out, &err) == 0 && same_file(out, shipped),
          "configs/profiles/fair.ini: %s", err.msg);
    CHECK(fb_profile_resolve("fair", out, sizeof out, &err) == 0 && same_file(out, shipped), "fair: %s", err.msg);

    /* a file in the current folder comes first */
    write_file("fair.ini", "[run]\n", 6);
    CHECK(fb_profile_resolve("fair.ini", out, sizeof out, &err) == 0 && strcmp(out, "fair.ini") == 0, "cwd first: %s", out);
    unlink("fair.ini");

    /* not found: the message lists the places tried */
    CHECK(fb_profile_resolve("nope.ini", out, sizeof out, &err) == -1, "nope.ini found?");
    CHECK(strncmp(err.msg, "profile 'nope.ini' not found; tried nope.ini, ", 46) == 0 &&
              strstr(err.msg, "/share/fairbench/profiles/nope.ini") && strstr(err.msg, "configs/profiles/nope.ini"),
          "%s", err.msg);
    CHECK(fb_profile_resolve("/no/such.ini", out, sizeof out, &err) == -1 &&
              strcmp(err.msg, "profile '/no/such.ini' not found; tried /no/such.ini") == 0,
          "%s", err.msg);
    CHECK(fb_profile_resolve("", out, sizeof out, &err) == -1, "empty name");
    if (cwd[0] && chdir(cwd) != 0) printf("cannot go back to %s\n", cwd);
}

/* Every shipped profile parses; the model is pointed at an existing file. */
/* [run] vary: a list of [fairness] keys, or none; a typo names the key it meant. */
static void test_vary(void) {
    fb_error err = {""};
    CHECK(load_ok("vary.ini", "[run]\nbackends = a, b\nvary = weight_precision , threads\n", &err) == 0, "%s", err.msg);
    CHECK(prof.vary == (bit("weight_precision") | bit("threads")), "vary = weight_precision, threads: %#x", prof.vary);
    CHECK(load_ok("vary_none.ini", "[run]\nbackends = a\nvary = none\n", &err) == 0 && prof.vary == 0, "vary = none");
    CHECK(load_ok("vary_absent.ini", "[run]\nbackends = a\n", &err) == 0 && prof.vary == 0, "vary defaults to none");
    EXPECT_ERROR(AT_LOAD, "[run]\nvary = threads, weight_precison\n",
                 ":2: vary = 'threads, weight_precison': 'weight_precison' is not a [fairness] key; did you mean "
                 "'weight_precision'?");
    EXPECT_ERROR(AT_LOAD, "[run]\nvary = model\n",
                 ":2: vary = 'model': expected a comma-separated list of [fairness] keys (weight_precision, "
                 "accumulate_precision, allow_jit, allow_graphs, jit_cache, threads), or none");
    EXPECT_ERROR(AT_LOAD, "[fairness]\nvary = threads\n",
                 ":2: unknown key 'vary' in [fairness]; 'vary' belongs in [run]");
    const char *const names[] = {"cpu_ref", "eager_ops", "jit_fused"};
    CHECK(fb_closest_name("cpu_rf", names, 3) == names[0], "closest name to cpu_rf");
    CHECK(fb_closest_name("tinygrad", names, 3) == NULL, "nothing close to tinygrad");
}

static void test_shipped(void) {
    static const char *const run_keys[] = {"model", "prompt", "prompt_tokens", "gen_tokens", "warmup", "repetitions",
                                           "backends", "reference", "timeout_s", "seed", "order", "cv_warn", "plugin", "vary"};
    DIR *d = opendir(profile_dir);
    CHECK(d != NULL, "cannot open %s", profile_dir);
    if (!d) return;
    int count = 0;
    struct dirent *de;
    char set[sizeof model_file + 16];
    snprintf(set, sizeof set, "run.model=%s", model_file);
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".ini") != 0) continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", profile_dir, de->d_name);
        fb_error err = {""};
        int rc = fb_profile_load(path, &prof, &err);
        if (rc == 0) rc = fb_profile_set(&prof, set, &err);
        if (rc == 0) rc = fb_profile_finish(&prof, &err);
        CHECK(rc == 0, "%s: %s", de->d_name, err.msg);
        CHECK(prof.n_entries > 0, "%s has entries", de->d_name);
        count++;

        if (strcmp(de->d_name, "fair.ini") == 0) {
            CHECK(prof.n_entries == 3 && strcmp(prof.entries[0].plugin, "cpu_ref") == 0 &&
                      strcmp(prof.entries[1].plugin, "eager_ops") == 0 && strcmp(prof.entries[2].plugin, "jit_fused") == 0,
                  "fair.ini entries");
            for (int i = 0; i < prof.n_entries; i++) CHECK(prof.entries[i].overridden == 0, "fair.ini has no override");
            CHECK(prof.fairness.weight_precision == FB_PRECISION_F16 && prof.fairness.accumulate_precision == FB_PRECISION_F32 &&
                      prof.fairness.allow_jit && prof.fairness.allow_graphs && prof.fairness.jit_cache == FB_JIT_CACHE_WARM,
                  "fair.ini fairness");
            CHECK(prof.gen_tokens == 64 && prof.warmup == 1 && prof.repetitions == 5, "fair.ini counts");
            /* every key is documented there */
            for (size_t i = 0; i < sizeof run_keys / sizeof run_keys[0]; i++)
                CHECK(strstr(prof.text, run_keys[i]) != NULL, "fair.ini documents %s", run_keys[i]);
            int nf;
            const char *const *fk = fb_profile_fairness_keys(&nf);
            for (int i = 0; i < nf; i++) CHECK(strstr(prof.text, fk[i]) != NULL, "fair.ini documents %s", fk[i]);
        } else if (strcmp(de->d_name, "unfair.ini") == 0) {
            const fb_entry *e = entry("eager_ops");
            CHECK(e && e->fairness.weight_precision == FB_PRECISION_F32 && !e->fairness.allow_jit && !e->fairness.allow_graphs,
                  "unfair.ini: eager_ops is held back");
            CHECK(e && e->overridden != 0, "unfair.ini: overrides recorded");
            e = entry("jit_fused");
            CHECK(e && e->fairness.weight_precision == FB_PRECISION_F16 && e->fairness.allow_jit, "unfair.ini: jit_fused");
            CHECK(prof.vary == 0, "unfair.ini declares no vary: its overrides stay unfair");
        } else if (strcmp(de->d_name, "cpu.ini") == 0) {
            for (int i = 0; i < prof.n_entries; i++)
                CHECK(strcmp(prof.entries[i].plugin, "cpu_ref") == 0, "cpu.ini: %s is cpu_ref", prof.entries[i].label);
            CHECK(prof.n_entries >= 3, "cpu.ini entries");
            CHECK(prof.vary == (bit("weight_precision") | bit("threads")), "cpu.ini varies weight_precision and threads");
        } else if (strcmp(de->d_name, "smoke.ini") == 0) {
            CHECK(prof.n_entries == 2 && prof.gen_tokens == 8 && prof.repetitions == 3 && prof.warmup == 1 &&
                      prof.prompt_tokens == 8,
                  "smoke.ini counts");
            const fb_entry *b = entry("cpu_ref_b");
            CHECK(b && strcmp(b->plugin, "cpu_ref") == 0 && b->overridden == bit("threads"), "smoke.ini cpu_ref_b");
            CHECK(prof.vary == bit("threads"), "smoke.ini varies threads");
        }
    }
    closedir(d);
    CHECK(count >= 4, "found %d profiles", count);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_profile TMPDIR PROFILE_DIR\n");
        return 2;
    }
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", argv[1]);
    if (system(cmd) != 0) printf("cannot create %s\n", argv[1]);
    if (!realpath(argv[1], tmp) || !realpath(argv[2], profile_dir)) {
        printf("cannot resolve %s or %s: %s\n", argv[1], argv[2], strerror(errno));
        return 1;
    }
    snprintf(cmd, sizeof cmd, "%s/models", tmp);
    setenv("FAIRBENCH_MODEL_DIR", cmd, 1); /* no model there: the default is missing */
    setenv("HOME", tmp, 1);
    snprintf(model_file, sizeof model_file, "%s/model.gguf", tmp);
    write_file(model_file, "", 0);

    test_defaults();
    test_malformed();
    test_good_syntax();
    test_entries();
    test_model_paths();
    test_resolve();
    test_vary();
    test_shipped();
    return check_summary();
}
