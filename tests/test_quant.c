/* test_quant.c - core/quant.c against gguf-py's golden files, hand-derived
 * fp16/bf16 bit patterns, and round-trip error bounds for the encoders.
 *
 *   test_quant GOLDEN_DIR [SEED]
 *
 * GOLDEN_DIR holds the files of tests/data/quant/make_golden.py (format in
 * that script). Exit status 0 when every check passes, 1 otherwise. */
#include "quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Check bookkeeping: one line per check.

static int n_checks, n_failed;

__attribute__((format(printf, 2, 3))) static bool check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    n_checks++;
    if (!ok) n_failed++;
    return ok;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Compare two float arrays bit for bit; describe the result in `what`. */
static bool check_floats_bitexact(const float *got, const float *want, size_t n, const char *what) {
    size_t first = n, mismatches = 0;
    double max_diff = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            if (first == n) first = i;
            mismatches++;
            double diff = fabs((double)got[i] - (double)want[i]);
            if (diff > max_diff || diff != diff) max_diff = diff;
        }
    }
    if (mismatches == 0) return check(true, "%s: %zu values bit-exact (max diff 0)", what, n);
    return check(
        false,
        "%s: %zu of %zu differ, first at %zu: got %.9g (0x%08" PRIx32 ") want %.9g (0x%08" PRIx32 "), max diff %.3g",
        what, mismatches, n, first, got[first], bits_of(got[first]), want[first], bits_of(want[first]), max_diff);
}

static bool check_bytes_equal(const uint8_t *got, const uint8_t *want, size_t n, const char *what) {
    size_t first = n, mismatches = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            if (first == n) first = i;
            mismatches++;
        }
    }
    if (mismatches == 0) return check(true, "%s: %zu bytes identical", what, n);
    return check(false, "%s: %zu of %zu bytes differ, first at byte %zu: got 0x%02x want 0x%02x", what, mismatches, n,
                 first, got[first], want[first]);
}

// ----------------------------------------------------------------------------
// Golden files (format: tests/data/quant/make_golden.py).

#define GOLDEN_HEADER_BYTES 24
#define GOLDEN_FLAG_HAS_INPUT 1u

static uint32_t read_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint8_t *read_whole_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    uint8_t *data = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *grown = realloc(data, cap);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    *size = len;
    return data;
}

/* n little-endian f32 values at src (any alignment), copied into a new array. */
static float *copy_floats(const uint8_t *src, size_t n) {
    float *out = malloc(n * sizeof(float) + 1);
    if (out == NULL) return NULL;
    for (size_t i = 0; i < n; i++) out[i] = float_of(read_le32(src + 4 * i));
    return out;
}

