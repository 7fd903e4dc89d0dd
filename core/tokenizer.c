/* tokenizer.c - SentencePiece-style ("llama") and byte-level BPE ("gpt2")
 * tokenization of GGUF vocabularies, id for id what llama.cpp produces.
 * tokenizer.h says what is read from the file and states the algorithms; the
 * comments here say how they are made fast and safe.
 *
 * Chapters: small buffers; UTF-8; hashing and string tables; the byte-level
 * map; pre-tokenizers (PCRE2); loading; special tokens; "llama" merging;
 * "gpt2" merging; tokenize; detokenize. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define TOK_MAX_TEXT_BYTES ((size_t)1 << 30) /* one call tokenizes at most 1 GiB */
#define TOK_MAX_PATTERNS 4

enum tok_model { TOK_SPM, TOK_BPE };

// ------------------------------------------------------------------ small buffers

/* Make room for `need` elements of `elem` bytes in the array that the pointer
 * at `array_ptr` points to (capacity *cap). The pointer is read and written
 * with memcpy, so any object pointer type may be passed without aliasing it. */
static int grow(void *array_ptr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2 / elem) return -1;
        cap2 *= 2;
    }
    void *p;
    memcpy(&p, array_ptr, sizeof p);
    void *q = realloc(p, cap2 * elem);
    if (!q) return -1;
    memcpy(array_ptr, &q, sizeof q);
    *cap = cap2;
    return 0;
}

typedef struct i32_vec {
    int32_t *v;
    size_t n, cap;
} i32_vec;

static int i32_push(i32_vec *a, int32_t x) {
    if (grow(&a->v, &a->cap, a->n + 1, sizeof *a->v)) return -1;
    a->v[a->n++] = x;
    return 0;
}

/* A byte range of the text being tokenized. */
typedef struct span {
    size_t off, len;
} span;

typedef struct span_vec {
    span *v;
    size_t n, cap;
} span_vec;

static int span_push(span_vec *a, size_t off, size_t len) {
    if (grow(&a->v, &a->cap, a->n + 1, sizeof *a->v)) return -1;
    a->v[a->n].off = off;
    a->v[a->n].len = len;
    a->n++;
    return 0;
}

// ------------------------------------------------------------------ UTF-8

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 when
 * it is not one (overlong forms, surrogates and values past U+10FFFF are not). */
static size_t utf8_seq_len(const uint8_t *s, size_t n, uint32_t *cp_out) {
    uint8_t c = s[0];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        if (cp_out) *cp_out = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    if (cp_out) *cp_out = cp;
    return len;
}

/* Offset of the first byte that is not part of well-formed UTF-8, or n. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII runs are the common case */
            i++;
            continue;
        }
        size_t l = utf8_seq_len(s + i, n - i, NULL);
        if (!l) return i;
        i += l;
    }
    return n;
}

/* Length of the character whose lead byte is c, in text already checked. */
static inline size_t utf8_lead_len(uint8_t c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

// ------------------------------------------------------------------ hashing and string tables

/* A fast 64-bit hash of a byte string: 8 bytes per multiply. */
static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

/* Append-only table of byte strings; each is stored NUL-terminated (the NUL
 * is not counted). Index i is the string's id. */
typedef struct str_table {
    char *bytes;
    size_t used, cap;
    uint64_t *off;
    uint32_t *len;
    size_t n, cap_off, cap_len;
} str_table;

static int64_t strtab_add(str_table *t, const void *s, size_t len) {
    if (len >= UINT32_MAX || t->n >= INT32_MAX) return -1;
    if (t->used > SIZE_MAX - len - 1) return -1;
    if (grow(&t->bytes, &t->cap, t->used + len + 1, 1) || grow(&t->off, &t->cap_off, t->n + 1, sizeof *t->off) ||
        grow(&t->len, &t->cap_len, t->n + 1, sizeof *t->len))
        return -1;
    if (len) memcpy(t->bytes + t->used, s, len);
    t->bytes[t->used + len] = '\0';
    t->off[t->n] = t->used;
    t->len[t->n] = (uint32_t)len;
    t->used += len + 1;
    return (int64_t)t->n++;
}

static inline const char *strtab_get(const str_table *t, size_t i) { return t->bytes + t->off[i]; }

static void strtab_free(str_table *t) {
    free(t->bytes);
    free(t->off);
    free(t->len);
}

/* Open-addressing index from string to its id in a str_table. */
typedef struct str_index {
    int32_t *id;   /* -1: empty */
    uint32_t *tag; /* low 32 bits of the hash, to skip most string compares */
    size_t mask, n;
} str_index;

static int32_t sidx_find(const str_index *x, const str_table *t, const void *s, size_t len, uint64_t h) {
    if (!x->id) return -1;
    for (size_t i = (size_t)h & x->mask;; i = (i + 1) & x->mask) {
        int32_t id = x->id[i];
        if (id < 0) return -1;
        if (x->tag[i] == (uint32_t)h && t->len[id] == len && memcmp(strtab_get(t, (size_t)id), s, len) == 0) return id;
    }
}

static void sidx_place(str_index *x, int32_t id, uint64_t h) {
    size_t i = (size_t)h & x->mask;
    while (x->id[i] >= 0) i = (i + 1) & x->mask;
    x->id[i] = id;
    x->tag[i] = (uint32_t)h;
}

/* Add id (whose string is not yet in the index); grows at half load. */
static int sidx_insert(str_index *x, const str_table *t, int32_t id, uint64_t h) {
    if (!x->id || (x->n + 1) * 2 > x->mask + 1) {
        size_t cap = x->id ? (x->mask + 1) * 2 : 1024;
        int32_t *ids = malloc(cap * sizeof *ids);
        uint32_t *tags = malloc(cap * sizeof *tags);
        if (!ids || !tags) {
            free(ids);
            free(tags);
            return -1;
        }
        memset(ids, 0xFF, cap * sizeof *ids);
        str_index y = {ids, tags, cap - 1, x->n};
        if (x->id)
            for (size_t i = 0; i <= x->mask; i++)
                if (x->id[i] >= 0) {
                    const int32_t old = x->id[i];
                    sidx_place(&y, old, hash_bytes(strtab_get(t, (size_t)old), t->len[old]));
                }
        free(x->id);
        free(x->tag);
        *x = y;
    }
    sidx_place(x, id, h);
    x->n++;
    return 0;
}

static void sidx_free(str_index *x) {
    free(x->id);
    free(x->tag);
}

/* BPE merges: (left string id, right string id) -> rank and merged string id. */
typedef struct merge_map {
    uint64_t *key; /* UINT64_MAX: empty */
    uint32_t *rank;
    int32_t *result;
    size_t mask;
} merge_map;

static inline uint64_t merge_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

static inline size_t merge_slot(const merge_map *m, uint64_t key) {
    size_t i = (size_t)hash_u64(key) & m->mask;
    while (m->key[i] != UINT64_MAX && m->key[i] != key) i = (i + 1) & m->mask;
    return i;
}

// ------------------------------------------------------------------ the byte-level map

/* GPT-2's bytes_to_unicode: the printable bytes '!'..'~', '¡'..'¬' and
 * '®'..'ÿ' stand for themselves; the other 68 bytes, in order, for U+0100,
 * U+0101, ... so that every byte has a visible character. */
static void byte_level_map(uint16_t byte_to_cp[256], int16_t cp_to_byte[512]) {
    for (int i = 0; i < 512; i++) cp_to_byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_to_cp[b] = (uint16_t)(printable ? b : 256 + extra++);
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
    }
}

