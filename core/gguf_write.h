/* gguf_write.h - writes GGUF v3 files (used by `fairbench synth` and tests).
 *
 * Metadata is serialised as it is added. Tensor data is not held in memory:
 * each tensor names a fill callback that the writer calls for a few rows at a
 * time while it streams the file, so a multi-gigabyte model is written with a
 * small, fixed buffer. Tensors are laid out in the order they are added. */
#ifndef FB_GGUF_WRITE_H
#define FB_GGUF_WRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "fb_error.h"

typedef struct gguf_writer gguf_writer;

/* Fill rows [row0, row0 + n_rows) of tensor `tensor_index` (rows are ne[0]
 * values long, in the tensor's type) into dst. Return 0, or -1 with err set. */
typedef int (*gguf_fill_fn)(void *ctx, int tensor_index, int64_t row0, int64_t n_rows, void *dst, fb_error *err);

gguf_writer *gguf_writer_new(uint32_t alignment); /* NULL on out of memory */
void gguf_writer_free(gguf_writer *w);

/* Metadata. Return 0, or -1 on out of memory. Arrays are copied. */
int gguf_writer_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_bool(gguf_writer *w, const char *key, bool v);
int gguf_writer_str(gguf_writer *w, const char *key, const char *v);
int gguf_writer_str_array(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
/* elem_type: a fixed-size enum gguf_vtype; data holds n little-endian elements. */
int gguf_writer_array(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);

/* Declare a tensor; returns its index (>= 0) or -1 (bad type or shape, out of memory). */
int gguf_writer_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                       gguf_fill_fn fill, void *ctx);

/* Write everything to path (via a temporary file renamed into place, so a
 * failed write never leaves a half-written model under the final name). */
int gguf_writer_write(gguf_writer *w, const char *path, fb_error *err);

#endif
