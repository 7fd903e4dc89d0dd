/* fb_error.h - the one error convention of the core.
 *
 * Functions that can fail return 0 on success and -1 on failure, and fill an
 * fb_error with one sentence that names what went wrong (file, field, byte
 * offset, cause). Library code never prints and never exits: only main.c
 * decides what reaches the user and with which exit status. */
#ifndef FB_ERROR_H
#define FB_ERROR_H

#include <stddef.h>

typedef struct fb_error {
    char msg[512];
} fb_error;

/* printf-style; a NULL err is allowed and ignored. Always returns -1 so that
 * `return fb_error_set(err, ...);` reads naturally. */
int fb_error_set(fb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
