/* test_cpu_ref_dot.c - cpu_ref's row dot products (plugins/cpu_ref/dot.c)
 * against a double-precision reference built from the core's decoder.
 *
 *   test_cpu_ref_dot [SEED]
 *
 * For every type and kernel set (scalar, and the SIMD set when this CPU has
 * one, both forced with cr_dot_select):
 *   - exact decode: dot(row, e_i) must equal the core's decoded w_i for every
 *     i (a one-hot x isolates one weight, and adding zeros is exact), so the
 *     kernels decode the same weights as quant_row_to_f32, bit for bit; for
 *     F16 and BF16 this covers every 16-bit pattern;
 *   - dot products on random rows (N(0,1) data encoded by quant_row_from_f32,
 *     and random raw blocks with finite half scales), at several lengths
 *     (one block, several, odd block counts), with the row at an aligned and
 *     at an odd byte offset, against sum(w_i * x_i) in double; tolerance
 *     1e-5 * sum|w_i * x_i| + 1e-6 (f32 accumulation of a few thousand terms).
 * One line per type and set with the largest difference, then
 * "N passed, N failed"; exit status 1 on any failure. */
#include "quant.h"
#include "../plugins/cpu_ref/dot.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ----------------------------------------------------------------------------
// Check bookkeeping: one line per check.

static int n_passed, n_failed;

__attribute__((format(printf, 2, 3))) static bool check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) n_passed++;
    else
        n_failed++;
    return ok;
}

// ----------------------------------------------------------------------------
// Seeded random numbers (splitmix64) and N(0,1) by Box-Muller.

static uint64_t rng_state;

static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; } /* [0, 1) */

static float rng_normal(void) {
    const double u1 = 1.0 - rng_uniform(), u2 = rng_uniform();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

// ----------------------------------------------------------------------------
// The types under test and where their half-precision scales sit in a block.

typedef struct {
    uint32_t type;
    int half_offsets[2]; /* byte offsets of d (and m / dmin) in a block; -1 when none */
} type_case;

static const type_case type_cases[] = {
    {GGUF_TYPE_F32, {-1, -1}}, {GGUF_TYPE_F16, {-1, -1}}, {GGUF_TYPE_BF16, {-1, -1}},  {GGUF_TYPE_Q8_0, {0, -1}},
    {GGUF_TYPE_Q4_0, {0, -1}}, {GGUF_TYPE_Q4_1, {0, 2}},  {GGUF_TYPE_Q5_0, {0, -1}},   {GGUF_TYPE_Q5_1, {0, 2}},
    {GGUF_TYPE_Q4_K, {0, 2}},  {GGUF_TYPE_Q5_K, {0, 2}},  {GGUF_TYPE_Q6_K, {208, -1}},
};

/* A random finite half: any sign, exponent and mantissa, inf/NaN excluded
 * (subnormals included). */
static uint16_t random_finite_half(void) {
    uint16_t h = (uint16_t)rng_next();
    if ((h & 0x7C00u) == 0x7C00u) h &= (uint16_t)~0x4000u;
    return h;
}

/* Fill a row of n values of `tc` with random bytes whose values are finite:
 * block types get random quants and random finite half scales; F16 gets
 * random finite halves; BF16 and F32 random values of moderate magnitude
 * (exponent within 2^-20 .. 2^20, so that products with x stay finite). */
static void fill_raw_row(const type_case *tc, uint8_t *row, int64_t n) {
    const quant_type_info *info = quant_type_get(tc->type);
    const size_t bytes = quant_row_bytes(tc->type, n);
    for (size_t i = 0; i < bytes; i++) row[i] = (uint8_t)rng_next();
    if (tc->type == GGUF_TYPE_F16) {
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = random_finite_half();
            memcpy(row + 2 * i, &h, 2);
        }
    } else if (tc->type == GGUF_TYPE_BF16 || tc->type == GGUF_TYPE_F32) {
        for (int64_t i = 0; i < n; i++) {
            const float v = ldexpf(rng_normal(), (int)(rng_next() % 41) - 20);
            if (tc->type == GGUF_TYPE_F32) {
                memcpy(row + 4 * i, &v, 4);
            } else {
                const uint16_t b = f32_to_bf16(v);
                memcpy(row + 2 * i, &b, 2);
            }
        }
    } else {
        for (int64_t b = 0; b < n / info->block_elems; b++) {
            for (int k = 0; k < 2; k++) {
                if (tc->half_offsets[k] < 0) continue;
                const uint16_t h = random_finite_half();
                memcpy(row + (size_t)b * (size_t)info->block_bytes + (size_t)tc->half_offsets[k], &h, 2);
            }
        }
    }
}

