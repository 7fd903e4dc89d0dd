// jf_emulate.h - runs jit_fused's generated CUDA kernels on the CPU, for
// tests/test_jit_fused_emulated.c: the same kernel source NVRTC compiles,
// built as C++ by the host compiler with JF_EMULATE defined.
//
// Each block runs as blockDim.x fibers on one thread, blocks one after
// another. A fiber starts on its own stack through makecontext/swapcontext;
// later switches use _setjmp/_longjmp, which skip swapcontext's signal-mask
// system call (ten times faster here). A fiber runs until it reaches __syncthreads() or a warp
// shuffle and yields there; when every fiber of the block has run to such a
// point, the scheduler completes the shuffles (each lane gets the value of
// lane ^ offset, as __shfl_xor_sync gives it) and, once no fiber is left at
// a shuffle, releases the barrier. A shuffle whose partner lane has exited,
// or a barrier some fibers skip, is reported as an error: real divergence
// bugs of the kernels, caught without a GPU. __shared__ becomes static,
// which is right because blocks never overlap. This checks the kernels'
// arithmetic, indexing, grids and synchronisation; not their speed, nor
// memory-model subtleties between blocks (there are none in these kernels:
// blocks meet only across launches and through one atomicMax).
#ifndef JF_EMULATE_H
#define JF_EMULATE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <ucontext.h>

#include <utility>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct jf_dim3 {
    unsigned x, y, z;
};
struct uint4 {
    unsigned x, y, z, w;
};
struct float4 {
    float x, y, z, w;
};

static jf_dim3 threadIdx, blockIdx, blockDim, gridDim;

static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline unsigned long long atomicMax(unsigned long long *p, unsigned long long v) {
    unsigned long long old = *p;
    if (v > old) *p = v;
    return old;
}
// IEEE half to float (the PTX cvt.f32.f16 of the GPU path)
static inline float jf_emu_half_to_float(unsigned short h) {
    unsigned sign = (unsigned)(h >> 15) << 31, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    unsigned bits;
    if (exp == 0x1F) bits = sign | 0x7F800000u | (mant << 13);
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant == 0) bits = sign;
    else { // subnormal: normalise
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400));
        bits = sign | ((unsigned)(112 - e) << 23) | ((mant & 0x3FF) << 13);
    }
    return __uint_as_float(bits);
}

// ------------------------------------------------------------------ the fiber scheduler

enum { JF_FIBER_READY, JF_FIBER_SHFL, JF_FIBER_BAR, JF_FIBER_DONE };

struct jf_fiber {
    ucontext_t ctx; // to start it
    jmp_buf jb;     // where it yielded
    int state, started;
    float value;  // what this lane offers at a shuffle
    int offset;   // lane ^ offset is its partner
    float result; // what it receives
};

#define JF_EMU_MAX_THREADS 1024
#define JF_EMU_STACK (128 * 1024)

static jf_fiber jf_fibers[JF_EMU_MAX_THREADS];
static char *jf_stacks;
static ucontext_t jf_sched;
static jmp_buf jf_sched_jb;
static int jf_current, jf_threads;
static void (*jf_tramp)(void **);
static void **jf_args;
static char jf_error[256];

static void jf_yield(int state) {
    jf_fibers[jf_current].state = state;
    if (!_setjmp(jf_fibers[jf_current].jb)) _longjmp(jf_sched_jb, 1);
}

static inline void __syncthreads() { jf_yield(JF_FIBER_BAR); }

static inline float __shfl_xor_sync(unsigned mask, float v, int offset) {
    (void)mask;
    jf_fibers[jf_current].value = v;
    jf_fibers[jf_current].offset = offset;
    jf_yield(JF_FIBER_SHFL);
    return jf_fibers[jf_current].result;
}

static void jf_fiber_main() {
    jf_tramp(jf_args);
    jf_fibers[jf_current].state = JF_FIBER_DONE;
    _longjmp(jf_sched_jb, 1); // never returns through uc_link
}

