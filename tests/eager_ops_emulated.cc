// eager_ops_emulated.cc - plugins/eager_ops/eager_ops_kernels.cu, and the CUDA runtime and
// cuBLAS calls eager_ops makes, on the CPU, so that eager_ops is checked
// without a GPU:
//   - test_eager_ops_kernels_emulated holds each of eager_ops' own kernels
//     to its CPU twin (the eager_ops_kernels_emulated test);
//   - tests/emulated-plugins/eager_ops_emulated.so is the whole plugin
//     (plugins/eager_ops/*.c unchanged) linked against this file instead of
//     the CUDA runtime and cuBLAS, and test_gpu_backend --emulated runs
//     its agreement tests against cpu_ref (the eager_ops_emulated test).
//
// The .cu file is compiled here as host C++ with EO_EMULATE defined: each
// EO_LAUNCH runs the kernel's blocks as fibers (tests/cuda_emulate.h). The
// runtime calls below answer from host memory, synchronously: device memory
// is malloc'ed, a stream runs each call at once, stream capture records the
// launches and GEMMs and a graph launch replays them in order. The cuBLAS
// GEMM eager_ops calls (cublasGemmEx; attention is its own kernels) is a
// plain loop with f32 accumulation over f32, f16 or bf16 inputs (the cuBLAS
// half of eager_ops_kernels.cu is then compiled in, calling it), so the
// plugin's GEMM layouts are checked against the interface's documented
// meaning, not against cuBLAS itself: that, and all speed, needs a GPU
// (scripts/gpu-check.sh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cublas_v2.h>
#include <time.h>

#include "cuda_emulate.h"

#include <functional>
#include <vector>

// ------------------------------------------------------------------ streams, capture and graphs

typedef std::vector<std::function<void()>> emu_ops;

struct CUstream_st {
    int unused;
};
struct CUgraph_st {
    emu_ops ops;
};
struct CUgraphExec_st {
    emu_ops ops;
};
struct CUevent_st {
    double seconds;
};
struct cublasContext {
    cudaStream_t stream;
};

static cudaError_t emu_last_error = cudaSuccess; // sticky, as a failed kernel's error is
static char emu_launch_error[512];
static emu_ops *emu_capture; // non-NULL while a stream is being captured

/* Run op now, or record it into the graph being captured. */
static void emu_enqueue(std::function<void()> op) {
    if (emu_capture) emu_capture->push_back(std::move(op));
    else
        op();
}

/* A kernel launch (EO_LAUNCH): run now or recorded. A failure leaves a
 * sticky launch error for cudaGetLastError and the next synchronisation,
 * as a failed kernel would. */
template <typename... P, typename... A>
static void eo_emu_launch(const char *name, void (*kernel)(P...), unsigned blocks, unsigned threads, A... args) {
    emu_enqueue([=]() {
        if (emu_launch(name, kernel, blocks, threads, emu_launch_error, sizeof emu_launch_error, args...) != 0) {
            fprintf(stderr, "eager_ops_emulated: %s\n", emu_launch_error);
            emu_last_error = cudaErrorLaunchFailure;
        }
    });
}

#include "eager_ops_kernels.cu"

// ------------------------------------------------------------------ the runtime calls, on host memory

#define EMU_DEVICE_BYTES ((size_t)512 << 20) /* what cudaMemGetInfo reports as the total */

static size_t emu_allocated; // bytes live in cudaMalloc'ed blocks

static double emu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

extern "C" {

cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu_last_error;
    emu_last_error = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t error) {
    return error == cudaSuccess              ? "no error"
           : error == cudaErrorLaunchFailure ? emu_launch_error
                                             : "emulated CUDA error";
}

const char *cudaGetErrorName(cudaError_t error) {
    return error == cudaSuccess              ? "cudaSuccess"
           : error == cudaErrorLaunchFailure ? "cudaErrorLaunchFailure"
                                             : "cudaError";
}

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (device != 0) return cudaErrorInvalidDevice;
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "CPU emulation of a CUDA device");
    prop->major = 9;
    prop->minor = 0;
    prop->totalGlobalMem = EMU_DEVICE_BYTES;
    prop->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    *total = EMU_DEVICE_BYTES;
    *free_bytes = emu_allocated < EMU_DEVICE_BYTES ? EMU_DEVICE_BYTES - emu_allocated : 0;
    return cudaSuccess;
}

