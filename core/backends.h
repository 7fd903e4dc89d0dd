/* backends.h - finding, loading and vetting backend plugins.
 *
 * A backend is any .so in a plugin folder that exports fb_plugin_entry.
 * Folders are searched in this order, and the first backend of a name wins:
 *   1. --plugin-dir folders given on the command line
 *   2. FAIRBENCH_PLUGIN_PATH (colon-separated)
 *   3. the build tree's plugin folder (when run from a build: only when
 *      folder 4 does not exist, so an installed binary never uses it)
 *   4. <prefix>/lib/fairbench/plugins next to the installed binary
 * A .so whose entry table has a factory (ABI 1.1) gives one entry per
 * backend it publishes, each vetted on its own. A backend that cannot be used
 * (dlopen fails, no entry symbol, NULL table, another ABI major, a table too
 * small, required calls missing, a bad name, a name already taken) is kept
 * in the list as unusable, with the reason. */
#ifndef FB_BACKENDS_H
#define FB_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>

#include "fairbench/plugin.h"
#include "fb_error.h"

typedef struct fb_backend {
    char *path;                /* the .so */
    char name[64];             /* from the plugin table ("" when unknown) */
    char container[64];        /* the .so's own name when a factory published it, else "" */
    void *handle;              /* dlopen handle, NULL when unusable */
    const fb_plugin *api;      /* NULL when unusable */
    bool usable;
    char reason[512];          /* why unusable: one sentence naming the file */
} fb_backend;

typedef struct fb_backend_list {
    fb_backend *items;
    size_t n;
    char **dirs;               /* the folders searched, in order */
    size_t n_dirs;
} fb_backend_list;

/* Build the folder list (cli_dirs may be NULL) and load every .so in them. */
int fb_backends_discover(const char *const *cli_dirs, size_t n_cli_dirs, fb_backend_list *out, fb_error *err);
void fb_backends_free(fb_backend_list *list);

/* The usable backend of that name, or NULL. */
const fb_backend *fb_backends_find(const fb_backend_list *list, const char *name);

/* dlopen and vet the one .so at path (no folder scan) and pick its backend
 * `name` (NULL: the only backend it publishes); 0 when usable, else -1 with
 * out->reason. out->path is malloc'd (free it). names (may be NULL when
 * names_size is 0) receives the names of every backend the .so publishes. */
int fb_backend_load(const char *path, const char *name, fb_backend *out, char *names, size_t names_size);

/* Vet one already-dlopened entry table; 0 when usable, else -1 with reason. */
int fb_backend_vet(const fb_plugin *api, const char *path, char *reason, size_t reason_size);

#endif
