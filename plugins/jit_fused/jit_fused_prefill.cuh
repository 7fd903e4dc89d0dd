// jit_fused_prefill.cuh - jit_fused's prefill of long prompts on tensor cores,
// a template for NVRTC appended after jit_fused_kernels.cuh (whose helpers it
// uses: jf_half_to_float, jf_bf16_to_float, jf_begin, jf_warp_sum ...). Built
// only when every matrix is f16 or bf16 (the profile's weight precision is
// f16 or bf16); f32 and the native block formats prefill on CUDA cores (the
// _nb kernels). plugins/jit_fused/jf_prefill.c drives it.
//
// Constants the generator adds (jf_prefill_source):
//   JF_PF_CHUNK   positions per prefill pass (a chunk): the row count of the
//                 buffers below; a prompt is prefilled chunk by chunk
//   JF_PF_T       JF_T_F16 or JF_T_BF16: the type of every matrix
//
// Precision. cpu_ref multiplies f16 (bf16) weights with f32 activations and
// accumulates in f32. Tensor cores take f16 (bf16) operands and accumulate in
// f32; weights ARE f16 (bf16), so they go in exactly, and each activation is
// split into parts of the operand type whose sum keeps ~22 (24) bits of it:
//   f16:  hi = f16(x), lo = f16(x - hi)                      2 mma per product
//   bf16: hi = bf16(x), mid = bf16(x - hi), lo = bf16(x - hi - mid)   3 mma
// (x - hi is exact in f32). Every product of a weight and a part is exact in
// f32, so only the order of the f32 sums (and the few bits the split drops)
// differ from cpu_ref. Limits: at f16 an activation of magnitude >= 65520 has
// no hi part (overflows), and lo parts under 2^-24 are flushed: activations
// of LLaMA-type models after RMSNorm, attention and SwiGLU stay far inside.
// The emulated mma adds in f32 with round-to-nearest; the tensor cores' own
// additions inside an mma are not specified by PTX (published measurements
// of earlier generations found truncation), so the agreement a GPU gives
// may be somewhat looser than the emulated 1.3e-6 .. 2.9e-6: a GPU run says.
//
// A chunk of n <= JF_PF_CHUNK positions, per layer (jf_prefill_forward):
//   jf_pf_norm         RMSNorm of each position, written as the split operand
//   jf_pf_qkv          [W_q; W_k; W_v] GEMM; RoPE (angles in double) and the
//                      KV-cache write (f32, as the decode kernels read it) in
//                      the epilogue; q kept f32 for attention
//   jf_pf_attention    causal GQA attention of the chunk's queries against the
//                      cache, flash style (online softmax over key tiles in
//                      shared memory), Q K^T and P V on tensor cores as tf32
//                      with split f32 operands (3 mma per product, see the
//                      attention chapter); writes its output as the split
//                      operand of W_o
//   jf_pf_out          W_o GEMM, x += in the epilogue
//   jf_pf_norm         (the FFN norm)
//   jf_pf_gate_up      W_gate and W_up GEMM in one block; silu(gate) * up in
//                      the epilogue, written as the split operand of W_down
//   jf_pf_down         W_down GEMM, x += in the epilogue
// then the LM head (jf_lm_head_nb / _1 of jit_fused_kernels.cuh) only for
// the positions whose logits are asked for.
//
// The GEMMs: D[position][row] = sum_k act[position][k] * W[row][k], on
// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: the activations are the
// A operand (M = positions), the weight rows the B operand (N = rows, "col":
// B's columns are W's rows, contiguous in k). A block computes a tile of 64
// positions x 128 weight rows with 8 warps (2 x 4, each 32 x 32: 2 m16 tiles
// x 4 n8 tiles, 32 f32 accumulators); K runs through shared memory 32 at a
// time, double buffered with cp.async (16-byte copies, zero-filled past a
// row's end: no tail code). Fragment layouts (PTX ISA, "Matrix Fragments for
// mma.m16n8k16 with floating point type"), with g = lane >> 2, t = lane & 3:
//   A (16 x 16, four .b32 registers of two halves, low half first):
//     reg 0: (row g,     cols 2t, 2t+1)    reg 1: (row g + 8, cols 2t, 2t+1)
//     reg 2: (row g,     cols 2t+8, 2t+9)  reg 3: (row g + 8, cols 2t+8, 2t+9)
//   B (16 x 8, two .b32 registers): reg 0: (rows 2t, 2t+1, col g)
//                                   reg 1: (rows 2t+8, 2t+9, col g)
//   C, D (16 x 8 f32): c0, c1: (row g, cols 2t, 2t+1); c2, c3: (row g + 8, same cols)
// So a thread's c0, c1 are two adjacent weight rows of one position: a RoPE
// pair, or (gate/up blocks) with the up rows in other n tiles at the same
// registers. Under JF_EMULATE (tests/test_jit_fused_prefill_emulated.c) each
// warp's mma is a collective that gathers the 32 lanes' registers and
// computes exactly what the layouts above say, so the CPU run checks the
// kernels' fragment indexing against the PTX layout.
//
// Mutations the emulated test must catch (each defined alone):
//   JF_MUTATE_PF_LANE     A fragments' registers 1 and 2 swapped (rows g+8 / cols +8)
//   JF_MUTATE_PF_ATT_LANE the same in attention's Q fragments (tf32: rows g+8 / cols +4)
//   JF_MUTATE_PF_NO_LO    no split: only the hi part (f16: lo dropped; bf16: mid and lo;
//                         attention's tf32 operands: lo dropped)
//   JF_MUTATE_PF_CAUSAL   each query also sees the next position's key
//   JF_MUTATE_PF_ROPE     RoPE at the position within the chunk, not in the prompt