/* Each block carries its size in front, for cudaMemGetInfo's count. */
cudaError_t cudaMalloc(void **ptr, size_t size) {
    size_t *block = (size_t *)malloc(size + 16);
    *ptr = NULL;
    if (!block) return cudaErrorMemoryAllocation;
    block[0] = size;
    emu_allocated += size;
    *ptr = (char *)block + 16;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess; // also what creates a context
    size_t *block = (size_t *)((char *)ptr - 16);
    emu_allocated -= block[0];
    free(block);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) {
    *ptr = malloc(size ? size : 1);
    return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void *ptr) {
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    (void)kind;
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
    (void)kind, (void)stream;
    emu_enqueue([=]() { memmove(dst, src, count); });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    memset(ptr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    (void)stream;
    emu_enqueue([=]() { memset(ptr, value, count); });
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    *stream = new CUstream_st();
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    delete stream;
    return cudaSuccess;
}

/* Everything ran when it was issued; a kernel's failure stays until read. */
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    return emu_last_error;
}

cudaError_t cudaDeviceSynchronize(void) { return emu_last_error; }

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    (void)stream, (void)mode;
    if (emu_capture) return cudaErrorIllegalState;
    emu_capture = new emu_ops();
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    (void)stream;
    if (!emu_capture) return cudaErrorIllegalState;
    *graph = new CUgraph_st{std::move(*emu_capture)};
    delete emu_capture;
    emu_capture = NULL;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    (void)flags;
    *exec = new CUgraphExec_st{graph->ops};
    return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *num_nodes) {
    if (nodes) return cudaErrorNotSupported; // only the count is emulated
    *num_nodes = graph->ops.size();
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    (void)stream;
    if (emu_capture) return cudaErrorStreamCaptureUnsupported;
    for (auto &op : exec->ops) op();
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    *event = new CUevent_st{0};
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    (void)stream;
    emu_enqueue([=]() { event->seconds = emu_now(); });
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    (void)event;
    return emu_last_error;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    *ms = (float)((end->seconds - start->seconds) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}

// ------------------------------------------------------------------ cuBLAS: the GEMM eager_ops calls

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    *handle = new cublasContext{NULL};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t bytes) {
    (void)handle, (void)workspace, (void)bytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    (void)handle, (void)mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status) {
    return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_NOT_SUPPORTED";
}

const char *cublasGetStatusString(cublasStatus_t status) {
    return status == CUBLAS_STATUS_SUCCESS ? "success" : "not supported by the emulation";
}

} // extern "C"

/* Element i of a matrix stored as t. */
static float emu_element(const void *base, cudaDataType t, long long i) {
    switch (t) {
    case CUDA_R_16F: return __half2float(((const __half *)base)[i]);
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
    default: return ((const float *)base)[i];
    }
}

/* C (m x n, f32, column-major, ld ldc) = alpha op(A) op(B) + beta C, with
 * op(A) m x k and op(B) k x n; f32 accumulation; beta 0 never reads C (as
 * cuBLAS: C may hold anything then). Naive loops: the emulated models are
 * small. */
static void emu_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                     cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, float beta, float *C, int ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float part[32] = {0}; // 32 strided partial sums, then a tree: as a warp would add them
            for (int p = 0; p < k; p++) {
                float a = emu_element(A, at, ta == CUBLAS_OP_N ? (long long)p * lda + i : (long long)i * lda + p);
                float b = emu_element(B, bt, tb == CUBLAS_OP_N ? (long long)j * ldb + p : (long long)p * ldb + j);
                part[p % 32] += a * b;
            }
            for (int w = 16; w > 0; w >>= 1)
                for (int l = 0; l < w; l++) part[l] += part[l + w];
            float acc = part[0];
            float *c = &C[(long long)j * ldc + i];
            *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
        }
}

static bool emu_gemm_supported(cublasOperation_t ta, cublasOperation_t tb, cudaDataType at, cudaDataType bt,
                               cudaDataType ct, cublasComputeType_t compute) {
    bool ops = (ta == CUBLAS_OP_N || ta == CUBLAS_OP_T) && (tb == CUBLAS_OP_N || tb == CUBLAS_OP_T);
    bool inputs = at == bt && (at == CUDA_R_32F || at == CUDA_R_16F || at == CUDA_R_16BF);
    return ops && inputs && ct == CUDA_R_32F &&
           (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC);
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                       int k, const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                                       cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                                       cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)handle, (void)algo;
    if (!emu_gemm_supported(ta, tb, at, bt, ct, compute)) return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta; // host pointer mode: read at the call
    emu_enqueue([=]() { emu_gemm(ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, (float *)C, ldc); });
    return CUBLAS_STATUS_SUCCESS;
}
