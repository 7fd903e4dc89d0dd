/* backends.c - plugin discovery, loading and vetting (see backends.h). */
#include "backends.h"

#include "plugin_host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FB_PLUGIN_BUILD_DIR
#define FB_PLUGIN_BUILD_DIR ""
#endif
#ifndef FB_INSTALL_PLUGIN_DIR
#define FB_INSTALL_PLUGIN_DIR "lib/fairbench/plugins"
#endif

// ----------------------------------------------------------------------------
// Folder list

static int add_dir(fb_backend_list *list, const char *dir) {
    if (!dir || !dir[0]) return 0;
    char resolved[PATH_MAX];
    const char *use = realpath(dir, resolved) ? resolved : dir;
    for (size_t i = 0; i < list->n_dirs; i++)
        if (strcmp(list->dirs[i], use) == 0) return 0;
    char **dirs = realloc(list->dirs, (list->n_dirs + 1) * sizeof *dirs);
    if (!dirs) return -1;
    list->dirs = dirs;
    if (!(dirs[list->n_dirs] = strdup(use))) return -1;
    list->n_dirs++;
    return 0;
}

/* <dir of the running executable>/../lib/fairbench/plugins */
static void installed_dir(char *out, size_t size) {
    char exe[PATH_MAX];
    out[0] = '\0';
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = '\0';
    if (strlen(exe) + sizeof "/../" FB_INSTALL_PLUGIN_DIR > size) return;
    memcpy(out, exe, strlen(exe));
    memcpy(out + strlen(exe), "/../" FB_INSTALL_PLUGIN_DIR, sizeof "/../" FB_INSTALL_PLUGIN_DIR);
}

// ----------------------------------------------------------------------------
// Vetting

static bool valid_name(const char *name) {
    if (!name || !name[0] || strlen(name) >= 64) return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return false;
    return true;
}

int fb_backend_vet(const fb_plugin *api, const char *path, char *reason, size_t reason_size) {
    if (!api) {
        snprintf(reason, reason_size, "%s: %s() returned NULL (the plugin refuses this host)", path,
                 FB_PLUGIN_ENTRY_SYMBOL);
        return -1;
    }
    if (api->abi_major != FB_ABI_MAJOR) {
        snprintf(reason, reason_size, "%s: speaks plugin ABI %u.%u, but this fairbench speaks ABI %d.%d (majors differ)",
                 path, api->abi_major, api->abi_minor, FB_ABI_MAJOR, FB_ABI_MINOR);
        return -1;
    }
    if (api->struct_size < FB_PLUGIN_V1_0_SIZE) {
        snprintf(reason, reason_size, "%s: declares a plugin table of %u bytes, but ABI 1.0 needs at least %zu",
                 path, api->struct_size, (size_t)FB_PLUGIN_V1_0_SIZE);
        return -1;
    }
    if (!valid_name(api->name)) {
        snprintf(reason, reason_size, "%s: backend name '%.63s' is not 1-63 characters of [a-z0-9_]", path,
                 api->name ? api->name : "(null)");
        return -1;
    }
    struct { const char *call; const void *fn; } required[] = {
        {"probe", (const void *)api->probe}, {"create", (const void *)api->create},
        {"prefill", (const void *)api->prefill}, {"decode", (const void *)api->decode},
        {"reset", (const void *)api->reset}, {"memory", (const void *)api->memory},
        {"effective_settings", (const void *)api->effective_settings},
        {"last_error", (const void *)api->last_error}, {"destroy", (const void *)api->destroy},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i].fn) {
            snprintf(reason, reason_size, "%s: backend '%s' lacks the required call '%s'", path, api->name,
                     required[i].call);
            return -1;
        }
    return 0;
}

/* Appends an entry for path to list (unusable, with reason, until proven
 * otherwise); NULL when out of memory. */
static fb_backend *add_entry(fb_backend_list *list, const char *path) {
    fb_backend *items = realloc(list->items, (list->n + 1) * sizeof *items);
    if (!items) return NULL;
    list->items = items;
    fb_backend *b = &items[list->n];
    memset(b, 0, sizeof *b);
    if (!(b->path = strdup(path))) return NULL;
    list->n++;
    return b;
}

/* Vets one backend table (the entry's, or one a factory published) and marks
 * b usable unless its name is taken by an earlier usable backend. */
static void accept_backend(fb_backend_list *list, fb_backend *b, void *handle, const fb_plugin *api,
                           const char *where) {
    if (fb_backend_vet(api, where, b->reason, sizeof b->reason) != 0) {
        if (api && valid_name(api->name)) snprintf(b->name, sizeof b->name, "%s", api->name);
        return;
    }
    snprintf(b->name, sizeof b->name, "%s", api->name);
    for (size_t i = 0; i + 1 < list->n; i++) {
        const fb_backend *first = &list->items[i];
        if (first == b || !first->usable || strcmp(first->name, api->name) != 0) continue;
        snprintf(b->reason, sizeof b->reason, "%s: backend name '%s' is already taken by %s (found first)", where,
                 api->name, first->path);
        return;
    }
    b->handle = handle;
    b->api = api;
    b->usable = true;
}

/* Loads the .so at path and appends one entry per backend it publishes: the
 * entry table itself, or each backend of its factory (ABI 1.1). -1 only when
 * out of memory. */
