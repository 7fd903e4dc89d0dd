#include "gguf_write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

// ----------------------------------------------------------------------------
// A growable byte buffer

typedef struct bytes {
    uint8_t *data;
    size_t len, cap;
} bytes;

static int bytes_put(bytes *b, const void *src, size_t n) {
    if (n > SIZE_MAX - b->len) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        uint8_t *p = realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int put_u32(bytes *b, uint32_t v) { return bytes_put(b, &v, 4); }
static int put_u64(bytes *b, uint64_t v) { return bytes_put(b, &v, 8); }
static int put_str(bytes *b, const char *s) {
    uint64_t n = strlen(s);
    return put_u64(b, n) || bytes_put(b, s, (size_t)n);
}

// ----------------------------------------------------------------------------

typedef struct tensor_decl {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t n_bytes, row_bytes, n_rows, offset;
    gguf_fill_fn fill;
    void *ctx;
} tensor_decl;

struct gguf_writer {
    uint32_t alignment;
    uint64_t n_kv;
    bytes kv;
    tensor_decl *tensors;
    int n_tensors, cap_tensors;
};

gguf_writer *gguf_writer_new(uint32_t alignment) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
    if (w && w->alignment != GGUF_DEFAULT_ALIGNMENT && gguf_writer_u32(w, "general.alignment", w->alignment)) {
        gguf_writer_free(w);
        return NULL;
    }
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv.data);
    free(w);
}

static int kv_head(gguf_writer *w, const char *key, uint32_t type) {
    w->n_kv++;
    return put_str(&w->kv, key) || put_u32(&w->kv, type);
}

int gguf_writer_u32(gguf_writer *w, const char *key, uint32_t v) {
    return kv_head(w, key, GGUF_VT_U32) || put_u32(&w->kv, v);
}
int gguf_writer_i32(gguf_writer *w, const char *key, int32_t v) {
    return kv_head(w, key, GGUF_VT_I32) || bytes_put(&w->kv, &v, 4);
}
int gguf_writer_u64(gguf_writer *w, const char *key, uint64_t v) {
    return kv_head(w, key, GGUF_VT_U64) || put_u64(&w->kv, v);
}
int gguf_writer_f32(gguf_writer *w, const char *key, float v) {
    return kv_head(w, key, GGUF_VT_F32) || bytes_put(&w->kv, &v, 4);
}
int gguf_writer_str(gguf_writer *w, const char *key, const char *v) {
    return kv_head(w, key, GGUF_VT_STRING) || put_str(&w->kv, v);
}

int gguf_writer_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return kv_head(w, key, GGUF_VT_BOOL) || bytes_put(&w->kv, &b, 1);
}

int gguf_writer_str_array(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    if (kv_head(w, key, GGUF_VT_ARRAY) || put_u32(&w->kv, GGUF_VT_STRING) || put_u64(&w->kv, n)) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (put_str(&w->kv, v[i])) return -1;
    return 0;
}

int gguf_writer_array(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n) {
    static const uint8_t size[GGUF_VT_COUNT_] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (elem_type >= GGUF_VT_COUNT_ || size[elem_type] == 0 || n > SIZE_MAX / 8) return -1;
    return kv_head(w, key, GGUF_VT_ARRAY) || put_u32(&w->kv, elem_type) || put_u64(&w->kv, n) ||
           bytes_put(&w->kv, data, (size_t)n * size[elem_type]);
}

int gguf_writer_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                       gguf_fill_fn fill, void *ctx) {
    const quant_type_info *ti = quant_type_get(type);
    if (!ti || n_dims < 1 || n_dims > GGUF_MAX_DIMS || !fill) return -1;
    tensor_decl t = {.type = type, .n_dims = n_dims, .fill = fill, .ctx = ctx, .n_rows = 1};
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t.ne[d] = d < (int)n_dims ? ne[d] : 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        if (t.ne[d] < 1) return -1;
        if (d > 0) {
            if (t.n_rows > UINT64_MAX / (uint64_t)t.ne[d]) return -1;
            t.n_rows *= (uint64_t)t.ne[d];
        }
    }
    t.row_bytes = quant_row_bytes(type, t.ne[0]);
    if (t.row_bytes == 0 || t.n_rows > UINT64_MAX / t.row_bytes) return -1;
    t.n_bytes = t.row_bytes * t.n_rows;
    if (w->n_tensors == w->cap_tensors) {
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        tensor_decl *p = realloc(w->tensors, (size_t)cap * sizeof *p);
        if (!p) return -1;
        w->tensors = p;
        w->cap_tensors = cap;
    }
    t.name = strdup(name);
    if (!t.name) return -1;
    w->tensors[w->n_tensors] = t;
    return w->n_tensors++;
}