#if JF_PF_T == JF_T_F16
#define JF_PF_PARTS 2
#else
#define JF_PF_PARTS 3
#endif
#define JF_PF_THREADS 256
#define JF_PF_BM 64  // positions per GEMM block tile
#define JF_PF_BN 128 // weight rows per GEMM block tile
#define JF_PF_BK 32  // k per shared-memory stage
#ifdef JF_EMULATE
#define __align__(n) __attribute__((aligned(n)))
#endif

// ------------------------------------------------------------------ the split

#ifdef JF_EMULATE
// f32 to IEEE half, rounding to nearest even (the PTX cvt.rn.f16.f32).
__device__ __forceinline__ fb_u32 jf_pf_emu_f16(float f) {
    fb_u32 u = __float_as_uint(f), sign = (u >> 16) & 0x8000u;
    u &= 0x7FFFFFFFu;
    if (u >= 0x7F800000u) return sign | 0x7C00u | (u > 0x7F800000u ? 0x200u : 0u);
    if (u >= 0x477FF000u) return sign | 0x7C00u;                                   // >= 65520: infinity
    if (u < 0x38800000u) return sign | (fb_u32)nearbyintf(fabsf(f) * 16777216.0f); // subnormal: units of 2^-24
    return sign | ((u - 0x38000000u + 0xFFFu + ((u >> 13) & 1u)) >> 13);
}
#endif

// The operand type's bits of f, rounded to nearest even.
__device__ __forceinline__ fb_u32 jf_pf_round(float f) {
#if JF_PF_T == JF_T_F16
#ifdef JF_EMULATE
    return jf_pf_emu_f16(f);
#else
    fb_u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
#else
    const fb_u32 u = __float_as_uint(f); // finite values (activations are)
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
#endif
}

__device__ __forceinline__ float jf_pf_value(fb_u32 bits) {
#if JF_PF_T == JF_T_F16
    return jf_half_to_float(bits);
#else
    return jf_bf16_to_float(bits);
#endif
}

// x as JF_PF_PARTS operand values whose sum is x to ~22 (f16) or ~24 (bf16) bits.
__device__ __forceinline__ void jf_pf_split(float x, fb_u32 part[JF_PF_PARTS]) {
    float rest = x;
#pragma unroll
    for (int p = 0; p < JF_PF_PARTS; p++) {
        part[p] = jf_pf_round(rest);
        rest -= jf_pf_value(part[p]); // exact
    }
#ifdef JF_MUTATE_PF_NO_LO
#pragma unroll
    for (int p = 1; p < JF_PF_PARTS; p++) part[p] = 0u;
#endif
}

// Split operand buffers: JF_PF_PARTS planes of JF_PF_CHUNK rows of LD values.
template <int LD> __device__ __forceinline__ fb_u16 *jf_pf_plane(fb_u16 *act, int part) {
    return act + (size_t)part * JF_PF_CHUNK * LD;
}

// Write x at (row pos, column col) of a split buffer of row stride LD.
template <int LD> __device__ __forceinline__ void jf_pf_store(fb_u16 *act, int pos, int col, float x) {
    fb_u32 part[JF_PF_PARTS];
    jf_pf_split(x, part);
#pragma unroll
    for (int p = 0; p < JF_PF_PARTS; p++) jf_pf_plane<LD>(act, p)[(size_t)pos * LD + col] = (fb_u16)part[p];
}

// ------------------------------------------------------------------ RMSNorm into the split operand

// Block b: act[b] = split(norm * (inv_rms(x_b) * x_b)), as cpu_ref's rmsnorm;
// zeros in the padding columns up to JF_LD_DIM.
extern "C" __global__ void __launch_bounds__(JF_PF_THREADS) jf_pf_norm(const float *x, const float *norm, fb_u16 *act) {
    jf_begin();
    __shared__ float partial[JF_PF_THREADS / 32];
    const int b = blockIdx.x;
    const float *xb = x + (size_t)b * JF_LD_DIM;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < JF_DIM; i += JF_PF_THREADS) ss = fmaf(xb[i], xb[i], ss);
    ss = jf_warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    ss = 0.0f;
