// cuda_emulate.h - runs CUDA kernels on the CPU, for the tests that check
// the CUDA backends' kernels without a GPU: the kernels' own source, built as
// C++ by the host compiler. tests/jf_emulate.h builds jit_fused's generated
// kernels on it; tests/eager_ops_emulated.cc builds plugins/eager_ops/eager_ops_kernels.cu.
//
// Each block runs as blockDim.x fibers on one thread, blocks one after
// another (emu_run_grid), or, for kernels whose blocks wait for each other,
// every block of the grid at once (emu_run_grid_concurrent). A fiber starts
// on its own stack through makecontext/swapcontext;
// later switches use _setjmp/_longjmp, which skip swapcontext's signal-mask
// system call (ten times faster here). A fiber runs until it reaches
// __syncthreads(), a warp shuffle or a spin-wait (emu_spin) and yields
// there; when every fiber has run to such a point, the scheduler completes
// the shuffles (each lane gets the value of lane ^ offset, as
// __shfl_xor_sync gives it), releases the barrier of each block none of
// whose fibers is left at a shuffle or a spin, and resumes the spinning
// fibers, which look again. A shuffle whose partner lane has exited, or a
// barrier some fibers skip, is reported as an error: real divergence bugs of
// the kernels, caught without a GPU. So is a round in which only spinning
// fibers ran: nothing could change what they wait for, so they would wait
// forever (a deadlock between blocks).
// __shared__ becomes static, which is right for blocks one after another;
// kernels run concurrently declare theirs with EMU_SHARED, one copy per block. This checks the kernels' arithmetic,
// indexing, grids and synchronisation, including the order in which concurrent blocks meet through device-memory
// counters (with sequentially consistent memory); not their speed, nor the weaker orderings of the GPU's memory model.
//
// Under AddressSanitizer (a sanitizer build of the tests) every stack switch
// is announced to the sanitizer, so the kernels' reads and writes are checked
// like any host code's: an out-of-bounds index in a kernel is a
// heap-buffer-overflow report naming the kernel's line. ASan's start-up
// warning that it "doesn't fully support makecontext/swapcontext" is
// expected.
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

// Under AddressSanitizer every switch between the scheduler's stack and a
// fiber's is announced (the sanitizer's fiber interface), so that it checks
// the fibers' frames instead of taking a switch for a stack overflow.
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

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

enum { EMU_FIBER_READY, EMU_FIBER_SHFL, EMU_FIBER_BAR, EMU_FIBER_SPIN, EMU_FIBER_DONE };

struct emu_fiber {
    ucontext_t ctx; // to start it
    jmp_buf jb;     // where it yielded
    int state, started;
    float value;           // what this lane offers at a shuffle
    int offset;            // lane ^ offset is its partner
    float result;          // what it receives
    void *asan_fake_stack; // the sanitizer's record of this fiber's stack while it is switched out
};

#define EMU_MAX_THREADS 1024 /* per block */
#define EMU_MAX_BLOCKS 8     /* of a grid run concurrently */
#define EMU_MAX_FIBERS (EMU_MAX_THREADS * 2)
#ifdef EMU_ASAN
#define EMU_STACK (32 * 1024) /* a small stack: ASan clears its shadow at every fiber start */
#else
#define EMU_STACK (128 * 1024)
#endif

static emu_fiber emu_fibers[EMU_MAX_FIBERS];
static char *emu_stacks;
static int emu_stack_count; // stacks allocated
static ucontext_t emu_sched;
static jmp_buf emu_sched_jb;
static int emu_current, emu_threads, emu_blocks; // the fiber running; threads per block; blocks at once
static emu_dim3 emu_block_index[EMU_MAX_BLOCKS]; // blockIdx of each block at once
static void (*emu_body)(void *);                 // what every fiber runs: the kernel with its arguments
static void *emu_body_ctx;
static char emu_error[256];

/* The stacks go with the program, or with the shared object built from
 * generated kernels when the test unloads it. */
__attribute__((destructor)) static void emu_free_stacks() {
    free(emu_stacks);
    emu_stacks = NULL;
    emu_stack_count = 0;
}

/* Which of the blocks running at once the current fiber belongs to (0 when
 * blocks run one after another). */
static inline int emu_block_slot() { return emu_current / emu_threads; }

/* Shared memory of a kernel run concurrently: one copy per block, as
 * __shared__ gives on a GPU: EMU_SHARED(float, partial, [8]); declares
 * `partial`, a reference to this block's float[8]. */
#define EMU_SHARED(T, name, dims)                     \
    static T name##_emu_blocks_[EMU_MAX_BLOCKS] dims; \
    auto &name = name##_emu_blocks_[emu_block_slot()]

// The scheduler's stack, as the sanitizer reported it when a fiber first started.
static const void *emu_sched_stack;
static size_t emu_sched_stack_size;
static void *emu_sched_fake_stack;

/* Announce a switch to the stack [bottom, bottom + size); save: where the
 * sanitizer keeps the current stack's state (NULL when it is left for good). */