static void check_golden(const char *dir, const char *type_name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, type_name);
    size_t size = 0;
    uint8_t *file = read_whole_file(path, &size);
    if (!check(file != NULL && size >= GOLDEN_HEADER_BYTES, "golden %s: read %s", type_name, path)) {
        free(file);
        return;
    }
    const uint32_t version = read_le32(file + 4), type = read_le32(file + 8);
    const uint32_t n_rows = read_le32(file + 12), n_cols = read_le32(file + 16), flags = read_le32(file + 20);
    const size_t row_bytes = quant_row_bytes(type, n_cols);
    const size_t n_values = (size_t)n_rows * n_cols;
    const bool has_input = (flags & GOLDEN_FLAG_HAS_INPUT) != 0;
    const size_t want_size = GOLDEN_HEADER_BYTES + n_rows * row_bytes + n_values * sizeof(float) * (has_input ? 2 : 1);
    if (!check(memcmp(file, "FBQG", 4) == 0 && version == 1 && (int)type == quant_type_from_name(type_name) &&
                   row_bytes > 0 && n_rows > 0 && n_rows < 100000 && n_cols < 100000000 && size == want_size,
               "golden %s: header (type %" PRIu32 ", %" PRIu32 " x %" PRIu32 ", flags %" PRIu32 ", %zu bytes)",
               type_name, type, n_rows, n_cols, flags, size)) {
        free(file);
        return;
    }
    const uint8_t *blocks = file + GOLDEN_HEADER_BYTES;
    float *want = copy_floats(blocks + n_rows * row_bytes, n_values);
    float *input = has_input ? copy_floats(blocks + n_rows * row_bytes + n_values * sizeof(float), n_values) : NULL;
    float *got = malloc(n_values * sizeof(float) + 1);
    uint16_t *got_half = malloc(n_values * sizeof(uint16_t) + 1);
    uint16_t *want_half = malloc(n_values * sizeof(uint16_t) + 1);
    uint8_t *encoded = malloc(n_rows * row_bytes + 1);
    uint8_t *shifted = malloc(row_bytes + 1);
    if (!check(want && (input || !has_input) && got && got_half && want_half && encoded && shifted,
               "golden %s: allocate", type_name))
        goto done;

    char what[128];
    /* decode to f32, row by row, against gguf-py's dequantize */
    int rc = 0;
    for (uint32_t r = 0; r < n_rows; r++)
        rc |= quant_row_to_f32(type, blocks + r * row_bytes, got + (size_t)r * n_cols, n_cols);
    snprintf(what, sizeof what, "golden %s: quant_row_to_f32 vs gguf-py dequantize (%" PRIu32 " rows)", type_name,
             n_rows);
    check(rc == 0, "%s returns 0", what);
    check_floats_bitexact(got, want, n_values, what);

    /* blocks sit at any byte offset in an mmap: decode row 0 from an odd address */
    memcpy(shifted + 1, blocks, row_bytes);
    rc = quant_row_to_f32(type, shifted + 1, got, n_cols);
    snprintf(what, sizeof what, "golden %s: row 0 decoded from an odd address", type_name);
    check(rc == 0, "%s returns 0", what);
    check_floats_bitexact(got, want, n_cols, what);

    /* decode to f16 = f32 decode rounded to half */
    rc = 0;
    for (uint32_t r = 0; r < n_rows; r++)
        rc |= quant_row_to_f16(type, blocks + r * row_bytes, got_half + (size_t)r * n_cols, n_cols);
    for (size_t i = 0; i < n_values; i++) want_half[i] = f32_to_fp16(want[i]);
    {
        size_t first = n_values, mismatches = 0;
        for (size_t i = 0; i < n_values; i++)
            if (got_half[i] != want_half[i] && mismatches++ == 0) first = i;
        if (mismatches == 0)
            check(rc == 0, "golden %s: quant_row_to_f16 == f32_to_fp16(gguf-py values), %zu values", type_name,
                  n_values);
        else
            check(false, "golden %s: quant_row_to_f16: %zu of %zu differ, first at %zu: got 0x%04x want 0x%04x",
                  type_name, mismatches, n_values, first, got_half[first], want_half[first]);
    }

    /* encoders, where the file holds gguf-py's input */
    if (has_input) {
        rc = 0;
        memset(encoded, 0xA5, n_rows * row_bytes);
        for (uint32_t r = 0; r < n_rows; r++)
            rc |= quant_row_from_f32(type, input + (size_t)r * n_cols, encoded + r * row_bytes, n_cols);
        snprintf(what, sizeof what, "golden %s: quant_row_from_f32 vs gguf-py quantize", type_name);
        check(rc == 0, "%s returns 0", what);
        check_bytes_equal(encoded, blocks, n_rows * row_bytes, what);
    }

done:
    free(want);
    free(input);
    free(got);
    free(got_half);
    free(want_half);
    free(encoded);
    free(shifted);
    free(file);
}

// ----------------------------------------------------------------------------
// fp16 / bf16 conversions against hand-derived bit patterns.

typedef struct {
    uint32_t in;
    uint32_t out;
    const char *why;
} bit_case;

