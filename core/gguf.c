/* gguf.c - see gguf.h for the file format. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fairbench's GGUF reader assumes a little-endian host"
#endif

// ----------------------------------------------------------------------------
// An arena: everything parsed from one file lives in a few large chunks,
// freed together. Allocation stays proportional to the file size because
// every parsed item consumes at least a few bytes of the file.

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char bytes[];
} arena_chunk;

typedef struct arena {
    arena_chunk *head;
} arena;

static void *arena_alloc(arena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < size) {
        size_t cap = size > (1u << 16) ? size : (1u << 16);
        arena_chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = a->head->bytes + a->head->used;
    a->head->used += size;
    return p;
}

static void arena_free(arena *a) {
    for (arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

// ----------------------------------------------------------------------------
// The file object

typedef struct name_entry name_entry;

struct gguf_file {
    char *path;
    const uint8_t *base; /* the whole file */
    uint64_t size;
    bool mapped; /* base is our mmap */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    name_entry *kv_by_name;     /* sorted by key, for look-up */
    name_entry *tensor_by_name; /* sorted by name */
    arena mem;
};

// ----------------------------------------------------------------------------
// A cursor over the bytes, with the error reporting every read shares.

typedef struct cursor {
    const gguf_file *f;
    uint64_t pos;
    fb_error *err;
    char field[160]; /* what is being read, for messages */
} cursor;

