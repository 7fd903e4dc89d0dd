/* test_eager_ops_kernels.c - every eager_ops op (plugins/eager_ops/eager_ops_kernels.cu)
 * against its CPU twin, the cpu_ref function of the same name, on random
 * inputs of several shapes. A value passes when |gpu - cpu| <= tol + |cpu| * eps
 * (llm.c's rule); each check prints its maxdiff.
 *
 * Built twice. test_eager_ops_kernels runs the kernels on a CUDA device and
 * exits 77 (skipped) without one, saying why. test_eager_ops_kernels_emulated
 * (EO_EMULATE) links tests/eager_ops_emulated.cc instead, which runs the same
 * kernels' blocks on the CPU, so they are checked here and in CI. There the
 * GEMMs are the emulation's loops, not cuBLAS: the matmul check then tests
 * the layouts eager_ops hands cuBLAS, not cuBLAS.
 *
 *   test_eager_ops_kernels [SEED] */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "blocks.h"
#include "eager_ops_kernels.h"
#include "quant.h"

#define CU(call)                                                                               \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)
#define CB(call)                                                                                  \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

static cudaStream_t stream;
static cublasHandle_t handle;
static uint64_t rng;

static float rnd(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

static float *random_host(size_t n, float scale) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = rnd() * scale;
    return h;
}

static void *to_device(const void *h, size_t bytes) {
    void *d;
    CU(cudaMalloc(&d, bytes ? bytes : 1));
    CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* bytes of d, once the stream has finished, in a new host block */
static void *download(const void *d, size_t bytes) {
    void *h = malloc(bytes);
    CU(cudaStreamSynchronize(stream));
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    return h;
}

static float *from_device(const float *d, size_t n) { return download(d, n * sizeof(float)); }

static int32_t *device_int(int32_t v) { return to_device(&v, sizeof v); }

/* |got - want| <= tol + |want| * eps for every value; prints maxdiff. */
static void check_close(const char *what, const float *got, const float *want, size_t n, double tol, double eps) {
    double maxdiff = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(d)) d = INFINITY;
        if (d > maxdiff) maxdiff = d;
        if (d > tol + fabs((double)want[i]) * eps && bad++ == 0) first_bad = i;
    }
    printf("  %-46s maxdiff %.3g over %zu values\n", what, maxdiff, n);
    CHECK(bad == 0, "%s: %zu of %zu values out of tolerance, first at %zu: %.9g vs %.9g", what, bad, n, first_bad,
          bad ? got[first_bad] : 0.0f, bad ? want[first_bad] : 0.0f);
}

// ----------------------------------------------------------------------------
// CPU twins: cpu_ref's own blocks (plugins/cpu_ref/blocks.h)

static float round_to(eo_dtype t, float v) {
    return t == EO_F16 ? fp16_to_f32(f32_to_fp16(v)) : t == EO_BF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
}

/* n floats as `t` (host copy, for uploads). */
static void *encode(eo_dtype t, const float *x, size_t n) {
    void *out = malloc(n * eo_dtype_size(t));
    for (size_t i = 0; i < n; i++) {
        if (t == EO_F32) ((float *)out)[i] = x[i];
        else
            ((uint16_t *)out)[i] = t == EO_F16 ? f32_to_fp16(x[i]) : f32_to_bf16(x[i]);
    }
    return out;
}

static const char *dtype_name(eo_dtype t) { return t == EO_F32 ? "f32" : t == EO_F16 ? "f16" : "bf16"; }

// ----------------------------------------------------------------------------

static void test_embedding(void) {
    const int vocab = 100, dim = 300, batch = 5;
    float *table = random_host((size_t)vocab * dim, 0.5f);
    int32_t tokens[5] = {0, 99, 17, 17, 42};
    int32_t *d_tokens = to_device(tokens, sizeof tokens);
    float *d_x;
    CU(cudaMalloc((void **)&d_x, (size_t)batch * dim * sizeof(float)));
    for (int t = EO_F32; t <= EO_BF16; t++) {
        void *enc = encode((eo_dtype)t, table, (size_t)vocab * dim);
        void *d_table = to_device(enc, (size_t)vocab * dim * eo_dtype_size((eo_dtype)t));
        CU(eo_embedding_forward(d_x, d_table, (eo_dtype)t, d_tokens, batch, dim, stream));
        float *got = from_device(d_x, (size_t)batch * dim), *want = malloc((size_t)batch * dim * sizeof *want);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < dim; i++) want[b * dim + i] = round_to((eo_dtype)t, table[tokens[b] * dim + i]);
        char what[64];
        snprintf(what, sizeof what, "embedding %s (%d x %d)", dtype_name((eo_dtype)t), batch, dim);
        check_close(what, got, want, (size_t)batch * dim, 0, 0);
        free(got), free(want), free(enc);
        CU(cudaFree(d_table));
    }
    CU(cudaFree(d_x));
    CU(cudaFree(d_tokens));
    free(table);
}