#pragma unroll
    for (int w = 0; w < JF_PF_THREADS / 32; w++) ss += partial[w];
    const float inv = 1.0f / sqrtf(ss / (float)JF_DIM + JF_RMS_EPS);
    for (int i = threadIdx.x; i < JF_LD_DIM; i += JF_PF_THREADS)
        jf_pf_store<JF_LD_DIM>(act, b, i, i < JF_DIM ? norm[i] * (inv * xb[i]) : 0.0f);
}

// ------------------------------------------------------------------ the GEMM core

// Shared memory of a stage: the weight tile (128 rows x 32 k) and the
// activation tile (parts x 64 positions x 32 k), each row 4 chunks of 16
// bytes, chunk c of row r stored at c ^ ((r >> 1) & 3): the eight rows a
// fragment load touches then fall on 32 different banks, with no padding
// (the bf16 kernels' 40 KiB, double buffered, stay under the 48 KiB of
// static shared memory).
struct __align__(16) jf_pf_tiles {
    fb_u16 w[2][JF_PF_BN * JF_PF_BK];
    fb_u16 a[2][JF_PF_PARTS][JF_PF_BM * JF_PF_BK];
};

__device__ __forceinline__ int jf_pf_swz(int row, int col) {
    return row * JF_PF_BK + ((((col >> 3) ^ (row >> 1)) & 3) << 3) + (col & 7);
}

// 16 bytes from global src to shared dst, or zeros when !valid (src is then
// not read). cp.async on the GPU: the copy runs while the warp computes.
__device__ __forceinline__ void jf_pf_copy16(fb_u16 *dst, const void *src, bool valid) {
#ifdef JF_EMULATE
    if (valid) memcpy(dst, src, 16);
    else
        memset(dst, 0, 16);
#else
    fb_u32 d;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(d) : "l"(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
#endif
}

__device__ __forceinline__ void jf_pf_commit() {
#ifndef JF_EMULATE
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

template <int N> __device__ __forceinline__ void jf_pf_wait() {
#ifndef JF_EMULATE
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

// The warp's mma of one k16 step: acc[mt][nt] += sum over parts of
// A_part[mt] (16 positions x 16 k) . B[nt] (16 k x 8 rows).
__device__ __forceinline__ void jf_pf_mma_step(float acc[2][4][4], const fb_u32 a[JF_PF_PARTS][2][4],
                                               const fb_u32 b[4][2]) {
#ifndef JF_EMULATE
#pragma unroll
    for (int p = 0; p < JF_PF_PARTS; p++)
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                float *d = acc[mt][nt];
#if JF_PF_T == JF_T_F16
                asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                    "{%0, %1, %2, %3};"
                    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                    : "r"(a[p][mt][0]), "r"(a[p][mt][1]), "r"(a[p][mt][2]), "r"(a[p][mt][3]), "r"(b[nt][0]),
                      "r"(b[nt][1]));
#else
                asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, "
                    "%9}, {%0, %1, %2, %3};"
                    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                    : "r"(a[p][mt][0]), "r"(a[p][mt][1]), "r"(a[p][mt][2]), "r"(a[p][mt][3]), "r"(b[nt][0]),
                      "r"(b[nt][1]));
#endif
            }
#else
    // The emulated warp collective: every lane's registers into shared
    // memory, then each lane computes its four D elements of every mma from
    // the owners the PTX layout names. (A block-wide barrier stands for the
    // warp's convergence: every thread of a GEMM block runs the same steps.)
    constexpr int NA = JF_PF_PARTS * 2 * 4;
    __shared__ fb_u32 s_a[JF_PF_THREADS][NA], s_b[JF_PF_THREADS][8];
    const int lane = threadIdx.x & 31, base = threadIdx.x & ~31, g = lane >> 2, t = lane & 3;
    memcpy(s_a[threadIdx.x], a, sizeof(fb_u32) * NA);
    memcpy(s_b[threadIdx.x], b, sizeof(fb_u32) * 8);
    __syncthreads();
    for (int p = 0; p < JF_PF_PARTS; p++)
        for (int mt = 0; mt < 2; mt++)
            for (int nt = 0; nt < 4; nt++)
                for (int i = 0; i < 4; i++) {
                    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
                    float sum = acc[mt][nt][i];
                    for (int k = 0; k < 16; k++) {
                        // A(row, k): lane 4 (row % 8) + (k % 8) / 2, register (row >= 8) + 2 (k >= 8)
                        const fb_u32 ra =
                            s_a[base + 4 * (row & 7) + ((k & 7) >> 1)][(p * 2 + mt) * 4 + (row >> 3) + 2 * (k >> 3)];
                        // B(k, col): lane 4 col + (k % 8) / 2, register (k >= 8)
                        const fb_u32 rb = s_b[base + 4 * col + ((k & 7) >> 1)][nt * 2 + (k >> 3)];
                        sum += jf_pf_value((ra >> (16 * (k & 1))) & 0xFFFFu) *
                               jf_pf_value((rb >> (16 * (k & 1))) & 0xFFFFu);
                    }
                    acc[mt][nt][i] = sum;
                }
    __syncthreads();
#endif
}