/* The bytes a byte-level string spells, into out (at most len bytes), or -1
 * when a character is not one of the 256 (then no byte sequence gives it). */
static int64_t byte_level_decode(const int16_t cp_to_byte[512], const uint8_t *s, size_t len, uint8_t *out) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = utf8_seq_len(s + i, len - i, &cp);
        if (!l || cp >= 512 || cp_to_byte[cp] < 0) return -1;
        out[n++] = (uint8_t)cp_to_byte[cp];
        i += l;
    }
    return (int64_t)n;
}

// ------------------------------------------------------------------ pre-tokenizers

/* The regular expressions are the ones llama.cpp uses for these names
 * (src/llama-vocab.cpp; those of the models' tokenizer.json, with the
 * case-insensitive contraction group spelled out). They are written with \s
 * and \S as upstream does; compile_pattern() turns these into
 * \p{White_Space} and \P{White_Space}, because PCRE2's \s also matches U+180E,
 * which llama.cpp and the HF tokenizers do not count as white space. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| " \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const struct pre_def {
    const char *names[4];
    const char *patterns[TOK_MAX_PATTERNS]; /* applied in order */
    bool ignore_merges;                     /* whole word in the vocabulary: take it as is */
    bool add_bos;                           /* default when add_bos_token is absent */
} pre_defs[] = {
    {{"llama-bpe", "llama3", "llama-v3"}, {RE_LLAMA3}, true, true},
    {{"smollm"}, {"\\p{N}", RE_GPT2}, false, false},
    {{"gpt-2"}, {RE_GPT2}, false, false},
    {{"default"}, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
};

static const char *pre_known_names = "llama-bpe, llama3, llama-v3, smollm, gpt-2, default";

static pcre2_code *compile_pattern(const char *pattern, char *why, size_t why_size) {
    /* \s -> \p{White_Space}, \S -> \P{White_Space} (see above) */
    char buf[1024];
    size_t n = 0;
    for (const char *p = pattern; *p; p++) {
        const char *rep = NULL;
        if (p[0] == '\\' && (p[1] == 's' || p[1] == 'S')) rep = p[1] == 's' ? "\\p{White_Space}" : "\\P{White_Space}";
        else if (p[0] == '\\' && p[1]) { /* keep other escapes whole, e.g. "\\\\s" */
            if (n + 2 >= sizeof buf) return NULL;
            buf[n++] = *p++;
            buf[n++] = *p;
            continue;
        }
        if (rep) {
            size_t l = strlen(rep);
            if (n + l >= sizeof buf) return NULL;
            memcpy(buf + n, rep, l);
            n += l;
            p++;
        } else {
            if (n + 1 >= sizeof buf) return NULL;
            buf[n++] = *p;
        }
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)buf, n, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(why, why_size, "%s at offset %zu", (const char *)msg, (size_t)at);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* when JIT is unavailable, pcre2_match interprets */
    return re;
}

// ------------------------------------------------------------------ the tokenizer

struct fb_tokenizer {
    enum tok_model model;
    char model_name[8];
    char pre_name[16];
    uint32_t n_vocab;
    str_table text;       /* the vocabulary's strings; index = token id */
    str_index text_index; /* string -> lowest id with that string */
    uint32_t *score_key;  /* per id: the score as a key that sorts high scores first */
    int32_t *type;        /* per id, enum fb_token_type (other values passed through) */
    str_table piece;      /* per id: the bytes it stands for in text */
    int32_t bos, eos;     /* -1: none */
    bool add_bos, add_eos, add_space_prefix;
    int32_t *special; /* control, unknown and user-defined ids with text, longest first */
    size_t n_special;
    /* "llama": every pair of adjacent characters inside some token. Where the
     * text has a pair that is in no token, no merge can cross, so the text is
     * merged in independent segments (in practice: words). Same ids, but a
     * small heap per word instead of one over the whole text: 1 MiB of prose
     * (bench_tokenizer, spm.gguf) went from 0.70 s to 0.11 s of CPU. */
    uint64_t *pair_key; /* (first << 32 | second); UINT64_MAX: empty */
    size_t pair_mask;
    /* "llama", per byte: <0xNN>, else the one-byte token; -1 when there is none */
    int32_t byte_token[256];

    /* "gpt2" only. Merging works on raw bytes, not on the byte-level spelling:
     * `raw` holds every byte string that can take part in a merge (its first
     * 256 entries are the single bytes), raw_token its token id or -1. */
    bool ignore_merges;
    str_table raw;
    str_index raw_index;
    int32_t *raw_token;
    size_t cap_raw_token;
    uint8_t spelling[256][2]; /* the UTF-8 of each byte's character (1 or 2 bytes) */
    uint8_t spelling_len[256];
    int32_t one_byte_token[256]; /* the token whose text is this single byte, or -1 */
    merge_map merges;
    pcre2_code *re[TOK_MAX_PATTERNS];
    size_t n_re;
};

uint32_t fb_tokenizer_n_vocab(const fb_tokenizer *t) { return t->n_vocab; }
int32_t fb_tokenizer_bos(const fb_tokenizer *t) { return t->bos; }
int32_t fb_tokenizer_eos(const fb_tokenizer *t) { return t->eos; }
const char *fb_tokenizer_model(const fb_tokenizer *t) { return t->model_name; }
const char *fb_tokenizer_pre(const fb_tokenizer *t) { return t->pre_name; }

const char *fb_token_text(const fb_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) return NULL;
    if (len) *len = t->text.len[id];
    return strtab_get(&t->text, (size_t)id);
}

const char *fb_token_piece(const fb_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) return NULL;
    if (len) *len = t->piece.len[id];
    return strtab_get(&t->piece, (size_t)id);
}