static int fail(cursor *c, uint64_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cursor *c, uint64_t at, const char *fmt, ...) {
    char reason[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return fb_error_set(c->err, "%s: %s at byte %" PRIu64 ": %s", c->f->path, c->field, at, reason);
}

static uint64_t remaining(const cursor *c) { return c->f->size - c->pos; }

static int read_bytes(cursor *c, void *dst, uint64_t n) {
    if (n > remaining(c))
        return fail(c, c->pos, "needs %" PRIu64 " bytes but the file ends after %" PRIu64, n, remaining(c));
    memcpy(dst, c->f->base + c->pos, n);
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v) { return read_bytes(c, v, 4); }
static int read_u64(cursor *c, uint64_t *v) { return read_bytes(c, v, 8); }

static int read_string(cursor *c, arena *mem, gguf_str *s) {
    uint64_t at = c->pos, len;
    if (read_u64(c, &len)) return -1;
    if (len > remaining(c))
        return fail(c, at, "string length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes left)", len,
                    remaining(c));
    char *copy = arena_alloc(mem, (size_t)len + 1);
    if (!copy) return fail(c, at, "out of memory for a string of %" PRIu64 " bytes", len);
    memcpy(copy, c->f->base + c->pos, (size_t)len);
    copy[len] = '\0';
    c->pos += len;
    s->len = len;
    s->data = copy;
    return 0;
}

static int64_t vtype_size(uint32_t type) {
    switch (type) {
    case GGUF_VT_U8:
    case GGUF_VT_I8:
    case GGUF_VT_BOOL: return 1;
    case GGUF_VT_U16:
    case GGUF_VT_I16: return 2;
    case GGUF_VT_U32:
    case GGUF_VT_I32:
    case GGUF_VT_F32: return 4;
    case GGUF_VT_U64:
    case GGUF_VT_I64:
    case GGUF_VT_F64: return 8;
    default: return 0; /* STRING, ARRAY: variable */
    }
}

/* Decode one fixed-size scalar of `type` at p into v. */
static void decode_scalar(uint32_t type, const uint8_t *p, gguf_value *v) {
    v->type = type;
    switch (type) {
    case GGUF_VT_U8: v->u64 = p[0]; break;
    case GGUF_VT_I8: v->i64 = (int8_t)p[0]; break;
    case GGUF_VT_BOOL: v->u64 = p[0]; break;
    case GGUF_VT_U16: {
        uint16_t x;
        memcpy(&x, p, 2);
        v->u64 = x;
    } break;
    case GGUF_VT_I16: {
        int16_t x;
        memcpy(&x, p, 2);
        v->i64 = x;
    } break;
    case GGUF_VT_U32: {
        uint32_t x;
        memcpy(&x, p, 4);
        v->u64 = x;
    } break;
    case GGUF_VT_I32: {
        int32_t x;
        memcpy(&x, p, 4);
        v->i64 = x;
    } break;
    case GGUF_VT_F32: {
        float x;
        memcpy(&x, p, 4);
        v->f64 = x;
    } break;
    case GGUF_VT_U64: memcpy(&v->u64, p, 8); break;
    case GGUF_VT_I64: memcpy(&v->i64, p, 8); break;
    case GGUF_VT_F64: memcpy(&v->f64, p, 8); break;
    }
}

static int read_value(cursor *c, arena *mem, uint32_t type, gguf_value *v, int depth);

static int read_array(cursor *c, arena *mem, gguf_value *v, int depth) {
    uint64_t at = c->pos;
    uint32_t elem_type;
    uint64_t count;
    if (depth >= GGUF_MAX_ARRAY_DEPTH) return fail(c, at, "arrays nested deeper than %d levels", GGUF_MAX_ARRAY_DEPTH);
    if (read_u32(c, &elem_type)) return -1;
    if (elem_type >= GGUF_VT_COUNT_) return fail(c, at, "unknown array element type %" PRIu32, elem_type);
    at = c->pos;
    if (read_u64(c, &count)) return -1;
    v->type = GGUF_VT_ARRAY;
    v->arr.elem_type = elem_type;
    v->arr.count = count;
    v->arr.raw = NULL;
    v->arr.items = NULL;

    int64_t elem_size = vtype_size(elem_type);
    if (elem_size > 0) {
        if (count > remaining(c) / (uint64_t)elem_size)
            return fail(c, at, "array of %" PRIu64 " %s values needs more bytes than the %" PRIu64 " left", count,
                        gguf_vtype_name(elem_type), remaining(c));
        v->arr.raw = c->f->base + c->pos;
        if (elem_type == GGUF_VT_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (v->arr.raw[i] > 1)
                    return fail(c, c->pos + i, "bool array element %" PRIu64 " is %u, not 0 or 1", i, v->arr.raw[i]);
        c->pos += count * (uint64_t)elem_size;
        return 0;
    }
    /* Strings take at least 8 bytes each (their length), arrays at least 12. */
    uint64_t min_elem = elem_type == GGUF_VT_STRING ? 8 : 12;
    if (count > remaining(c) / min_elem)
        return fail(c, at, "array count %" PRIu64 " cannot fit in the %" PRIu64 " bytes left", count, remaining(c));
    if (count > SIZE_MAX / sizeof(gguf_value)) return fail(c, at, "array count %" PRIu64 " too large", count);
    v->arr.items = arena_alloc(mem, (size_t)count * sizeof(gguf_value));
    if (!v->arr.items && count) return fail(c, at, "out of memory for %" PRIu64 " array items", count);
    for (uint64_t i = 0; i < count; i++)
        if (read_value(c, mem, elem_type, &v->arr.items[i], depth + 1)) return -1;
    return 0;
}

static int read_value(cursor *c, arena *mem, uint32_t type, gguf_value *v, int depth) {
    if (type == GGUF_VT_STRING) {
        v->type = type;
        return read_string(c, mem, &v->str);
    }
    if (type == GGUF_VT_ARRAY) return read_array(c, mem, v, depth);
    int64_t size = vtype_size(type);
    if (size == 0) return fail(c, c->pos, "unknown value type %" PRIu32, type);
    if ((uint64_t)size > remaining(c))
        return fail(c, c->pos, "a %s value needs %" PRId64 " bytes but the file ends", gguf_vtype_name(type), size);
    decode_scalar(type, c->f->base + c->pos, v);
    if (type == GGUF_VT_BOOL && v->u64 > 1) return fail(c, c->pos, "bool value is %" PRIu64 ", not 0 or 1", v->u64);
    c->pos += (uint64_t)size;
    return 0;
}

// ----------------------------------------------------------------------------
// Sorted name indices, for look-up by name and for duplicate detection

struct name_entry {
    const char *name;
    uint64_t len;
    uint64_t index; /* into kv[] or tensors[] */
};

static int name_cmp(const char *a, uint64_t a_len, const char *b, uint64_t b_len) {
    int r = memcmp(a, b, (size_t)(a_len < b_len ? a_len : b_len));
    return r ? r : (a_len > b_len) - (a_len < b_len);
}

static int cmp_name_entry(const void *a, const void *b) {
    const name_entry *x = a, *y = b;
    return name_cmp(x->name, x->len, y->name, y->len);
}

/* Sorts entries by name; returns the index of an entry whose name repeats
 * (the later one in file order), or UINT64_MAX when all names are unique. */
static uint64_t sort_names(name_entry *e, uint64_t n) {
    qsort(e, (size_t)n, sizeof *e, cmp_name_entry);
    for (uint64_t i = 1; i < n; i++)
        if (cmp_name_entry(&e[i - 1], &e[i]) == 0) return e[i].index > e[i - 1].index ? e[i].index : e[i - 1].index;
    return UINT64_MAX;
}

static const name_entry *find_name(const name_entry *e, uint64_t n, const char *name) {
    uint64_t name_len = strlen(name), lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int r = name_cmp(e[mid].name, e[mid].len, name, name_len);
        if (r == 0) return &e[mid];
        if (r < 0) lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

// ----------------------------------------------------------------------------
// Parsing, section by section

static int parse_header(cursor *c, gguf_file *f) {
    char magic[4];
    snprintf(c->field, sizeof c->field, "header.magic");
    if (read_bytes(c, magic, 4)) return -1;
    if (memcmp(magic, "GGUF", 4) != 0)
        return fail(c, 0, "bad magic %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)", (unsigned char)magic[0],
                    (unsigned char)magic[1], (unsigned char)magic[2], (unsigned char)magic[3]);
    snprintf(c->field, sizeof c->field, "header.version");
    if (read_u32(c, &f->version)) return -1;
    if (f->version == 1) return fail(c, 4, "GGUF version 1 is not supported (only 2 and 3)");
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && (f->version >> 16) != 0)
            return fail(c, 4, "version %" PRIu32 " looks byte-swapped: big-endian GGUF files are not supported",
                        f->version);
        return fail(c, 4, "unsupported version %" PRIu32 " (only 2 and 3)", f->version);
    }
    /* Minimal sizes: a tensor info is at least name(8) + n_dims(4) + ne(8) +
     * type(4) + offset(8) = 32 bytes; a kv at least key(8) + type(4) + 1. */
    uint64_t at = c->pos;
    snprintf(c->field, sizeof c->field, "header.n_tensors");
    if (read_u64(c, &f->n_tensors)) return -1;
    if (f->n_tensors > remaining(c) / 32)
        return fail(c, at, "n_tensors = %" PRIu64 " cannot fit in a file of %" PRIu64 " bytes", f->n_tensors, f->size);
    at = c->pos;
    snprintf(c->field, sizeof c->field, "header.n_kv");
    if (read_u64(c, &f->n_kv)) return -1;
    if (f->n_kv > remaining(c) / 13)
        return fail(c, at, "n_kv = %" PRIu64 " cannot fit in a file of %" PRIu64 " bytes", f->n_kv, f->size);
    return 0;
}

static int parse_kvs(cursor *c, gguf_file *f) {
    f->kv = arena_alloc(&f->mem, (size_t)(f->n_kv ? f->n_kv : 1) * sizeof *f->kv);
    if (!f->kv) return fail(c, c->pos, "out of memory for %" PRIu64 " key-value pairs", f->n_kv);
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->file_offset = c->pos;
        snprintf(c->field, sizeof c->field, "kv[%" PRIu64 "].key", i);
        if (read_string(c, &f->mem, &kv->key)) return -1;
        if (kv->key.len == 0) return fail(c, kv->file_offset, "empty key");
        snprintf(c->field, sizeof c->field, "kv[%" PRIu64 "] '%.80s' type", i, kv->key.data);
        uint64_t at = c->pos;
        uint32_t type;
        if (read_u32(c, &type)) return -1;
        if (type >= GGUF_VT_COUNT_) return fail(c, at, "unknown value type %" PRIu32, type);
        snprintf(c->field, sizeof c->field, "kv[%" PRIu64 "] '%.80s' value", i, kv->key.data);
        at = c->pos;
        if (read_value(c, &f->mem, type, &kv->value, 0)) return -1;
        if (strcmp(kv->key.data, "general.alignment") == 0) {
            if (type != GGUF_VT_U32)
                return fail(c, at, "general.alignment must be a u32, not %s", gguf_vtype_name(type));
            uint64_t a = kv->value.u64;
            if (a == 0 || (a & (a - 1)) != 0)
                return fail(c, at, "general.alignment = %" PRIu64 " is not a power of two", a);
            f->alignment = (uint32_t)a;
        }
    }
    f->kv_by_name = arena_alloc(&f->mem, (size_t)(f->n_kv ? f->n_kv : 1) * sizeof *f->kv_by_name);
    if (!f->kv_by_name) return fail(c, c->pos, "out of memory");
    for (uint64_t i = 0; i < f->n_kv; i++) f->kv_by_name[i] = (name_entry){f->kv[i].key.data, f->kv[i].key.len, i};
    uint64_t dup = sort_names(f->kv_by_name, f->n_kv);
    if (dup != UINT64_MAX) {
        snprintf(c->field, sizeof c->field, "kv[%" PRIu64 "] '%.80s'", dup, f->kv[dup].key.data);
        return fail(c, f->kv[dup].file_offset, "duplicate key");
    }
    return 0;
}

