/* bf16.h - f32 to bfloat16, round to nearest even, NaN kept a NaN: the one
 * copy the bundled plugins share (plugins link nothing of the core's, whose
 * own copy is quant.c's f32_to_bf16, bit-identical and tested against gguf-py). */
#ifndef FB_PLUGIN_BF16_H
#define FB_PLUGIN_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t fb_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u); // NaN stays NaN
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);                  // round to nearest even
}

#endif