int32_t fb_token_type(const fb_tokenizer *t, int32_t id) {
    if (id < 0 || (uint32_t)id >= t->n_vocab) return -1;
    return t->type[id];
}

void fb_tokenizer_free(fb_tokenizer *t) {
    if (!t) return;
    strtab_free(&t->text);
    sidx_free(&t->text_index);
    free(t->score_key);
    free(t->type);
    strtab_free(&t->piece);
    free(t->special);
    free(t->pair_key);
    strtab_free(&t->raw);
    sidx_free(&t->raw_index);
    free(t->raw_token);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.result);
    for (size_t i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    free(t);
}

// ------------------------------------------------------------------ loading

static bool str_is(const gguf_str *s, const char *lit) {
    return s->len == strlen(lit) && memcmp(s->data, lit, s->len) == 0;
}

/* Is the string "<0xHH>"? Then *byte gets HH. */
static bool parse_byte_token(const char *s, size_t len, uint8_t *byte) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return false;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return false;
        v = v * 16 + d;
    }
    *byte = (uint8_t)v;
    return true;
}

/* An optional token id from metadata: absent keeps *id; present must lie in
 * the vocabulary. */
static int load_token_id(const gguf_file *f, const char *key, uint32_t n_vocab, int32_t *id, fb_error *err) {
    if (!gguf_find_kv(f, key)) return 0;
    int64_t v;
    if (gguf_get_int(f, key, &v, err)) return -1;
    if (v < 0 || v >= (int64_t)n_vocab)
        return fb_error_set(
            err, "%s: metadata key '%s': token id %" PRId64 " is outside the vocabulary (%" PRIu32 " tokens)",
            gguf_path(f), key, v, n_vocab);
    *id = (int32_t)v;
    return 0;
}

static int load_bool(const gguf_file *f, const char *key, bool *out, fb_error *err) {
    if (!gguf_find_kv(f, key)) return 0;
    return gguf_get_bool(f, key, out, err);
}

/* A float as a 32-bit key whose unsigned order is the float's order reversed
 * (higher scores first); -0 and +0 get the same key, as they compare equal. */
static uint32_t score_key(float s) {
    if (s == 0.0f) s = 0.0f;
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* now ascending with s */
    return ~u;
}

static inline size_t pair_slot(const uint64_t *keys, size_t mask, uint64_t key) {
    size_t i = (size_t)hash_u64(key) & mask;
    while (keys[i] != UINT64_MAX && keys[i] != key) i = (i + 1) & mask;
    return i;
}

static bool pair_in_token(const fb_tokenizer *t, uint32_t first, uint32_t second) {
    uint64_t key = (uint64_t)first << 32 | second;
    return t->pair_key[pair_slot(t->pair_key, t->pair_mask, key)] == key;
}

/* The set of adjacent character pairs inside tokens ("llama"). */
static int build_pairs(fb_tokenizer *t) {
    size_t n_pairs = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *s = (const uint8_t *)strtab_get(&t->text, id);
        for (size_t i = 1; i < t->text.len[id]; i++) n_pairs += (s[i] & 0xC0) != 0x80; /* character starts */
    }
    size_t slots = 1024;
    while (slots < 2 * n_pairs) slots *= 2;
    t->pair_key = malloc(slots * sizeof *t->pair_key);
    if (!t->pair_key) return -1;
    memset(t->pair_key, 0xFF, slots * sizeof *t->pair_key);
    t->pair_mask = slots - 1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *s = (const uint8_t *)strtab_get(&t->text, id);
        size_t len = t->text.len[id];
        if (utf8_check(s, len) != len) continue; /* never equal to merged valid text */
        uint32_t prev = UINT32_MAX, cp;
        for (size_t i = 0; i < len; prev = cp) {
            i += utf8_seq_len(s + i, len - i, &cp);
            if (prev != UINT32_MAX) {
                uint64_t key = (uint64_t)prev << 32 | cp;
                t->pair_key[pair_slot(t->pair_key, t->pair_mask, key)] = key;
            }
        }
    }
    return 0;
}

static int oom(const gguf_file *f, fb_error *err) {
    return fb_error_set(err, "%s: out of memory while building the tokenizer", gguf_path(f));
}