// The weight rows of shared-memory row r (0 .. 127) of block column bx: a
// plain GEMM takes rows 128 bx + r of one matrix; gate/up (GU) takes rows
// 64 bx + r of W_gate for r < 64 and 64 bx + r - 64 of W_up after.
template <bool GU> __device__ __forceinline__ int jf_pf_wrow(int bx, int r) {
    return GU ? 64 * bx + (r & 63) : JF_PF_BN * bx + r;
}

// Shared-memory row of n tile nt (of 4) of warp column wn (of 4).
template <bool GU> __device__ __forceinline__ int jf_pf_nrow(int wn, int nt) {
    return GU ? (nt >> 1) * 64 + 16 * wn + 8 * (nt & 1) : 32 * wn + 8 * nt;
}

// One block's tile: acc = act[64 positions from 64 blockIdx.x] . W^T[128
// rows of block column blockIdx.y], K values of row stride LD (a multiple of
// 8; weights and activations zero past K). w0 (w1 for GU's up rows): rows of
// LD values; M rows in each. Positions at or past n read as zeros.
template <int LD, int M, bool GU>
__device__ __forceinline__ void jf_pf_gemm(int n, const fb_u16 *act, const fb_u16 *w0, const fb_u16 *w1,
                                           float acc[2][4][4], jf_pf_tiles &s) {
    constexpr int KT = (LD + JF_PF_BK - 1) / JF_PF_BK;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int wm = warp & 1, wn = warp >> 1;
    const int p0 = blockIdx.x * JF_PF_BM, bx = blockIdx.y;
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[mt][nt][i] = 0.0f;

    // Each thread's copies: two 16-byte chunks of the weight tile, one per
    // part of the activation tile.
    auto load = [&](int kt, int stage) {
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int id = tid + JF_PF_THREADS * u, r = id >> 2, c = id & 3, col = kt * JF_PF_BK + 8 * c;
            const int wr = jf_pf_wrow<GU>(bx, r);
            const bool ok = wr < M && col < LD;
            const fb_u16 *src = (GU && r >= 64 ? w1 : w0) + (ok ? (size_t)wr * LD + col : 0);
            jf_pf_copy16(&s.w[stage][jf_pf_swz(r, 8 * c)], src, ok);
        }
        const int r = tid >> 2, c = tid & 3, col = kt * JF_PF_BK + 8 * c;
        const bool ok = p0 + r < n && col < LD;
#pragma unroll
        for (int p = 0; p < JF_PF_PARTS; p++) {
            const fb_u16 *src = jf_pf_plane<LD>((fb_u16 *)act, p) + (ok ? (size_t)(p0 + r) * LD + col : 0);
            jf_pf_copy16(&s.a[stage][p][jf_pf_swz(r, 8 * c)], src, ok);
        }
    };

    load(0, 0);
    jf_pf_commit();
#pragma unroll 1
    for (int kt = 0; kt < KT; kt++) {
        const int stage = kt & 1;
        if (kt + 1 < KT) {
            load(kt + 1, stage ^ 1);
            jf_pf_commit();
            jf_pf_wait<1>();
        } else {
            jf_pf_wait<0>();
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < JF_PF_BK / 16; ks++) {
            const int k0 = 16 * ks + 2 * t;
            fb_u32 a[JF_PF_PARTS][2][4], b[4][2];
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int r = jf_pf_nrow<GU>(wn, nt) + g;
                b[nt][0] = *(const fb_u32 *)&s.w[stage][jf_pf_swz(r, k0)];
                b[nt][1] = *(const fb_u32 *)&s.w[stage][jf_pf_swz(r, k0 + 8)];
            }
#pragma unroll
            for (int p = 0; p < JF_PF_PARTS; p++)
#pragma unroll
                for (int mt = 0; mt < 2; mt++) {
                    const int r = 32 * wm + 16 * mt + g;
                    const fb_u16 *tile = s.a[stage][p];
#ifdef JF_MUTATE_PF_LANE
                    a[p][mt][2] = *(const fb_u32 *)&tile[jf_pf_swz(r + 8, k0)];
                    a[p][mt][1] = *(const fb_u32 *)&tile[jf_pf_swz(r, k0 + 8)];
#else
                    a[p][mt][1] = *(const fb_u32 *)&tile[jf_pf_swz(r + 8, k0)];
                    a[p][mt][2] = *(const fb_u32 *)&tile[jf_pf_swz(r, k0 + 8)];
#endif
                    a[p][mt][0] = *(const fb_u32 *)&tile[jf_pf_swz(r, k0)];
                    a[p][mt][3] = *(const fb_u32 *)&tile[jf_pf_swz(r + 8, k0 + 8)];
                }
            jf_pf_mma_step(acc, a, b);
        }
        __syncthreads(); // the stage is refilled next
    }
}

