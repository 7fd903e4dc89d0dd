/* test_gguf.c - the GGUF reader and writer.
 *
 * A file holding every value type (nested arrays and arrays of strings too)
 * is packed here byte by byte, independently of gguf_write.c, then parsed
 * whole, as v2 and v3, truncated at every length, and with random bytes
 * flipped: every outcome must be a parsed file or a clean error. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"

// ----------------------------------------------------------------------------
// A byte builder for hand-made files

typedef struct buf {
    uint8_t data[8192];
    size_t len;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->len + n > sizeof b->data) abort();
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u16(buf *b, uint16_t v) { put(b, &v, 2); }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_key(buf *b, const char *key, uint32_t type) {
    put_str(b, key);
    put_u32(b, type);
}

/* Every value type, nested arrays, two tensors, alignment 64. */
static size_t make_reference_file(buf *b, uint32_t version) {
    b->len = 0;
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, 2);  /* tensors */
    put_u64(b, 19); /* kvs */
    put_key(b, "t.u8", GGUF_VT_U8), put_u8(b, 200);
    put_key(b, "t.i8", GGUF_VT_I8), put_u8(b, (uint8_t)-100);
    put_key(b, "t.u16", GGUF_VT_U16), put_u16(b, 60000);
    put_key(b, "t.i16", GGUF_VT_I16), put_u16(b, (uint16_t)-30000);
    put_key(b, "t.u32", GGUF_VT_U32), put_u32(b, 4000000000u);
    put_key(b, "t.i32", GGUF_VT_I32), put_u32(b, (uint32_t)-2000000000);
    float f = 3.25f;
    put_key(b, "t.f32", GGUF_VT_F32), put(b, &f, 4);
    put_key(b, "t.bool", GGUF_VT_BOOL), put_u8(b, 1);
    put_key(b, "t.string", GGUF_VT_STRING), put_str(b, "héllo ▁world");
    put_key(b, "t.u64", GGUF_VT_U64), put_u64(b, UINT64_MAX - 1);
    put_key(b, "t.i64", GGUF_VT_I64), put_u64(b, (uint64_t)INT64_MIN);
    double d = -1.0e300;
    put_key(b, "t.f64", GGUF_VT_F64), put(b, &d, 8);
    put_key(b, "t.arr_i32", GGUF_VT_ARRAY), put_u32(b, GGUF_VT_I32), put_u64(b, 3);
    put_u32(b, 7), put_u32(b, (uint32_t)-8), put_u32(b, 9);
    put_key(b, "t.arr_str", GGUF_VT_ARRAY), put_u32(b, GGUF_VT_STRING), put_u64(b, 3);
    put_str(b, "a"), put_str(b, ""), put_str(b, "ccc");
    put_key(b, "t.arr_nested", GGUF_VT_ARRAY), put_u32(b, GGUF_VT_ARRAY), put_u64(b, 2);
    put_u32(b, GGUF_VT_U16), put_u64(b, 2), put_u16(b, 1), put_u16(b, 2);
    put_u32(b, GGUF_VT_STRING), put_u64(b, 1), put_str(b, "inner");
    put_key(b, "t.arr_empty", GGUF_VT_ARRAY), put_u32(b, GGUF_VT_F32), put_u64(b, 0);
    put_key(b, "t.arr_bool", GGUF_VT_ARRAY), put_u32(b, GGUF_VT_BOOL), put_u64(b, 2), put_u8(b, 0), put_u8(b, 1);
    put_key(b, "general.alignment", GGUF_VT_U32), put_u32(b, 64);
    put_key(b, "general.architecture", GGUF_VT_STRING), put_str(b, "llama");
    /* tensors: "w" F32 [4, 2] at 0 (32 bytes), "q" Q8_0 [32] at 64 (34 bytes) */
    put_str(b, "w"), put_u32(b, 2), put_u64(b, 4), put_u64(b, 2), put_u32(b, GGUF_TYPE_F32), put_u64(b, 0);
    put_str(b, "q"), put_u32(b, 1), put_u64(b, 32), put_u32(b, GGUF_TYPE_Q8_0), put_u64(b, 64);
    while (b->len % 64) put_u8(b, 0);
    size_t data_start = b->len;
    for (int i = 0; i < 8; i++) {
        float v = (float)i + 0.5f;
        put(b, &v, 4);
    }
    while (b->len < data_start + 64) put_u8(b, 0);
    for (int i = 0; i < 34; i++) put_u8(b, (uint8_t)(i * 7));
    return data_start;
}