static int parse_tensor_infos(cursor *c, gguf_file *f) {
    f->tensors = arena_alloc(&f->mem, (size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *f->tensors);
    if (!f->tensors) return fail(c, c->pos, "out of memory for %" PRIu64 " tensor infos", f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        gguf_str name;
        t->info_offset = c->pos;
        snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "].name", i);
        if (read_string(c, &f->mem, &name)) return -1;
        if (name.len == 0) return fail(c, t->info_offset, "empty tensor name");
        if (strlen(name.data) != name.len) return fail(c, t->info_offset, "tensor name contains a NUL byte");
        t->name = name.data;
        snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s' n_dims", i, t->name);
        uint64_t at = c->pos;
        if (read_u32(c, &t->n_dims)) return -1;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return fail(c, at, "n_dims = %" PRIu32 ", expected 1 to %d", t->n_dims, GGUF_MAX_DIMS);
        snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s' dims", i, t->name);
        at = c->pos;
        uint64_t n_elems = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if (read_u64(c, &ne)) return -1;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return fail(c, at + 8 * d, "dimension %" PRIu32 " is %" PRIu64 ", expected 1 to 2^63-1", d, ne);
            if (n_elems > (uint64_t)INT64_MAX / ne)
                return fail(c, at, "the product of the dimensions overflows 64 bits");
            n_elems *= ne;
            t->ne[d] = (int64_t)ne;
        }
        t->n_elems = n_elems;
        snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s' type", i, t->name);
        at = c->pos;
        if (read_u32(c, &t->type)) return -1;
        const quant_type_info *ti = quant_type_get(t->type);
        if (!ti) return fail(c, at, "unknown tensor type id %" PRIu32, t->type);
        if (t->ne[0] % ti->block_elems != 0)
            return fail(c, at,
                        "type %s stores blocks of %" PRId32 " values but the row length ne[0] = %" PRId64
                        " is not a multiple of it",
                        ti->name, ti->block_elems, t->ne[0]);
        uint64_t n_blocks = n_elems / (uint64_t)ti->block_elems;
        if (n_blocks > UINT64_MAX / (uint64_t)ti->block_bytes)
            return fail(c, at, "the tensor's byte size overflows 64 bits");
        t->n_bytes = n_blocks * (uint64_t)ti->block_bytes;
        snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s' offset", i, t->name);
        at = c->pos;
        if (read_u64(c, &t->offset)) return -1;
        if (t->offset % f->alignment != 0)
            return fail(c, at, "offset %" PRIu64 " is not a multiple of the alignment %" PRIu32, t->offset,
                        f->alignment);
    }
    f->tensor_by_name = arena_alloc(&f->mem, (size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *f->tensor_by_name);
    if (!f->tensor_by_name) return fail(c, c->pos, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        f->tensor_by_name[i] = (name_entry){f->tensors[i].name, strlen(f->tensors[i].name), i};
    uint64_t dup = sort_names(f->tensor_by_name, f->n_tensors);
    if (dup != UINT64_MAX) {
        snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s'", dup, f->tensors[dup].name);
        return fail(c, f->tensors[dup].info_offset, "duplicate tensor name");
    }
    return 0;
}

static int parse_data_section(cursor *c, gguf_file *f) {
    uint64_t end_of_infos = c->pos;
    uint64_t pad = (f->alignment - end_of_infos % f->alignment) % f->alignment;
    f->data_offset = end_of_infos + pad;
    if (f->n_tensors == 0) return 0;
    if (f->data_offset > f->size) {
        snprintf(c->field, sizeof c->field, "data section");
        return fail(c, end_of_infos, "the file ends before the data section (aligned to %" PRIu32 ") begins",
                    f->alignment);
    }
    uint64_t data_size = f->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s' data", i, t->name);
            return fail(c, t->info_offset,
                        "%" PRIu64 " bytes at data offset %" PRIu64 " run past the end of the file "
                        "(data section holds %" PRIu64 " bytes)",
                        t->n_bytes, t->offset, data_size);
        }
        t->data = f->base + f->data_offset + t->offset;
    }
    /* Overlap: sorted by offset, each tensor must end before the next begins. */
    const gguf_tensor **by_offset = malloc((size_t)f->n_tensors * sizeof *by_offset);
    if (!by_offset) return fail(c, c->pos, "out of memory");
    for (uint64_t i = 0; i < f->n_tensors; i++) by_offset[i] = &f->tensors[i];
    qsort(by_offset, (size_t)f->n_tensors, sizeof *by_offset, cmp_tensor_offset);
    int rc = 0;
    for (uint64_t i = 1; i < f->n_tensors; i++) {
        const gguf_tensor *prev = by_offset[i - 1], *t = by_offset[i];
        if (prev->offset + prev->n_bytes > t->offset) {
            snprintf(c->field, sizeof c->field, "tensor_info[%" PRIu64 "] '%.80s' offset", (uint64_t)(t - f->tensors),
                     t->name);
            rc =
                fail(c, t->info_offset, "data at offset %" PRIu64 " overlaps tensor '%.80s' (%" PRIu64 "..%" PRIu64 ")",
                     t->offset, prev->name, prev->offset, prev->offset + prev->n_bytes);
            break;
        }
    }
    free(by_offset);
    return rc;
}

