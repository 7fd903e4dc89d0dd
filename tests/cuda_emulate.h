// cuda_emulate.h - runs CUDA kernels on the CPU, for the tests that check
// the CUDA backends' kernels without a GPU: the kernels' own source, built as
// C++ by the host compiler. tests/jf_emulate.h builds jit_fused's generated
// kernels on it; tests/eager_ops_emulated.cc builds kernels/eager_ops.cu.
//
// Each block runs as blockDim.x fibers on one thread, blocks one after
// another. A fiber starts on its own stack through makecontext/swapcontext;
// later switches use _setjmp/_longjmp, which skip swapcontext's signal-mask
// system call (ten times faster here). A fiber runs until it reaches
// __syncthreads() or a warp shuffle and yields there; when every fiber of
// the block has run to such a point, the scheduler completes the shuffles
// (each lane gets the value of lane ^ offset, as __shfl_xor_sync gives it)
// and, once no fiber is left at a shuffle, releases the barrier. A shuffle
// whose partner lane has exited, or a barrier some fibers skip, is reported
// as an error: real divergence bugs of the kernels, caught without a GPU.
// __shared__ becomes static, which is right because blocks never overlap.
// This checks the kernels' arithmetic, indexing, grids and synchronisation;
// not their speed, nor memory-model subtleties between blocks (a kernel
// whose blocks communicate other than through atomics would need more).
//
// Include it after any CUDA header (cuda_fp16.h and the like compile as host
// C++); it replaces the CUDA keywords those headers define.
#ifndef CUDA_EMULATE_H
#define CUDA_EMULATE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <ucontext.h>

#include <tuple>
#include <utility>

#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct emu_dim3 {
    unsigned x, y, z;
};

static emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

// ------------------------------------------------------------------ the fiber scheduler

enum { EMU_FIBER_READY, EMU_FIBER_SHFL, EMU_FIBER_BAR, EMU_FIBER_DONE };

struct emu_fiber {
    ucontext_t ctx; // to start it
    jmp_buf jb;     // where it yielded
    int state, started;
    float value;  // what this lane offers at a shuffle
    int offset;   // lane ^ offset is its partner
    float result; // what it receives
};

#define EMU_MAX_THREADS 1024
#define EMU_STACK (128 * 1024)

static emu_fiber emu_fibers[EMU_MAX_THREADS];
static char *emu_stacks;
static ucontext_t emu_sched;
static jmp_buf emu_sched_jb;
static int emu_current, emu_threads;
static void (*emu_body)(void *); // what every fiber runs: the kernel with its arguments
static void *emu_body_ctx;
static char emu_error[256];

static void emu_yield(int state) {
    emu_fibers[emu_current].state = state;
    if (!_setjmp(emu_fibers[emu_current].jb)) _longjmp(emu_sched_jb, 1);
}

static inline void __syncthreads() { emu_yield(EMU_FIBER_BAR); }

static inline float __shfl_xor_sync(unsigned mask, float v, int offset) {
    (void)mask;
    emu_fibers[emu_current].value = v;
    emu_fibers[emu_current].offset = offset;
    emu_yield(EMU_FIBER_SHFL);
    return emu_fibers[emu_current].result;
}

static void emu_fiber_main() {
    emu_body(emu_body_ctx);
    emu_fibers[emu_current].state = EMU_FIBER_DONE;
    _longjmp(emu_sched_jb, 1); // never returns through uc_link
}

/* Run fiber i until it yields or ends. (Its own function, so that no local
 * of the scheduler's loop lives across the _setjmp.) */
__attribute__((noinline)) static void emu_resume(int i) {
    emu_current = i;
    threadIdx = emu_dim3{(unsigned)i, 0, 0};
    if (_setjmp(emu_sched_jb)) return; // the fiber yielded or ended
    if (!emu_fibers[i].started) {
        emu_fibers[i].started = 1;
        swapcontext(&emu_sched, &emu_fibers[i].ctx);
    } else {
        _longjmp(emu_fibers[i].jb, 1);
    }
}

/* Make fiber i ready to start on its own stack. (Its own function too:
 * getcontext returns twice as far as the compiler knows.) */
__attribute__((noinline)) static void emu_init_fiber(int i) {
    emu_fiber *f = &emu_fibers[i];
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = emu_stacks + (size_t)i * EMU_STACK;
    f->ctx.uc_stack.ss_size = EMU_STACK;
    f->ctx.uc_link = &emu_sched;
    makecontext(&f->ctx, emu_fiber_main, 0);
    f->state = EMU_FIBER_READY;
    f->started = 0;
}