// ----------------------------------------------------------------------------

static void test_reference_file(uint32_t version) {
    buf b;
    size_t data_start = make_reference_file(&b, version);
    gguf_file *f;
    fb_error err;
    int rc = gguf_parse(b.data, b.len, "ref", &f, &err);
    CHECK(rc == 0, "v%u: %s", version, err.msg);
    if (rc) return;
    CHECK(gguf_version(f) == version, "version %u", gguf_version(f));
    CHECK(gguf_n_kv(f) == 19 && gguf_n_tensors(f) == 2, "counts");
    CHECK(gguf_alignment(f) == 64, "alignment %u", gguf_alignment(f));
    CHECK(gguf_data_offset(f) == data_start, "data offset %" PRIu64, gguf_data_offset(f));

    int64_t i;
    double x;
    bool flag;
    const char *s;
    CHECK(gguf_get_int(f, "t.u8", &i, &err) == 0 && i == 200, "u8");
    CHECK(gguf_get_int(f, "t.i8", &i, &err) == 0 && i == -100, "i8");
    CHECK(gguf_get_int(f, "t.u16", &i, &err) == 0 && i == 60000, "u16");
    CHECK(gguf_get_int(f, "t.i16", &i, &err) == 0 && i == -30000, "i16");
    CHECK(gguf_get_int(f, "t.u32", &i, &err) == 0 && i == 4000000000LL, "u32");
    CHECK(gguf_get_int(f, "t.i32", &i, &err) == 0 && i == -2000000000LL, "i32");
    CHECK(gguf_get_int(f, "t.i64", &i, &err) == 0 && i == INT64_MIN, "i64");
    CHECK(gguf_find_kv(f, "t.u64")->value.u64 == UINT64_MAX - 1, "u64");
    CHECK(gguf_get_int(f, "t.u64", &i, &err) != 0 && strstr(err.msg, "too large"), "u64 beyond int64: %s", err.msg);
    CHECK(gguf_get_float(f, "t.f32", &x, &err) == 0 && x == 3.25, "f32");
    CHECK(gguf_get_float(f, "t.f64", &x, &err) == 0 && x == -1.0e300, "f64");
    CHECK(gguf_get_bool(f, "t.bool", &flag, &err) == 0 && flag, "bool");
    CHECK(gguf_get_str(f, "t.string", &s, &err) == 0 && strcmp(s, "héllo ▁world") == 0, "string");
    CHECK(gguf_get_str(f, "t.u8", &s, &err) != 0 && strstr(err.msg, "'t.u8'") && strstr(err.msg, "expected a string"),
          "wrong type names key: %s", err.msg);
    CHECK(gguf_get_int(f, "absent.key", &i, &err) != 0 && strstr(err.msg, "'absent.key' is missing"), "%s", err.msg);
    CHECK(gguf_find_kv(f, "t.u") == NULL && gguf_find_kv(f, "t.u88") == NULL, "no prefix matches");

    const gguf_value *arr;
    CHECK(gguf_get_array(f, "t.arr_i32", GGUF_VT_I32, &arr, &err) == 0 && arr->arr.count == 3 &&
              gguf_array_int(arr, 0) == 7 && gguf_array_int(arr, 1) == -8 && gguf_array_int(arr, 2) == 9 &&
              gguf_array_int(arr, 3) == 0,
          "i32 array");
    CHECK(gguf_get_array(f, "t.arr_str", GGUF_VT_STRING, &arr, &err) == 0 && arr->arr.count == 3 &&
              strcmp(arr->arr.items[0].str.data, "a") == 0 && arr->arr.items[1].str.len == 0 &&
              strcmp(arr->arr.items[2].str.data, "ccc") == 0,
          "string array");
    CHECK(gguf_get_array(f, "t.arr_nested", GGUF_VT_ARRAY, &arr, &err) == 0 && arr->arr.count == 2 &&
              arr->arr.items[0].arr.elem_type == GGUF_VT_U16 && gguf_array_int(&arr->arr.items[0], 1) == 2 &&
              strcmp(arr->arr.items[1].arr.items[0].str.data, "inner") == 0,
          "nested arrays");
    CHECK(gguf_get_array(f, "t.arr_empty", GGUF_VT_F32, &arr, &err) == 0 && arr->arr.count == 0, "empty array");
    CHECK(gguf_get_array(f, "t.arr_bool", GGUF_VT_BOOL, &arr, &err) == 0 && gguf_array_int(arr, 1) == 1, "bool arr");
    CHECK(gguf_get_array(f, "t.arr_str", GGUF_VT_I32, &arr, &err) != 0, "array element type is checked");

    const gguf_tensor *w = gguf_find_tensor(f, "w"), *q = gguf_find_tensor(f, "q");
    CHECK(w && w->n_dims == 2 && w->ne[0] == 4 && w->ne[1] == 2 && w->ne[2] == 1 && w->n_bytes == 32 &&
              w->n_elems == 8 && w->type == GGUF_TYPE_F32,
          "tensor w");
    CHECK(w && ((const float *)w->data)[7] == 7.5f, "tensor w data");
    CHECK(q && q->n_bytes == 34 && (const uint8_t *)q->data == b.data + data_start + 64 &&
              ((const uint8_t *)q->data)[33] == (uint8_t)(33 * 7),
          "tensor q data");
    CHECK(gguf_find_tensor(f, "x") == NULL, "absent tensor");
    char text[64];
    gguf_value_format(&gguf_find_kv(f, "t.arr_str")->value, text, sizeof text);
    CHECK(strcmp(text, "[3 string]") == 0, "format: %s", text);
    gguf_close(f);
}

