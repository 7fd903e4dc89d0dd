/* gguf.h - a memory-mapped, bounds-checked reader for GGUF files (v2 and v3).
 *
 * The file format (all integers little-endian):
 *
 *   header      magic "GGUF" (4 bytes), version u32 (2 or 3),
 *               n_tensors u64, n_kv u64
 *   kv[n_kv]    key: string; value type: u32; value
 *   tensor_info[n_tensors]
 *               name: string; n_dims u32 (1..4); ne[n_dims] u64 (ne[0] is the
 *               innermost, contiguous dimension); type u32 (ggml type id, see
 *               quant.h); offset u64 (from the start of the data section,
 *               a multiple of the alignment)
 *   padding     to a multiple of `general.alignment` (u32, default 32)
 *   data        the tensors' bytes
 *
 *   string      length u64, then that many bytes (UTF-8, no terminator)
 *   value types 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte),
 *               8 string, 9 array (element type u32, count u64, elements),
 *               10 u64, 11 i64, 12 f64. Arrays may hold strings and arrays.
 *
 * GGUF v1 (u32 counts) and big-endian files are refused with a clear error.
 *
 * Every count, length, dimension and offset is checked against the bytes
 * that remain and against overflow before it is used; memory allocated while
 * parsing is bounded by a small multiple of the file size. A bad file yields
 * -1 and one sentence: "FILE: FIELD at byte OFFSET: what is wrong".
 */
#ifndef FB_GGUF_H
#define FB_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fb_error.h"

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8 /* nested arrays deeper than this are refused */

enum gguf_vtype {
    GGUF_VT_U8 = 0,
    GGUF_VT_I8 = 1,
    GGUF_VT_U16 = 2,
    GGUF_VT_I16 = 3,
    GGUF_VT_U32 = 4,
    GGUF_VT_I32 = 5,
    GGUF_VT_F32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_U64 = 10,
    GGUF_VT_I64 = 11,
    GGUF_VT_F64 = 12,
    GGUF_VT_COUNT_
};

/* A string: `len` bytes at `data`, followed by a NUL that is not counted
 * (a copy owned by the gguf_file; the bytes may contain NULs themselves). */
typedef struct gguf_str {
    uint64_t len;
    const char *data;
} gguf_str;

typedef struct gguf_value gguf_value;
struct gguf_value {
    uint32_t type; /* enum gguf_vtype */
    union {
        uint64_t u64; /* U8, U16, U32, U64, BOOL (0 or 1) */
        int64_t i64;  /* I8, I16, I32, I64 */
        double f64;   /* F32, F64 */
        gguf_str str;
        struct {
            uint32_t elem_type; /* enum gguf_vtype */
            uint64_t count;
            /* Fixed-size elements: `raw` points into the mapped file
             * (little-endian, maybe unaligned; read with gguf_array_*).
             * STRING and ARRAY elements: parsed into `items`. */
            const uint8_t *raw;
            gguf_value *items;
        } arr;
    };
};

typedef struct gguf_kv {
    gguf_str key;
    gguf_value value;
    uint64_t file_offset; /* byte offset of the key in the file */
} gguf_kv;

typedef struct gguf_tensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* unused dimensions are 1 */
    uint32_t type;             /* enum gguf_type (quant.h) */
    uint64_t offset;           /* from the start of the data section */
    uint64_t n_elems;
    uint64_t n_bytes;
    const void *data;     /* into the mapped file */
    uint64_t info_offset; /* byte offset of the tensor info in the file */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Map and parse `path`. On success *out owns the mapping; free with gguf_close. */
int gguf_open(const char *path, gguf_file **out, fb_error *err);

/* Parse `size` bytes at `data` (which must outlive the result); `name` is used
 * in messages. For fuzzing and tests. */
int gguf_parse(const void *data, size_t size, const char *name, gguf_file **out, fb_error *err);

void gguf_close(gguf_file *f);

const char *gguf_path(const gguf_file *f);
uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* where the data section starts */

uint64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key); /* NULL if absent */

uint64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed look-ups for metadata. Each returns 0, or -1 with a message naming
 * the key when it is absent or of an incompatible type. Integers of any width
 * are accepted when the value fits; floats accept F32 and F64. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, fb_error *err);
int gguf_get_float(const gguf_file *f, const char *key, double *out, fb_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, fb_error *err);
int gguf_get_str(const gguf_file *f, const char *key, const char **out, fb_error *err);
int gguf_get_array(const gguf_file *f, const char *key, uint32_t elem_type, const gguf_value **out, fb_error *err);

/* Element access for arrays of fixed-size types (0 for out-of-range or wrong type). */
int64_t gguf_array_int(const gguf_value *arr, uint64_t i);
double gguf_array_float(const gguf_value *arr, uint64_t i);

const char *gguf_vtype_name(uint32_t type);

/* Short human-readable rendering of a value ("[49152 strings]" for arrays). */
void gguf_value_format(const gguf_value *v, char *buf, size_t buf_size);

#endif