/* 16-bit values (bits) decoded to f32. */
static float *decode16(eo_dtype t, const uint16_t *bits, size_t n) {
    float *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = t == EO_F16 ? fp16_to_f32(bits[i]) : bf16_to_f32(bits[i]);
    return out;
}

static uint16_t *from_device16(const void *d, size_t n) { return download(d, n * sizeof(uint16_t)); }

static void test_rmsnorm(void) {
    static const int dims[] = {64, 300, 2048, 8192};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        int dim = dims[k], batch = 3;
        size_t n = (size_t)batch * dim;
        float *x = random_host(n, 3.0f), *w = random_host((size_t)dim, 1.0f);
        float *want = malloc(n * sizeof *want);
        for (int b = 0; b < batch; b++) rmsnorm(want + b * dim, x + b * dim, w, dim, 1e-5f);
        float *d_x = to_device(x, n * 4), *d_w = to_device(w, (size_t)dim * 4), *d_o;
        CU(cudaMalloc((void **)&d_o, n * 4));
        CU(eo_rmsnorm_forward(d_o, EO_F32, d_x, d_w, batch, dim, 1e-5f, stream));
        float *got = from_device(d_o, n);
        char what[64];
        snprintf(what, sizeof what, "rmsnorm (%d x %d)", batch, dim);
        check_close(what, got, want, n, 1e-6, 1e-5);
        free(got);
        /* stored as a 16-bit GEMM input: the f32 result rounded, so at most
         * one 16-bit step from the rounded reference */
        for (int t = EO_F16; t <= EO_BF16; t++) {
            CU(eo_rmsnorm_forward(d_o, (eo_dtype)t, d_x, d_w, batch, dim, 1e-5f, stream));
            uint16_t *bits = from_device16(d_o, n);
            float *got16 = decode16((eo_dtype)t, bits, n), *want16 = malloc(n * sizeof *want16);
            for (size_t i = 0; i < n; i++) want16[i] = round_to((eo_dtype)t, want[i]);
            snprintf(what, sizeof what, "rmsnorm -> %s (%d x %d)", dtype_name((eo_dtype)t), batch, dim);
            check_close(what, got16, want16, n, 1e-6, t == EO_F16 ? 1.0 / 1024 : 1.0 / 128);
            free(bits), free(got16), free(want16);
        }
        /* in place, as the plugin may at f32 */
        CU(eo_rmsnorm_forward(d_x, EO_F32, d_x, d_w, batch, dim, 1e-5f, stream));
        got = from_device(d_x, n);
        check_close("rmsnorm in place", got, want, n, 1e-6, 1e-5);
        free(x), free(w), free(want), free(got);
        CU(cudaFree(d_x));
        CU(cudaFree(d_w));
        CU(cudaFree(d_o));
    }
}

