/* fb_cuda_common.c - see fb_cuda_common.h. */
#include "fb_cuda_common.h"

#include <dlfcn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fb_status fbc_status_of_cuda(cudaError_t err) {
    switch (err) {
    case cudaErrorMemoryAllocation: return FB_ERR_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorUnsupportedPtxVersion: return FB_ERR_UNAVAILABLE;
    default: return FB_ERR_INTERNAL;
    }
}

const char *fbc_base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

fb_status fbc_cuda_fail(char *msg, size_t msg_size, const char *plugin, cudaError_t err, const char *call, const char *file,
                        int line) {
    (void)cudaGetLastError();
    snprintf(msg, msg_size, "%s: %s failed at %s:%d: %s (%s)", plugin, call, fbc_base_name(file), line,
             cudaGetErrorString(err), cudaGetErrorName(err));
    return fbc_status_of_cuda(err);
}

void fbc_format_notes(char *out, size_t size, const char *notes, size_t graph_nodes) {
    if (graph_nodes) snprintf(out, size, "%.200s; decode graph of %u nodes", notes, (unsigned)(graph_nodes % 100000));
    else snprintf(out, size, "%s", notes);
}

void fbc_format_device(char *buf, size_t size, const struct cudaDeviceProp *prop) {
    snprintf(buf, size, "%.64s (sm_%d%d, %.1f GiB, %d SMs)", prop->name, prop->major, prop->minor,
             (double)prop->totalGlobalMem / (double)(1u << 30), prop->multiProcessorCount);
}

void fbc_memory_sample(fbc_memory *m) {
    size_t free_bytes = 0, total = 0;
    if (m->free_at_start && cudaMemGetInfo(&free_bytes, &total) == cudaSuccess && free_bytes < m->free_at_start) {
        uint64_t used = (uint64_t)(m->free_at_start - free_bytes);
        if (used > m->observed_peak) m->observed_peak = used;
    }
}

cudaError_t fbc_memory_alloc(fbc_memory *m, void **out, size_t bytes, const char *plugin, const char *what, char *msg,
                             size_t msg_size) {
    *out = NULL;
    if (m->n_allocs == m->cap_allocs) {
        size_t cap = m->cap_allocs ? 2 * m->cap_allocs : 64;
        void **p = realloc(m->allocs, cap * sizeof *p);
        if (!p) {
            snprintf(msg, msg_size, "%s: out of host memory", plugin);
            return cudaErrorMemoryAllocation;
        }
        m->allocs = p;
        m->cap_allocs = cap;
    }
    cudaError_t err = cudaMalloc(out, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        *out = NULL;
        size_t free_bytes = 0, total = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_bytes, &total);
        snprintf(msg, msg_size, "%s: cudaMalloc of %.1f MiB for %s failed: %s (%.1f MiB free of %.1f MiB)", plugin,
                 (double)bytes / (1 << 20), what, cudaGetErrorString(err), (double)free_bytes / (1 << 20),
                 (double)total / (1 << 20));
        return err;
    }
    m->allocs[m->n_allocs++] = *out;
    m->bytes += bytes;
    if (m->bytes > m->peak) m->peak = m->bytes;
    return cudaSuccess;
}

uint64_t fbc_memory_peak(const fbc_memory *m) { return m->peak > m->observed_peak ? m->peak : m->observed_peak; }

void fbc_memory_free_all(fbc_memory *m) {
    for (size_t i = 0; i < m->n_allocs; i++) cudaFree(m->allocs[i]);
    free(m->allocs);
    m->allocs = NULL;
    m->n_allocs = m->cap_allocs = 0;
    m->bytes = 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

cudaError_t fbc_copy_bandwidth(cudaStream_t stream, double *bytes_per_second, const char **step) {
    *bytes_per_second = 0;
    *step = "querying free memory";
    size_t free_bytes = 0, total = 0;
    cudaError_t err = cudaMemGetInfo(&free_bytes, &total);
    if (err != cudaSuccess) return err;
    size_t bytes = (size_t)1 << 30;
    while (bytes > ((size_t)16 << 20) && 2 * bytes + ((size_t)256 << 20) > free_bytes) bytes /= 2;
    void *a = NULL, *b = NULL;
    cudaEvent_t start = NULL, stop = NULL;
    float ms[5];
    *step = "allocating and warming the copy-bandwidth buffers";
    if ((err = cudaMalloc(&a, bytes)) != cudaSuccess || (err = cudaMalloc(&b, bytes)) != cudaSuccess ||
        (err = cudaMemsetAsync(a, 1, bytes, stream)) != cudaSuccess || (err = cudaEventCreate(&start)) != cudaSuccess ||
        (err = cudaEventCreate(&stop)) != cudaSuccess ||
        (err = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream)) != cudaSuccess)
        goto done;
    *step = "timing device-to-device copies";
    for (int round = 0; round < 5 && err == cudaSuccess; round++) {
        err = cudaEventRecord(start, stream);
        for (int i = 0; i < 4 && err == cudaSuccess; i++)
            err = cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, stream);
        if (err == cudaSuccess) err = cudaEventRecord(stop, stream);
        if (err == cudaSuccess) err = cudaEventSynchronize(stop);
        if (err == cudaSuccess) err = cudaEventElapsedTime(&ms[round], start, stop);
    }
    if (err == cudaSuccess) {
        qsort(ms, 5, sizeof ms[0], cmp_float);
        if (ms[2] > 0) *bytes_per_second = 2.0 * 4.0 * (double)bytes / (ms[2] * 1e-3);
    }
done:
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    return err;
}

void fbc_no_device_reason(cudaError_t err, char *buf, size_t size) {
    /* The CUDA runtime has tried to load the driver library by now: if it is
     * not in the process, there is no driver (or no GPU machine) at all. */
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (driver) dlclose(driver);
    if (err == cudaErrorInsufficientDriver && !driver)
        snprintf(buf, size, "no NVIDIA driver or GPU found (%s)", cudaGetErrorName(err));
    else if (err == cudaErrorInsufficientDriver)
        snprintf(buf, size, "the NVIDIA driver is older than this plugin's CUDA runtime (%d.%d) needs: update the "
                 "driver (%s)", CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10, cudaGetErrorName(err));
    else if (err == cudaErrorNoDevice)
        snprintf(buf, size, "no NVIDIA GPU found: the driver sees none (%s)", cudaGetErrorName(err));
    else
        snprintf(buf, size, "%s (%s)", cudaGetErrorString(err), cudaGetErrorName(err));
}