/* The decoded bytes of every token (what fb_detokenize writes). */
static int build_pieces(fb_tokenizer *t, const int16_t cp_to_byte[512]) {
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = -1;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *s = (const uint8_t *)strtab_get(&t->text, id);
        size_t len = t->text.len[id], n = 0;
        if (grow(&buf, &cap, len + 1, 1)) goto done;
        int32_t type = t->type[id];
        uint8_t byte;
        if (type == FB_TOKEN_CONTROL || type == FB_TOKEN_UNKNOWN || type == FB_TOKEN_USER_DEFINED) {
            memcpy(buf, s, len), n = len;
        } else if (type == FB_TOKEN_BYTE && parse_byte_token((const char *)s, len, &byte)) {
            buf[0] = byte, n = 1;
        } else if (t->model == TOK_SPM) { /* "▁" (E2 96 81) is a space */
            for (size_t i = 0; i < len;) {
                if (i + 3 <= len && s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
                    buf[n++] = ' ';
                    i += 3;
                } else {
                    buf[n++] = s[i++];
                }
            }
        } else { /* byte-level: mapped characters are bytes; others stay as they are */
            for (size_t i = 0; i < len;) {
                uint32_t cp;
                size_t l = utf8_seq_len(s + i, len - i, &cp);
                if (l && cp < 512 && cp_to_byte[cp] >= 0) {
                    buf[n++] = (uint8_t)cp_to_byte[cp];
                    i += l;
                } else {
                    l = l ? l : 1;
                    memcpy(buf + n, s + i, l);
                    n += l;
                    i += l;
                }
            }
        }
        if (strtab_add(&t->piece, buf, n) < 0) goto done;
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

/* Add a raw byte string to the merge table's strings, or find it. */
static int32_t raw_intern(fb_tokenizer *t, const uint8_t *s, size_t len) {
    uint64_t h = hash_bytes(s, len);
    int32_t sid = sidx_find(&t->raw_index, &t->raw, s, len, h);
    if (sid >= 0) return sid;
    int64_t added = strtab_add(&t->raw, s, len);
    if (added < 0 || sidx_insert(&t->raw_index, &t->raw, (int32_t)added, h)) return -1;
    if (grow(&t->raw_token, &t->cap_raw_token, (size_t)added + 1, sizeof *t->raw_token)) return -1;
    t->raw_token[added] = -1;
    return (int32_t)added;
}

static int load_bpe(fb_tokenizer *t, const gguf_file *f, const uint16_t byte_to_cp[256], const int16_t cp_to_byte[512],
                    fb_error *err) {
    const char *path = gguf_path(f);
    /* pre-tokenizer */
    const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.pre");
    const struct pre_def *pre = NULL;
    gguf_str pre_name = {7, "default"};
    if (kv) {
        if (kv->value.type != GGUF_VT_STRING) {
            const char *ignored;
            return gguf_get_str(f, "tokenizer.ggml.pre", &ignored, err);
        }
        pre_name = kv->value.str;
    }
    for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0] && !pre; i++)
        for (size_t j = 0; j < 4 && pre_defs[i].names[j]; j++)
            if (str_is(&pre_name, pre_defs[i].names[j])) {
                pre = &pre_defs[i];
                snprintf(t->pre_name, sizeof t->pre_name, "%s", pre_defs[i].names[j]);
            }
    if (!pre) {
        char shown[64];
        size_t n = pre_name.len < sizeof shown - 1 ? (size_t)pre_name.len : sizeof shown - 1;
        memcpy(shown, pre_name.data, n);
        shown[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7F) shown[i] = '?';
        return fb_error_set(err, "%s: metadata key 'tokenizer.ggml.pre': unknown pre-tokenizer '%s' (known: %s)", path,
                            shown, pre_known_names);
    }
    t->ignore_merges = pre->ignore_merges;
    t->add_bos = pre->add_bos;
    for (size_t i = 0; i < TOK_MAX_PATTERNS && pre->patterns[i]; i++) {
        char why[300] = "pattern too long";
        t->re[i] = compile_pattern(pre->patterns[i], why, sizeof why);
        if (!t->re[i])
            return fb_error_set(err, "%s: pre-tokenizer '%s': PCRE2 refused pattern %zu: %s", path, t->pre_name, i,
                                why);
        t->n_re = i + 1;
    }

    /* the strings merges work on: the 256 single bytes, then every token that
     * the byte-level map can spell, lowest id first */
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        if (raw_intern(t, &c, 1) != b) goto oom;
    }
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        size_t len = t->text.len[id];
        if (len == 0) continue;
        if (grow(&buf, &cap, len, 1)) goto oom;
        int64_t n = byte_level_decode(cp_to_byte, (const uint8_t *)strtab_get(&t->text, id), len, buf);
        if (n <= 0) continue;
        int32_t sid = raw_intern(t, buf, (size_t)n);
        if (sid < 0) goto oom;
        if (t->raw_token[sid] < 0) t->raw_token[sid] = (int32_t)id;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        uint32_t cp = byte_to_cp[b];
        if (cp < 0x80) {
            t->spelling[b][0] = (uint8_t)cp, t->spelling_len[b] = 1;
        } else { /* all are below U+0800 */
            t->spelling[b][0] = (uint8_t)(0xC0 | (cp >> 6));
            t->spelling[b][1] = (uint8_t)(0x80 | (cp & 0x3F));
            t->spelling_len[b] = 2;
        }
        t->one_byte_token[b] = sidx_find(&t->text_index, &t->text, &c, 1, hash_bytes(&c, 1));
    }

    /* merges: "left right", split at the first space after the first byte */
    const gguf_value *merges;
    if (gguf_get_array(f, "tokenizer.ggml.merges", GGUF_VT_STRING, &merges, err)) goto fail;
    uint64_t n_merges = merges->arr.count;
    if (n_merges > UINT32_MAX / 4) {
        fb_error_set(err, "%s: metadata key 'tokenizer.ggml.merges': %" PRIu64 " merges is too many", path, n_merges);
        goto fail;
    }
    size_t slots = 1024;
    while (slots < n_merges * 2) slots *= 2;
    t->merges.key = malloc(slots * sizeof *t->merges.key);
    t->merges.rank = malloc(slots * sizeof *t->merges.rank);
    t->merges.result = malloc(slots * sizeof *t->merges.result);
    if (!t->merges.key || !t->merges.rank || !t->merges.result) goto oom;
    memset(t->merges.key, 0xFF, slots * sizeof *t->merges.key);
    t->merges.mask = slots - 1;
    for (uint64_t i = 0; i < n_merges; i++) {
        const gguf_str *m = &merges->arr.items[i].str;
        const char *sp = m->len > 1 ? memchr(m->data + 1, ' ', m->len - 1) : NULL;
        if (!sp) continue; /* as llama.cpp: never matches */
        size_t left_len = (size_t)(sp - m->data), right_len = m->len - left_len - 1;
        if (right_len == 0) continue;
        if (grow(&buf, &cap, m->len, 1)) goto oom; /* left and right decoded are shorter */
        int64_t l = byte_level_decode(cp_to_byte, (const uint8_t *)m->data, left_len, buf);
        int64_t r = byte_level_decode(cp_to_byte, (const uint8_t *)sp + 1, right_len, buf + (l > 0 ? l : 0));
        if (l <= 0 || r <= 0) continue; /* a character outside the byte-level map: no word can hold it */
        int32_t left = raw_intern(t, buf, (size_t)l);
        int32_t right = raw_intern(t, buf + l, (size_t)r);
        int32_t merged = raw_intern(t, buf, (size_t)(l + r));
        if (left < 0 || right < 0 || merged < 0) goto oom;
        uint64_t key = merge_key(left, right);
        size_t slot = merge_slot(&t->merges, key);
        if (t->merges.key[slot] == key) continue; /* a repeated pair keeps its first rank */
        t->merges.key[slot] = key;
        t->merges.rank[slot] = (uint32_t)i;
        t->merges.result[slot] = merged;
    }
    free(buf);
    return 0;
oom:
    oom(f, err);
fail:
    free(buf);
    return -1;
}

/* qsort has no context argument in C11: sort (length, id) pairs instead. */
typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

static int cmp_special_key(const void *pa, const void *pb) {
    const special_key *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return (a->id > b->id) - (a->id < b->id);              /* then lowest id */
}

