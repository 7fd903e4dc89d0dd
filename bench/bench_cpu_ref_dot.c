/* bench_cpu_ref_dot.c - throughput of cpu_ref's row dot products
 * (plugins/cpu_ref/dot.c) in a batch-1 matrix-vector product, one thread.
 *
 *   bench_cpu_ref_dot [--quick] [--reps N] [--seed S] [--type NAME]...
 *
 * For every type, two weight shapes (rows x n: 1536 x 576, SmolLM2-135M's
 * FFN gate/up; 2048 x 8192, a larger model's) and both kernel sets (scalar,
 * and the SIMD set the dispatcher picks), it times y[r] = dot(W[r], x) over
 * all rows and prints:
 *   cold      GB/s of weight bytes, the matrix read from DRAM: a timed sweep
 *             runs the product on each of several copies of the matrix that
 *             together fill the cold set (256 MiB, 8x the 32 MiB L3 of the
 *             machine this was written on; 64 MiB with --quick), as a decode
 *             step streams the whole model;
 *   hot       GB/s with the same matrix read again and again (from cache when
 *             it fits: 1536 x 576 does, in every type);
 *   ns/row    per row, cold;
 *   SIMD / scalar, and SIMD cold as a share of the streaming-read baseline.
 * Each figure is the median of --reps sweeps (default 7) after one warm-up.
 * The baseline is the machine's single-thread streaming-read bandwidth,
 * measured the same way: the sum of a float array of the cold set's size.
 * The figures mean little on a machine busy with something else, so the
 * load average is printed before and after, and at the end the share of
 * the timed wall-clock time this thread actually had a CPU.
 *
 * Not a test (no pass/fail); exit status 2 on bad usage, 1 when memory runs
 * out. */
#include "quant.h"
#include "../plugins/cpu_ref/dot.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ----------------------------------------------------------------------------
// Clock, medians, random data.

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Wall-clock and CPU time of all timed sweeps: their ratio says how much of
 * the time this thread actually had a CPU (about 100% on an idle machine). */
static double timed_wall_s, timed_cpu_s;

static int compare_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t rng_state;

static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_normal(void) {
    const double u1 = 1.0 - (double)(rng_next() >> 11) * 0x1.0p-53, u2 = (double)(rng_next() >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void print_loadavg(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128] = "unknown\n";
    if (f != NULL) {
        if (fgets(line, sizeof line, f) == NULL) snprintf(line, sizeof line, "unknown\n");
        fclose(f);
    }
    printf("load average %s: %s", when, line);
}

// ----------------------------------------------------------------------------
// The streaming-read baseline: sum a float array.

/* Plain C: 32 independent partial sums, which a compiler may vectorise
 * without reassociating. (GCC -O2 keeps acc[] in memory, which is slow
 * enough to show; hence the AVX2 version below where there is one.) */
static float sum_floats_c(const float *restrict a, size_t n) {
    float acc[32] = {0};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 32; k++) acc[k] += a[i + k];
    for (; i < n; i++) acc[0] += a[i];
    float total = 0.0f;
    for (int k = 0; k < 32; k++) total += acc[k];
    return total;
}

#if defined(__x86_64__)
/* The F32 kernel's loop without x: 4 accumulators of 8 floats, so the adds
 * never wait on each other and only the memory limits the speed. */
__attribute__((target("avx2"))) static float sum_floats_avx2(const float *restrict a, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    float total = 0.0f;
    for (int k = 0; k < 8; k++) total += lanes[k];
    for (; i < n; i++) total += a[i];
    return total;
}
#endif

static volatile float sink; /* keeps results alive */

static double stream_read_gbs(float (*sum)(const float *restrict, size_t), const float *a, size_t n, int reps) {
    double gbs[64];
    sink = sum(a, n); /* warm-up */
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        sink = sum(a, n);
        gbs[r] = (double)(n * sizeof(float)) / (now_s() - t0) * 1e-9;
    }
    return median(gbs, reps);
}

/* The faster of the plain C and (where the CPU has it) the AVX2 sum; *how
 * names it. */
static double best_stream_read_gbs(const float *a, size_t n, int reps, const char **how) {
    double gbs = stream_read_gbs(sum_floats_c, a, n, reps);
    *how = "plain C";
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        const double avx2_gbs = stream_read_gbs(sum_floats_avx2, a, n, reps);
        if (avx2_gbs > gbs) {
            gbs = avx2_gbs;
            *how = "AVX2, 4 accumulators";
        }
    }