static inline void emu_switch_start(void **save, const void *bottom, size_t size) {
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(save, bottom, size);
#else
    (void)save, (void)bottom, (void)size;
#endif
}

/* After a switch has landed: restore this stack's state from saved. */
static inline void emu_switch_finish(void *saved, const void **bottom_old, size_t *size_old) {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(saved, bottom_old, size_old);
#else
    (void)saved, (void)bottom_old, (void)size_old;
#endif
}

/* _longjmp between stacks. Under ASan, through a pointer the compiler does
 * not know as noreturn: before a noreturn call it inserts
 * __asan_handle_no_return, which unpoisons the stack being left and asks
 * the kernel for the signal stack each time (most of a run's time), and
 * nothing needs it here: every switch is announced, no instrumented frame is
 * abandoned (a fiber ends in emu_fiber_main, and a fiber's stack shadow is
 * cleared by swapcontext when the next one starts on it). */
static void emu_longjmp(jmp_buf jb) {
#ifdef EMU_ASAN
    static void (*volatile jump)(struct __jmp_buf_tag *, int) = (void (*)(struct __jmp_buf_tag *, int))_longjmp;
    jump(jb, 1);
#else
    _longjmp(jb, 1);
#endif
}

static void emu_yield(int state) {
    emu_fiber *f = &emu_fibers[emu_current];
    f->state = state;
    if (!_setjmp(f->jb)) {
        emu_switch_start(&f->asan_fake_stack, emu_sched_stack, emu_sched_stack_size);
        emu_longjmp(emu_sched_jb);
    }
    emu_switch_finish(emu_fibers[emu_current].asan_fake_stack, NULL, NULL); // resumed
}

static inline void __syncthreads() { emu_yield(EMU_FIBER_BAR); }

/* A spin-wait's pause: let the other blocks run, then look again. */
static long emu_spins; // pauses so far (tests show that blocks did wait for each other)
static inline void emu_spin() {
    emu_spins++;
    emu_yield(EMU_FIBER_SPIN);
}

static inline float __shfl_xor_sync(unsigned mask, float v, int offset) {
    (void)mask;
    emu_fibers[emu_current].value = v;
    emu_fibers[emu_current].offset = offset;
    emu_yield(EMU_FIBER_SHFL);
    return emu_fibers[emu_current].result;
}

static void emu_fiber_main() {
    emu_switch_finish(NULL, &emu_sched_stack, &emu_sched_stack_size); // started: where the scheduler's stack is
    emu_body(emu_body_ctx);
    emu_fibers[emu_current].state = EMU_FIBER_DONE;
    emu_switch_start(NULL, emu_sched_stack, emu_sched_stack_size); // this stack is left for good
    emu_longjmp(emu_sched_jb);                                     // never returns through uc_link
}

/* Run fiber i until it yields or ends. (Its own function, so that no local
 * of the scheduler's loop lives across the _setjmp.) */