// ----------------------------------------------------------------------------
// Writing

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int write_all(FILE *fp, const void *p, size_t n, const char *path, fb_error *err) {
    if (n && fwrite(p, 1, n, fp) != n) return fb_error_set(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int write_padding(FILE *fp, uint64_t n, const char *path, fb_error *err) {
    static const uint8_t zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (write_all(fp, zeros, k, path, err)) return -1;
        n -= k;
    }
    return 0;
}

static int write_tensor_data(FILE *fp, gguf_writer *w, int i, uint8_t *buf, size_t buf_size, const char *path,
                             fb_error *err) {
    const tensor_decl *t = &w->tensors[i];
    int64_t rows_per_chunk = t->row_bytes >= buf_size ? 1 : (int64_t)(buf_size / t->row_bytes);
    for (int64_t row = 0; row < (int64_t)t->n_rows; row += rows_per_chunk) {
        int64_t n = (int64_t)t->n_rows - row < rows_per_chunk ? (int64_t)t->n_rows - row : rows_per_chunk;
        if (t->fill(t->ctx, i, row, n, buf, err)) return -1;
        if (write_all(fp, buf, (size_t)n * t->row_bytes, path, err)) return -1;
    }
    return 0;
}

int gguf_writer_write(gguf_writer *w, const char *path, fb_error *err) {
    /* Header, metadata and tensor infos go into one buffer. */
    bytes head = {0};
    uint64_t offset = 0;
    int rc = -1;
    FILE *fp = NULL;
    uint8_t *buf = NULL;
    size_t buf_size = 16u << 20;
    char *tmp_path = NULL;

    if (bytes_put(&head, "GGUF", 4) || put_u32(&head, 3) || put_u64(&head, (uint64_t)w->n_tensors) ||
        put_u64(&head, w->n_kv) || bytes_put(&head, w->kv.data, w->kv.len))
        goto oom;
    for (int i = 0; i < w->n_tensors; i++) {
        tensor_decl *t = &w->tensors[i];
        t->offset = offset;
        offset = align_up(offset + t->n_bytes, w->alignment);
        if (put_str(&head, t->name) || put_u32(&head, t->n_dims)) goto oom;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (put_u64(&head, (uint64_t)t->ne[d])) goto oom;
        if (put_u32(&head, t->type) || put_u64(&head, t->offset)) goto oom;
    }
    /* Largest row must fit the buffer. */
    for (int i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].row_bytes > buf_size) buf_size = (size_t)w->tensors[i].row_bytes;
    buf = malloc(buf_size);
    tmp_path = malloc(strlen(path) + 16);
    if (!buf || !tmp_path) goto oom;
    sprintf(tmp_path, "%s.partial", path);

    fp = fopen(tmp_path, "wb");
    if (!fp) {
        fb_error_set(err, "%s: cannot create: %s", tmp_path, strerror(errno));
        goto out;
    }
    if (write_all(fp, head.data, head.len, tmp_path, err) ||
        write_padding(fp, align_up(head.len, w->alignment) - head.len, tmp_path, err))
        goto out;
    for (int i = 0; i < w->n_tensors; i++) {
        const tensor_decl *t = &w->tensors[i];
        if (write_tensor_data(fp, w, i, buf, buf_size, tmp_path, err)) goto out;
        if (i + 1 < w->n_tensors &&
            write_padding(fp, w->tensors[i + 1].offset - (t->offset + t->n_bytes), tmp_path, err))
            goto out;
    }
    if (fclose(fp) != 0) {
        fp = NULL;
        fb_error_set(err, "%s: write failed: %s", tmp_path, strerror(errno));
        goto out;
    }
    fp = NULL;
    if (rename(tmp_path, path) != 0) {
        fb_error_set(err, "%s: cannot rename to %s: %s", tmp_path, path, strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
oom:
    fb_error_set(err, "%s: out of memory while building the GGUF header", path);
out:
    if (fp) fclose(fp);
    if (rc != 0 && tmp_path) remove(tmp_path);
    free(tmp_path);
    free(buf);
    free(head.data);
    return rc;
}