/* The lengths tested for a type: one block, a few blocks, odd block counts,
 * the model sizes of SmolLM2 (576, 1536) and larger; plain types also get
 * lengths that leave a tail after the vector loop. */
static int lengths_for(int block_elems, int64_t out[16]) {
    static const int64_t candidates[] = {1,   7,       31,  33,   100,  32,      96,  32 * 7,
                                         256, 256 * 3, 576, 1536, 2048, 256 * 9, 4096};
    int count = 0;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        const int64_t n = candidates[i];
        if (n % block_elems == 0) out[count++] = n;
    }
    return count;
}

// ----------------------------------------------------------------------------
// The checks for one type at the kernel set now selected.

enum { MAX_N = 4096, ODD_OFFSET = 3 };

typedef struct {
    uint8_t *row_buf; /* MAX_N * 4 + 64 bytes: the row is copied in at an offset */
    float *data;      /* MAX_N: N(0,1) values before encoding */
    float *w;         /* MAX_N: the core's decode of the row */
    float *x_buf;     /* MAX_N + 8: x sits at x_buf + 1 (not 32-byte aligned) */
} buffers;

/* Every weight of a row decoded by the kernel through one-hot x's, compared
 * with the core's decode. Returns the number of mismatches. */
static int64_t count_decode_mismatches(cr_dot_fn dot, const uint8_t *row, const float *w, float *x, int64_t n,
                                       int64_t *first_bad, float *got_bad) {
    int64_t mismatches = 0;
    for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = 1.0f;
        const float got = dot(row, x, n);
        x[i] = 0.0f;
        if (!(got == w[i])) {
            if (mismatches == 0) {
                *first_bad = i;
                *got_bad = got;
            }
            mismatches++;
        }
    }
    return mismatches;
}

