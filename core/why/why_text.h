/* why_text.h - the "why" object (pass.h, docs/why.md) as terminal text. */
#ifndef FB_WHY_TEXT_H
#define FB_WHY_TEXT_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* Print one backend's breakdown under a heading naming `label`. */
void why_print_text(FILE *out, const char *label, const cJSON *why);

#endif
