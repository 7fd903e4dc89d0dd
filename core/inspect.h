/* inspect.h - the `fairbench inspect` report of a GGUF model. */
#ifndef FB_INSPECT_H
#define FB_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "fb_error.h"

typedef struct fb_inspect_options {
    bool show_metadata; /* every key-value pair */
    bool show_tensors;  /* the per-tensor table (default on) */
} fb_inspect_options;

/* Print the report for the model at path to out. -1 with err set when the
 * file cannot be read or is not a valid LLaMA model. */
int fb_inspect(const char *path, const fb_inspect_options *opt, FILE *out, fb_error *err);

#endif
