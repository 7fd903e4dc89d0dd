/* test_tokenizer.c - the tokenizer against golden ids from llama.cpp
 * (tests/data/tokenizer/, made by make_golden.py), round trips, special
 * tokens, bad input, hostile vocabularies, large inputs and a synth model.
 *
 *   test_tokenizer DATA_DIR TMP_DIR                 committed vocabularies
 *   test_tokenizer --real-model DATA_DIR FETCH_SH   SmolLM2 (exit 77 when absent)
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "gguf.h"
#include "gguf_write.h"
#include "synth.h"
#include "tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* The bytes the vocabulary loaded last can spell (a token stands for exactly
 * that byte). Round trips are checked only on texts made of these: a
 * byte-level vocabulary drops the others, as llama.cpp does (SmolLM2 has no
 * token for 0x04, for instance). */
static bool g_spellable[256];

static void note_vocab(const fb_tokenizer *t) {
    memset(g_spellable, 0, sizeof g_spellable);
    for (uint32_t id = 0; id < fb_tokenizer_n_vocab(t); id++) {
        size_t len;
        const char *p = fb_token_piece(t, (int32_t)id, &len);
        if (len == 1) g_spellable[(uint8_t)p[0]] = true;
    }
}

static bool spellable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!g_spellable[(uint8_t)s[i]]) return false;
    return true;
}

static fb_tokenizer *load_vocab(const char *path) {
    gguf_file *g;
    fb_error err;
    if (gguf_open(path, &g, &err)) {
        printf("FAIL cannot open %s: %s\n", path, err.msg);
        check_failed++;
        return NULL;
    }
    fb_tokenizer *t;
    int rc = fb_tokenizer_load(g, &t, &err);
    gguf_close(g);
    if (rc) {
        printf("FAIL cannot load the tokenizer of %s: %s\n", path, err.msg);
        check_failed++;
        return NULL;
    }
    note_vocab(t);
    return t;
}

static uint64_t fnv1a64_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xFF;
            h *= 0x100000001B3ull;
        }
    }
    return h;
}

/* "0 1 2 ... hi-1" from lo, as make_golden.py writes it. */
static char *numbers_text(long lo, long hi, size_t *len) {
    size_t cap = (size_t)(hi - lo) * 8 + 16, n = 0;
    char *s = malloc(cap);
    for (long i = lo; i < hi; i++) n += (size_t)snprintf(s + n, cap - n, i == lo ? "%ld" : " %ld", i);
    *len = n;
    return s;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool contains(const char *s, size_t n, const char *needle) {
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++)
        if (memcmp(s + i, needle, l) == 0) return true;
    return false;
}

/* Round trip checks on one text: plain (with and without BOS/EOS), and with
 * special tokens parsed and rendered. */
static void check_round_trip(const fb_tokenizer *t, const char *text, size_t len, const char *label) {
    if (strcmp(fb_tokenizer_model(t), "llama") == 0 && contains(text, len, "\xE2\x96\x81")) return; /* "▁" == " " */
    if (!spellable(text, len)) return;
    for (int mode = 0; mode < 3; mode++) {
        bool add_special = mode == 1, parse_special = mode == 2, render = mode == 2;
        int32_t *ids;
        size_t n;
        fb_error err;
        if (fb_tokenize(t, text, len, add_special, parse_special, &ids, &n, &err)) {
            CHECK(0, "%s: tokenize failed: %s", label, err.msg);
            continue;
        }
        char *back;
        size_t back_len;
        if (fb_detokenize(t, ids, n, render, &back, &back_len, &err)) {
            CHECK(0, "%s: detokenize failed: %s", label, err.msg);
        } else {
            bool same = back_len == len && memcmp(back, text, len) == 0;
            CHECK(same, "%s (mode %d): round trip gives %zu bytes '%.60s' for %zu bytes '%.60s'", label, mode, back_len,
                  back, len, text);
            free(back);
        }
        free(ids);
    }
}