/* Every prefix of a valid file is invalid (the last tensor's data is cut),
 * and must be reported, never crash (ASan sees reads past each copy). */
static void test_truncations(void) {
    buf b;
    make_reference_file(&b, 3);
    int clean = 0;
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.data, n);
        gguf_file *f;
        fb_error err = {{0}};
        int rc = gguf_parse(copy, n, "cut", &f, &err);
        if (rc != 0 && strncmp(err.msg, "cut: ", 5) == 0 && strstr(err.msg, " at byte ")) clean++;
        else if (rc == 0)
            gguf_close(f), printf("  prefix %zu parsed\n", n);
        else
            printf("  prefix %zu: unclear message: %s\n", n, err.msg);
        free(copy);
    }
    CHECK(clean == (int)b.len, "%d of %zu truncations reported cleanly", clean, b.len);
}

/* Random byte flips: parse or fail, nothing else. */
static void test_mutations(uint64_t seed) {
    buf b;
    make_reference_file(&b, 3);
    uint64_t s = seed;
    int parsed = 0, failed = 0;
    for (int round = 0; round < 5000; round++) {
        uint8_t *copy = malloc(b.len);
        memcpy(copy, b.data, b.len);
        for (int k = 0; k < 1 + round % 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            copy[(s >> 33) % b.len] ^= (uint8_t)(1u << ((s >> 20) & 7));
        }
        gguf_file *f;
        fb_error err;
        if (gguf_parse(copy, b.len, "mut", &f, &err) == 0) parsed++, gguf_close(f);
        else
            failed += strncmp(err.msg, "mut: ", 5) == 0;
        free(copy);
    }
    CHECK(parsed + failed == 5000, "seed %" PRIu64 ": %d parsed, %d failed cleanly", seed, parsed, failed);
    printf("  mutations (seed %" PRIu64 "): %d parsed, %d rejected\n", seed, parsed, failed);
}

// ----------------------------------------------------------------------------
// The writer, read back by the reader

