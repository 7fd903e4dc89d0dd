/* cmd_tokenize.c - `fairbench tokenize`: show how the model's own tokenizer
 * splits a text, or turn ids back into text.
 *
 *   fairbench tokenize MODEL.gguf TEXT            one line per token: id, piece
 *   fairbench tokenize MODEL.gguf --file PATH     the text of a file ("-": stdin)
 *   fairbench tokenize MODEL.gguf --ids TEXT      ids only: "1,2,3" (input to --decode)
 *   fairbench tokenize MODEL.gguf --decode 1,2,3  the text, byte for byte
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

void fb_tokenize_usage(FILE *out) {
    fprintf(out, "usage: fairbench tokenize MODEL.gguf (TEXT | --file PATH) [--ids] [--parse-special] [--no-bos-eos]\n"
                 "       fairbench tokenize MODEL.gguf --decode ID,ID,... [--skip-special]\n"
                 "  prints one line per token: its id and its piece, quoted with C escapes;\n"
                 "  --ids prints only the ids, comma-separated; --decode prints the text exactly\n"
                 "  --parse-special  match control tokens such as <|im_start|> in the text\n"
                 "  --no-bos-eos     do not add the BOS / EOS tokens the model asks for\n"
                 "  --skip-special   --decode leaves control tokens out\n"
                 "  use -- before a TEXT that starts with '-'\n");
}

/* The whole of a file ("-": standard input), binary-safe. */
static int read_all(const char *path, char **data, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fairbench tokenize: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    if (f != stdin) fclose(f);
    if (!buf || failed) {
        fprintf(stderr, "fairbench tokenize: cannot read %s: %s\n", path, buf ? "read error" : "out of memory");
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* Print bytes quoted: valid UTF-8 as it is, C escapes for control bytes,
 * quotes and backslashes, \xNN for bytes that are not UTF-8. */
static void print_quoted(const char *s, size_t len) {
    putchar('\'');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout), i++;
        else if (c == '\t')
            fputs("\\t", stdout), i++;
        else if (c == '\r')
            fputs("\\r", stdout), i++;
        else if (c == '\\' || c == '\'')
            printf("\\%c", c), i++;
        else if (c < 0x20 || c == 0x7F)
            printf("\\x%02X", c), i++;
        else if (c < 0x80)
            putchar(c), i++;
        else {
            size_t l = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
            bool ok = l && i + l <= len;
            for (size_t k = 1; ok && k < l; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
            if (ok) { /* a well-formed lead and continuation bytes (fine checks left to the terminal) */
                fwrite(s + i, 1, l, stdout);
                i += l;
            } else {
                printf("\\x%02X", c);
                i++;
            }
        }
    }
    putchar('\'');
}

/* "1,2, 3" -> ids; -1 after printing why on a malformed list. */
static int parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, count = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX) {
            fprintf(stderr, "fairbench tokenize: --decode expects comma-separated token ids, got '%.40s'\n", p);
            free(v);
            return -1;
        }
        if (count == cap) {
            int32_t *bigger = realloc(v, cap * 2 * sizeof *v);
            if (!bigger) {
                free(v);
                return -1;
            }
            v = bigger;
            cap *= 2;
        }
        v[count++] = (int32_t)x;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (*p == ',') {
            p++;
            while (*p == ' ' || *p == '\t' || *p == '\n') p++;
            if (!*p) break;
        } else if (*p) {
            fprintf(stderr, "fairbench tokenize: --decode expects comma-separated token ids, got '%.40s'\n", p);
            free(v);
            return -1;
        }
    }
    *ids = v;
    *n = count;
    return 0;
}