#endif
    return gbs;
}

// ----------------------------------------------------------------------------
// One matrix-vector product: y[r] = dot(W[r], x), rows looped.

static void matvec(cr_dot_fn dot, const uint8_t *w, size_t row_bytes, int64_t rows, const float *x, int64_t n,
                   float *y) {
    for (int64_t r = 0; r < rows; r++) y[r] = dot(w + (size_t)r * row_bytes, x, n);
}

typedef struct {
    double cold_gbs, hot_gbs, cold_ns_per_row;
} timing;

/* `copies` copies of a rows x n matrix of row_bytes per row lie back to back
 * in w. A cold sweep runs the product once on each copy; a hot sweep runs it
 * `copies` times on the first. */
static timing time_matvec(cr_dot_fn dot, const uint8_t *w, size_t row_bytes, int64_t rows, int copies, const float *x,
                          int64_t n, float *y, int reps) {
    const size_t matrix_bytes = row_bytes * (size_t)rows;
    const double sweep_bytes = (double)matrix_bytes * copies;
    double cold[64], hot[64];
    for (int c = 0; c < copies; c++) matvec(dot, w + (size_t)c * matrix_bytes, row_bytes, rows, x, n, y); /* warm-up */
    const double wall0 = now_s(), cpu0 = thread_cpu_s();
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int c = 0; c < copies; c++) matvec(dot, w + (size_t)c * matrix_bytes, row_bytes, rows, x, n, y);
        cold[r] = now_s() - t0;
        t0 = now_s();
        for (int c = 0; c < copies; c++) matvec(dot, w, row_bytes, rows, x, n, y);
        hot[r] = now_s() - t0;
        sink = y[rows - 1];
    }
    timed_wall_s += now_s() - wall0;
    timed_cpu_s += thread_cpu_s() - cpu0;
    const double cold_s = median(cold, reps), hot_s = median(hot, reps);
    return (timing){
        .cold_gbs = sweep_bytes / cold_s * 1e-9,
        .hot_gbs = sweep_bytes / hot_s * 1e-9,
        .cold_ns_per_row = cold_s * 1e9 / ((double)rows * copies),
    };
}

// ----------------------------------------------------------------------------