static int load_so(fb_backend_list *list, const char *path) {
    fb_backend *b = add_entry(list, path);
    if (!b) return -1;
    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        snprintf(b->reason, sizeof b->reason, "%s: cannot be loaded: %s", path, why ? why : "unknown dlopen error");
        return 0;
    }
    void *sym = dlsym(handle, FB_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(b->reason, sizeof b->reason, "%s: no entry point %s (not a fairbench plugin)", path,
                 FB_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return 0;
    }
    fb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, as POSIX allows */
    const fb_plugin *api = entry();
    bool factory = api && api->abi_major == FB_ABI_MAJOR && api->struct_size >= FB_PLUGIN_V1_0_SIZE &&
                   FB_PLUGIN_HAS(api, factory_get) && api->factory_count;
    uint32_t count = factory ? api->factory_count(fb_host_services()) : 0;
    if (!factory || count == 0) {
        /* A plain plugin, or a factory with nothing to publish, which is
         * then judged as a plugin of its own (and says why it is empty
         * through its probe when it has the calls). */
        accept_backend(list, b, handle, api, path);
        if (!b->usable) {
            if (factory && !b->reason[0])
                snprintf(b->reason, sizeof b->reason, "%s: its factory publishes no backends", path);
            dlclose(handle);
        }
        return 0;
    }
    if (!api->factory_get) {
        snprintf(b->reason, sizeof b->reason, "%s: has factory_count but no factory_get", path);
        dlclose(handle);
        return 0;
    }
    /* One entry per published backend; the .so stays open for all of them. */
    list->n--;
    free(b->path);
    bool any = false;
    for (uint32_t i = 0; i < count; i++) {
        if (!(b = add_entry(list, path))) return -1;
        const fb_plugin *sub = api->factory_get(fb_host_services(), i);
        char where[PATH_MAX + 64];
        snprintf(where, sizeof where, "%s (backend %u of its factory)", path, i);
        snprintf(b->container, sizeof b->container, "%s", valid_name(api->name) ? api->name : "?");
        if (sub && FB_PLUGIN_HAS(sub, factory_count) && sub->factory_count) {
            snprintf(b->reason, sizeof b->reason, "%.400s: is itself a factory (factories do not nest)", where);
            continue;
        }
        accept_backend(list, b, handle, sub, where);
        any |= b->usable;
    }
    if (!any) dlclose(handle);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every *.so in dir, in name order. */
static int scan_dir(fb_backend_list *list, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0; /* absent folders are normal */
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        char **p = realloc(names, (n + 1) * sizeof *names);
        if (!p || !(p[n] = strdup(e->d_name))) {
            names = p ? p : names;
            rc = -1;
            break;
        }
        names = p;
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        rc = load_so(list, path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int fb_backends_discover(const char *const *cli_dirs, size_t n_cli_dirs, fb_backend_list *out, fb_error *err) {
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (size_t i = 0; i < n_cli_dirs; i++) rc |= add_dir(out, cli_dirs[i]);
    const char *env = getenv("FAIRBENCH_PLUGIN_PATH");
    if (env) {
        char *copy = strdup(env), *save = NULL;
        if (!copy) rc = -1;
        for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok; tok = strtok_r(NULL, ":", &save))
            rc |= add_dir(out, tok);
        free(copy);
    }
    /* An installed binary (its prefix has the plugin folder) never looks in
     * the build tree it was built in: it runs the plugins installed with it. */
    char inst[PATH_MAX];
    installed_dir(inst, sizeof inst);
    struct stat st;
    bool installed = inst[0] && stat(inst, &st) == 0 && S_ISDIR(st.st_mode);
    if (!installed) rc |= add_dir(out, FB_PLUGIN_BUILD_DIR);
    rc |= add_dir(out, inst);
    for (size_t i = 0; i < out->n_dirs && rc == 0; i++) rc |= scan_dir(out, out->dirs[i]);
    if (rc) {
        fb_backends_free(out);
        return fb_error_set(err, "out of memory while loading plugins");
    }
    return 0;
}

void fb_backends_free(fb_backend_list *list) {
    for (size_t i = 0; i < list->n; i++) {
        /* Plugins are not unloaded: a plugin's threads or atexit handlers may
         * still refer to its code, and the process ends soon after anyway. */
        free(list->items[i].path);
    }
    free(list->items);
    for (size_t i = 0; i < list->n_dirs; i++) free(list->dirs[i]);
    free(list->dirs);
    memset(list, 0, sizeof *list);
}

int fb_backend_load(const char *path, const char *name, fb_backend *out, char *names_out, size_t names_size) {
    memset(out, 0, sizeof *out);
    char names[400] = "";
    fb_backend_list one;
    memset(&one, 0, sizeof one);
    if (load_so(&one, path) != 0) {
        fb_backends_free(&one);
        return -1;
    }
    /* The backend asked for; without a name, the only one the .so has. */
    size_t pick = one.n;
    for (size_t i = 0; i < one.n; i++)
        if (name ? strcmp(one.items[i].name, name) == 0 : one.n == 1) pick = i;
    for (size_t i = 0, used = 0; i < one.n && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", one.items[i].name);
    if (names_size) snprintf(names_out, names_size, "%s", names);
    if (pick < one.n) {
        *out = one.items[pick];
        one.items[pick].path = NULL; /* now out's */
    } else {
        if (!(out->path = strdup(path))) {
            fb_backends_free(&one);
            return -1;
        }
        if (name)
            snprintf(out->reason, sizeof out->reason, "%s: publishes no backend named '%s' (it has: %s)", path, name,
                     one.n ? names : "none");
        else
            snprintf(out->reason, sizeof out->reason, "%s: publishes %zu backends (%s): name one", path, one.n, names);
    }
    fb_backends_free(&one);
    return out->usable ? 0 : -1;
}

const fb_backend *fb_backends_find(const fb_backend_list *list, const char *name) {
    for (size_t i = 0; i < list->n; i++)
        if (list->items[i].usable && strcmp(list->items[i].name, name) == 0) return &list->items[i];
    return NULL;
}
