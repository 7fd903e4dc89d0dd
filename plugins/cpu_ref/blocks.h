/* blocks.h - cpu_ref's element-wise blocks of the LLaMA forward pass, the
 * definitions every backend is checked against. cpu_ref.c uses them, and the
 * CUDA backends' kernel tests use them as the CPU twins of their kernels
 * (tests/test_eager_ops_kernels.c), so there is one copy of each. Plain C11,
 * header-only (static inline), no state. */
#ifndef CPU_REF_BLOCKS_H
#define CPU_REF_BLOCKS_H

#include <math.h>
#include <stddef.h>

/* o = x / sqrt(mean(x^2) + eps) * weight, for one vector of n */
static inline void rmsnorm(float *o, const float *x, const float *weight, int n, float eps) {
    float ss = 0.0f;
    for (int j = 0; j < n; j++) ss += x[j] * x[j];
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int j = 0; j < n; j++) o[j] = weight[j] * (scale * x[j]);
}

/* RoPE, GGUF llama layout: rotate adjacent pairs (2i, 2i+1) of each head by
 * pos * inv_freq[i], for i < n_rot / 2 (the rest of each head is left as it
 * is). vec holds n_heads heads of head_dim. */
static inline void rope(float *vec, int n_heads, int head_dim, int n_rot, int pos, const float *inv_freq) {
    for (int i = 0; i < n_rot / 2; i++) {
        double angle = (double)pos * (double)inv_freq[i];
        float c = (float)cos(angle), sn = (float)sin(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = vec + (size_t)h * head_dim + 2 * i;
            float v0 = v[0], v1 = v[1];
            v[0] = v0 * c - v1 * sn;
            v[1] = v0 * sn + v1 * c;
        }
    }
}

/* x = softmax(x) over n values, shifted by the maximum for range. */
static inline void softmax(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

/* SiLU (swish): x * sigmoid(x); SwiGLU is silu(gate) * up. */
static inline float silu(float x) { return x / (1.0f + expf(-x)); }

/* The index of the largest of n values; the lowest index on ties. */
static inline int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#endif