int fb_tokenizer_load(const gguf_file *f, fb_tokenizer **out, fb_error *err) {
    *out = NULL;
    const char *path = gguf_path(f);
    fb_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return oom(f, err);

    /* model */
    const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.model");
    if (!kv || kv->value.type != GGUF_VT_STRING) {
        const char *ignored;
        gguf_get_str(f, "tokenizer.ggml.model", &ignored, err);
        goto fail;
    }
    if (str_is(&kv->value.str, "llama")) {
        t->model = TOK_SPM;
        t->bos = 1, t->eos = 2;
        t->add_bos = true, t->add_space_prefix = true;
    } else if (str_is(&kv->value.str, "gpt2")) {
        t->model = TOK_BPE;
        t->bos = 11, t->eos = 11;
    } else {
        char shown[64];
        size_t n = kv->value.str.len < sizeof shown - 1 ? (size_t)kv->value.str.len : sizeof shown - 1;
        memcpy(shown, kv->value.str.data, n);
        shown[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)shown[i] < 0x20 || shown[i] == 0x7F) shown[i] = '?';
        fb_error_set(err,
                     "%s: metadata key 'tokenizer.ggml.model': unsupported tokenizer '%s' (supported: llama, gpt2)",
                     path, shown);
        goto fail;
    }
    snprintf(t->model_name, sizeof t->model_name, "%s", t->model == TOK_SPM ? "llama" : "gpt2");

    /* tokens */
    const gguf_value *tokens;
    if (gguf_get_array(f, "tokenizer.ggml.tokens", GGUF_VT_STRING, &tokens, err)) goto fail;
    if (tokens->arr.count == 0 || tokens->arr.count > INT32_MAX) {
        fb_error_set(err, "%s: metadata key 'tokenizer.ggml.tokens': %" PRIu64 " tokens (expected 1 to %d)", path,
                     tokens->arr.count, INT32_MAX);
        goto fail;
    }
    t->n_vocab = (uint32_t)tokens->arr.count;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        const gguf_str *s = &tokens->arr.items[id].str;
        int64_t at = strtab_add(&t->text, s->data, s->len);
        if (at < 0) {
            if (s->len >= UINT32_MAX) {
                fb_error_set(err,
                             "%s: metadata key 'tokenizer.ggml.tokens': token %" PRIu32 " is %" PRIu64 " bytes long",
                             path, id, s->len);
                goto fail;
            }
            goto oom;
        }
        if (s->len == 0) continue; /* an empty token can never be produced */
        uint64_t h = hash_bytes(s->data, s->len);
        if (sidx_find(&t->text_index, &t->text, s->data, s->len, h) < 0 &&
            sidx_insert(&t->text_index, &t->text, (int32_t)id, h))
            goto oom;
    }

    /* scores (f32 or i32) and types, both optional */
    t->score_key = malloc(t->n_vocab * sizeof *t->score_key);
    t->type = malloc(t->n_vocab * sizeof *t->type);
    if (!t->score_key || !t->type) goto oom;
    for (uint32_t id = 0; id < t->n_vocab; id++) t->score_key[id] = score_key(0.0f);
    for (uint32_t id = 0; id < t->n_vocab; id++) t->type[id] = FB_TOKEN_NORMAL;
    if ((kv = gguf_find_kv(f, "tokenizer.ggml.scores"))) {
        const gguf_value *v = &kv->value;
        if (v->type != GGUF_VT_ARRAY || (v->arr.elem_type != GGUF_VT_F32 && v->arr.elem_type != GGUF_VT_I32)) {
            fb_error_set(err, "%s: metadata key 'tokenizer.ggml.scores' at byte %" PRIu64 ": expected an array of f32",
                         path, kv->file_offset);
            goto fail;
        }
        if (v->arr.count < t->n_vocab) {
            fb_error_set(err, "%s: metadata key 'tokenizer.ggml.scores' has %" PRIu64 " entries for %" PRIu32 " tokens",
                         path, v->arr.count, t->n_vocab);
            goto fail;
        }
        for (uint32_t id = 0; id < t->n_vocab; id++) {
            float s = (float)gguf_array_float(v, id);
            t->score_key[id] = score_key(isnan(s) ? -INFINITY : s); /* NaN has no order: the lowest */
        }
    }
    if ((kv = gguf_find_kv(f, "tokenizer.ggml.token_type"))) {
        const gguf_value *v = &kv->value;
        uint32_t et = v->type == GGUF_VT_ARRAY ? v->arr.elem_type : GGUF_VT_COUNT_;
        if (!(et == GGUF_VT_I32 || et == GGUF_VT_U32 || et == GGUF_VT_I8 || et == GGUF_VT_U8 || et == GGUF_VT_I16 ||
              et == GGUF_VT_U16)) {
            fb_error_set(err,
                         "%s: metadata key 'tokenizer.ggml.token_type' at byte %" PRIu64 ": expected an array of i32",
                         path, kv->file_offset);
            goto fail;
        }
        if (v->arr.count < t->n_vocab) {
            fb_error_set(err,
                         "%s: metadata key 'tokenizer.ggml.token_type' has %" PRIu64 " entries for %" PRIu32 " tokens",
                         path, v->arr.count, t->n_vocab);
            goto fail;
        }
        for (uint32_t id = 0; id < t->n_vocab; id++) {
            int64_t ty = gguf_array_int(v, id);
            t->type[id] = ty >= INT32_MIN && ty <= INT32_MAX ? (int32_t)ty : FB_TOKEN_UNDEFINED;
        }
    }

    uint16_t byte_to_cp[256];
    int16_t cp_to_byte[512];
    byte_level_map(byte_to_cp, cp_to_byte);

    if (t->model == TOK_BPE) {
        if (load_bpe(t, f, byte_to_cp, cp_to_byte, err)) goto fail;
    } else {
        snprintf(t->pre_name, sizeof t->pre_name, "%s", "");
        for (int b = 0; b < 256; b++) { /* <0xNN>, else the byte itself (as llama.cpp) */
            char hex[7];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            int32_t id = sidx_find(&t->text_index, &t->text, hex, 6, hash_bytes(hex, 6));
            if (id < 0) {
                char c = (char)b;
                id = sidx_find(&t->text_index, &t->text, &c, 1, hash_bytes(&c, 1));
            }
            t->byte_token[b] = id;
        }
        if (load_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err)) goto fail;
        if (build_pairs(t)) goto oom;
    }

    /* BOS / EOS: defaults dropped when outside the vocabulary; ids from the file must fit */
    if (t->bos >= (int64_t)t->n_vocab) t->bos = -1;
    if (t->eos >= (int64_t)t->n_vocab) t->eos = -1;
    if (load_token_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err) ||
        load_token_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err) ||
        load_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err) ||
        load_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos, err))
        goto fail;
    if (t->add_bos && t->bos < 0) {
        fb_error_set(err, "%s: the vocabulary asks for a BOS token but has none (tokenizer.ggml.bos_token_id)", path);
        goto fail;
    }
    if (t->add_eos && t->eos < 0) {
        fb_error_set(err, "%s: the vocabulary asks for an EOS token but has none (tokenizer.ggml.eos_token_id)", path);
        goto fail;
    }

    /* special tokens, longest text first */
    size_t n_special = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        int32_t ty = t->type[id];
        if ((ty == FB_TOKEN_CONTROL || ty == FB_TOKEN_UNKNOWN || ty == FB_TOKEN_USER_DEFINED) && t->text.len[id] > 0)
            n_special++;
    }
    if (n_special) {
        special_key *keys = malloc(n_special * sizeof *keys);
        t->special = malloc(n_special * sizeof *t->special);
        if (!keys || !t->special) {
            free(keys);
            goto oom;
        }
        size_t k = 0;
        for (uint32_t id = 0; id < t->n_vocab; id++) {
            int32_t ty = t->type[id];
            if ((ty == FB_TOKEN_CONTROL || ty == FB_TOKEN_UNKNOWN || ty == FB_TOKEN_USER_DEFINED) &&
                t->text.len[id] > 0)
                keys[k++] = (special_key){t->text.len[id], (int32_t)id};
        }
        qsort(keys, n_special, sizeof *keys, cmp_special_key);
        for (size_t i = 0; i < n_special; i++) t->special[i] = keys[i].id;
        free(keys);
        t->n_special = n_special;
    }

    if (build_pieces(t, cp_to_byte)) goto oom;
    *out = t;
    return 0;