// ------------------------------------------------------------------ golden vectors

typedef struct golden_stats {
    size_t cases, ids, ids_matched, cases_failed, texts;
} golden_stats;

static void run_golden(const fb_tokenizer *t, const char *tsv_path, const char *name, golden_stats *st) {
    memset(st, 0, sizeof *st);
    size_t size;
    char *data = read_file(tsv_path, &size);
    CHECK(data != NULL, "cannot read %s", tsv_path);
    if (!data) return;
    char *save = NULL;
    int line_no = 0;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (line[0] == '#' || line[0] == '\0') continue;
        char *fields[4] = {0};
        int nf = 0;
        for (char *p = line; nf < 4;) {
            fields[nf++] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        if (nf < 3) {
            CHECK(0, "%s:%d: malformed line", tsv_path, line_no);
            continue;
        }
        if (!fields[3]) fields[3] = "";
        bool add_special = fields[1][0] == '1', parse_special = fields[1][1] == '1';
        char *text;
        size_t len;
        bool is_numbers = strcmp(fields[0], "numbers") == 0;
        if (is_numbers) {
            long lo = 0, hi = 0;
            sscanf(fields[2], "%ld-%ld", &lo, &hi);
            text = numbers_text(lo, hi, &len);
        } else {
            size_t hex_len = strlen(fields[2]);
            len = hex_len / 2;
            text = malloc(len + 1);
            for (size_t i = 0; i < len; i++)
                text[i] = (char)(hexval(fields[2][2 * i]) * 16 + hexval(fields[2][2 * i + 1]));
            text[len] = '\0';
        }
        int32_t *ids;
        size_t n;
        fb_error err;
        st->cases++;
        if (fb_tokenize(t, text, len, add_special, parse_special, &ids, &n, &err)) {
            CHECK(0, "%s:%d: tokenize failed: %s", name, line_no, err.msg);
            st->cases_failed++;
            free(text);
            continue;
        }
        if (is_numbers) {
            size_t want_n = 0;
            unsigned long long want_h = 0;
            sscanf(fields[3], "%zu:%llx", &want_n, &want_h);
            bool ok = want_n == n && want_h == fnv1a64_ids(ids, n);
            st->ids += want_n;
            st->ids_matched += ok ? want_n : 0;
            st->cases_failed += !ok;
            CHECK(ok, "%s:%d: numbers %s: %zu ids (hash %016" PRIx64 "), want %zu (%016llx)", name, line_no, fields[2],
                  n, fnv1a64_ids(ids, n), want_n, want_h);
        } else {
            size_t want_n = 0, first_diff = SIZE_MAX;
            char *p = fields[3];
            while (*p) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p) break;
                if (first_diff == SIZE_MAX && (want_n >= n || ids[want_n] != v)) first_diff = want_n;
                else if (want_n < n && ids[want_n] == v && first_diff == SIZE_MAX)
                    st->ids_matched++;
                want_n++;
                p = end;
            }
            if (first_diff == SIZE_MAX && n != want_n) first_diff = want_n < n ? want_n : n;
            st->ids += want_n;
            if (first_diff != SIZE_MAX) {
                st->cases_failed++;
                CHECK(0,
                      "%s:%d: '%.50s' (add_special %d, parse_special %d): %zu ids, want %zu; first difference at %zu: "
                      "got %" PRId32 ", want line: %.120s",
                      name, line_no, text, add_special, parse_special, n, want_n, first_diff,
                      first_diff < n ? ids[first_diff] : -1, fields[3]);
            } else {
                check_passed++;
            }
            if (!add_special && !parse_special) {
                st->texts++;
                check_round_trip(t, text, len, name);
            }
        }
        free(ids);
        free(text);
    }
    free(data);
    printf("golden %-12s %5zu cases, %7zu ids, %7zu matched (%.2f%%), %zu cases failed; round trips on %zu texts\n",
           name, st->cases, st->ids, st->ids_matched,
           st->ids ? 100.0 * (double)st->ids_matched / (double)st->ids : 100.0, st->cases_failed, st->texts);
}

