/* fb_cuda_common.h - what the CUDA plugins (eager_ops, jit_fused) share:
 * the status a CUDA error maps to and its message, the device's one-line
 * description, the notes' closing graph size,
 * device-memory accounting (own allocations and cudaMemGetInfo's view), and
 * the copy-bandwidth probe. Compiled into each plugin (plugins link nothing
 * of the core's, and this is not the core's). */
#ifndef FB_CUDA_COMMON_H
#define FB_CUDA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "fairbench/plugin.h"

/* FB_ERR_OUT_OF_MEMORY, FB_ERR_UNAVAILABLE (no device, driver too old, no
 * image for it) or FB_ERR_INTERNAL. */
fb_status fbc_status_of_cuda(cudaError_t err);

/* Why no CUDA device can be used, in words a user can act on, for a failed
 * cudaGetDeviceCount (err) or a count of 0 (err = cudaErrorNoDevice): "no
 * NVIDIA driver or GPU found" when the driver library is not there (CUDA
 * itself calls that "driver version is insufficient"), "the NVIDIA driver is
 * older than this plugin's CUDA runtime (12.x) needs" when it is, else CUDA's
 * own sentence; CUDA's error name follows in parentheses. */
void fbc_no_device_reason(cudaError_t err, char *buf, size_t size);

/* The file name of a path (__FILE__ in messages). */
const char *fbc_base_name(const char *path);

/* A failed CUDA runtime call: writes "PLUGIN: CALL failed at FILE:LINE:
 * REASON (NAME)" into msg, clears a non-sticky error so the session stays
 * usable where CUDA allows, and returns fbc_status_of_cuda(err). */
fb_status fbc_cuda_fail(char *msg, size_t msg_size, const char *plugin, cudaError_t err, const char *call, const char *file,
                        int line);

/* The effective settings' notes: the session's notes, then "; decode graph
 * of N nodes" when a decode graph of graph_nodes > 0 nodes is in use. */
void fbc_format_notes(char *out, size_t size, const char *notes, size_t graph_nodes);

/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB, 132 SMs)" */
void fbc_format_device(char *buf, size_t size, const struct cudaDeviceProp *prop);

/* A session's device memory: every cudaMalloc it made (freed together), the
 * bytes and their high-water mark, and the largest drop of cudaMemGetInfo's
 * free bytes since free_at_start (what cuBLAS handles and graphs take). */
typedef struct fbc_memory {
    void **allocs;
    size_t n_allocs, cap_allocs;
    uint64_t bytes, peak;
    size_t free_at_start;
    uint64_t observed_peak;
} fbc_memory;

/* The plugin sets free_at_start from cudaMemGetInfo once its context exists,
 * before it allocates; then fbc_memory_sample keeps observed_peak. */
void fbc_memory_sample(fbc_memory *m);
/* cudaMalloc with accounting. On failure writes "PLUGIN: cudaMalloc of X MiB
 * for WHAT failed: REASON (Y MiB free of Z MiB)" into msg. */
cudaError_t fbc_memory_alloc(fbc_memory *m, void **out, size_t bytes, const char *plugin, const char *what, char *msg,
                             size_t msg_size);
/* The larger of our own high-water mark and the observed one. */
uint64_t fbc_memory_peak(const fbc_memory *m);
void fbc_memory_free_all(fbc_memory *m);

/* Device-to-device copy of a large buffer on `stream`: bytes read plus bytes
 * written per second, the median of 5 timed rounds of 4 copies after a
 * warm-up. Its buffers are freed before return. On failure returns the CUDA
 * error and names the step in *step. */
cudaError_t fbc_copy_bandwidth(cudaStream_t stream, double *bytes_per_second, const char **step);

#endif