// Where accumulator i of tile (mt, nt) lands: its position (within the
// chunk) and its shared-memory weight row (jf_pf_wrow maps it to a matrix row).
__device__ __forceinline__ int jf_pf_pos(int mt, int i) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    return blockIdx.x * JF_PF_BM + 32 * (warp & 1) + 16 * mt + (lane >> 2) + 8 * (i >> 1);
}
template <bool GU> __device__ __forceinline__ int jf_pf_row(int nt, int i) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    return jf_pf_nrow<GU>(warp >> 1, nt) + 2 * (lane & 3) + (i & 1);
}

// ------------------------------------------------------------------ the GEMM kernels
// Grids: (position tiles, weight-row tiles): the position tiles of one
// weight tile run side by side, so the weights come from DRAM about once per
// chunk and the (small) activations from L2. __launch_bounds__(256, 2): at
// most 128 registers, so two blocks (16 warps) share an SM, one computing
// while the other waits on its copies (ptxas chose 117-127 without it).

// Q, K, V; RoPE on adjacent row pairs (a thread's c0, c1 and c2, c3); q to
// q (f32), k and v into the cache at position step[0] + pos.
extern "C" __global__ void __launch_bounds__(JF_PF_THREADS, 2)
    jf_pf_qkv(const int *step, int n, const fb_u16 *act, const fb_u16 *w_qkv, const float *rope_inv_freq, float *q,
              float *key_cache, float *value_cache) {
    constexpr int M = JF_Q_DIM + 2 * JF_KV_DIM;
    __shared__ jf_pf_tiles s;
    jf_begin();
    float acc[2][4][4];
    jf_pf_gemm<JF_LD_DIM, M, false>(n, act, w_qkv, w_qkv, acc, s);
    const int pos0 = step[0];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int pos = jf_pf_pos(mt, 2 * h), r = jf_pf_wrow<false>(blockIdx.y, jf_pf_row<false>(nt, 0));
                if (pos >= n || r >= M) continue;
                float y0 = acc[mt][nt][2 * h], y1 = acc[mt][nt][2 * h + 1];
#ifdef JF_MUTATE_PF_ROPE
                const int at = pos;
#else
                const int at = pos0 + pos;
#endif
                if (r < JF_Q_DIM + JF_KV_DIM) jf_rope_pair(r, at, rope_inv_freq, y0, y1);
                float *dst = r < JF_Q_DIM ? q + (size_t)pos * JF_Q_DIM + r
                             : r < JF_Q_DIM + JF_KV_DIM
                                 ? key_cache + (size_t)(pos0 + pos) * JF_KV_DIM + (r - JF_Q_DIM)
                                 : value_cache + (size_t)(pos0 + pos) * JF_KV_DIM + (r - JF_Q_DIM - JF_KV_DIM);
                dst[0] = y0;
                dst[1] = y1;
            }
}

// x += act . W^T for a matrix of M = JF_DIM rows of LD values (W_o, W_down).
template <int LD> __device__ __forceinline__ void jf_pf_residual(int n, const fb_u16 *act, const fb_u16 *w, float *x) {
    __shared__ jf_pf_tiles s;
    float acc[2][4][4];
    jf_pf_gemm<LD, JF_DIM, false>(n, act, w, w, acc, s);
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int pos = jf_pf_pos(mt, i), r = jf_pf_wrow<false>(blockIdx.y, jf_pf_row<false>(nt, i));
                if (pos < n && r < JF_DIM) x[(size_t)pos * JF_LD_DIM + r] += acc[mt][nt][i];
            }
}

extern "C" __global__ void __launch_bounds__(JF_PF_THREADS, 2)
    jf_pf_out(int n, const fb_u16 *act, const fb_u16 *w_o, float *x) {
    jf_begin();
    jf_pf_residual<JF_LD_Q>(n, act, w_o, x);
}

extern "C" __global__ void __launch_bounds__(JF_PF_THREADS, 2)
    jf_pf_down(int n, const fb_u16 *act_h, const fb_u16 *w_down, float *x) {
    jf_begin();
    jf_pf_residual<JF_LD_FF>(n, act_h, w_down, x);
}