// ------------------------------------------------------------------ random round trips

static uint64_t rng_state;
static uint32_t rng_next(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static size_t put_utf8(uint32_t cp, char *out) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) return out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xE0 | (cp >> 12)), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               out[2] = (char)(0x80 | (cp & 0x3F)), 3;
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void random_round_trips(const fb_tokenizer *t, const char *name, uint64_t seed, int count) {
    static const uint32_t ranges[][2] = {{0x20, 0x7E},     {0x20, 0x7E},     {0x00, 0x20},       {0x80, 0x7FF},
                                         {0x800, 0xD7FF},  {0xE000, 0xFFFF}, {0x10000, 0x3FFFF}, {0x1F300, 0x1F64F},
                                         {0x4E00, 0x9FFF}, {0x0600, 0x06FF}};
    rng_state = seed;
    int before = check_failed, checked = 0;
    char buf[64 * 4 + 1];
    for (int i = 0; i < count; i++) {
        size_t n = 0, chars = rng_next() % 64;
        for (size_t k = 0; k < chars; k++) {
            const uint32_t *r = ranges[rng_next() % (sizeof ranges / sizeof ranges[0])];
            uint32_t cp = r[0] + rng_next() % (r[1] - r[0] + 1);
            if (cp == 0x2581) cp = ' ';
            n += put_utf8(cp, buf + n);
        }
        buf[n] = '\0';
        checked += spellable(buf, n);
        check_round_trip(t, buf, n, name);
    }
    printf("random round trips %-12s %d strings (%d the vocabulary can spell), seed %" PRIu64 ": %s\n", name, count,
           checked, seed, check_failed == before ? "ok" : "FAILED");
}

// ------------------------------------------------------------------ hostile vocabularies

typedef struct vocab_spec {
    const char *model, *pre;
    const char *const *tokens;
    uint64_t n_tokens;
    const int32_t *types;
    uint64_t n_types;
    const float *scores;
    uint64_t n_scores;
    const char *const *merges;
    uint64_t n_merges;
    int64_t bos, eos; /* -1: absent */
    int add_bos;      /* -1: absent */
    bool types_as_strings;
} vocab_spec;

static int write_vocab(const char *path, const vocab_spec *v) {
    gguf_writer *w = gguf_writer_new(32);
    fb_error err;
    int rc = 0;
    rc |= gguf_writer_str(w, "general.architecture", "llama");
    if (v->model) rc |= gguf_writer_str(w, "tokenizer.ggml.model", v->model);
    if (v->pre) rc |= gguf_writer_str(w, "tokenizer.ggml.pre", v->pre);
    if (v->tokens) rc |= gguf_writer_str_array(w, "tokenizer.ggml.tokens", v->tokens, v->n_tokens);
    if (v->types) rc |= gguf_writer_array(w, "tokenizer.ggml.token_type", GGUF_VT_I32, v->types, v->n_types);
    if (v->types_as_strings) rc |= gguf_writer_str_array(w, "tokenizer.ggml.token_type", v->tokens, v->n_tokens);
    if (v->scores) rc |= gguf_writer_array(w, "tokenizer.ggml.scores", GGUF_VT_F32, v->scores, v->n_scores);
    if (v->merges) rc |= gguf_writer_str_array(w, "tokenizer.ggml.merges", v->merges, v->n_merges);
    if (v->bos >= 0) rc |= gguf_writer_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) rc |= gguf_writer_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->add_bos >= 0) rc |= gguf_writer_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos != 0);
    if (!rc && gguf_writer_write(w, path, &err)) {
        printf("cannot write %s: %s\n", path, err.msg);
        rc = -1;
    }
    gguf_writer_free(w);
    return rc;
}

