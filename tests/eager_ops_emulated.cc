// eager_ops_emulated.cc - kernels/eager_ops.cu built for the CPU, so that
// tests/test_eager_ops_kernels.c can hold eager_ops' own kernels to their
// CPU twins without a GPU (the eager_ops_kernels_emulated test).
//
// The .cu file is compiled here as host C++ with EO_EMULATE defined: each
// EO_LAUNCH runs the kernel's blocks as fibers (tests/cuda_emulate.h), and
// the few CUDA runtime calls the kernels and the test make are answered from
// host memory below. The cuBLAS half of the file (matmul, attention GEMMs)
// is left out: those are cuBLAS's kernels, checked on a GPU only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "cuda_emulate.h"

static cudaError_t emu_last_error = cudaSuccess;
static char emu_launch_error[512];

/* A launch: 0 runs, anything else leaves a sticky launch failure for
 * cudaGetLastError, as a failed kernel would. */
template <typename... P, typename... A>
static void eo_emu_launch(const char *name, void (*kernel)(P...), unsigned blocks, unsigned threads, A... args) {
    if (emu_launch(name, kernel, blocks, threads, emu_launch_error, sizeof emu_launch_error, args...) != 0) {
        fprintf(stderr, "eager_ops_emulated: %s\n", emu_launch_error);
        emu_last_error = cudaErrorLaunchFailure;
    }
}

#include "eager_ops.cu"

// ------------------------------------------------------------------ the runtime calls, on host memory

extern "C" {

cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu_last_error;
    emu_last_error = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t error) {
    return error == cudaSuccess ? "no error" : error == cudaErrorLaunchFailure ? emu_launch_error : "emulated CUDA error";
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    *ptr = malloc(size ? size : 1);
    return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void *ptr) {
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    (void)kind;
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    memset(ptr, value, count);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    return cudaSuccess;
}

} // extern "C"