// Gate and up rows 64 blockIdx.y .. + 64 together: h = silu(gate) * up,
// written split into act_h (zeros in the padding columns up to JF_LD_FF).
extern "C" __global__ void __launch_bounds__(JF_PF_THREADS, 2)
    jf_pf_gate_up(int n, const fb_u16 *act, const fb_u16 *w_gate, const fb_u16 *w_up, fb_u16 *act_h) {
    __shared__ jf_pf_tiles s;
    jf_begin();
    float acc[2][4][4];
    jf_pf_gemm<JF_LD_DIM, JF_N_FF, true>(n, act, w_gate, w_up, acc, s);
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 2; nt++) // gate in n tiles 0, 1; up at the same registers of 2, 3
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int pos = jf_pf_pos(mt, i), r = jf_pf_wrow<true>(blockIdx.y, jf_pf_row<true>(nt, i));
                if (pos >= n || r >= JF_LD_FF) continue;
                const float gate = acc[mt][nt][i], up = acc[mt][nt + 2][i];
                jf_pf_store<JF_LD_FF>(act_h, pos, r, r < JF_N_FF ? gate / (1.0f + expf(-gate)) * up : 0.0f);
            }
}

// ------------------------------------------------------------------ attention
// Causal GQA attention of the chunk's queries on tensor cores:
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, each f32 operand split
// as x = hi + lo with hi = tf32(x) and lo = tf32(x - hi) (tf32 keeps f32's
// exponent, so nothing overflows), and each product taken as hi.hi + hi.lo +
// lo.hi: 3 mma, ~21 bits of every operand kept (lo.lo, under 2^-22 of the
// product, is left out). Fragment layouts (PTX ISA, "Matrix Fragments for
// mma.m16n8k8", .tf32), one element per .b32 register, g = lane >> 2, t = lane & 3:
//   A (16 x 8): a0 (row g, col t), a1 (row g + 8, col t), a2 (row g, col t + 4), a3 (row g + 8, col t + 4)
//   B (8 x 8):  b0 (row t, col g), b1 (row t + 4, col g)
//   C, D:       as m16n8k16's: c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g + 8, same cols)
// Block (query tile, head h), JF_PF_AW warps of 16 queries each; for each
// tile of JF_PF_BKV keys (of kv head h / (heads per kv head), from the cache,
// which jf_pf_qkv wrote for this chunk): S = Q K^T on tensor cores, an online
// softmax per query row (a row's values sit in the 4 lanes of a group: their
// max and sum by two xor-shuffles), P to shared memory, O += P V on tensor
// cores. Output: act (split, row stride JF_LD_Q); the last head also zeroes
// the padding columns.

#define JF_PF_AW (JF_HEAD_DIM <= 64 ? 4 : 2)      // warps per attention block
#define JF_PF_BQ (16 * JF_PF_AW)                  // queries per attention block
#define JF_PF_BKV (JF_HEAD_DIM <= 64 ? 32 : 16)   // keys per tile
#define JF_PF_HDP ((JF_HEAD_DIM + 7) / 8 * 8)     // head_dim in whole k8 steps (zeros after)
#define JF_PF_QS ((JF_PF_HDP + 31) / 32 * 32 + 4) // row stride of Q, K: (row g, col t) loads on 32 banks
#define JF_PF_VS ((JF_PF_HDP + 31) / 32 * 32 + 8) // row stride of V: (row t, col g) loads on 32 banks
#define JF_PF_PS (JF_PF_BKV + 4)                  // row stride of P

// The tf32 bits of f, rounded to nearest (ties away, as cvt.rna.tf32.f32):
// the low 13 bits zero. Finite values.
__device__ __forceinline__ fb_u32 jf_pf_tf32(float f) { return (__float_as_uint(f) + 0x1000u) & 0xFFFFE000u; }

__device__ __forceinline__ void jf_pf_split_tf32(float x, fb_u32 &hi, fb_u32 &lo) {
    hi = jf_pf_tf32(x);
    lo = jf_pf_tf32(x - __uint_as_float(hi));
#ifdef JF_MUTATE_PF_NO_LO
    lo = 0u;
#endif
}