/* Load a crafted vocabulary: expect failure mentioning `want` (or success when want is NULL). */
static fb_tokenizer *try_vocab(const char *dir, const char *name, const vocab_spec *v, const char *want) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tok_%s.gguf", dir, name);
    if (write_vocab(path, v)) {
        CHECK(0, "%s: cannot write the crafted file", name);
        return NULL;
    }
    gguf_file *g;
    fb_error err;
    if (gguf_open(path, &g, &err)) {
        CHECK(0, "%s: reader refused it: %s", name, err.msg);
        return NULL;
    }
    fb_tokenizer *t = NULL;
    int rc = fb_tokenizer_load(g, &t, &err);
    gguf_close(g);
    if (want) {
        CHECK(rc != 0 && strstr(err.msg, want) && strstr(err.msg, path),
              "%s: want an error naming '%s' and the file, got rc %d '%s'", name, want, rc, rc ? err.msg : "");
        if (rc) printf("  %s: %s\n", name, err.msg);
        fb_tokenizer_free(t);
        return NULL;
    }
    CHECK(rc == 0, "%s: load failed: %s", name, rc ? err.msg : "");
    return rc ? NULL : t;
}

static void hostile_vocabularies(const char *dir) {
    static const char *const spm_tokens[] = {"<unk>",
                                             "<s>",
                                             "</s>",
                                             "\xE2\x96\x81",
                                             "a",
                                             "b",
                                             ("\xE2\x96\x81"
                                              "a"),
                                             "ab"};
    static const int32_t spm_types[] = {2, 3, 3, 1, 1, 1, 1, 1};
    static const float spm_scores[] = {0, 0, 0, -1, -2, -3, -0.5f, -0.25f};
    vocab_spec base = {.model = "llama",
                       .tokens = spm_tokens,
                       .n_tokens = 8,
                       .types = spm_types,
                       .n_types = 8,
                       .scores = spm_scores,
                       .n_scores = 8,
                       .bos = 1,
                       .eos = 2,
                       .add_bos = -1};
    vocab_spec v;

    v = base, v.model = "bert";
    try_vocab(dir, "model_bert", &v, "'bert'");
    v = base, v.model = NULL;
    try_vocab(dir, "model_missing", &v, "tokenizer.ggml.model");
    v = base, v.tokens = NULL;
    try_vocab(dir, "tokens_missing", &v, "tokenizer.ggml.tokens");
    v = base, v.bos = 8;
    try_vocab(dir, "bos_outside", &v, "bos_token_id");
    v = base, v.eos = 4000000000ll;
    try_vocab(dir, "eos_outside", &v, "eos_token_id");
    v = base, v.n_scores = 7;
    try_vocab(dir, "scores_short", &v, "tokenizer.ggml.scores");
    v = base, v.n_types = 3;
    try_vocab(dir, "types_short", &v, "tokenizer.ggml.token_type");
    v = base, v.types = NULL, v.types_as_strings = true;
    try_vocab(dir, "types_strings", &v, "tokenizer.ggml.token_type");
    v = base, v.n_tokens = 1, v.n_types = 1, v.n_scores = 1, v.bos = -1, v.eos = -1;
    try_vocab(dir, "bos_needed_absent", &v, "BOS"); /* "llama" adds BOS by default; id 1 does not exist */

    /* An SPM vocabulary without byte tokens: known text works, unknown text is a clear error. */
    v = base;
    fb_tokenizer *t = try_vocab(dir, "spm_no_bytes", &v, NULL);
    if (t) {
        int32_t *ids;
        size_t n;
        fb_error err;
        CHECK(fb_tokenize(t, "ab a", 4, false, false, &ids, &n, &err) == 0, "spm_no_bytes: %s", err.msg);
        /* "▁ab▁a": "ab" (score -0.25) merges before "▁a" (-0.5), so the first ▁ stays alone: ▁ ab ▁a */
        if (n == 3)
            CHECK(ids[0] == 3 && ids[1] == 7 && ids[2] == 6, "spm_no_bytes ids %d %d %d", ids[0], ids[1], ids[2]);
        else
            CHECK(0, "spm_no_bytes: %zu ids", n);
        free(ids);
        CHECK(fb_tokenize(t, "c", 1, false, false, &ids, &n, &err) == -1 && strstr(err.msg, "0x63"),
              "spm_no_bytes: want an error naming byte 0x63, got '%s'", err.msg);
        fb_tokenizer_free(t);
    }

    /* A byte-level vocabulary with hostile entries: empty, invalid UTF-8,
     * duplicates, characters outside the byte map, malformed merges. */
    static const char *const bpe_tokens[] = {"<|end|>",
                                             "",
                                             "\xFF\xFE",
                                             "a",
                                             "b",
                                             "ab",
                                             "ab",
                                             "\xC4\xA0",
                                             ("\xC4\xA0"
                                              "a"),
                                             "\xE4\xB8\x96",
                                             "",
                                             "c"};
    static const int32_t bpe_types[] = {3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 99};
    static const char *const bpe_merges[] = {"a b", "nospace", " ",    "\xC4\xA0 a", "\xE4\xB8\x96 a",
                                             "a ",  "\xFF b",  "ab c", "a b"};
    vocab_spec b = {.model = "gpt2",
                    .pre = "gpt-2",
                    .tokens = bpe_tokens,
                    .n_tokens = 12,
                    .types = bpe_types,
                    .n_types = 12,
                    .merges = bpe_merges,
                    .n_merges = 9,
                    .bos = 0,
                    .eos = 0,
                    .add_bos = 1};
    v = b, v.pre = "qwen9";
    try_vocab(dir, "pre_unknown", &v, "'qwen9'");
    v = b, v.merges = NULL;
    try_vocab(dir, "merges_missing", &v, "tokenizer.ggml.merges");
    v = b;
    t = try_vocab(dir, "bpe_hostile", &v, NULL);
    if (t) {
        int32_t *ids;
        size_t n;
        fb_error err;
        int rc = fb_tokenize(t, "ab a", 4, true, false, &ids, &n, &err);
        CHECK(rc == 0, "bpe_hostile: %s", rc ? err.msg : "");
        if (!rc) {
            CHECK(n == 3 && ids[0] == 0 && ids[1] == 5 && ids[2] == 8, "bpe_hostile: %zu ids: %d %d %d", n,
                  n > 0 ? ids[0] : -9, n > 1 ? ids[1] : -9, n > 2 ? ids[2] : -9);
            free(ids);
        }
        /* "abc": merge "ab c" exists but "abc" is no token: falls back to bytes a b c -> 3 4 11 */
        rc = fb_tokenize(t, "abc", 3, false, false, &ids, &n, &err);
        CHECK(rc == 0 && n == 3 && ids[0] == 3 && ids[1] == 4 && ids[2] == 11, "bpe_hostile abc: rc %d n %zu", rc, n);
        if (!rc) free(ids);
        /* a byte without a token is dropped, as llama.cpp and HF tokenizers do */
        rc = fb_tokenize(t, "azb", 3, false, false, &ids, &n, &err);
        CHECK(rc == 0 && n == 2 && ids[0] == 3 && ids[1] == 4, "bpe_hostile: 'azb' must give a b, rc %d n %zu", rc, n);
        if (!rc) free(ids);
        /* decoding the hostile entries is defined: their bytes */
        int32_t odd[] = {1, 2, 9, 10, 11};
        char *text;
        size_t len;
        rc = fb_detokenize(t, odd, 5, true, &text, &len, &err);
        CHECK(rc == 0 && len == 6 &&
                  memcmp(text,
                         "\xFF\xFE\xE4\xB8\x96"
                         "c",
                         6) == 0,
              "bpe_hostile decode: rc %d len %zu", rc, len);
        if (!rc) free(text);
        CHECK(fb_token_type(t, 11) == 99 && fb_token_type(t, 12) == -1, "token types passed through");
        fb_tokenizer_free(t);
    }
}