oom:
    oom(f, err);
fail:
    fb_tokenizer_free(t);
    return -1;
}

// ------------------------------------------------------------------ one tokenize call's state

typedef struct frag {
    int32_t token; /* -1: text still to tokenize */
    size_t off, len;
} frag;

typedef struct frag_vec {
    frag *v;
    size_t n, cap;
} frag_vec;

static int frag_push(frag_vec *a, int32_t token, size_t off, size_t len) {
    if (grow(&a->v, &a->cap, a->n + 1, sizeof *a->v)) return -1;
    a->v[a->n++] = (frag){token, off, len};
    return 0;
}

/* A symbol of the word being merged: a byte range, its string id ("gpt2")
 * and its neighbours. len 0: merged into its left neighbour. */
typedef struct sym {
    uint32_t start, len;
    int32_t prev, next;
    int32_t sid;
} sym;

/* A candidate merge is one 64-bit key, smallest first: its priority in the
 * high half ("gpt2": the merge rank; "llama": the score, mapped so that a
 * higher score gives a smaller key) and the index of its left symbol in the
 * low half, so that ties go to the leftmost pair, as in llama.cpp. A
 * candidate is not updated when its symbols change; when it leaves the heap,
 * the pair now starting at its left symbol is looked up again and merged only
 * if its priority is still the key's. Every current pair has a key in the
 * heap, so a pair that passes this check is a current pair with the smallest
 * key: the merge order is llama.cpp's, and a candidate is 8 bytes. */
typedef struct session {
    const fb_tokenizer *t;
    i32_vec out;
    sym *syms;
    size_t cap_syms;
    uint64_t *heap;
    size_t n_heap, cap_heap;
    span_vec pieces, pieces2;
    char *esc; /* "llama": the escaped fragment */
    size_t cap_esc;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
} session;

static void session_free(session *s) {
    free(s->syms);
    free(s->heap);
    free(s->pieces.v);
    free(s->pieces2.v);
    free(s->esc);
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit_stack);
}

static inline uint64_t cand_key(uint32_t priority, int32_t left) { return (uint64_t)priority << 32 | (uint32_t)left; }

/* A binary min-heap of candidate keys. */
static int heap_push(session *s, uint64_t key) {
    if (grow(&s->heap, &s->cap_heap, s->n_heap + 1, sizeof *s->heap)) return -1;
    uint64_t *h = s->heap;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent] <= key) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = key;
    return 0;
}

static uint64_t heap_pop(session *s) {
    uint64_t *h = s->heap;
    uint64_t top = h[0], last = h[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && h[child + 1] < h[child]) child++;
        if (last <= h[child]) break;
        h[i] = h[child];
        i = child;
    }
    if (n) h[i] = last;
    return top;
}

static int no_byte_token(uint8_t b, fb_error *err) {
    return fb_error_set(err, "the vocabulary has no token for byte 0x%02X, which the text needs", b);
}

// ------------------------------------------------------------------ "llama": merge by score

/* The token of the merged string of symbol `left` and its right neighbour, or -1. */
static inline int32_t spm_pair_token(const session *s, const char *text, int32_t left) {
    const sym *l = &s->syms[left];
    if (l->next < 0) return -1;
    size_t size = (size_t)l->len + s->syms[l->next].len; /* adjacent: the merged string is contiguous */
    const char *str = text + l->start;
    return sidx_find(&s->t->text_index, &s->t->text, str, size, hash_bytes(str, size));
}

static int spm_try_pair(session *s, const char *text, int32_t left) {
    if (left < 0) return 0;
    int32_t id = spm_pair_token(s, text, left);
    return id < 0 ? 0 : heap_push(s, cand_key(s->t->score_key[id], left));
}

/* Merge one segment (text, len) of an escaped fragment into s->out. */
static int spm_segment(session *s, const char *text, size_t len, fb_error *err) {
    const fb_tokenizer *t = s->t;
    size_t n = 0;
    for (size_t i = 0; i < len; i += utf8_lead_len((uint8_t)text[i])) n++;
    if (grow(&s->syms, &s->cap_syms, n, sizeof *s->syms)) goto oom;
    size_t k = 0;
    for (size_t i = 0; i < len; k++) {
        size_t l = utf8_lead_len((uint8_t)text[i]);
        s->syms[k] = (sym){(uint32_t)i, (uint32_t)l, (int32_t)k - 1, k + 1 < n ? (int32_t)k + 1 : -1, -1};
        i += l;
    }
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (spm_try_pair(s, text, (int32_t)i)) goto oom;
    while (s->n_heap) {
        uint64_t key = heap_pop(s);
        int32_t left = (int32_t)(uint32_t)key;
        sym *l = &s->syms[left];
        if (l->len == 0) continue; /* merged away */
        int32_t id = spm_pair_token(s, text, left);
        if (id < 0 || t->score_key[id] != (uint32_t)(key >> 32)) continue; /* the pair has changed */
        sym *r = &s->syms[l->next];
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->syms[r->next].prev = left;
        if (spm_try_pair(s, text, l->prev) || spm_try_pair(s, text, left)) goto oom;
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = s->syms[i].next) {
        const sym *y = &s->syms[i];
        const char *str = text + y->start;
        int32_t id = sidx_find(&t->text_index, &t->text, str, y->len, hash_bytes(str, y->len));
        if (id >= 0) {
            if (i32_push(&s->out, id)) goto oom;
            continue;
        }
        for (uint32_t j = 0; j < y->len; j++) { /* byte fallback */
            uint8_t b = (uint8_t)str[j];
            if (t->byte_token[b] < 0) return no_byte_token(b, err);
            if (i32_push(&s->out, t->byte_token[b])) goto oom;
        }
    }
    return 0;
oom:
    return fb_error_set(err, "out of memory while tokenizing");
}

