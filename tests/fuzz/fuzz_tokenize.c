/* fuzz_tokenize.c - libFuzzer target for the tokenizer and the profile parser.
 *
 *   make fuzz-more    # builds with clang, runs each target FUZZ_SECONDS (default 300)
 *
 * The first input byte picks what is fuzzed:
 *   0-3  tokenize the rest with one of the committed test vocabularies
 *        (llama-bpe, smollm, gpt-2, SentencePiece-style), with and without
 *        special parsing; for the byte-level vocabularies, whose 256 byte
 *        tokens spell any input, decode(encode(text)) must give the text back
 *        when the text is valid UTF-8;
 *   4+   read the rest as a fairness profile.
 * FUZZ_DATA_DIR (compile definition) is tests/data/tokenizer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "profile.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fb_tokenizer *vocab[4];

static fb_tokenizer *load(int i) {
    static const char *names[4] = {"bpe-llama3.gguf", "bpe-smollm.gguf", "bpe-gpt2.gguf", "spm.gguf"};
    if (vocab[i]) return vocab[i];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FUZZ_DATA_DIR, names[i]);
    gguf_file *f;
    fb_error err;
    if (gguf_open(path, &f, &err) || fb_tokenizer_load(f, &vocab[i], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        abort();
    }
    gguf_close(f);
    return vocab[i];
}

static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static void fuzz_tokenizer(int which, const uint8_t *text, size_t n) {
    fb_tokenizer *t = load(which);
    for (int special = 0; special < 2; special++) {
        int32_t *ids;
        size_t n_ids;
        fb_error err;
        if (fb_tokenize(t, (const char *)text, n, false, special, &ids, &n_ids, &err) != 0) continue;
        char *back;
        size_t back_len;
        if (fb_detokenize(t, ids, n_ids, true, &back, &back_len, &err) != 0) __builtin_trap();
        /* Byte-level vocabularies spell every byte: the round trip is exact. */
        if (which < 3 && valid_utf8(text, n) && (back_len != n || memcmp(back, text, n) != 0)) __builtin_trap();
        free(back);
        free(ids);
    }
}

static void fuzz_profile(const uint8_t *text, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz-profile-%d.ini", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    fwrite(text, 1, n, fp);
    fclose(fp);
    static fb_profile p;
    fb_error err;
    if (fb_profile_load(path, &p, &err) == 0) {
        fb_profile_set(&p, "run.repetitions=2", &err);
        fb_profile_finish(&p, &err); /* the model will mostly be missing: an error, not a crash */
    } else if (strncmp(err.msg, path, strlen(path)) != 0) {
        __builtin_trap(); /* every profile error names the file */
    }
    remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] < 4) fuzz_tokenizer(data[0], data + 1, size - 1);
    else
        fuzz_profile(data + 1, size - 1);
    return 0;
}
