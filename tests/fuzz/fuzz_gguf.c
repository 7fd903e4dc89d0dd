/* fuzz_gguf.c - libFuzzer target for the GGUF reader and the model view.
 *
 *   make fuzz                      # builds build-fuzz/tests/fuzz_gguf with clang
 *   build-fuzz/tests/fuzz_gguf -max_total_time=600 corpus-dir tests/fuzz/corpus
 *
 * Any input must give either a parsed file or an error message; the
 * sanitizers turn every out-of-bounds read, overflow or leak into a crash. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gguf.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f;
    fb_error err;
    if (gguf_parse(data, size, "fuzz-input", &f, &err) != 0) {
        /* The message must be a terminated sentence naming the input. */
        if (strncmp(err.msg, "fuzz-input: ", 12) != 0) __builtin_trap();
        return 0;
    }
    /* Touch everything the reader promises is in bounds. */
    volatile uint8_t sink = 0;
    char buf[128];
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) gguf_value_format(&gguf_kv_at(f, i)->value, buf, sizeof buf);
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) == NULL) __builtin_trap();
        if (t->n_bytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->n_bytes - 1];
    }
    (void)sink;
    fb_model *m;
    if (fb_model_from_gguf(f, &m, &err) == 0) {
        (void)fb_model_decode_bytes(m, -1);
        fb_model_close(m); /* closes f too */
    } else {
        gguf_close(f);
    }
    return 0;
}