/* Queries and keys in one launch, with their own head counts. */
static void test_rope(void) {
    static const struct {
        int n_heads, n_kv_heads, head_dim, n_rot, pos;
    } cases[] = {{8, 2, 64, 64, 0}, {8, 8, 64, 64, 1000}, {2, 1, 128, 64, 130000}, {32, 8, 64, 64, 7}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int nh = cases[k].n_heads, nkv = cases[k].n_kv_heads, hd = cases[k].head_dim, nr = cases[k].n_rot;
        int pos0 = cases[k].pos, batch = 4;
        size_t nq = (size_t)batch * nh * hd, nk = (size_t)batch * nkv * hd;
        float *q = random_host(nq, 2.0f), *kv = random_host(nk, 2.0f), inv[128];
        for (int i = 0; i < nr / 2; i++) inv[i] = (float)pow(500000.0, -2.0 * i / nr) / (1.0f + (i % 7));
        float *want_q = malloc(nq * sizeof *want_q), *want_k = malloc(nk * sizeof *want_k);
        memcpy(want_q, q, nq * sizeof *want_q);
        memcpy(want_k, kv, nk * sizeof *want_k);
        for (int b = 0; b < batch; b++) {
            rope(want_q + (size_t)b * nh * hd, nh, hd, nr, pos0 + b, inv);
            rope(want_k + (size_t)b * nkv * hd, nkv, hd, nr, pos0 + b, inv);
        }
        float *d_q = to_device(q, nq * 4), *d_k = to_device(kv, nk * 4), *d_inv = to_device(inv, (size_t)(nr / 2) * 4);
        int32_t *d_pos = device_int(pos0);
        CU(eo_rope_forward(d_q, d_k, batch, nh, nkv, hd, nr, d_pos, d_inv, stream));
        float *got_q = from_device(d_q, nq), *got_k = from_device(d_k, nk);
        char what[80];
        snprintf(what, sizeof what, "rope q (%d heads x %d, n_rot %d, pos %d)", nh, hd, nr, pos0);
        check_close(what, got_q, want_q, nq, 1e-6, 1e-6);
        snprintf(what, sizeof what, "rope k (%d heads, same launch)", nkv);
        check_close(what, got_k, want_k, nk, 1e-6, 1e-6);
        free(q), free(kv), free(want_q), free(want_k), free(got_q), free(got_k);
        CU(cudaFree(d_q));
        CU(cudaFree(d_k));
        CU(cudaFree(d_inv));
        CU(cudaFree(d_pos));
    }
}

static void test_kv_append(void) {
    const int max_seq = 20, kv_dim = 128, batch = 3, pos0 = 7;
    float *kc = random_host((size_t)max_seq * kv_dim, 1), *vc = random_host((size_t)max_seq * kv_dim, 1);
    float *k = random_host((size_t)batch * kv_dim, 1), *v = random_host((size_t)batch * kv_dim, 1);
    float *d_kc = to_device(kc, (size_t)max_seq * kv_dim * 4), *d_vc = to_device(vc, (size_t)max_seq * kv_dim * 4);
    float *d_k = to_device(k, (size_t)batch * kv_dim * 4), *d_v = to_device(v, (size_t)batch * kv_dim * 4);
    int32_t *d_pos = device_int(pos0);
    CU(eo_kv_append_forward(d_kc, d_vc, d_k, d_v, batch, kv_dim, d_pos, stream));
    memcpy(kc + pos0 * kv_dim, k, (size_t)batch * kv_dim * 4);
    memcpy(vc + pos0 * kv_dim, v, (size_t)batch * kv_dim * 4);
    float *gk = from_device(d_kc, (size_t)max_seq * kv_dim), *gv = from_device(d_vc, (size_t)max_seq * kv_dim);
    check_close("kv append: keys (rows 7..9 of 20, rest kept)", gk, kc, (size_t)max_seq * kv_dim, 0, 0);
    check_close("kv append: values", gv, vc, (size_t)max_seq * kv_dim, 0, 0);
    free(kc), free(vc), free(k), free(v), free(gk), free(gv);
    CU(cudaFree(d_kc));
    CU(cudaFree(d_vc));
    CU(cudaFree(d_k));
    CU(cudaFree(d_v));
    CU(cudaFree(d_pos));
}