static void test_type(const type_case *tc, const char *level, buffers *buf) {
    const quant_type_info *info = quant_type_get(tc->type);
    const cr_dot_fn dot = cr_dot_for_type(tc->type);
    if (!check(dot != NULL, "%-5s %-14s has a kernel", info->name, level)) return;

    // ---- exact decode, on two encoded and two raw rows of two blocks (or 67 values)
    const int64_t n_decode = info->block_elems == 1 ? 67 : 2 * info->block_elems;
    int64_t decode_mismatches = 0, first_bad = -1;
    float got_bad = 0.0f, want_bad = 0.0f;
    for (int r = 0; r < 4; r++) {
        uint8_t *row = buf->row_buf + ODD_OFFSET;
        if (r % 2 == 0) {
            for (int64_t i = 0; i < n_decode; i++) buf->data[i] = rng_normal();
            quant_row_from_f32(tc->type, buf->data, row, n_decode);
        } else {
            fill_raw_row(tc, row, n_decode);
        }
        quant_row_to_f32(tc->type, row, buf->w, n_decode);
        int64_t bad = -1;
        float got = 0.0f;
        const int64_t mismatches = count_decode_mismatches(dot, row, buf->w, buf->x_buf + 1, n_decode, &bad, &got);
        if (mismatches > 0 && decode_mismatches == 0) {
            first_bad = bad;
            got_bad = got;
            want_bad = buf->w[bad];
        }
        decode_mismatches += mismatches;
    }
    if (decode_mismatches == 0)
        check(true, "%-5s %-14s decode exact: 4 rows of %" PRId64 " weights, each equal to quant_row_to_f32's",
              info->name, level, n_decode);
    else
        check(false,
              "%-5s %-14s decode exact: %" PRId64 " mismatches in 4 rows of %" PRId64 " (first at %" PRId64
              ": got %.9g want %.9g)",
              info->name, level, decode_mismatches, n_decode, first_bad, (double)got_bad, (double)want_bad);

    // ---- dot products against the double reference
    int64_t lengths[16];
    const int n_lengths = lengths_for(info->block_elems, lengths);
    int rows = 0, bad_rows = 0;
    double max_diff[2] = {0.0, 0.0}; /* largest |got - ref| on encoded / raw rows */
    double max_ratio = 0.0;          /* largest |got - ref| / tol */
    char worst[160] = "";
    for (int li = 0; li < n_lengths; li++) {
        const int64_t n = lengths[li];
        for (int source = 0; source < 2; source++) {
            for (int offset = 0; offset <= ODD_OFFSET; offset += ODD_OFFSET) {
                for (int rep = 0; rep < 3; rep++) {
                    uint8_t *row = buf->row_buf + offset;
                    if (source == 0) {
                        for (int64_t i = 0; i < n; i++) buf->data[i] = rng_normal();
                        quant_row_from_f32(tc->type, buf->data, row, n);
                    } else {
                        fill_raw_row(tc, row, n);
                    }
                    quant_row_to_f32(tc->type, row, buf->w, n);
                    float *x = buf->x_buf + 1;
                    for (int64_t i = 0; i < n; i++) x[i] = rng_normal();
                    double ref = 0.0, abs_sum = 0.0;
                    for (int64_t i = 0; i < n; i++) {
                        const double term = (double)buf->w[i] * (double)x[i];
                        ref += term;
                        abs_sum += fabs(term);
                    }
                    const float got = dot(row, x, n);
                    const double diff = fabs((double)got - ref);
                    const double tol = 1e-5 * abs_sum + 1e-6;
                    rows++;
                    if (!(diff <= tol)) bad_rows++; /* NaN counts as bad */
                    const double ratio = diff / tol;
                    if (!(ratio <= max_ratio)) {
                        max_ratio = ratio;
                        snprintf(worst, sizeof worst, "n=%" PRId64 " %s offset %d: got %.9g ref %.9g", n,
                                 source == 0 ? "encoded" : "raw", offset, (double)got, ref);
                    }
                    if (!(diff <= max_diff[source])) max_diff[source] = diff;
                }
            }
        }
    }
    check(bad_rows == 0,
          "%-5s %-14s %d rows, %d out of tolerance; maxdiff %.3g encoded, %.3g raw; max diff/tol %.3g (%s)", info->name,
          level, rows, bad_rows, max_diff[0], max_diff[1], max_ratio, worst);
}

/* Every 16-bit pattern of F16 / BF16 through the kernel: the finite ones in
 * rows of 32 (the vector paths) with one-hot x's, inf and NaN in rows of one
 * (a one-hot x would multiply them by 0). Must equal the core's decode. */