int gguf_parse(const void *data, size_t size, const char *name, gguf_file **out, fb_error *err) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return fb_error_set(err, "%s: out of memory", name);
    f->path = strdup(name);
    if (!f->path) {
        free(f);
        return fb_error_set(err, "%s: out of memory", name);
    }
    f->base = data;
    f->size = size;
    cursor c = {.f = f, .pos = 0, .err = err};
    if (parse_header(&c, f) || parse_kvs(&c, f) || parse_tensor_infos(&c, f) || parse_data_section(&c, f)) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int gguf_open(const char *path, gguf_file **out, fb_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fb_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fb_error_set(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fb_error_set(err, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return fb_error_set(err, "%s: header at byte 0: the file is %lld bytes, shorter than a GGUF header (24)", path,
                            (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return fb_error_set(err, "%s: cannot map: %s", path, strerror(map_errno));
    if (gguf_parse(map, (size_t)st.st_size, path, out, err) != 0) {
        munmap(map, (size_t)st.st_size);
        return -1;
    }
    (*out)->mapped = true;
    return 0;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, (size_t)f->size);
    arena_free(&f->mem);
    free(f->path);
    free(f);
}

// ----------------------------------------------------------------------------
// Accessors

const char *gguf_path(const gguf_file *f) { return f->path; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
uint64_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
uint64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
uint64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i) { return i < f->n_kv ? &f->kv[i] : NULL; }
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) { return i < f->n_tensors ? &f->tensors[i] : NULL; }

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    const name_entry *e = find_name(f->kv_by_name, f->n_kv, key);
    return e ? &f->kv[e->index] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    const name_entry *e = find_name(f->tensor_by_name, f->n_tensors, name);
    return e ? &f->tensors[e->index] : NULL;
}

static const gguf_kv *require_kv(const gguf_file *f, const char *key, fb_error *err) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) fb_error_set(err, "%s: metadata key '%s' is missing", f->path, key);
    return kv;
}

