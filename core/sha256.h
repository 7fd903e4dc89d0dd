/* sha256.h - SHA-256 of a file (FIPS 180-4), for the report's model hash. */
#ifndef FB_SHA256_H
#define FB_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Hex digest (65 bytes with the NUL) of the file at path; -1 when unreadable. */
int fb_sha256_file(const char *path, char hex[65]);
/* Hex digest of a buffer. */
void fb_sha256_buffer(const void *data, size_t len, char hex[65]);

#endif
