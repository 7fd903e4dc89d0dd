/* abi_names.h - the ABI's enums and bits as words, and back: one home for
 * what the commands and the runner print and parse. */
#ifndef FB_ABI_NAMES_H
#define FB_ABI_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "fairbench/plugin.h"

/* "FB_ERR_UNSUPPORTED", ...; "an unknown status" for others. */
const char *fb_status_name(fb_status st);

/* "f32" | "f16" | "bf16" | "native" -> *out; -1 for anything else. */
int fb_precision_parse(const char *s, fb_precision *out);

/* The capability bit that claims weight precision p (0 for none). */
uint32_t fb_precision_cap(fb_precision p);

/* The FB_CAP_* bits this host knows. */
#define FB_KNOWN_CAPS                                                                                                 \
    (FB_CAP_CPU | FB_CAP_GPU | FB_CAP_PRECISION_F32 | FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 |                 \
     FB_CAP_PRECISION_NATIVE | FB_CAP_JIT | FB_CAP_GRAPHS | FB_CAP_THREADS | FB_CAP_COPY_PROBE)

/* "cpu,f32,native,threads" (or "none") into buf. */
void fb_caps_format(uint32_t caps, char *buf, size_t size);

#endif