int fb_cmd_tokenize(int argc, char **argv) {
    enum { O_FILE = 256, O_IDS, O_DECODE, O_PARSE_SPECIAL, O_NO_BOS_EOS, O_SKIP_SPECIAL };
    static const struct option longopts[] = {{"file", required_argument, NULL, O_FILE},
                                             {"ids", no_argument, NULL, O_IDS},
                                             {"decode", required_argument, NULL, O_DECODE},
                                             {"parse-special", no_argument, NULL, O_PARSE_SPECIAL},
                                             {"no-bos-eos", no_argument, NULL, O_NO_BOS_EOS},
                                             {"skip-special", no_argument, NULL, O_SKIP_SPECIAL},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    const char *file = NULL, *decode = NULL;
    bool ids_only = false, parse_special = false, add_special = true, skip_special = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_FILE: file = optarg; break;
        case O_IDS: ids_only = true; break;
        case O_DECODE: decode = optarg; break;
        case O_PARSE_SPECIAL: parse_special = true; break;
        case O_NO_BOS_EOS: add_special = false; break;
        case O_SKIP_SPECIAL: skip_special = true; break;
        case 'h': fb_tokenize_usage(stdout); return EXIT_OK;
        default: fb_tokenize_usage(stderr); return EXIT_USAGE;
        }
    }
    int n_args = argc - optind;
    int want = (decode || file) ? 1 : 2;
    if (n_args != want || (decode && file)) {
        fprintf(stderr, "fairbench tokenize: expected MODEL.gguf and %s\n",
                decode && file   ? "either --decode or --file, not both"
                : decode || file ? "no other argument"
                                 : "a TEXT (or --file PATH, or --decode IDS)");
        fb_tokenize_usage(stderr);
        return EXIT_USAGE;
    }
    const char *model = argv[optind];

    fb_error err;
    gguf_file *g;
    if (gguf_open(model, &g, &err)) {
        fprintf(stderr, "fairbench tokenize: %s\n", err.msg);
        return EXIT_USAGE;
    }
    fb_tokenizer *tok;
    int rc = fb_tokenizer_load(g, &tok, &err);
    gguf_close(g);
    if (rc) {
        fprintf(stderr, "fairbench tokenize: %s\n", err.msg);
        return EXIT_USAGE;
    }

    int status = EXIT_USAGE;
    char *text = NULL, *decoded = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n_ids = 0;
    if (decode) {
        if (parse_ids(decode, &ids, &n_ids)) goto done;
        if (fb_detokenize(tok, ids, n_ids, !skip_special, &decoded, &len, &err)) {
            fprintf(stderr, "fairbench tokenize: %s\n", err.msg);
            goto done;
        }
        fwrite(decoded, 1, len, stdout);
        status = EXIT_OK;
        goto done;
    }
    const char *input;
    if (file) {
        if (read_all(file, &text, &len)) goto done;
        input = text;
    } else {
        input = argv[optind + 1];
        len = strlen(input);
    }
    if (fb_tokenize(tok, input, len, add_special, parse_special, &ids, &n_ids, &err)) {
        fprintf(stderr, "fairbench tokenize: %s: %s\n", file ? file : "TEXT", err.msg);
        goto done;
    }
    /* Say so when the ids do not spell the text back (a byte-level vocabulary
     * drops bytes it has no token for, as llama.cpp does; a "llama" one reads
     * "▁" as a space). */
    char *back = NULL;
    int32_t *plain = NULL; /* the same without BOS/EOS, which decoding would show */
    size_t back_len = 0, n_plain = 0;
    if (fb_tokenize(tok, input, len, false, parse_special, &plain, &n_plain, &err) == 0 &&
        fb_detokenize(tok, plain, n_plain, parse_special, &back, &back_len, &err) == 0 &&
        (back_len != len || memcmp(back, input, len) != 0))
        fprintf(stderr,
                "fairbench tokenize: note: these ids decode to %zu bytes that differ from the %zu bytes of the "
                "text: the vocabulary cannot spell all of it\n",
                back_len, len);
    free(back);
    free(plain);
    if (ids_only) {
        for (size_t i = 0; i < n_ids; i++) printf(i ? ",%" PRId32 : "%" PRId32, ids[i]);
        putchar('\n');
    } else {
        for (size_t i = 0; i < n_ids; i++) {
            size_t piece_len;
            const char *piece = fb_token_piece(tok, ids[i], &piece_len);
            int32_t type = fb_token_type(tok, ids[i]);
            printf("%7" PRId32 "  ", ids[i]);
            print_quoted(piece, piece_len);
            if (type == FB_TOKEN_CONTROL) fputs("  (control)", stdout);
            else if (type == FB_TOKEN_USER_DEFINED)
                fputs("  (user-defined)", stdout);
            else if (type == FB_TOKEN_BYTE)
                fputs("  (byte)", stdout);
            else if (type == FB_TOKEN_UNKNOWN)
                fputs("  (unknown)", stdout);
            putchar('\n');
        }
    }
    status = EXIT_OK;
done:
    if (fflush(stdout) != 0 && status == EXIT_OK) {
        fprintf(stderr, "fairbench tokenize: cannot write the output\n");
        status = EXIT_USAGE;
    }
    free(text);
    free(decoded);
    free(ids);
    fb_tokenizer_free(tok);
    return status;
}