// ------------------------------------------------------------------ unit checks on the committed vocabularies

static void bad_input(const fb_tokenizer *t, const char *name) {
    static const struct {
        const char *bytes;
        size_t len, at;
    } bad[] = {{"ok\xFF", 3, 2},     {"\xC0\x80", 2, 0}, {"a\xED\xA0\x80", 4, 1},       {"\xF4\x90\x80\x80", 4, 0},
               {"xy\xE4\xBD", 4, 2}, {"\x80", 1, 0},     {"\xF8\x88\x80\x80\x80", 5, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 7;
        fb_error err;
        char want[64];
        snprintf(want, sizeof want, "byte %zu", bad[i].at);
        int rc = fb_tokenize(t, bad[i].bytes, bad[i].len, true, true, &ids, &n, &err);
        CHECK(rc == -1 && ids == NULL && n == 0 && strstr(err.msg, "not valid UTF-8") && strstr(err.msg, want),
              "%s: invalid UTF-8 case %zu: rc %d '%s'", name, i, rc, rc ? err.msg : "");
    }
    uint32_t nv = fb_tokenizer_n_vocab(t);
    int32_t out_of_range[] = {0, (int32_t)nv};
    char *text;
    size_t len;
    fb_error err;
    char want[64];
    snprintf(want, sizeof want, "token id %" PRIu32, nv);
    CHECK(fb_detokenize(t, out_of_range, 2, false, &text, &len, &err) == -1 && strstr(err.msg, want),
          "%s: decode of id %" PRIu32 " must fail naming it, got '%s'", name, nv, err.msg);
    int32_t negative = -5;
    CHECK(fb_detokenize(t, &negative, 1, false, &text, &len, &err) == -1 && strstr(err.msg, "-5"),
          "%s: decode of -5 must fail naming it", name);
    CHECK(fb_token_text(t, -1, NULL) == NULL && fb_token_text(t, (int32_t)nv, NULL) == NULL &&
              fb_token_piece(t, (int32_t)nv, NULL) == NULL && fb_token_type(t, -1) == -1,
          "%s: out-of-range look-ups", name);

    /* empty text: nothing, or just BOS/EOS */
    int32_t *ids;
    size_t n;
    CHECK(fb_tokenize(t, "", 0, false, false, &ids, &n, &err) == 0 && n == 0, "%s: empty text", name);
    free(ids);
    CHECK(fb_tokenize(t, NULL, 0, false, false, &ids, &n, &err) == 0 && n == 0, "%s: NULL empty text", name);
    free(ids);
    CHECK(fb_detokenize(t, NULL, 0, false, &text, &len, &err) == 0 && len == 0 && text && text[0] == '\0',
          "%s: decode of nothing", name);
    free(text);
}

/* Control tokens are whole tokens only with parse_special. */
static void special_tokens(const fb_tokenizer *t, const char *name, const char *special_text) {
    int32_t special_id = -1;
    for (uint32_t id = 0; id < fb_tokenizer_n_vocab(t); id++) {
        size_t l;
        const char *s = fb_token_text(t, (int32_t)id, &l);
        if (l == strlen(special_text) && memcmp(s, special_text, l) == 0) special_id = (int32_t)id;
    }
    CHECK(special_id >= 0 && fb_token_type(t, special_id) == FB_TOKEN_CONTROL, "%s: %s is a control token", name,
          special_text);
    char text[128];
    snprintf(text, sizeof text, "x%sy", special_text);
    int32_t *ids;
    size_t n;
    fb_error err;
    bool seen = false;
    CHECK(fb_tokenize(t, text, strlen(text), false, true, &ids, &n, &err) == 0, "%s: %s", name, err.msg);
    for (size_t i = 0; i < n; i++) seen |= ids[i] == special_id;
    CHECK(seen, "%s: parse_special must give %s as id %d", name, special_text, special_id);
    free(ids);
    seen = false;
    CHECK(fb_tokenize(t, text, strlen(text), false, false, &ids, &n, &err) == 0, "%s: %s", name, err.msg);
    for (size_t i = 0; i < n; i++) seen |= ids[i] == special_id;
    CHECK(!seen && n > 2, "%s: without parse_special %s must be plain text", name, special_text);
    /* and rendering: hidden unless asked */
    char *back;
    size_t len;
    free(ids);
    CHECK(fb_tokenize(t, text, strlen(text), false, true, &ids, &n, &err) == 0, "%s", err.msg);
    CHECK(fb_detokenize(t, ids, n, false, &back, &len, &err) == 0 && len == 2 && memcmp(back, "xy", 2) == 0,
          "%s: control token hidden when not rendered: '%s'", name, back);
    free(back);
    free(ids);
}

/* Large inputs must stay near-linear: a 1 MB word without spaces, 1 MB of
 * spaces, 1 MB of digits, and (for "llama", which merges the whole text at
 * once) 1 MB of prose-like text. The ctest time-out catches a blow-up. */
static void large_inputs(const fb_tokenizer *t, const char *name) {
    size_t len = 1 << 20;
    char *s = malloc(len);
    const char *fills[] = {"a", " ", "7", "ab c\n"};
    for (size_t k = 0; k < 4; k++) {
        size_t fl = strlen(fills[k]);
        for (size_t i = 0; i < len; i++) s[i] = fills[k][i % fl];
        int32_t *ids;
        size_t n;
        fb_error err;
        double t0 = now_s();
        int rc = fb_tokenize(t, s, len, false, false, &ids, &n, &err);
        double dt = now_s() - t0;
        CHECK(rc == 0 && n > 0, "%s: 1 MB of '%s': %s", name, fills[k], rc ? err.msg : "no ids");
        if (rc) continue;
        char *back;
        size_t back_len;
        CHECK(fb_detokenize(t, ids, n, false, &back, &back_len, &err) == 0 && back_len == len &&
                  memcmp(back, s, len) == 0,
              "%s: 1 MB of '%s' round trip", name, fills[k]);
        printf("  %s: 1 MB of '%s' -> %zu ids in %.3f s\n", name, k == 3 ? "ab c\\n" : fills[k], n, dt);
        free(back);
        free(ids);
    }
    free(s);
}

// ------------------------------------------------------------------ synth models

static void synth_models(const char *dir) {
    static const char *pres[] = {"gpt-2", "smollm", "llama-bpe"};
    for (int i = 0; i < 3; i++) {
        fb_synth_spec spec;
        fb_synth_preset("tiny", &spec);
        snprintf(spec.tokenizer_pre, sizeof spec.tokenizer_pre, "%s", pres[i]);
        char path[1024];
        snprintf(path, sizeof path, "%s/tok_synth_tiny_%s.gguf", dir, pres[i]);
        fb_error err;
        if (fb_synth_write(&spec, path, NULL, &err)) {
            CHECK(0, "synth tiny (%s): %s", pres[i], err.msg);
            continue;
        }
        fb_tokenizer *t = load_vocab(path);
        if (!t) continue;
        CHECK(fb_tokenizer_n_vocab(t) == spec.n_vocab && strcmp(fb_tokenizer_pre(t), pres[i]) == 0,
              "synth tiny: vocabulary %" PRIu32 ", pre '%s'", fb_tokenizer_n_vocab(t), fb_tokenizer_pre(t));
        const char *text = "Hello world, the quick brown fox; 123 + 4567 = 4690!\n\tdone  ";
        int32_t *ids;
        size_t n;
        CHECK(fb_tokenize(t, text, strlen(text), true, false, &ids, &n, &err) == 0, "synth: %s", err.msg);
        bool merged = false; /* some word must use a merged token (id past the 3 controls and 256 bytes) */
        for (size_t k = 0; k < n; k++) merged |= ids[k] >= 259;
        CHECK(n > 0 && merged, "synth tiny (%s): %zu ids, merged tokens used: %d", pres[i], n, merged);
        free(ids);
        check_round_trip(t, text, strlen(text), "synth tiny");
        check_round_trip(t, "<|im_start|>user\nHi<|im_end|>", 29, "synth tiny chat");
        special_tokens(t, "synth tiny", "<|im_start|>");
        random_round_trips(t, "synth tiny", 7 + (uint64_t)i, 300);
        fb_tokenizer_free(t);
        remove(path);
    }
}

// ------------------------------------------------------------------ main

static int real_model(const char *data_dir, const char *fetch_sh) {
    char cmd[2048], path[2048] = "";
    snprintf(cmd, sizeof cmd, "'%s' --path", fetch_sh);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(path, sizeof path, p)) path[0] = '\0';
        pclose(p);
    }
    path[strcspn(path, "\n")] = '\0';
    struct stat st;
    if (!path[0] || stat(path, &st) != 0) {
        printf("skipped: the default model %s is absent (scripts/fetch-model.sh)\n", path);
        return 77;
    }
    fb_tokenizer *t = load_vocab(path);
    if (!t) return check_summary();
    CHECK(strcmp(fb_tokenizer_model(t), "gpt2") == 0 && strcmp(fb_tokenizer_pre(t), "smollm") == 0 &&
              fb_tokenizer_n_vocab(t) == 49152,
          "SmolLM2 tokenizer kind");
    char tsv[1024];
    snprintf(tsv, sizeof tsv, "%s/smollm2.golden.tsv", data_dir);
    golden_stats gs;
    run_golden(t, tsv, "smollm2", &gs);
    CHECK(gs.cases > 0 && gs.cases_failed == 0 && gs.ids == gs.ids_matched, "smollm2: all golden ids match");
    special_tokens(t, "smollm2", "<|im_start|>");
    random_round_trips(t, "smollm2", 1234, 2000);
    bad_input(t, "smollm2");
    large_inputs(t, "smollm2");
    fb_tokenizer_free(t);
    return check_summary();
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--real-model") == 0) return real_model(argv[2], argv[3]);
    if (argc < 3) {
        fprintf(stderr, "usage: test_tokenizer DATA_DIR TMP_DIR | --real-model DATA_DIR FETCH_SH\n");
        return 2;
    }
    const char *data = argv[1], *tmp = argv[2];
    mkdir(tmp, 0755);
    static const char *vocabs[] = {"spm", "bpe-llama3", "bpe-smollm", "bpe-gpt2", "bpe-default"};
    size_t total_cases = 0, total_ids = 0, total_matched = 0;
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        char gguf_path[1024], tsv[1024];
        snprintf(gguf_path, sizeof gguf_path, "%s/%s.gguf", data, vocabs[i]);
        snprintf(tsv, sizeof tsv, "%s/%s.golden.tsv", data, vocabs[i]);
        fb_tokenizer *t = load_vocab(gguf_path);
        if (!t) continue;
        golden_stats gs;
        run_golden(t, tsv, vocabs[i], &gs);
        CHECK(gs.cases > 0 && gs.cases_failed == 0, "%s: all golden cases match", vocabs[i]);
        total_cases += gs.cases, total_ids += gs.ids, total_matched += gs.ids_matched;
        random_round_trips(t, vocabs[i], 42 + i, 1000);
        bad_input(t, vocabs[i]);
        special_tokens(t, vocabs[i], i == 0 ? "</s>" : "<|eot_id|>");
        large_inputs(t, vocabs[i]);
        fb_tokenizer_free(t);
    }
    printf("golden total: %zu cases, %zu ids, %zu matched\n", total_cases, total_ids, total_matched);
    hostile_vocabularies(tmp);
    synth_models(tmp);
    return check_summary();
}