/* Tokenize one escaped fragment: cut it where two adjacent characters appear
 * together in no token (no merge can join them), merge each segment. */
static int spm_fragment(session *s, const char *text, size_t len, fb_error *err) {
    const uint8_t *u = (const uint8_t *)text;
    size_t seg = 0;
    uint32_t prev = UINT32_MAX, cp;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_seq_len(u + i, len - i, &cp); /* the text is valid UTF-8 */
        if (prev != UINT32_MAX && !pair_in_token(s->t, prev, cp)) {
            if (spm_segment(s, text + seg, i - seg, err)) return -1;
            seg = i;
        }
        prev = cp;
        i += l;
    }
    return len > seg ? spm_segment(s, text + seg, len - seg, err) : 0;
}

// ------------------------------------------------------------------ "gpt2": pre-tokenize, merge by rank

/* The merge-table slot of symbol `left` and its right neighbour, or -1. */
static inline int64_t bpe_pair_slot(const session *s, int32_t left) {
    const sym *l = &s->syms[left];
    if (l->next < 0) return -1;
    const merge_map *m = &s->t->merges;
    uint64_t key = merge_key(l->sid, s->syms[l->next].sid);
    size_t slot = merge_slot(m, key);
    return m->key[slot] == key ? (int64_t)slot : -1;
}

static int bpe_try_pair(session *s, int32_t left) {
    if (left < 0) return 0;
    int64_t slot = bpe_pair_slot(s, left);
    return slot < 0 ? 0 : heap_push(s, cand_key(s->t->merges.rank[slot], left));
}

/* Append the token of a merged symbol (string `sid`, bytes w[0..n)). When the
 * string is no token, llama.cpp looks each byte of its byte-level spelling up
 * as a one-byte token and drops the bytes that have none; HF tokenizers drop
 * them too (these vocabularies have no unknown token). With a well-formed
 * vocabulary this happens only to a byte whose character is missing: SmolLM2
 * has none for 21 byte values (0x04 0x06 0x13 0x14 0x16 0x1D, and 0xC0 0xC1
 * 0xF1 0xF2 0xF5-0xFF, which valid UTF-8 never or rarely holds). */
static int bpe_emit_symbol(session *s, int32_t sid, const uint8_t *w, size_t n) {
    const fb_tokenizer *t = s->t;
    if (t->raw_token[sid] >= 0) return i32_push(&s->out, t->raw_token[sid]);
    for (size_t j = 0; j < n; j++)
        for (int k = 0; k < t->spelling_len[w[j]]; k++) {
            int32_t id = t->one_byte_token[t->spelling[w[j]][k]];
            if (id >= 0 && i32_push(&s->out, id)) return -1;
        }
    return 0;
}

/* Merge the bytes of one pre-tokenized word and append its tokens. */
static int bpe_word(session *s, const uint8_t *w, size_t n, fb_error *err) {
    const fb_tokenizer *t = s->t;
    if (n == 0) return 0;
    if (n == 1) return bpe_emit_symbol(s, w[0], w, 1) ? fb_error_set(err, "out of memory while tokenizing") : 0;
    if (t->ignore_merges) {
        int32_t sid = sidx_find(&t->raw_index, &t->raw, w, n, hash_bytes(w, n));
        if (sid >= 0 && t->raw_token[sid] >= 0)
            return i32_push(&s->out, t->raw_token[sid]) ? fb_error_set(err, "out of memory while tokenizing") : 0;
    }
    if (grow(&s->syms, &s->cap_syms, n, sizeof *s->syms)) goto oom;
    for (size_t i = 0; i < n; i++)
        s->syms[i] = (sym){(uint32_t)i, 1, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, w[i]};
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (bpe_try_pair(s, (int32_t)i)) goto oom;
    while (s->n_heap) {
        uint64_t key = heap_pop(s);
        int32_t left = (int32_t)(uint32_t)key;
        sym *l = &s->syms[left];
        if (l->len == 0) continue; /* merged away */
        int64_t slot = bpe_pair_slot(s, left);
        if (slot < 0 || t->merges.rank[slot] != (uint32_t)(key >> 32)) continue; /* the pair has changed */
        sym *r = &s->syms[l->next];
        l->sid = t->merges.result[slot];
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s->syms[r->next].prev = left;
        if (bpe_try_pair(s, l->prev) || bpe_try_pair(s, left)) goto oom;
    }
    for (int32_t i = 0; i >= 0; i = s->syms[i].next)
        if (bpe_emit_symbol(s, s->syms[i].sid, w + s->syms[i].start, s->syms[i].len)) goto oom;
    return 0;
oom:
    return fb_error_set(err, "out of memory while tokenizing");
}

/* Split pieces `in` of text by pattern `re` into `out`: matches and the gaps
 * between them are pieces (as llama.cpp's splitter keeps unmatched text).
 * Each piece is its own subject, so lookaheads end at the piece's end. */
static int regex_split(session *s, const pcre2_code *re, const char *text, const span_vec *in, span_vec *out,
                       fb_error *err) {
    out->n = 0;
    for (size_t p = 0; p < in->n; p++) {
        const char *subject = text + in->v[p].off;
        size_t len = in->v[p].len, gap = 0, from = 0;
        while (from < len) {
            int rc = pcre2_match(re, (PCRE2_SPTR)subject, len, from, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[200];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return fb_error_set(err, "pre-tokenizer '%s' failed at byte %zu: %s", s->t->pre_name,
                                    in->v[p].off + from, (const char *)msg);
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* an empty match: none of our patterns has one, but never loop */
                from = ms + utf8_lead_len((uint8_t)subject[ms]);
                continue;
            }
            if (ms > gap && span_push(out, in->v[p].off + gap, ms - gap)) goto oom;
            if (span_push(out, in->v[p].off + ms, me - ms)) goto oom;
            gap = from = me;
        }
        if (gap < len && span_push(out, in->v[p].off + gap, len - gap)) goto oom;
    }
    return 0;
oom:
    return fb_error_set(err, "out of memory while tokenizing");
}