static void check_conversions(void) {
    /* f32 bits -> half bits */
    static const bit_case to_half[] = {
        {0x00000000, 0x0000, "+0"},
        {0x80000000, 0x8000, "-0"},
        {0x3F800000, 0x3C00, "1"},
        {0xC0000000, 0xC000, "-2"},
        {0x477FE000, 0x7BFF, "65504 = max half"},
        {0x477FEFFF, 0x7BFF, "just below 65520 rounds down to max"},
        {0x477FF000, 0x7C00, "65520: tie, max half is odd -> inf"},
        {0x47800000, 0x7C00, "65536 overflows to inf"},
        {0x7F7FFFFF, 0x7C00, "max f32 -> inf"},
        {0xFF7FFFFF, 0xFC00, "-max f32 -> -inf"},
        {0x7F800000, 0x7C00, "inf"},
        {0xFF800000, 0xFC00, "-inf"},
        {0x7FC00000, 0x7E00, "quiet NaN"},
        {0xFFC00000, 0xFE00, "-quiet NaN"},
        {0x7F800001, 0x7E00, "signalling NaN comes out quiet"},
        {0x7FFFFFFF, 0x7FFF, "NaN payload top bits kept"},
        {0x38800000, 0x0400, "2^-14: smallest normal"},
        {0x387FE000, 0x0400, "2^-14 - 2^-25: subnormal tie 1023.5 -> 1024, carries into normal"},
        {0x387FC000, 0x03FF, "1023 * 2^-24: largest subnormal"},
        {0x33800000, 0x0001, "2^-24: smallest subnormal"},
        {0x33000000, 0x0000, "2^-25: tie between 0 and 2^-24 -> 0 (even)"},
        {0x33000001, 0x0001, "just above 2^-25 -> 2^-24"},
        {0x33400000, 0x0001, "1.5 * 2^-25 -> 2^-24"},
        {0x33C00000, 0x0002, "3 * 2^-25: tie 1.5 -> 2 (even)"},
        {0x34200000, 0x0002, "5 * 2^-25: tie 2.5 -> 2 (even)"},
        {0xB3800000, 0x8001, "-2^-24"},
        {0x32FFFFFF, 0x0000, "just below 2^-25 -> 0"},
        {0x00000001, 0x0000, "f32 subnormal -> 0"},
        {0x80000001, 0x8000, "negative f32 subnormal -> -0"},
        {0x3F801000, 0x3C00, "1 + 2^-11: tie -> 1 (even)"},
        {0x3F803000, 0x3C02, "1 + 3*2^-11: tie -> 1 + 2^-9 (even)"},
        {0x3F801001, 0x3C01, "1 + 2^-11 + 2^-23: above tie -> up"},
        {0x3F800FFF, 0x3C00, "1 + 2^-11 - 2^-23: below tie -> down"},
        {0x3DCCCCCD, 0x2E66, "0.1"},
    };
    for (size_t i = 0; i < sizeof to_half / sizeof to_half[0]; i++) {
        uint16_t got = f32_to_fp16(float_of(to_half[i].in));
        check(got == to_half[i].out, "f32_to_fp16(0x%08" PRIx32 ") = 0x%04x, want 0x%04" PRIx32 " (%s)", to_half[i].in,
              got, to_half[i].out, to_half[i].why);
    }

    /* half bits -> f32 bits */
    static const bit_case from_half[] = {
        {0x0000, 0x00000000, "+0"},
        {0x8000, 0x80000000, "-0"},
        {0x0001, 0x33800000, "smallest subnormal 2^-24"},
        {0x8001, 0xB3800000, "-2^-24"},
        {0x0200, 0x38000000, "subnormal 2^-15"},
        {0x03FF, 0x387FC000, "largest subnormal"},
        {0x0400, 0x38800000, "smallest normal 2^-14"},
        {0x3C00, 0x3F800000, "1"},
        {0x3555, 0x3EAAA000, "0.333251953125"},
        {0xC000, 0xC0000000, "-2"},
        {0x7BFF, 0x477FE000, "65504"},
        {0x7C00, 0x7F800000, "inf"},
        {0xFC00, 0xFF800000, "-inf"},
        {0x7E00, 0x7FC00000, "quiet NaN"},
        {0x7C01, 0x7FC02000, "signalling NaN: payload kept, made quiet"},
        {0xFFFF, 0xFFFFE000, "-NaN, full payload"},
    };
    for (size_t i = 0; i < sizeof from_half / sizeof from_half[0]; i++) {
        uint32_t got = bits_of(fp16_to_f32((uint16_t)from_half[i].in));
        check(got == from_half[i].out, "fp16_to_f32(0x%04" PRIx32 ") = 0x%08" PRIx32 ", want 0x%08" PRIx32 " (%s)",
              from_half[i].in, got, from_half[i].out, from_half[i].why);
    }

    /* every finite half survives half -> f32 -> half; every NaN stays NaN */
    size_t round_trip_bad = 0, first_bad = 0;
    for (uint32_t h = 0; h <= 0xFFFF; h++) {
        float f = fp16_to_f32((uint16_t)h);
        uint16_t back = f32_to_fp16(f);
        bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
        bool ok = is_nan ? (f != f && (back & 0x7C00) == 0x7C00 && (back & 0x3FF) != 0) : back == h;
        if (!ok && round_trip_bad++ == 0) first_bad = h;
    }
    check(round_trip_bad == 0,
          "all 65536 halves: f32_to_fp16(fp16_to_f32(h)) == h, NaN stays NaN (%zu bad, first 0x%04zx)", round_trip_bad,
          first_bad);

    /* f32 bits -> bf16 bits */
    static const bit_case to_bf16[] = {
        {0x00000000, 0x0000, "+0"},
        {0x80000000, 0x8000, "-0"},
        {0x3F800000, 0x3F80, "1"},
        {0x3F808000, 0x3F80, "1 + 2^-8: tie -> 1 (even)"},
        {0x3F818000, 0x3F82, "1 + 3*2^-8: tie -> up (even)"},
        {0x3F808001, 0x3F81, "just above tie -> up"},
        {0x3F807FFF, 0x3F80, "just below tie -> down"},
        {0x7F7F7FFF, 0x7F7F, "below the top tie stays finite"},
        {0x7F7F8000, 0x7F80, "tie at the top, odd -> inf"},
        {0x7F7FFFFF, 0x7F80, "max f32 rounds to inf"},
        {0x7F800000, 0x7F80, "inf"},
        {0xFF800000, 0xFF80, "-inf"},
        {0x7FC00000, 0x7FC0, "quiet NaN"},
        {0x7F800001, 0x7FC0, "signalling NaN (payload only in low bits) -> quiet NaN, not inf"},
        {0xFF800001, 0xFFC0, "negative signalling NaN"},
        {0x7FFFFFFF, 0x7FFF, "NaN with full payload: truncated, not rounded into the sign"},
        {0x00008000, 0x0000, "f32 subnormal tie -> 0 (even)"},
        {0x00018000, 0x0002, "f32 subnormal tie -> 2 (even)"},
        {0x00000001, 0x0000, "tiniest subnormal -> 0"},
    };
    for (size_t i = 0; i < sizeof to_bf16 / sizeof to_bf16[0]; i++) {
        uint16_t got = f32_to_bf16(float_of(to_bf16[i].in));
        check(got == to_bf16[i].out, "f32_to_bf16(0x%08" PRIx32 ") = 0x%04x, want 0x%04" PRIx32 " (%s)", to_bf16[i].in,
              got, to_bf16[i].out, to_bf16[i].why);
    }
    static const bit_case from_bf16[] = {
        {0x3F80, 0x3F800000, "1"},
        {0x8000, 0x80000000, "-0"},
        {0x0001, 0x00010000, "subnormal"},
        {0x7F80, 0x7F800000, "inf"},
        {0xFFC1, 0xFFC10000, "-NaN with payload"},
    };
    for (size_t i = 0; i < sizeof from_bf16 / sizeof from_bf16[0]; i++) {
        uint32_t got = bits_of(bf16_to_f32((uint16_t)from_bf16[i].in));
        check(got == from_bf16[i].out, "bf16_to_f32(0x%04" PRIx32 ") = 0x%08" PRIx32 ", want 0x%08" PRIx32 " (%s)",
              from_bf16[i].in, got, from_bf16[i].out, from_bf16[i].why);
    }
}