static int jf_run_block() {
    for (int i = 0; i < jf_threads; i++) {
        jf_fiber *f = &jf_fibers[i];
        getcontext(&f->ctx);
        f->ctx.uc_stack.ss_sp = jf_stacks + (size_t)i * JF_EMU_STACK;
        f->ctx.uc_stack.ss_size = JF_EMU_STACK;
        f->ctx.uc_link = &jf_sched;
        makecontext(&f->ctx, jf_fiber_main, 0);
        f->state = JF_FIBER_READY;
        f->started = 0;
    }
    for (;;) {
        for (int i = 0; i < jf_threads; i++) {
            if (jf_fibers[i].state != JF_FIBER_READY) continue;
            jf_current = i;
            threadIdx = jf_dim3{(unsigned)i, 0, 0};
            if (!_setjmp(jf_sched_jb)) {
                if (!jf_fibers[i].started) {
                    jf_fibers[i].started = 1;
                    swapcontext(&jf_sched, &jf_fibers[i].ctx);
                } else {
                    _longjmp(jf_fibers[i].jb, 1);
                }
            }
        }
        int done = 0, at_shfl = 0, at_bar = 0;
        for (int i = 0; i < jf_threads; i++) {
            done += jf_fibers[i].state == JF_FIBER_DONE;
            at_shfl += jf_fibers[i].state == JF_FIBER_SHFL;
            at_bar += jf_fibers[i].state == JF_FIBER_BAR;
        }
        if (done == jf_threads) return 0;
        if (at_shfl) {
            for (int i = 0; i < jf_threads; i++) {
                if (jf_fibers[i].state != JF_FIBER_SHFL) continue;
                int partner = (i & ~31) | ((i & 31) ^ jf_fibers[i].offset);
                if (partner >= jf_threads || jf_fibers[partner].state != JF_FIBER_SHFL ||
                    jf_fibers[partner].offset != jf_fibers[i].offset) {
                    snprintf(jf_error, sizeof jf_error,
                             "thread %d shuffles with lane %d, which is not at the same shuffle (block %u,%u,%u)", i,
                             partner, blockIdx.x, blockIdx.y, blockIdx.z);
                    return -1;
                }
                jf_fibers[i].result = jf_fibers[partner].value;
            }
            for (int i = 0; i < jf_threads; i++)
                if (jf_fibers[i].state == JF_FIBER_SHFL) jf_fibers[i].state = JF_FIBER_READY;
            continue;
        }
        // only barriers (and exited threads) left
        if (done) {
            snprintf(jf_error, sizeof jf_error, "%d threads wait at __syncthreads while %d have exited (block %u,%u,%u)",
                     at_bar, done, blockIdx.x, blockIdx.y, blockIdx.z);
            return -1;
        }
        for (int i = 0; i < jf_threads; i++) jf_fibers[i].state = JF_FIBER_READY;
    }
}

// The kernels' trampolines: unpack cuLaunchKernel-style arguments by the
// kernel's own parameter types.
template <typename... A, size_t... I>
static void jf_call(void (*f)(A...), void **args, std::index_sequence<I...>) {
    f(*(A *)args[I]...);
}
template <typename... A> static void jf_invoke(void (*f)(A...), void **args) {
    jf_call(f, args, std::index_sequence_for<A...>{});
}

struct jf_emu_entry {
    const char *name;
    void (*tramp)(void **);
};
#define JF_EMU_ENTRY(fn) {#fn, [](void **a) { jf_invoke(fn, a); }}

// After the kernels, the test writes
//     static const jf_emu_entry jf_emu_table[] = {JF_EMU_ENTRY(jf_embed), ...};
//     JF_EMU_LAUNCH_DEFINITION
// which defines the one exported function:
//     int jf_emu_launch(name, gx, gy, gz, threads, args, error, error_size)
// (0, or -1 with a sentence: unknown kernel, bad block size, divergence).
#define JF_EMU_LAUNCH_DEFINITION                                                                               \
    extern "C" int jf_emu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned threads,     \
                                 void **args, char *error, size_t error_size) {                                \
        jf_tramp = NULL;                                                                                       \
        for (size_t i = 0; i < sizeof jf_emu_table / sizeof jf_emu_table[0]; i++)                              \
            if (strcmp(jf_emu_table[i].name, name) == 0) jf_tramp = jf_emu_table[i].tramp;                     \
        if (!jf_tramp || threads == 0 || threads > JF_EMU_MAX_THREADS || threads % 32 != 0) {                  \
            snprintf(error, error_size, "cannot launch %s with %u threads", name, threads);                     \
            return -1;                                                                                         \
        }                                                                                                      \
        if (!jf_stacks && !(jf_stacks = (char *)malloc((size_t)JF_EMU_MAX_THREADS * JF_EMU_STACK))) {          \
            snprintf(error, error_size, "out of memory for fiber stacks");                                     \
            return -1;                                                                                         \
        }                                                                                                      \
        jf_args = args;                                                                                        \
        jf_threads = (int)threads;                                                                             \
        gridDim = jf_dim3{gx, gy, gz};                                                                         \
        blockDim = jf_dim3{threads, 1, 1};                                                                     \
        for (unsigned z = 0; z < gz; z++)                                                                      \
            for (unsigned y = 0; y < gy; y++)                                                                  \
                for (unsigned x = 0; x < gx; x++) {                                                            \
                    blockIdx = jf_dim3{x, y, z};                                                               \
                    if (jf_run_block() != 0) {                                                                 \
                        snprintf(error, error_size, "%s: %s", name, jf_error);                                 \
                        return -1;                                                                             \
                    }                                                                                          \
                }                                                                                              \
        return 0;                                                                                              \
    }

#endif