__attribute__((noinline)) static void emu_resume(int i) {
    emu_current = i;
    threadIdx = emu_dim3{(unsigned)(i % emu_threads), 0, 0};
    blockIdx = emu_block_index[i / emu_threads];
    if (_setjmp(emu_sched_jb)) { // the fiber yielded or ended
        emu_switch_finish(emu_sched_fake_stack, NULL, NULL);
        return;
    }
    emu_switch_start(&emu_sched_fake_stack, emu_stacks + (size_t)i * EMU_STACK, EMU_STACK);
    if (!emu_fibers[i].started) {
        emu_fibers[i].started = 1;
        swapcontext(&emu_sched, &emu_fibers[i].ctx);
    } else {
        emu_longjmp(emu_fibers[i].jb);
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

/* Run the emu_blocks blocks of emu_block_index to their end, their fibers
 * interleaved (0, or -1 with a sentence in emu_error). */
static int emu_run_blocks() {
    const int n = emu_blocks * emu_threads;
    for (int i = 0; i < n; i++) emu_init_fiber(i);
    for (;;) {
        int ran = 0, spun = 0; // fibers resumed this round; of them, those back at a spin-wait
        for (int i = 0; i < n; i++)
            if (emu_fibers[i].state == EMU_FIBER_READY) {
                emu_resume(i);
                ran++;
                spun += emu_fibers[i].state == EMU_FIBER_SPIN;
            }
        int done = 0, at_shfl = 0, at_spin = 0;
        for (int i = 0; i < n; i++) {
            done += emu_fibers[i].state == EMU_FIBER_DONE;
            at_shfl += emu_fibers[i].state == EMU_FIBER_SHFL;
            at_spin += emu_fibers[i].state == EMU_FIBER_SPIN;
        }
        if (done == n) return 0;
        if (at_shfl) {
            for (int i = 0; i < n; i++) {
                if (emu_fibers[i].state != EMU_FIBER_SHFL) continue;
                int partner = (i & ~31) | ((i & 31) ^ emu_fibers[i].offset);
                if (partner / emu_threads != i / emu_threads || emu_fibers[partner].state != EMU_FIBER_SHFL ||
                    emu_fibers[partner].offset != emu_fibers[i].offset) {
                    emu_dim3 b = emu_block_index[i / emu_threads];
                    snprintf(emu_error, sizeof emu_error,
                             "thread %d shuffles with lane %d, which is not at the same shuffle (block %u,%u,%u)",
                             i % emu_threads, partner % emu_threads, b.x, b.y, b.z);
                    return -1;
                }
                emu_fibers[i].result = emu_fibers[partner].value;
            }
            for (int i = 0; i < n; i++)
                if (emu_fibers[i].state == EMU_FIBER_SHFL) emu_fibers[i].state = EMU_FIBER_READY;
            continue;
        }
        // Barriers: a block none of whose fibers spins is released (all its
        // fibers are at the barrier or have exited, which is divergence).
        int released = 0;
        for (int blk = 0; blk < emu_blocks; blk++) {
            int first = blk * emu_threads, bar = 0, fin = 0, spin = 0;
            for (int i = first; i < first + emu_threads; i++) {
                bar += emu_fibers[i].state == EMU_FIBER_BAR;
                fin += emu_fibers[i].state == EMU_FIBER_DONE;
                spin += emu_fibers[i].state == EMU_FIBER_SPIN;
            }
            if (!bar || spin) continue;
            if (fin) {
                emu_dim3 b = emu_block_index[blk];
                snprintf(emu_error, sizeof emu_error,
                         "%d threads wait at __syncthreads while %d have exited (block %u,%u,%u)", bar, fin, b.x, b.y,
                         b.z);
                return -1;
            }
            for (int i = first; i < first + emu_threads; i++) emu_fibers[i].state = EMU_FIBER_READY;
            released++;
        }
        if (at_spin) {
            if (!released && ran == spun) { // only spinners ran, and they only look: nothing can change
                snprintf(emu_error, sizeof emu_error,
                         "deadlock: %d threads spin-wait for something no block will ever do", at_spin);
                return -1;
            }
            for (int i = 0; i < n; i++)
                if (emu_fibers[i].state == EMU_FIBER_SPIN) emu_fibers[i].state = EMU_FIBER_READY;
        }
    }
}

/* Fiber stacks for n fibers at least. */
static int emu_reserve_stacks(int n, char *error, size_t error_size) {
    if (n <= emu_stack_count) return 0;
    free(emu_stacks);
    emu_stack_count = 0;
    if (!(emu_stacks = (char *)malloc((size_t)n * EMU_STACK))) {
        snprintf(error, error_size, "out of memory for fiber stacks");
        return -1;
    }
    emu_stack_count = n;
    return 0;
}

static int emu_check_block_size(const char *name, unsigned threads, char *error, size_t error_size) {
    if (threads == 0 || threads > EMU_MAX_THREADS || threads % 32 != 0) {
        snprintf(error, error_size, "cannot launch %s with %u threads", name, threads);
        return -1;
    }
    return 0;
}

/* Run body(ctx) as every thread of a (gx, gy, gz) grid of blocks of `threads`,
 * one block after another: 0, or -1 with a sentence in error (bad block
 * size, divergence, a spin-wait: blocks one after another never meet). */
static int emu_run_grid(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned threads, void (*body)(void *),
                        void *ctx, char *error, size_t error_size) {
    if (emu_check_block_size(name, threads, error, error_size) != 0 ||
        emu_reserve_stacks((int)threads, error, error_size) != 0)
        return -1;
    emu_body = body;
    emu_body_ctx = ctx;
    emu_threads = (int)threads;
    emu_blocks = 1;
    gridDim = emu_dim3{gx, gy, gz};
    blockDim = emu_dim3{threads, 1, 1};
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                emu_block_index[0] = emu_dim3{x, y, z};
                if (emu_run_blocks() != 0) {
                    snprintf(error, error_size, "%s: %s", name, emu_error);
                    return -1;
                }
            }
    return 0;
}

/* The same with all gx blocks (at most EMU_MAX_BLOCKS) running at once, as a
 * persistent kernel's blocks do on a GPU: they may wait for each other
 * (emu_spin). */
static int emu_run_grid_concurrent(const char *name, unsigned gx, unsigned threads, void (*body)(void *), void *ctx,
                                   char *error, size_t error_size) {
    if (emu_check_block_size(name, threads, error, error_size) != 0) return -1;
    if (gx == 0 || gx > EMU_MAX_BLOCKS || gx * threads > EMU_MAX_FIBERS) {
        snprintf(error, error_size, "cannot run %u blocks of %u threads of %s at once", gx, threads, name);
        return -1;
    }
    if (emu_reserve_stacks((int)(gx * threads), error, error_size) != 0) return -1;
    emu_body = body;
    emu_body_ctx = ctx;
    emu_threads = (int)threads;
    emu_blocks = (int)gx;
    gridDim = emu_dim3{gx, 1, 1};
    blockDim = emu_dim3{threads, 1, 1};
    for (unsigned x = 0; x < gx; x++) emu_block_index[x] = emu_dim3{x, 0, 0};
    int rc = emu_run_blocks();
    emu_blocks = 1;
    if (rc != 0) snprintf(error, error_size, "%s: %s", name, emu_error);
    return rc;
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