// ----------------------------------------------------------------------------
// Type table, names and sizes.

static void check_table(void) {
    /* gguf-py 0.19.0 GGML_QUANT_SIZES, except Q8_1 (ggml C block_q8_1 is 36 bytes) */
    static const struct {
        uint32_t id;
        const char *name;
        int32_t elems, bytes;
        bool codec; /* decode and encode supported */
    } want[] = {
        {0, "F32", 1, 4, true},          {1, "F16", 1, 2, true},          {2, "Q4_0", 32, 18, true},
        {3, "Q4_1", 32, 20, true},       {6, "Q5_0", 32, 22, true},       {7, "Q5_1", 32, 24, true},
        {8, "Q8_0", 32, 34, true},       {9, "Q8_1", 32, 36, false},      {10, "Q2_K", 256, 84, false},
        {11, "Q3_K", 256, 110, false},   {12, "Q4_K", 256, 144, true},    {13, "Q5_K", 256, 176, true},
        {14, "Q6_K", 256, 210, true},    {15, "Q8_K", 256, 292, false},   {16, "IQ2_XXS", 256, 66, false},
        {17, "IQ2_XS", 256, 74, false},  {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
        {20, "IQ4_NL", 32, 18, false},   {21, "IQ3_S", 256, 110, false},  {22, "IQ2_S", 256, 82, false},
        {23, "IQ4_XS", 256, 136, false}, {24, "I8", 1, 1, false},         {25, "I16", 1, 2, false},
        {26, "I32", 1, 4, false},        {27, "I64", 1, 8, false},        {28, "F64", 1, 8, false},
        {29, "IQ1_M", 256, 56, false},   {30, "BF16", 1, 2, true},        {34, "TQ1_0", 256, 54, false},
        {35, "TQ2_0", 256, 66, false},   {39, "MXFP4", 32, 17, false},    {40, "NVFP4", 64, 36, false},
        {41, "Q1_0", 128, 18, false},
    };
    const size_t n_want = sizeof want / sizeof want[0];
    size_t bad = 0, known = 0;
    for (size_t i = 0; i < n_want; i++) {
        const quant_type_info *t = quant_type_get(want[i].id);
        bool ok = t != NULL && strcmp(t->name, want[i].name) == 0 && t->block_elems == want[i].elems &&
                  t->block_bytes == want[i].bytes && t->can_decode == want[i].codec && t->can_encode == want[i].codec &&
                  quant_type_from_name(want[i].name) == (int)want[i].id;
        if (!ok) {
            bad++;
            check(false, "type %" PRIu32 ": want %s %d/%d codec=%d, got %s %d/%d decode=%d encode=%d", want[i].id,
                  want[i].name, want[i].elems, want[i].bytes, want[i].codec, t ? t->name : "(null)",
                  t ? t->block_elems : 0, t ? t->block_bytes : 0, t ? t->can_decode : 0, t ? t->can_encode : 0);
        }
    }
    for (uint32_t id = 0; id < 64; id++) known += quant_type_get(id) != NULL;
    check(bad == 0 && known == n_want,
          "type table: %zu ids match gguf-py names/sizes and can_decode/can_encode, %zu known in 0..63", n_want - bad,
          known);

    static const uint32_t unknown[] = {4, 5, 31, 32, 33, 36, 37, 38, 42, 63, 1000, UINT32_MAX};
    size_t non_null = 0;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) non_null += quant_type_get(unknown[i]) != NULL;
    check(non_null == 0,
          "quant_type_get of gaps and out-of-range ids (4, 5, 31-33, 36-38, 42, 63, 1000, UINT32_MAX) is NULL");

    check(quant_type_from_name("q4_k") == GGUF_TYPE_Q4_K && quant_type_from_name("Bf16") == GGUF_TYPE_BF16 &&
              quant_type_from_name("iq2_xxs") == GGUF_TYPE_IQ2_XXS,
          "quant_type_from_name is case-insensitive (q4_k, Bf16, iq2_xxs)");
    check(quant_type_from_name("Q4_") == -1 && quant_type_from_name("Q4_KX") == -1 && quant_type_from_name("") == -1 &&
              quant_type_from_name("Q4_2") == -1 && quant_type_from_name(NULL) == -1,
          "quant_type_from_name rejects prefixes, suffixes, \"\", removed types and NULL");

    /* row sizes */
    check(quant_row_bytes(GGUF_TYPE_Q4_0, 32) == 18 && quant_row_bytes(GGUF_TYPE_Q4_K, 4096) == 16 * 144 &&
              quant_row_bytes(GGUF_TYPE_F16, 3) == 6 && quant_row_bytes(GGUF_TYPE_Q8_1, 64) == 72 &&
              quant_row_bytes(GGUF_TYPE_F32, 0) == 0,
          "quant_row_bytes: Q4_0 x32 = 18, Q4_K x4096 = 2304, F16 x3 = 6, Q8_1 x64 = 72, n=0 -> 0");
    check(quant_row_bytes(GGUF_TYPE_Q4_0, 33) == 0 && quant_row_bytes(GGUF_TYPE_Q4_K, 128) == 0 &&
              quant_row_bytes(GGUF_TYPE_Q4_0, -32) == 0 && quant_row_bytes(4, 32) == 0 && quant_row_bytes(1000, 1) == 0,
          "quant_row_bytes rejects non-multiples, negative n and unknown types");
    const int64_t n_fit = (int64_t)(SIZE_MAX / 8); /* fits int64 on 32- and 64-bit size_t */
    check(quant_row_bytes(GGUF_TYPE_F64, n_fit) == (size_t)n_fit * 8 &&
              quant_row_bytes(GGUF_TYPE_F64, n_fit + 1) == 0 && quant_row_bytes(GGUF_TYPE_F32, INT64_MAX) == 0,
          "quant_row_bytes: F64 x (SIZE_MAX/8) fits, one more overflows -> 0; F32 x INT64_MAX -> 0");

    float out[256];
    uint16_t out_half[256];
    uint8_t blocks[512] = {0};
    check(quant_row_to_f32(GGUF_TYPE_Q4_0, blocks, out, 31) == -1 &&
              quant_row_to_f16(GGUF_TYPE_Q4_0, blocks, out_half, 31) == -1 &&
              quant_row_from_f32(GGUF_TYPE_Q4_0, out, blocks, 31) == -1,
          "decode/encode reject n not a multiple of the block size");
    check(quant_row_to_f32(GGUF_TYPE_Q2_K, blocks, out, 256) == -1 &&
              quant_row_to_f16(GGUF_TYPE_IQ4_NL, blocks, out_half, 32) == -1 &&
              quant_row_from_f32(GGUF_TYPE_Q2_K, out, blocks, 256) == -1 &&
              quant_row_to_f32(4, blocks, out, 32) == -1 && quant_row_to_f32(1000, blocks, out, 32) == -1,
          "decode/encode reject known-but-unsupported (Q2_K, IQ4_NL) and unknown type ids");
}