static bool is_unsigned(uint32_t t) {
    return t == GGUF_VT_U8 || t == GGUF_VT_U16 || t == GGUF_VT_U32 || t == GGUF_VT_U64;
}
static bool is_signed(uint32_t t) {
    return t == GGUF_VT_I8 || t == GGUF_VT_I16 || t == GGUF_VT_I32 || t == GGUF_VT_I64;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, fb_error *err) {
    const gguf_kv *kv = require_kv(f, key, err);
    if (!kv) return -1;
    uint32_t t = kv->value.type;
    if (is_signed(t)) {
        *out = kv->value.i64;
        return 0;
    }
    if (is_unsigned(t)) {
        if (kv->value.u64 > (uint64_t)INT64_MAX)
            return fb_error_set(err, "%s: metadata key '%s' at byte %" PRIu64 ": value %" PRIu64 " is too large",
                                f->path, key, kv->file_offset, kv->value.u64);
        *out = (int64_t)kv->value.u64;
        return 0;
    }
    return fb_error_set(err, "%s: metadata key '%s' at byte %" PRIu64 ": expected an integer, found %s", f->path, key,
                        kv->file_offset, gguf_vtype_name(t));
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, fb_error *err) {
    const gguf_kv *kv = require_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_F32 && kv->value.type != GGUF_VT_F64)
        return fb_error_set(err, "%s: metadata key '%s' at byte %" PRIu64 ": expected a float, found %s", f->path, key,
                            kv->file_offset, gguf_vtype_name(kv->value.type));
    *out = kv->value.f64;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, fb_error *err) {
    const gguf_kv *kv = require_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_BOOL)
        return fb_error_set(err, "%s: metadata key '%s' at byte %" PRIu64 ": expected a bool, found %s", f->path, key,
                            kv->file_offset, gguf_vtype_name(kv->value.type));
    *out = kv->value.u64 != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **out, fb_error *err) {
    const gguf_kv *kv = require_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_STRING)
        return fb_error_set(err, "%s: metadata key '%s' at byte %" PRIu64 ": expected a string, found %s", f->path, key,
                            kv->file_offset, gguf_vtype_name(kv->value.type));
    *out = kv->value.str.data;
    return 0;
}

