/* options.h - per-backend options (ABI 1.1): the keys of a profile's
 * [backend.LABEL] section that the host does not know, vetted by the plugin's
 * check_option before anything runs, then handed to create(). */
#ifndef FB_OPTIONS_H
#define FB_OPTIONS_H

#include "backends.h"
#include "fairbench/plugin.h"
#include "fb_error.h"
#include "profile.h"

/* Every option of every entry, asked of the entry's plugin in `list`; an
 * entry whose plugin is not in the list is left to the caller. -1 with
 * "file:line: [backend.L] key = value: <the plugin's sentence>" at the first
 * refusal (a plugin without check_option takes no options). */
int fb_options_vet(const fb_profile *p, const fb_backend_list *list, fb_error *err);

/* The entry's options as the ABI's key/value pairs (pointing into e). */
uint32_t fb_options_view(const fb_entry *e, fb_option out[FB_MAX_OPTIONS]);

#endif