int main(int argc, char **argv) {
    int reps = 7;
    size_t cold_set_bytes = (size_t)256 << 20; /* 8x a 32 MiB L3 */
    uint64_t seed = 1;
    bool only[GGUF_TYPE_COUNT_] = {false}, any_only = false; /* --type: run only these */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            reps = 3;
            cold_set_bytes = (size_t)64 << 20;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc && quant_type_from_name(argv[i + 1]) >= 0) {
            only[quant_type_from_name(argv[++i])] = true;
            any_only = true;
        } else {
            fprintf(stderr, "usage: bench_cpu_ref_dot [--quick] [--reps N (1-63)] [--seed S] [--type NAME]...\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 63) {
        fprintf(stderr, "bench_cpu_ref_dot: --reps must be 1..63\n");
        return 2;
    }
    rng_state = seed;

    static const struct { int64_t rows, n; } shapes[] = {{1536, 576}, {2048, 8192}};
    /* in order of how much a benchmark run uses them */
    static const uint32_t types[] = {GGUF_TYPE_F16,  GGUF_TYPE_Q4_1, GGUF_TYPE_Q8_0, GGUF_TYPE_F32,
                                     GGUF_TYPE_BF16, GGUF_TYPE_Q4_0, GGUF_TYPE_Q5_0, GGUF_TYPE_Q5_1,
                                     GGUF_TYPE_Q4_K, GGUF_TYPE_Q5_K, GGUF_TYPE_Q6_K};
    const int64_t max_n = 8192, max_rows = 2048;

    cr_dot_select(CR_SIMD_BEST);
    const char *best = cr_dot_simd_level();
    printf("bench_cpu_ref_dot: 1 thread, median of %d sweeps, cold set %zu MiB, SIMD set chosen: %s\n", reps,
           cold_set_bytes >> 20, best);
    print_loadavg("before");

    // ---- buffers: the cold set, the f32 source matrix, x and y
    const size_t max_matrix_bytes = (size_t)max_rows * (size_t)max_n * 4;
    const size_t w_bytes = cold_set_bytes > max_matrix_bytes ? cold_set_bytes + max_matrix_bytes : 2 * max_matrix_bytes;
    uint8_t *w = malloc(w_bytes);
    float *source = malloc((size_t)max_rows * (size_t)max_n * sizeof(float));
    float *x = malloc((size_t)max_n * sizeof(float));
    float *y = malloc((size_t)max_rows * sizeof(float));
    if (w == NULL || source == NULL || x == NULL || y == NULL) {
        fprintf(stderr, "bench_cpu_ref_dot: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)max_rows * (size_t)max_n; i++) source[i] = rng_normal();
    for (int64_t i = 0; i < max_n; i++) x[i] = rng_normal();

    // ---- the baseline (on non-zero data: pages never written may all map one zero page, which reads from cache)
    for (size_t i = 0; i < cold_set_bytes / sizeof(float); i++) ((float *)w)[i] = (float)(i & 0xFF);
    const char *stream_how = NULL;
    const double stream_gbs = best_stream_read_gbs((const float *)w, cold_set_bytes / sizeof(float), reps, &stream_how);
    printf("streaming read (sum of a %zu MiB float array, %s, 1 thread): %.1f GB/s\n\n", cold_set_bytes >> 20,
           stream_how, stream_gbs);

    printf("%-5s %-11s %6s | %-26s | %-26s | %-7s | %s\n", "", "", "", "scalar", best, "SIMD /", "SIMD cold /");
    printf("%-5s %-11s %6s | %8s %8s %8s | %8s %8s %8s | %-7s | %s\n", "type", "rows x n", "B/row", "cold", "hot",
           "ns/row", "cold", "hot", "ns/row", "scalar", "stream");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        if (any_only && !only[types[t]]) continue;
        const quant_type_info *info = quant_type_get(types[t]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t rows = shapes[s].rows, n = shapes[s].n;
            char shape[32];
            snprintf(shape, sizeof shape, "%" PRId64 "x%" PRId64, rows, n);
            if (n % info->block_elems != 0) {
                printf("%-5s %-11s %6s | skipped: n is not a multiple of the %d-value block\n", info->name, shape, "-",
                       info->block_elems);
                continue;
            }
            const size_t row_bytes = quant_row_bytes(types[t], n);
            const size_t matrix_bytes = row_bytes * (size_t)rows;
            int copies = (int)((cold_set_bytes + matrix_bytes - 1) / matrix_bytes);
            if (copies < 2) copies = 2;
            for (int64_t r = 0; r < rows; r++)
                quant_row_from_f32(types[t], source + r * n, w + (size_t)r * row_bytes, n);
            for (int c = 1; c < copies; c++) memcpy(w + (size_t)c * matrix_bytes, w, matrix_bytes);

            cr_dot_select(CR_SIMD_SCALAR);
            const timing scalar = time_matvec(cr_dot_for_type(types[t]), w, row_bytes, rows, copies, x, n, y, reps);
            cr_dot_select(CR_SIMD_BEST);
            const timing simd = time_matvec(cr_dot_for_type(types[t]), w, row_bytes, rows, copies, x, n, y, reps);
            printf("%-5s %-11s %6zu | %8.2f %8.2f %8.0f | %8.2f %8.2f %8.0f | %6.2fx | %5.0f%%\n", info->name, shape,
                   row_bytes, scalar.cold_gbs, scalar.hot_gbs, scalar.cold_ns_per_row, simd.cold_gbs, simd.hot_gbs,
                   simd.cold_ns_per_row, simd.cold_gbs / scalar.cold_gbs, 100.0 * simd.cold_gbs / stream_gbs);
            fflush(stdout);
        }
    }
    printf("\n");
    const char *how_after = NULL;
    for (size_t i = 0; i < cold_set_bytes / sizeof(float); i++) ((float *)w)[i] = (float)(i & 0xFF);
    const double stream_after_gbs =
        best_stream_read_gbs((const float *)w, cold_set_bytes / sizeof(float), reps, &how_after);
    printf("streaming read again at the end: %.1f GB/s (%s)\n", stream_after_gbs, how_after);
    print_loadavg("after");
    printf("this thread had a CPU for %.0f%% of the timed wall-clock time (about 100%% on an idle machine)\n",
           100.0 * timed_cpu_s / timed_wall_s);
    free(w);
    free(source);
    free(x);
    free(y);
    return 0;
}