static void test_elementwise(void) {
    const size_t n = 100003;
    float *a = random_host(n, 8.0f), *b = random_host(n, 8.0f), *want = malloc(n * sizeof *want);
    float *d_a = to_device(a, n * 4), *d_b = to_device(b, n * 4), *d_o;
    CU(cudaMalloc((void **)&d_o, n * 4));
    CU(eo_silu_forward(d_o, d_a, n, stream));
    for (size_t i = 0; i < n; i++) want[i] = silu(a[i]);
    float *got = from_device(d_o, n);
    check_close("silu", got, want, n, 1e-7, 1e-6);
    free(got);
    CU(eo_mul_forward(d_o, EO_F32, d_a, d_b, n, stream));
    for (size_t i = 0; i < n; i++) want[i] = a[i] * b[i];
    got = from_device(d_o, n);
    check_close("mul", got, want, n, 0, 0);
    free(got);
    for (int t = EO_F16; t <= EO_BF16; t++) { // one f32 product, then one rounding: bit-exact
        CU(eo_mul_forward(d_o, (eo_dtype)t, d_a, d_b, n, stream));
        uint16_t *bits = from_device16(d_o, n);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += bits[i] != (t == EO_F16 ? f32_to_fp16(a[i] * b[i]) : f32_to_bf16(a[i] * b[i]));
        printf("  mul -> %-46s %zu of %zu values differ from the host's rounding\n", dtype_name((eo_dtype)t), diff, n);
        CHECK(diff == 0, "mul to %s bit-exact with the host", dtype_name((eo_dtype)t));
        free(bits);
    }
    CU(eo_add_forward(d_a, d_a, d_b, n, stream)); // in place, as the residual add
    for (size_t i = 0; i < n; i++) want[i] = a[i] + b[i];
    got = from_device(d_a, n);
    check_close("add (in place)", got, want, n, 0, 0);
    free(got);
    for (int t = EO_F16; t <= EO_BF16; t++) {
        CU(eo_convert_forward(d_o, (eo_dtype)t, d_b, n, stream));
        uint16_t *bits = from_device16(d_o, n);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += bits[i] != (t == EO_F16 ? f32_to_fp16(b[i]) : f32_to_bf16(b[i]));
        printf("  convert f32 -> %-37s %zu of %zu values differ from the host's rounding\n", dtype_name((eo_dtype)t),
               diff, n);
        CHECK(diff == 0, "convert to %s bit-exact with the host", dtype_name((eo_dtype)t));
        free(bits);
    }
    free(a), free(b), free(want);
    CU(cudaFree(d_a));
    CU(cudaFree(d_b));
    CU(cudaFree(d_o));
}

static void test_argmax(void) {
    const int n = 128256;
    float *x = random_host((size_t)n, 10.0f);
    float *d_x = to_device(x, (size_t)n * 4);
    int32_t *d_out = device_int(-1), got;
    CU(eo_argmax_forward(d_out, d_x, n, stream));
    CU(cudaStreamSynchronize(stream));
    CU(cudaMemcpy(&got, d_out, 4, cudaMemcpyDeviceToHost));
    CHECK(got == argmax(x, n), "argmax of random values: %d vs %d", got, argmax(x, n));
    x[90000] = x[5000] = x[127000] = 11.0f; // a three-way tie: the lowest index wins
    CU(cudaMemcpy(d_x, x, (size_t)n * 4, cudaMemcpyHostToDevice));
    CU(eo_argmax_forward(d_out, d_x, n, stream));
    CU(cudaStreamSynchronize(stream));
    CU(cudaMemcpy(&got, d_out, 4, cudaMemcpyDeviceToHost));
    CHECK(got == 5000 && argmax(x, n) == 5000, "argmax tie goes to the lowest index: %d", got);
    x[n - 1] = 12.0f;
    CU(cudaMemcpy(d_x, x, (size_t)n * 4, cudaMemcpyHostToDevice));
    CU(eo_argmax_forward(d_out, d_x, n, stream));
    CU(cudaStreamSynchronize(stream));
    CU(cudaMemcpy(&got, d_out, 4, cudaMemcpyDeviceToHost));
    CHECK(got == n - 1, "argmax at the last index: %d", got);
    printf("  argmax over %d values: random, ties, last index checked\n", n);
    free(x);
    CU(cudaFree(d_x));
    CU(cudaFree(d_out));
}

/* y = x W^T with W (n_out, n_in): the layouts and transposes of every
 * projection. The reference is a double sum of the same (rounded) inputs, so
 * only f32 accumulation error remains: a TF32 path would fail the f32 case. */