static int emu_run_block() {
    for (int i = 0; i < emu_threads; i++) emu_init_fiber(i);
    for (;;) {
        for (int i = 0; i < emu_threads; i++)
            if (emu_fibers[i].state == EMU_FIBER_READY) emu_resume(i);
        int done = 0, at_shfl = 0, at_bar = 0;
        for (int i = 0; i < emu_threads; i++) {
            done += emu_fibers[i].state == EMU_FIBER_DONE;
            at_shfl += emu_fibers[i].state == EMU_FIBER_SHFL;
            at_bar += emu_fibers[i].state == EMU_FIBER_BAR;
        }
        if (done == emu_threads) return 0;
        if (at_shfl) {
            for (int i = 0; i < emu_threads; i++) {
                if (emu_fibers[i].state != EMU_FIBER_SHFL) continue;
                int partner = (i & ~31) | ((i & 31) ^ emu_fibers[i].offset);
                if (partner >= emu_threads || emu_fibers[partner].state != EMU_FIBER_SHFL ||
                    emu_fibers[partner].offset != emu_fibers[i].offset) {
                    snprintf(emu_error, sizeof emu_error,
                             "thread %d shuffles with lane %d, which is not at the same shuffle (block %u,%u,%u)", i,
                             partner, blockIdx.x, blockIdx.y, blockIdx.z);
                    return -1;
                }
                emu_fibers[i].result = emu_fibers[partner].value;
            }
            for (int i = 0; i < emu_threads; i++)
                if (emu_fibers[i].state == EMU_FIBER_SHFL) emu_fibers[i].state = EMU_FIBER_READY;
            continue;
        }
        // only barriers (and exited threads) left
        if (done) {
            snprintf(emu_error, sizeof emu_error, "%d threads wait at __syncthreads while %d have exited (block %u,%u,%u)",
                     at_bar, done, blockIdx.x, blockIdx.y, blockIdx.z);
            return -1;
        }
        for (int i = 0; i < emu_threads; i++) emu_fibers[i].state = EMU_FIBER_READY;
    }
}

/* Run body(ctx) as every thread of a (gx, gy, gz) grid of blocks of `threads`:
 * 0, or -1 with a sentence in error (bad block size, divergence). */
static int emu_run_grid(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                        void (*body)(void *), void *ctx, char *error, size_t error_size) {
    if (threads == 0 || threads > EMU_MAX_THREADS || threads % 32 != 0) {
        snprintf(error, error_size, "cannot launch %s with %u threads", name, threads);
        return -1;
    }
    if (!emu_stacks && !(emu_stacks = (char *)malloc((size_t)EMU_MAX_THREADS * EMU_STACK))) {
        snprintf(error, error_size, "out of memory for fiber stacks");
        return -1;
    }
    emu_body = body;
    emu_body_ctx = ctx;
    emu_threads = (int)threads;
    gridDim = emu_dim3{gx, gy, gz};
    blockDim = emu_dim3{threads, 1, 1};
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                blockIdx = emu_dim3{x, y, z};
                if (emu_run_block() != 0) {
                    snprintf(error, error_size, "%s: %s", name, emu_error);
                    return -1;
                }
            }
    return 0;
}

// ------------------------------------------------------------------ typed launches

/* kernel<<<gx, threads>>>(args...) as host code: each argument converted to
 * the kernel's parameter type, as a launch does; 0, or -1 with a sentence. */
template <typename... P> struct emu_call {
    void (*kernel)(P...);
    std::tuple<P...> args;
    static void run(void *self) {
        emu_call *c = (emu_call *)self;
        std::apply(c->kernel, c->args); // each fiber gets its own copies of the arguments
    }
};

template <typename... P, typename... A>
static int emu_launch(const char *name, void (*kernel)(P...), unsigned gx, unsigned threads, char *error,
                      size_t error_size, A... args) {
    static_assert(sizeof...(P) == sizeof...(A), "argument count differs from the kernel's");
    emu_call<P...> call{kernel, std::tuple<P...>(static_cast<P>(args)...)};
    return emu_run_grid(name, gx, 1, 1, threads, emu_call<P...>::run, &call, error, error_size);
}

#endif