static int fill_counting(void *ctx, int tensor, int64_t row0, int64_t n_rows, void *dst, fb_error *err) {
    (void)ctx, (void)err;
    float *out = dst;
    for (int64_t r = 0; r < n_rows; r++)
        for (int c = 0; c < 5; c++) out[r * 5 + c] = (float)(tensor * 1000 + (row0 + r) * 5 + c);
    return 0;
}

static void test_writer(const char *tmp_dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/writer.gguf", tmp_dir);
    gguf_writer *w = gguf_writer_new(128);
    const char *strs[] = {"x", "yy", ""};
    int32_t ints[] = {1, -2, 3};
    int64_t ne_a[] = {5, 3}, ne_b[] = {5};
    CHECK(w && gguf_writer_str(w, "general.architecture", "llama") == 0 && gguf_writer_u32(w, "k.u32", 42) == 0 &&
              gguf_writer_f32(w, "k.f32", 0.5f) == 0 && gguf_writer_bool(w, "k.b", true) == 0 &&
              gguf_writer_str_array(w, "k.strs", strs, 3) == 0 &&
              gguf_writer_array(w, "k.ints", GGUF_VT_I32, ints, 3) == 0,
          "writer metadata");
    CHECK(gguf_writer_tensor(w, "a", GGUF_TYPE_F32, 2, ne_a, fill_counting, NULL) == 0, "tensor a");
    CHECK(gguf_writer_tensor(w, "b", GGUF_TYPE_F32, 1, ne_b, fill_counting, NULL) == 1, "tensor b");
    int64_t bad_ne[] = {33};
    CHECK(gguf_writer_tensor(w, "c", GGUF_TYPE_Q8_0, 1, bad_ne, fill_counting, NULL) == -1, "row not block multiple");
    fb_error err;
    CHECK(gguf_writer_write(w, path, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);

    gguf_file *f;
    int rc = gguf_open(path, &f, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    int64_t i;
    const gguf_value *arr;
    CHECK(gguf_alignment(f) == 128 && gguf_data_offset(f) % 128 == 0, "alignment");
    CHECK(gguf_get_int(f, "k.u32", &i, &err) == 0 && i == 42, "u32");
    CHECK(gguf_get_array(f, "k.strs", GGUF_VT_STRING, &arr, &err) == 0 && strcmp(arr->arr.items[1].str.data, "yy") == 0,
          "strs");
    CHECK(gguf_get_array(f, "k.ints", GGUF_VT_I32, &arr, &err) == 0 && gguf_array_int(arr, 1) == -2, "ints");
    const gguf_tensor *a = gguf_find_tensor(f, "a"), *b = gguf_find_tensor(f, "b");
    CHECK(a && b && a->offset == 0 && b->offset == 128, "tensor offsets aligned");
    CHECK(a && ((const float *)a->data)[14] == 14.0f && b && ((const float *)b->data)[4] == 1004.0f, "tensor data");
    gguf_close(f);
    struct stat st;
    char partial[600];
    snprintf(partial, sizeof partial, "%s.partial", path);
    CHECK(stat(partial, &st) != 0, "no temporary file left behind");
}

static void test_open_errors(const char *tmp_dir) {
    gguf_file *f;
    fb_error err;
    CHECK(gguf_open("/nonexistent/model.gguf", &f, &err) != 0 &&
              strstr(err.msg, "/nonexistent/model.gguf: cannot open"),
          "%s", err.msg);
    CHECK(gguf_open(tmp_dir, &f, &err) != 0 && strstr(err.msg, "not a regular file"), "%s", err.msg);
}

int main(int argc, char **argv) {
    const char *tmp_dir = argc > 1 ? argv[1] : "/tmp";
    uint64_t seed = (uint64_t)time(NULL);
    printf("test_gguf: seed %" PRIu64 "\n", seed);
    test_reference_file(3);
    test_reference_file(2);
    test_truncations();
    test_mutations(seed);
    test_writer(tmp_dir);
    test_open_errors(tmp_dir);
    return check_summary();
}