static void test_matmul(void) {
    static const struct {
        int batch, n_in, n_out;
    } cases[] = {{1, 300, 257}, {7, 300, 257}, {1, 2048, 512}, {64, 512, 1408}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int batch = cases[k].batch, n_in = cases[k].n_in, n_out = cases[k].n_out;
        float *w = random_host((size_t)n_out * n_in, 1.0f), *x = random_host((size_t)batch * n_in, 1.0f);
        float *d_x = to_device(x, (size_t)batch * n_in * 4), *d_y;
        void *d_xh;
        CU(cudaMalloc((void **)&d_y, (size_t)batch * n_out * 4));
        CU(cudaMalloc(&d_xh, (size_t)batch * n_in * 4));
        for (int t = EO_F32; t <= EO_BF16; t++) {
            void *enc = encode((eo_dtype)t, w, (size_t)n_out * n_in);
            void *d_w = to_device(enc, (size_t)n_out * n_in * eo_dtype_size((eo_dtype)t));
            CU(eo_convert_forward(d_xh, (eo_dtype)t, d_x, (size_t)batch * n_in, stream));
            CB(eo_matmul_forward(handle, d_y, d_xh, d_w, (eo_dtype)t, batch, n_in, n_out));
            float *got = from_device(d_y, (size_t)batch * n_out), *want = malloc((size_t)batch * n_out * sizeof *want);
            for (int b = 0; b < batch; b++)
                for (int o = 0; o < n_out; o++) {
                    double sum = 0;
                    for (int i = 0; i < n_in; i++)
                        sum += (double)round_to((eo_dtype)t, w[(size_t)o * n_in + i]) *
                               (double)round_to((eo_dtype)t, x[(size_t)b * n_in + i]);
                    want[b * n_out + o] = (float)sum;
                }
            char what[64];
            snprintf(what, sizeof what, "matmul %s (%d x %d -> %d)", dtype_name((eo_dtype)t), batch, n_in, n_out);
            /* f32 accumulation of n_in products of magnitude <= 1. The f32 path (FFMA, IEEE rounding) is
             * held tight, so TF32 (10-bit inputs, errors near 1e-2 here) would fail; tensor cores' f32
             * accumulation at 16-bit inputs rounds less exactly, hence the looser bound there. */
            if (t == EO_F32) check_close(what, got, want, (size_t)batch * n_out, 2e-6 * sqrt((double)n_in), 1e-5);
            else
                check_close(what, got, want, (size_t)batch * n_out, 1e-5 * sqrt((double)n_in), 1e-4);
            free(got), free(want), free(enc);
            CU(cudaFree(d_w));
        }
        free(w), free(x);
        CU(cudaFree(d_x));
        CU(cudaFree(d_y));
        CU(cudaFree(d_xh));
    }
}

/* cpu_ref's attention_worker: row b of q (batch, n_heads * hd), at position
 * pos0 + b, against the caches (at least pos0 + batch positions of kv_dim):
 * scores, scaled, softmax, weighted sum of the values. */
static void attention_reference(float *out, const float *q, const float *kc, const float *vc, int batch, int pos0,
                                int n_heads, int n_kv, int hd) {
    const int kv_mul = n_heads / n_kv, kv_dim = n_kv * hd, q_dim = n_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *att = malloc((size_t)(pos0 + batch) * sizeof *att);
    for (int b = 0; b < batch; b++)
        for (int h = 0; h < n_heads; h++) {
            const int pos = pos0 + b, g = h / kv_mul;
            const float *qh = q + (size_t)b * q_dim + (size_t)h * hd;
            for (int t = 0; t <= pos; t++) {
                const float *k = kc + (size_t)t * kv_dim + (size_t)g * hd;
                float score = 0.0f;
                for (int i = 0; i < hd; i++) score += qh[i] * k[i];
                att[t] = score * scale;
            }
            softmax(att, pos + 1);
            float *o = out + (size_t)b * q_dim + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof *o);
            for (int t = 0; t <= pos; t++) {
                const float *v = vc + (size_t)t * kv_dim + (size_t)g * hd;
                for (int i = 0; i < hd; i++) o[i] += att[t] * v[i];
            }
        }
    free(att);
}

/* Caches of max_seq positions: random keys and values where the kernel may
 * read them (positions < filled), NaN after, so that a read past the
 * query's last position poisons the output instead of passing unseen. */
static void random_caches(float **kc, float **vc, int max_seq, int filled, int kv_dim) {
    size_t n = (size_t)max_seq * kv_dim, valid = (size_t)filled * kv_dim;
    *kc = random_host(n, 1.5f);
    *vc = random_host(n, 1.0f);
    for (size_t i = valid; i < n; i++) (*kc)[i] = (*vc)[i] = NAN;
}

/* Every query row of a chunk in one launch (prefill), against cpu_ref's
 * attention: odd batch sizes, chunks starting at position 0 and later (a
 * second prefill chunk), more positions than one KV tile, more rows than one
 * query tile, GQA groups of 1, 2, 3, 4 and 40 heads (more than a block
 * holds), head_dim 12, 16, 64, 80 and 128 (both kernel variants) and 18
 * (not a whole number of float4s: the tiles' zero padding). */