int gguf_get_array(const gguf_file *f, const char *key, uint32_t elem_type, const gguf_value **out, fb_error *err) {
    const gguf_kv *kv = require_kv(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_VT_ARRAY || kv->value.arr.elem_type != elem_type)
        return fb_error_set(err, "%s: metadata key '%s' at byte %" PRIu64 ": expected an array of %s", f->path, key,
                            kv->file_offset, gguf_vtype_name(elem_type));
    *out = &kv->value;
    return 0;
}

int64_t gguf_array_int(const gguf_value *arr, uint64_t i) {
    if (arr->type != GGUF_VT_ARRAY || i >= arr->arr.count || !arr->arr.raw) return 0;
    uint32_t t = arr->arr.elem_type;
    gguf_value v;
    decode_scalar(t, arr->arr.raw + i * (uint64_t)vtype_size(t), &v);
    if (is_signed(t)) return v.i64;
    if (is_unsigned(t) || t == GGUF_VT_BOOL) return (int64_t)v.u64;
    return 0;
}

double gguf_array_float(const gguf_value *arr, uint64_t i) {
    if (arr->type != GGUF_VT_ARRAY || i >= arr->arr.count || !arr->arr.raw) return 0;
    uint32_t t = arr->arr.elem_type;
    gguf_value v;
    decode_scalar(t, arr->arr.raw + i * (uint64_t)vtype_size(t), &v);
    if (t == GGUF_VT_F32 || t == GGUF_VT_F64) return v.f64;
    if (is_signed(t)) return (double)v.i64;
    return (double)v.u64;
}

const char *gguf_vtype_name(uint32_t type) {
    static const char *names[GGUF_VT_COUNT_] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};
    return type < GGUF_VT_COUNT_ ? names[type] : "unknown";
}

void gguf_value_format(const gguf_value *v, char *buf, size_t buf_size) {
    switch (v->type) {
    case GGUF_VT_U8:
    case GGUF_VT_U16:
    case GGUF_VT_U32:
    case GGUF_VT_U64: snprintf(buf, buf_size, "%" PRIu64, v->u64); break;
    case GGUF_VT_I8:
    case GGUF_VT_I16:
    case GGUF_VT_I32:
    case GGUF_VT_I64: snprintf(buf, buf_size, "%" PRId64, v->i64); break;
    case GGUF_VT_F32:
    case GGUF_VT_F64: snprintf(buf, buf_size, "%g", v->f64); break;
    case GGUF_VT_BOOL: snprintf(buf, buf_size, "%s", v->u64 ? "true" : "false"); break;
    case GGUF_VT_STRING: {
        /* Printable prefix only; control bytes shown as '.'. */
        size_t n = 0, limit = buf_size > 4 ? buf_size - 4 : 0;
        uint64_t i;
        for (i = 0; i < v->str.len && n + 1 < limit && i < 60; i++) {
            unsigned char ch = (unsigned char)v->str.data[i];
            buf[n++] = (ch < 0x20 || ch == 0x7f) ? '.' : (char)ch;
        }
        if (i < v->str.len && n + 3 < buf_size) buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
        if (buf_size) buf[n < buf_size ? n : buf_size - 1] = '\0';
        break;
    }
    case GGUF_VT_ARRAY:
        snprintf(buf, buf_size, "[%" PRIu64 " %s]", v->arr.count, gguf_vtype_name(v->arr.elem_type));
        break;
    default: snprintf(buf, buf_size, "?");
    }
}