static void test_every_half(uint32_t type, const char *level) {
    const cr_dot_fn dot = cr_dot_for_type(type);
    const bool is_f16 = type == GGUF_TYPE_F16;
    const uint16_t exp_mask = is_f16 ? 0x7C00u : 0x7F80u;
    uint16_t row[32];
    float x[32], want[32];
    int checked = 0, mismatches = 0;
    uint32_t first_bad = 0;
    int count = 0;
    for (uint32_t h = 0; h <= 0xFFFFu; h++) {
        if (((uint16_t)h & exp_mask) == exp_mask) { /* inf or NaN: alone */
            const uint16_t one = (uint16_t)h;
            const float one_x = 1.0f;
            const float got = dot(&one, &one_x, 1);
            const float ref = is_f16 ? fp16_to_f32(one) : bf16_to_f32(one);
            checked++;
            if (!(got == ref || (isnan(got) && isnan(ref)))) {
                if (mismatches++ == 0) first_bad = h;
            }
            continue;
        }
        row[count] = (uint16_t)h;
        want[count] = is_f16 ? fp16_to_f32((uint16_t)h) : bf16_to_f32((uint16_t)h);
        if (++count < 32 && h != 0xFFFFu) continue;
        for (int k = 0; k < count; k++) x[k] = 0.0f;
        for (int k = 0; k < count; k++) {
            x[k] = 1.0f;
            const float got = dot(row, x, count);
            x[k] = 0.0f;
            checked++;
            if (!(got == want[k])) {
                if (mismatches++ == 0) first_bad = row[k];
            }
        }
        count = 0;
    }
    check(mismatches == 0,
          "%-5s %-14s every one of %d 16-bit patterns decodes as the core's (%d mismatches, first 0x%04x)",
          is_f16 ? "F16" : "BF16", level, checked, mismatches, (unsigned)first_bad);
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv) {
    const uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : (uint64_t)time(NULL);
    rng_state = seed;
    printf("test_cpu_ref_dot: seed %" PRIu64 " (rerun with: test_cpu_ref_dot %" PRIu64 ")\n", seed, seed);

    buffers buf = {
        .row_buf = malloc(MAX_N * 4 + 64),
        .data = malloc(MAX_N * sizeof(float)),
        .w = malloc(MAX_N * sizeof(float)),
        .x_buf = malloc((MAX_N + 8) * sizeof(float)),
    };
    if (!buf.row_buf || !buf.data || !buf.w || !buf.x_buf) {
        printf("out of memory\n");
        return 1;
    }

    // ---- dispatcher
    cr_dot_select(CR_SIMD_BEST);
    const char *best = cr_dot_simd_level();
    printf("dispatcher chose: %s\n", best);
    cr_dot_select(CR_SIMD_SCALAR);
    check(strcmp(cr_dot_simd_level(), "scalar") == 0, "cr_dot_select(CR_SIMD_SCALAR) gives \"scalar\" (got \"%s\")",
          cr_dot_simd_level());
    cr_dot_select(CR_SIMD_BEST);
    check(strcmp(cr_dot_simd_level(), best) == 0, "cr_dot_select(CR_SIMD_BEST) gives \"%s\" back", best);
    static const uint32_t unsupported[] = {
        GGUF_TYPE_Q8_1, GGUF_TYPE_Q2_K, GGUF_TYPE_Q3_K, GGUF_TYPE_Q8_K, GGUF_TYPE_I8, GGUF_TYPE_IQ4_NL, 4, 99,
        0xFFFFFFFFu};
    bool all_null = true;
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        all_null = all_null && cr_dot_for_type(unsupported[i]) == NULL;
    check(all_null, "cr_dot_for_type gives NULL for types without a kernel");

    // ---- every type at every kernel set this machine has
    const int levels[2] = {CR_SIMD_SCALAR, CR_SIMD_BEST};
    for (int li = 0; li < 2; li++) {
        cr_dot_select(levels[li]);
        const char *level = cr_dot_simd_level();
        if (li == 1 && strcmp(level, "scalar") == 0) {
            printf("skip  SIMD kernels: this CPU (or architecture) has none; the scalar ones ran above\n");
            break;
        }
        for (size_t t = 0; t < sizeof type_cases / sizeof type_cases[0]; t++) test_type(&type_cases[t], level, &buf);
        test_every_half(GGUF_TYPE_F16, level);
        test_every_half(GGUF_TYPE_BF16, level);
    }
    cr_dot_select(CR_SIMD_BEST);

    free(buf.row_buf);
    free(buf.data);
    free(buf.w);
    free(buf.x_buf);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