static void test_attention_prefill(void) {
    static const struct {
        int n_heads, n_kv, hd, batch, pos0;
    } cases[] = {{8, 2, 64, 37, 0},   {4, 4, 16, 5, 70}, {6, 2, 80, 19, 13}, {32, 8, 64, 70, 100},
                 {40, 1, 128, 3, 50}, {2, 1, 128, 1, 0}, {8, 2, 64, 64, 1},  {12, 4, 128, 33, 17},
                 {4, 2, 16, 300, 0},  {6, 3, 18, 11, 5}, {6, 2, 12, 40, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int n_heads = cases[k].n_heads, n_kv = cases[k].n_kv, hd = cases[k].hd;
        const int batch = cases[k].batch, pos0 = cases[k].pos0;
        const int kv_dim = n_kv * hd, q_dim = n_heads * hd, max_seq = pos0 + batch + 7;
        float *kc, *vc, *q = random_host((size_t)batch * q_dim, 2.0f);
        random_caches(&kc, &vc, max_seq, pos0 + batch, kv_dim);
        float *want = malloc((size_t)batch * q_dim * sizeof *want);
        attention_reference(want, q, kc, vc, batch, pos0, n_heads, n_kv, hd);
        float *d_kc = to_device(kc, (size_t)max_seq * kv_dim * 4), *d_vc = to_device(vc, (size_t)max_seq * kv_dim * 4);
        float *d_q = to_device(q, (size_t)batch * q_dim * 4), *d_out;
        CU(cudaMalloc((void **)&d_out, (size_t)batch * q_dim * 4));
        int32_t *d_pos = device_int(pos0);
        CU(eo_attention_prefill_forward(d_out, d_q, d_kc, d_vc, batch, n_heads, n_kv, hd, d_pos, stream));
        float *got = from_device(d_out, (size_t)batch * q_dim);
        char what[96];
        snprintf(what, sizeof what, "attention prefill (%d rows at %d, %d/%d heads x %d)", batch, pos0, n_heads, n_kv,
                 hd);
        check_close(what, got, want, (size_t)batch * q_dim, 2e-6, 1e-5);
        free(kc), free(vc), free(q), free(want), free(got);
        CU(cudaFree(d_kc));
        CU(cudaFree(d_vc));
        CU(cudaFree(d_q));
        CU(cudaFree(d_out));
        CU(cudaFree(d_pos));
    }
}

/* One query row split over the sequence (decode), against cpu_ref's
 * attention: position 0 (one split holds everything, the rest are empty),
 * more splits than positions, a split longer than a tile of 128, odd split
 * counts, GQA groups of 1, 2, 3, 4 and 10 (two blocks per group), head_dim
 * 16, 18, 64, 80 and 128; and twice on one set of buffers at two positions, as a
 * replayed CUDA graph runs it. */
static void test_attention_decode(void) {
    static const struct {
        int n_heads, n_kv, hd, pos, n_splits;
    } cases[] = {{8, 2, 64, 0, 32},  {8, 2, 64, 300, 32}, {8, 2, 64, 300, 1}, {32, 8, 64, 2047, 32}, {6, 2, 80, 130, 7},
                 {20, 2, 16, 77, 5}, {4, 4, 128, 500, 3}, {8, 2, 64, 5, 32},  {16, 2, 128, 1000, 4}, {6, 3, 18, 50, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int n_heads = cases[k].n_heads, n_kv = cases[k].n_kv, hd = cases[k].hd;
        const int pos = cases[k].pos, n_splits = cases[k].n_splits;
        const int kv_dim = n_kv * hd, q_dim = n_heads * hd, max_seq = pos + 9;
        float *kc, *vc, *q = random_host((size_t)q_dim, 2.0f);
        random_caches(&kc, &vc, max_seq, pos + 1, kv_dim);
        float *want = malloc((size_t)q_dim * sizeof *want);
        /* the query row alone, at position pos: the reference's row 0 at pos0 = pos */
        attention_reference(want, q, kc, vc, 1, pos, n_heads, n_kv, hd);
        float *d_kc = to_device(kc, (size_t)max_seq * kv_dim * 4), *d_vc = to_device(vc, (size_t)max_seq * kv_dim * 4);
        float *d_q = to_device(q, (size_t)q_dim * 4), *d_out, *d_part;
        CU(cudaMalloc((void **)&d_out, (size_t)q_dim * 4));
        CU(cudaMalloc((void **)&d_part, eo_attention_decode_partials(n_heads, hd, n_splits) * 4));
        int32_t *d_pos = device_int(pos);
        CU(eo_attention_decode_forward(d_out, d_part, d_q, d_kc, d_vc, n_heads, n_kv, hd, n_splits, d_pos, stream));
        float *got = from_device(d_out, (size_t)q_dim);
        char what[96];
        snprintf(what, sizeof what, "attention decode (pos %d, %d splits, %d/%d heads x %d)", pos, n_splits, n_heads,
                 n_kv, hd);
        check_close(what, got, want, (size_t)q_dim, 2e-6, 1e-5);
        free(got);
        /* the same launch at an earlier position read from the same device int */
        const int earlier = pos / 3;
        CU(cudaMemcpy(d_pos, &earlier, sizeof earlier, cudaMemcpyHostToDevice));
        attention_reference(want, q, kc, vc, 1, earlier, n_heads, n_kv, hd);
        CU(eo_attention_decode_forward(d_out, d_part, d_q, d_kc, d_vc, n_heads, n_kv, hd, n_splits, d_pos, stream));
        got = from_device(d_out, (size_t)q_dim);
        snprintf(what, sizeof what, "  same buffers, position from the device: %d", earlier);
        check_close(what, got, want, (size_t)q_dim, 2e-6, 1e-5);
        free(kc), free(vc), free(q), free(want), free(got);
        CU(cudaFree(d_kc));
        CU(cudaFree(d_vc));
        CU(cudaFree(d_q));
        CU(cudaFree(d_out));
        CU(cudaFree(d_part));
        CU(cudaFree(d_pos));
    }
}

/* Shapes the attention kernels do not handle are refused before any launch:
 * a head wider than their shared tiles, query heads that are not whole
 * groups, no splits. */
static void test_attention_refusals(void) {
    float *d_buf;
    int32_t *d_pos = device_int(0);
    const int hd = EO_ATTENTION_MAX_HEAD_DIM + 1;
    CU(cudaMalloc((void **)&d_buf, (size_t)4 * 3 * hd * 4));
    CHECK(eo_attention_prefill_forward(d_buf, d_buf, d_buf, d_buf, 1, 2, 1, hd, d_pos, stream) == cudaErrorInvalidValue,
          "prefill attention refuses head_dim %d", hd);
    CHECK(eo_attention_decode_forward(d_buf, d_buf, d_buf, d_buf, d_buf, 2, 1, hd, 1, d_pos, stream) ==
              cudaErrorInvalidValue,
          "decode attention refuses head_dim %d", hd);
    CHECK(eo_attention_prefill_forward(d_buf, d_buf, d_buf, d_buf, 1, 3, 2, 16, d_pos, stream) == cudaErrorInvalidValue,
          "prefill attention refuses 3 query heads on 2 KV heads");
    CHECK(eo_attention_decode_forward(d_buf, d_buf, d_buf, d_buf, d_buf, 2, 1, 16, 0, d_pos, stream) ==
              cudaErrorInvalidValue,
          "decode attention refuses 0 splits");
    CU(cudaStreamSynchronize(stream)); // nothing was launched: no error left behind
    printf("  attention: head_dim %d, partial groups and 0 splits refused\n", hd);
    CU(cudaFree(d_buf));
    CU(cudaFree(d_pos));
}

int main(int argc, char **argv) {
    rng = argc > 1 ? strtoull(argv[1], NULL, 10) : (uint64_t)time(NULL);
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        printf("test_eager_ops_kernels: skipped, no CUDA device: %s\n",
               err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        return 77;
    }
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("test_eager_ops_kernels: %s (sm_%d%d), seed %" PRIu64 "\n", prop.name, prop.major, prop.minor, rng);
    CU(cudaStreamCreate(&stream));
    CB(cublasCreate(&handle));
    CB(cublasSetStream(handle, stream));
    CB(cublasSetMathMode(handle,
                         (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    test_embedding();
    test_rmsnorm();
    test_rope();
    test_kv_append();
    test_elementwise();
    test_argmax();
    test_matmul();
    test_attention_prefill();
    test_attention_decode();
    test_attention_refusals();
    cublasDestroy(handle);
    cudaStreamDestroy(stream);
    return check_summary();
}
