/* abi_names.c - the ABI's enums and bits as words (see abi_names.h). */
#include "abi_names.h"

#include <stdio.h>
#include <string.h>

const char *fb_status_name(fb_status st) {
    switch (st) {
    case FB_OK: return "FB_OK";
    case FB_ERR_INVALID_ARGUMENT: return "FB_ERR_INVALID_ARGUMENT";
    case FB_ERR_UNSUPPORTED: return "FB_ERR_UNSUPPORTED";
    case FB_ERR_UNAVAILABLE: return "FB_ERR_UNAVAILABLE";
    case FB_ERR_OUT_OF_MEMORY: return "FB_ERR_OUT_OF_MEMORY";
    case FB_ERR_CONTEXT_FULL: return "FB_ERR_CONTEXT_FULL";
    case FB_ERR_CANCELLED: return "FB_ERR_CANCELLED";
    case FB_ERR_INTERNAL: return "FB_ERR_INTERNAL";
    }
    return "an unknown status";
}

static const struct {
    const char *name;
    fb_precision precision;
    uint32_t cap;
} precisions[] = {
    {"f32", FB_PRECISION_F32, FB_CAP_PRECISION_F32},
    {"f16", FB_PRECISION_F16, FB_CAP_PRECISION_F16},
    {"bf16", FB_PRECISION_BF16, FB_CAP_PRECISION_BF16},
    {"native", FB_PRECISION_NATIVE, FB_CAP_PRECISION_NATIVE},
};

int fb_precision_parse(const char *s, fb_precision *out) {
    for (size_t i = 0; i < sizeof precisions / sizeof precisions[0]; i++)
        if (strcmp(s, precisions[i].name) == 0) {
            *out = precisions[i].precision;
            return 0;
        }
    return -1;
}

uint32_t fb_precision_cap(fb_precision p) {
    for (size_t i = 0; i < sizeof precisions / sizeof precisions[0]; i++)
        if (precisions[i].precision == p) return precisions[i].cap;
    return 0;
}

void fb_caps_format(uint32_t caps, char *buf, size_t size) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {FB_CAP_CPU, "cpu"},       {FB_CAP_GPU, "gpu"},         {FB_CAP_PRECISION_F32, "f32"},
        {FB_CAP_PRECISION_F16, "f16"}, {FB_CAP_PRECISION_BF16, "bf16"}, {FB_CAP_PRECISION_NATIVE, "native"},
        {FB_CAP_JIT, "jit"},       {FB_CAP_GRAPHS, "graphs"},   {FB_CAP_THREADS, "threads"},
        {FB_CAP_COPY_PROBE, "copy-probe"},
    };
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((caps & names[i].bit) && n < size)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? "," : "", names[i].name);
    if (n == 0) snprintf(buf, size, "none");
}