// acc[j] += A . B[j] for j < NT, A and B[j] split: hi.hi + hi.lo + lo.hi.
template <int NT>
__device__ __forceinline__ void jf_pf_mma_tf32(float acc[NT][4], const fb_u32 ahi[4], const fb_u32 alo[4],
                                               const fb_u32 bhi[NT][2], const fb_u32 blo[NT][2]) {
#ifndef JF_EMULATE
    // term outermost: consecutive mma write different accumulators, so they need not wait for each other
#pragma unroll
    for (int term = 0; term < 3; term++)
#pragma unroll
        for (int j = 0; j < NT; j++) {
            const fb_u32 *a = term == 2 ? alo : ahi, *b = term == 1 ? blo[j] : bhi[j];
            asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                "{%0, %1, %2, %3};"
                : "+f"(acc[j][0]), "+f"(acc[j][1]), "+f"(acc[j][2]), "+f"(acc[j][3])
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
        }
#else
    // The emulated warp collective (see jf_pf_mma_step): each lane's D
    // elements from the owners the tf32 layout names.
    __shared__ fb_u32 s_a[JF_PF_THREADS][8], s_b[JF_PF_THREADS][4 * (JF_PF_HDP / 8 > NT ? JF_PF_HDP / 8 : NT)];
    const int lane = threadIdx.x & 31, base = threadIdx.x & ~31, g = lane >> 2, t = lane & 3;
    memcpy(s_a[threadIdx.x], ahi, 16);
    memcpy(s_a[threadIdx.x] + 4, alo, 16);
    memcpy(s_b[threadIdx.x], bhi, 8 * NT);
    memcpy(s_b[threadIdx.x] + 2 * NT, blo, 8 * NT);
    __syncthreads();
    for (int j = 0; j < NT; j++)
        for (int i = 0; i < 4; i++) {
            const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
            float sum = acc[j][i];
            for (int term = 0; term < 3; term++)
                for (int k = 0; k < 8; k++) {
                    // A(row, k): lane 4 (row % 8) + k % 4, register (row >= 8) + 2 (k >= 4)
                    const fb_u32 ra =
                        s_a[base + 4 * (row & 7) + (k & 3)][(term == 2 ? 4 : 0) + (row >> 3) + 2 * (k >> 2)];
                    // B(k, col): lane 4 col + k % 4, register (k >= 4)
                    const fb_u32 rb = s_b[base + 4 * col + (k & 3)][(term == 1 ? 2 * NT : 0) + 2 * j + (k >> 2)];
                    sum += __uint_as_float(ra) * __uint_as_float(rb);
                }
            acc[j][i] = sum;
        }
    __syncthreads();
#endif
}