// ----------------------------------------------------------------------------
// Encoder round trips on random N(0,1) rows.

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(void) { return ((rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); } /* (0, 1) */

static float rng_normal(void) { /* Box-Muller */
    double u1 = rng_uniform(), u2 = rng_uniform();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Encode then decode x (n values); returns rms(decoded - x) / rms(x), or -1
 * when a call fails, or +inf when a decoded value is not finite. */
static double round_trip_error(uint32_t type, const float *x, float *y, int64_t n) {
    static uint8_t blocks[1 << 16];
    if (quant_row_bytes(type, n) > sizeof blocks) return -1.0;
    if (quant_row_from_f32(type, x, blocks, n) != 0 || quant_row_to_f32(type, blocks, y, n) != 0) return -1.0;
    double err2 = 0.0, ref2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) return INFINITY;
        err2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        ref2 += (double)x[i] * x[i];
    }
    return ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
}

static void check_round_trips(uint64_t seed) {
    /* Bounds on rms(error)/rms(x) for N(0,1) data. Round-to-nearest with step s
     * has rms error s/sqrt(12) (the rms of s is what counts, ~ its mean here).
     * Mean extremes of n N(0,1) samples (numpy, 200k trials): max |x| of 32 =
     * 2.35, of 16 = 2.07; range of 32 = 4.14. So the expected error is
     *   Q8_0 s = 2.35/127 -> 0.0054      Q4_0 s = 2.35/8  -> 0.085
     *   Q5_0 s = 2.35/16  -> 0.042       Q4_1 s = 4.14/15 -> 0.080
     *   Q5_1 s = 4.14/31  -> 0.039       Q6_K s = 2.07/32 -> 0.019
     *   Q4_K, Q5_K as Q4_1, Q5_1 (sub-block min <= 0 changes nothing for
     *   N(0,1) blocks of 32, which always hold a negative value) plus the
     *   6-bit quantisation of scales and mins: ~0.080, ~0.039
     *   F16: relative rounding <= 2^-11, rms ~ 2^-11/sqrt(3) = 2.8e-4 at
     *   worst; BF16: 2^-8/sqrt(3) = 2.3e-3 at worst.
     * Each bound is 1.25x the estimate (1.4x for F16/BF16, whose estimate is
     * already a worst case); measured values over several seeds sit within
     * 5% of the estimates. A wrong nibble order, scale layout or sign gives
     * errors of order 1. */
    static const struct {
        uint32_t type;
        double bound;
    } cases[] = {
        {GGUF_TYPE_F32, 0.0},    {GGUF_TYPE_F16, 4e-4},   {GGUF_TYPE_BF16, 3.2e-3}, {GGUF_TYPE_Q8_0, 0.0068},
        {GGUF_TYPE_Q4_0, 0.106}, {GGUF_TYPE_Q4_1, 0.10},  {GGUF_TYPE_Q5_0, 0.053},  {GGUF_TYPE_Q5_1, 0.049},
        {GGUF_TYPE_Q4_K, 0.10},  {GGUF_TYPE_Q5_K, 0.049}, {GGUF_TYPE_Q6_K, 0.024},
    };
    enum { N = 4096 };
    static float x[N], y[N];
    printf("round trips: seed %" PRIu64 " (rerun with: test_quant DIR %" PRIu64 ")\n", seed, seed);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const quant_type_info *t = quant_type_get(cases[c].type);
        rng_state = seed + c;
        for (int i = 0; i < N; i++) x[i] = rng_normal();
        double err = round_trip_error(cases[c].type, x, y, N);
        check(err >= 0.0 && err <= cases[c].bound, "%s round trip of %d N(0,1) values: rms rel error %.5f (bound %.4g)",
              t->name, N, err, cases[c].bound);
    }

    /* K-quants: degenerate and extreme rows stay finite, zeros stay zero */
    static const uint32_t k_types[] = {GGUF_TYPE_Q4_K, GGUF_TYPE_Q5_K, GGUF_TYPE_Q6_K};
    static const double k_bounds[] = {0.15, 0.074, 0.036};
    for (size_t k = 0; k < sizeof k_types / sizeof k_types[0]; k++) {
        const uint32_t type = k_types[k];
        const char *name = quant_type_get(type)->name;
        const int n = 1024;

        for (int i = 0; i < n; i++) x[i] = 0.0f;
        double err = round_trip_error(type, x, y, n);
        bool zeros = err == 0.0;
        for (int i = 0; i < n; i++) zeros = zeros && y[i] == 0.0f;
        check(zeros, "%s: all-zero row decodes to zeros (rms error %.3g)", name, err);

        /* huge (half scales saturate), tiny (half scales underflow), constant,
         * one-signed, and a mix of magnitudes across sub-blocks */
        rng_state = seed + 100 + k;
        for (int i = 0; i < n; i++) {
            const float g = rng_normal();
            switch (i / 256) {
            case 0: x[i] = g * 1e30f; break;
            case 1: x[i] = g * 1e-30f; break;
            case 2: x[i] = (i % 64 < 32) ? 3.0f : fabsf(g) + 1.0f; break;
            default: x[i] = g * ((i / 16) % 2 ? 1e4f : 1e-4f) - 0.5f; break;
            }
        }
        x[5] = 3.4e38f;
        x[6] = -3.4e38f;
        err = round_trip_error(type, x, y, n);
        check(err >= 0.0 && isfinite(err), "%s: extreme rows (1e30, 1e-30, +-3.4e38, constant, mixed) decode finite",
              name);

        /* super-blocks are independent: an N(0,1) one next to a zero one
         * keeps its accuracy (bound 1.5x the one above: 256 samples only) */
        for (int i = 0; i < 256; i++) x[i] = rng_normal();
        for (int i = 256; i < 512; i++) x[i] = 0.0f;
        err = round_trip_error(type, x, y, 512);
        check(err >= 0.0 && err <= k_bounds[k],
              "%s: N(0,1) super-block next to a zero one: rms rel error %.4f (bound %.3g)", name, err, k_bounds[k]);
    }
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s GOLDEN_DIR [SEED]\n", argv[0]);
        return 2;
    }
    const uint64_t seed = argc == 3 ? strtoull(argv[2], NULL, 0) : 20240611u;

    static const char *golden[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) check_golden(argv[1], golden[i]);
    check_conversions();
    check_table();
    check_round_trips(seed);

    printf("test_quant: %d checks, %d failed: %s\n", n_checks, n_failed, n_failed ? "FAIL" : "PASS");
    return n_failed ? 1 : 0;
}
