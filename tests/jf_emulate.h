// jf_emulate.h - runs jit_fused's generated CUDA kernels on the CPU, for
// tests/test_jit_fused_emulated.c: the same kernel source NVRTC compiles,
// built as C++ by the host compiler with JF_EMULATE defined.
//
// The blocks run as fibers on tests/cuda_emulate.h; this adds the types and
// intrinsics the generated kernels use, and the launcher the test calls by
// kernel name with cuLaunchKernel-style arguments. jit_fused's blocks meet
// only across launches and through one atomicMax, which this serialises.
#ifndef JF_EMULATE_H
#define JF_EMULATE_H

#include "cuda_emulate.h"

struct uint4 {
    unsigned x, y, z, w;
};
struct float4 {
    float x, y, z, w;
};

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
static inline unsigned atomicAdd(unsigned *p, unsigned v) {
    unsigned old = *p;
    *p = old + v;
    return old;
}
static inline void __threadfence() {} // the fibers share one thread: memory is sequentially consistent
// IEEE half to float (the PTX cvt.f32.f16 of the GPU path)
static inline float jf_emu_half_to_float(unsigned short h) {
    unsigned sign = (unsigned)(h >> 15) << 31, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    unsigned bits;
    if (exp == 0x1F) bits = sign | 0x7F800000u | (mant << 13);
    else if (exp != 0)
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant == 0)
        bits = sign;
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

// The kernels' trampolines: unpack cuLaunchKernel-style arguments by the
// kernel's own parameter types.
template <typename... A, size_t... I> static void jf_call(void (*f)(A...), void **args, std::index_sequence<I...>) {
    f(*(A *)args[I]...);
}
template <typename... A> static void jf_invoke(void (*f)(A...), void **args) {
    jf_call(f, args, std::index_sequence_for<A...>{});
}

struct jf_emu_entry {
    const char *name;
    void (*tramp)(void **);
};
struct jf_emu_job {
    void (*tramp)(void **);
    void **args;
};
static void jf_emu_job_run(void *p) {
    jf_emu_job *j = (jf_emu_job *)p;
    j->tramp(j->args);
}
#define JF_EMU_ENTRY(fn)                        \
    {                                           \
#fn, [](void **a) { jf_invoke(fn, a); } \
    }

// After the kernels, the test writes
//     static const jf_emu_entry jf_emu_table[] = {JF_EMU_ENTRY(jf_embed), ...};
//     JF_EMU_LAUNCH_DEFINITION
// which defines the exported functions:
//     int jf_emu_launch(name, gx, gy, gz, threads, args, error, error_size)
// (0, or -1 with a sentence: unknown kernel, bad block size, divergence,
// deadlock), which runs the persistent decode step (jf_decode_step) with all
// its blocks at once and every other kernel's blocks one after another; and
//     long jf_emu_spins(void)
// the spin-wait pauses so far: blocks of the persistent step that waited.
#define JF_EMU_LAUNCH_DEFINITION                                                                            \
    extern "C" int jf_emu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned threads, \
                                 void **args, char *error, size_t error_size) {                             \
        void (*tramp)(void **) = NULL;                                                                      \
        for (size_t i = 0; i < sizeof jf_emu_table / sizeof jf_emu_table[0]; i++)                           \
            if (strcmp(jf_emu_table[i].name, name) == 0) tramp = jf_emu_table[i].tramp;                     \
        if (!tramp) {                                                                                       \
            snprintf(error, error_size, "no kernel %s", name);                                              \
            return -1;                                                                                      \
        }                                                                                                   \
        jf_emu_job job = {tramp, args};                                                                     \
        if (strcmp(name, "jf_decode_step") == 0 && gy == 1 && gz == 1)                                      \
            return emu_run_grid_concurrent(name, gx, threads, jf_emu_job_run, &job, error, error_size);     \
        return emu_run_grid(name, gx, gy, gz, threads, jf_emu_job_run, &job, error, error_size);            \
    }                                                                                                       \
    extern "C" long jf_emu_spins(void) { return emu_spins; }

#endif