extern "C" __global__ void __launch_bounds__(JF_PF_AW * 32)
    jf_pf_attention(const int *step, int n, const float *q, const float *key_cache, const float *value_cache,
                    fb_u16 *act) {
    static_assert(4 * (JF_PF_BQ * JF_PF_QS + JF_PF_BKV * (JF_PF_QS + JF_PF_VS) + JF_PF_BQ * JF_PF_PS) <= 48 * 1024,
                  "attention tiles exceed 48 KiB of shared memory");
    constexpr int NK = JF_PF_BKV / 8, ND = JF_PF_HDP / 8; // n tiles of S (keys), of O (dimensions)
    __shared__ float s_q[JF_PF_BQ * JF_PF_QS], s_k[JF_PF_BKV * JF_PF_QS], s_v[JF_PF_BKV * JF_PF_VS],
        s_p[JF_PF_BQ * JF_PF_PS];
    jf_begin();
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, q0 = blockIdx.x * JF_PF_BQ, w0 = 16 * warp; // the warp's rows of the tile
    const int kv_off = (h / (JF_N_HEADS / JF_N_KV_HEADS)) * JF_HEAD_DIM;
    const int pos0 = step[0];
    const int kv_end = pos0 + min(n, q0 + JF_PF_BQ);                    // keys the tile's queries see
    const int my_pos[2] = {pos0 + q0 + w0 + g, pos0 + q0 + w0 + g + 8}; // the query positions of rows g, g + 8
    for (int e = tid; e < JF_PF_BQ * JF_PF_QS; e += JF_PF_AW * 32) {
        const int i = e / JF_PF_QS, d = e % JF_PF_QS;
        s_q[e] = q0 + i < n && d < JF_HEAD_DIM ? q[(size_t)(q0 + i) * JF_Q_DIM + (size_t)h * JF_HEAD_DIM + d] : 0.0f;
    }
    float m[2] = {JF_NEG_INF, JF_NEG_INF}, l[2] = {0.0f, 0.0f}, o[ND][4];
#pragma unroll
    for (int j = 0; j < ND; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
#pragma unroll 1
    for (int t0 = 0; t0 < kv_end; t0 += JF_PF_BKV) {
        __syncthreads(); // the previous tile is consumed (and, the first time, the queries are in)
        for (int e = tid; e < JF_PF_BKV * JF_PF_HDP; e += JF_PF_AW * 32) {
            const int j = e / JF_PF_HDP, d = e % JF_PF_HDP, key = t0 + j;
            const bool ok = key < kv_end && d < JF_HEAD_DIM;
            s_k[j * JF_PF_QS + d] = ok ? key_cache[(size_t)key * JF_KV_DIM + kv_off + d] : 0.0f;
            s_v[j * JF_PF_VS + d] = ok ? value_cache[(size_t)key * JF_KV_DIM + kv_off + d] : 0.0f;
        }
        __syncthreads();
        // S = Q K^T (16 queries x BKV keys per warp)
        float s[NK][4];
#pragma unroll
        for (int j = 0; j < NK; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < JF_PF_HDP; kk += 8) {
            fb_u32 ahi[4], alo[4], bhi[NK][2], blo[NK][2];
#pragma unroll
            for (int r = 0; r < 4; r++) // a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4)
#ifdef JF_MUTATE_PF_ATT_LANE
                jf_pf_split_tf32(s_q[(w0 + g + 8 * (r >> 1)) * JF_PF_QS + kk + t + 4 * (r & 1)], ahi[r], alo[r]);
#else
                jf_pf_split_tf32(s_q[(w0 + g + 8 * (r & 1)) * JF_PF_QS + kk + t + 4 * (r >> 1)], ahi[r], alo[r]);
#endif
#pragma unroll
            for (int j = 0; j < NK; j++) // B(k, n) = K[key 8 j + n][dim kk + k]: b0 (t, g), b1 (t + 4, g)
#pragma unroll
                for (int r = 0; r < 2; r++)
                    jf_pf_split_tf32(s_k[(8 * j + g) * JF_PF_QS + kk + t + 4 * r], bhi[j][r], blo[j][r]);
            jf_pf_mma_tf32<NK>(s, ahi, alo, bhi, blo);
        }
        // online softmax of rows g (registers 0, 1) and g + 8 (registers 2, 3)
        float corr[2];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            float tile_max = JF_NEG_INF;
#pragma unroll
            for (int j = 0; j < NK; j++)
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const int key = t0 + 8 * j + 2 * t + c;
#ifdef JF_MUTATE_PF_CAUSAL
                    const bool visible = key <= my_pos[half] + 1 && key < kv_end;
#else
                    const bool visible = key <= my_pos[half];
#endif
                    float &v = s[j][2 * half + c];
                    v = visible ? v * JF_ATT_SCALE : JF_NEG_INF;
                    tile_max = fmaxf(tile_max, v);
                }
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
            const float m_new = fmaxf(m[half], tile_max); // finite from the first tile on: key 0 is visible to all
            corr[half] = expf(m[half] - m_new);           // 0 while m = -inf
            float psum = 0.0f;
#pragma unroll
            for (int j = 0; j < NK; j++)
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const float p = expf(s[j][2 * half + c] - m_new); // 0 for a masked key
                    s_p[(w0 + g + 8 * half) * JF_PF_PS + 8 * j + 2 * t + c] = p;
                    psum += p;
                }
            psum += __shfl_xor_sync(0xffffffffu, psum, 1);
            psum += __shfl_xor_sync(0xffffffffu, psum, 2);
            l[half] = l[half] * corr[half] + psum;
            m[half] = m_new;
        }
#pragma unroll
        for (int j = 0; j < ND; j++) {
            o[j][0] *= corr[0];
            o[j][1] *= corr[0];
            o[j][2] *= corr[1];
            o[j][3] *= corr[1];
        }
        __syncthreads(); // P is in (a warp reads only its own rows; the block barrier stands for a warp's)
                         // O += P V (16 queries x head_dim per warp)
#pragma unroll
        for (int kk = 0; kk < JF_PF_BKV; kk += 8) {
            fb_u32 ahi[4], alo[4], bhi[ND][2], blo[ND][2];
#pragma unroll
            for (int r = 0; r < 4; r++)
                jf_pf_split_tf32(s_p[(w0 + g + 8 * (r & 1)) * JF_PF_PS + kk + t + 4 * (r >> 1)], ahi[r], alo[r]);
#pragma unroll
            for (int j = 0; j < ND; j++) // B(k, n) = V[key kk + k][dim 8 j + n]
#pragma unroll
                for (int r = 0; r < 2; r++)
                    jf_pf_split_tf32(s_v[(kk + t + 4 * r) * JF_PF_VS + 8 * j + g], bhi[j][r], blo[j][r]);
            jf_pf_mma_tf32<ND>(o, ahi, alo, bhi, blo);
        }
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int pos = q0 + w0 + g + 8 * half;
        if (pos >= n) continue;
        const float inv = 1.0f / l[half];
#pragma unroll
        for (int j = 0; j < ND; j++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const int d = 8 * j + 2 * t + c;
                if (d < JF_HEAD_DIM) jf_pf_store<JF_LD_Q>(act, pos, h * JF_HEAD_DIM + d, o[j][2 * half + c] * inv);
            }
        if (h == JF_N_HEADS - 1)
            for (int c = JF_Q_DIM + t; c < JF_LD_Q; c += 4) jf_pf_store<JF_LD_Q>(act, pos, c, 0.0f);
    }
}