static int bpe_fragment(session *s, const char *text, size_t off, size_t len, fb_error *err) {
    const fb_tokenizer *t = s->t;
    if (!s->md) {
        s->md = pcre2_match_data_create(1, NULL);
        s->mctx = pcre2_match_context_create(NULL);
        s->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!s->md || !s->mctx || !s->jit_stack) return fb_error_set(err, "out of memory while tokenizing");
        pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
    }
    s->pieces.n = 0;
    if (span_push(&s->pieces, off, len)) return fb_error_set(err, "out of memory while tokenizing");
    for (size_t i = 0; i < t->n_re; i++) {
        if (regex_split(s, t->re[i], text, &s->pieces, &s->pieces2, err)) return -1;
        span_vec tmp = s->pieces;
        s->pieces = s->pieces2;
        s->pieces2 = tmp;
    }
    for (size_t i = 0; i < s->pieces.n; i++)
        if (bpe_word(s, (const uint8_t *)text + s->pieces.v[i].off, s->pieces.v[i].len, err)) return -1;
    return 0;
}

// ------------------------------------------------------------------ special tokens

/* First occurrence of needle (nlen > 0 bytes) in hay, or NULL. */
static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t nlen) {
    while (n >= nlen) {
        const char *p = memchr(hay, needle[0], n - nlen + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, nlen) == 0) return p;
        n -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return NULL;
}

/* Cut the text into fragments at every occurrence of a special token's text,
 * one token at a time, longest first (llama.cpp's tokenizer_st_partition). */
static int partition(const fb_tokenizer *t, const char *text, size_t len, bool parse_special, frag_vec *frags,
                     frag_vec *tmp) {
    frags->n = 0;
    if (len == 0) return 0;
    if (frag_push(frags, -1, 0, len)) return -1;
    for (size_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        int32_t ty = t->type[id];
        if (!parse_special && (ty == FB_TOKEN_CONTROL || ty == FB_TOKEN_UNKNOWN)) continue;
        const char *needle = strtab_get(&t->text, (size_t)id);
        size_t nlen = t->text.len[id];
        tmp->n = 0;
        bool found = false;
        for (size_t i = 0; i < frags->n; i++) {
            frag f = frags->v[i];
            if (f.token >= 0 || f.len < nlen) {
                if (frag_push(tmp, f.token, f.off, f.len)) return -1;
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            for (;;) {
                const char *hit = find_bytes(text + pos, end - pos, needle, nlen);
                if (!hit) break;
                size_t at = (size_t)(hit - text);
                found = true;
                if (at > pos && frag_push(tmp, -1, pos, at - pos)) return -1;
                if (frag_push(tmp, id, at, nlen)) return -1;
                pos = at + nlen;
            }
            if (pos < end && frag_push(tmp, -1, pos, end - pos)) return -1;
        }
        if (found) {
            frag_vec swap = *frags;
            *frags = *tmp;
            *tmp = swap;
        }
    }
    return 0;
}

// ------------------------------------------------------------------ tokenize

int fb_tokenize(const fb_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, size_t *n_ids, fb_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len > TOK_MAX_TEXT_BYTES)
        return fb_error_set(err, "the text is %zu bytes; at most %zu can be tokenized at once", len,
                            TOK_MAX_TEXT_BYTES);
    if (len && !text) return fb_error_set(err, "no text given");
    size_t bad = utf8_check((const uint8_t *)text, len);
    if (bad < len) return fb_error_set(err, "the text is not valid UTF-8 (byte %zu: 0x%02X)", bad, (uint8_t)text[bad]);

    session s = {.t = t};
    frag_vec frags = {0}, tmp = {0};
    int rc = -1;
    if (partition(t, text, len, parse_special, &frags, &tmp)) goto oom;
    if (add_special && t->add_bos && i32_push(&s.out, t->bos)) goto oom;
    bool prev_special = true; /* "llama": a fragment at the start or after a special token gets a space */
    for (size_t i = 0; i < frags.n; i++) {
        const frag *f = &frags.v[i];
        if (f->token >= 0) {
            if (i32_push(&s.out, f->token)) goto oom;
            prev_special = true;
            continue;
        }
        if (t->model == TOK_BPE) {
            if (bpe_fragment(&s, text, f->off, f->len, err)) goto done;
            continue;
        }
        /* "llama": optional leading space, then ' ' -> U+2581 (3 bytes) */
        size_t need = 3 * f->len + 3, n = 0;
        if (grow(&s.esc, &s.cap_esc, need, 1)) goto oom;
        if (t->add_space_prefix && prev_special) memcpy(s.esc, "\xE2\x96\x81", 3), n = 3;
        for (size_t j = 0; j < f->len; j++) {
            char c = text[f->off + j];
            if (c == ' ') memcpy(s.esc + n, "\xE2\x96\x81", 3), n += 3;
            else
                s.esc[n++] = c;
        }
        if (spm_fragment(&s, s.esc, n, err)) goto done;
        prev_special = false;
    }
    if (add_special && t->add_eos && i32_push(&s.out, t->eos)) goto oom;
    *ids = s.out.v;
    *n_ids = s.out.n;
    s.out.v = NULL;
    rc = 0;
    goto done;
oom:
    fb_error_set(err, "out of memory while tokenizing");
done:
    free(s.out.v);
    session_free(&s);
    free(frags.v);
    free(tmp.v);
    return rc;
}

// ------------------------------------------------------------------ detokenize

int fb_detokenize(const fb_tokenizer *t, const int32_t *ids, size_t n, bool render_special, char **text, size_t *len,
                  fb_error *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_vocab)
            return fb_error_set(err,
                                "token id %" PRId32 " (position %zu) is outside the vocabulary (%" PRIu32 " tokens)",
                                ids[i], i, t->n_vocab);
        total += t->piece.len[ids[i]]; /* each piece is < 4 GiB and there are < 2^31 of them: no overflow in 64 bits */
        if (total > SIZE_MAX / 2) return fb_error_set(err, "the decoded text would be too large");
    }
    char *out = malloc(total + 1);
    if (!out) return fb_error_set(err, "out of memory while decoding %zu tokens", n);
    size_t used = 0;
    /* "llama": the space add_space_prefix put at the start of a fragment goes */
    bool strip = t->model == TOK_SPM && t->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i], ty = t->type[id];
        bool special = ty == FB_TOKEN_CONTROL || ty == FB_TOKEN_UNKNOWN || ty == FB_TOKEN_USER_DEFINED;
        const char *p = strtab_get(&t->piece, (size_t)id);
        size_t l = t->piece.len[id];
        if (special) {
            if (render_special || ty == FB_TOKEN_USER_DEFINED) memcpy(out + used, p, l), used += l;
            strip = t->model == TOK_SPM && t->add_space_prefix;
            continue;
        }
        if (l == 0) continue;
        if (strip && p[0] == ' ') p++, l--;
        strip = false;
        memcpy(out + used, p, l);
        used += l;
    }
    out[used] = '\0';
    *text = out;
    *len = used;
    return 0;
}
