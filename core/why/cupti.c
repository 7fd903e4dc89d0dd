/* cupti.c - loading the CUPTI recorder at run time (cupti.h). */
#include "why/cupti.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FB_CUPTI_RECORDER_PATH
#define FB_CUPTI_RECORDER_PATH "" /* the build found no CUPTI */
#endif

/* FAIRBENCH_CUPTI_RECORDER; else <bin>/../lib/fairbench/fb_cupti_recorder.so
 * beside an installed binary; else the one this build made ("" if none). */
const char *why_cupti_recorder_path(void) {
    const char *env = getenv("FAIRBENCH_CUPTI_RECORDER");
    if (env && *env) return env;
    static char installed[4096];
    ssize_t n = readlink("/proc/self/exe", installed, sizeof installed - 64);
    if (n > 0) {
        installed[n] = '\0';
        char *slash = strrchr(installed, '/');
        if (slash) {
            strcpy(slash, "/../lib/fairbench/fb_cupti_recorder.so");
            if (access(installed, R_OK) == 0) return installed;
        }
    }
    return FB_CUPTI_RECORDER_PATH;
}

int why_cupti_open(why_cupti *c, char *why_not, size_t why_not_size) {
    memset(c, 0, sizeof *c);
    const char *path = why_cupti_recorder_path();
    if (!*path) {
        snprintf(why_not, why_not_size, "not available: this build found no CUPTI (the CUDA toolkit's), so it has no recorder");
        return -1;
    }
    c->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        const char *e = dlerror();
        snprintf(why_not, why_not_size, "not available: the CUPTI recorder cannot be loaded: %s", e ? e : path);
        return -1;
    }
    *(void **)&c->start = dlsym(c->lib, "fb_cupti_recorder_start");
    *(void **)&c->now = dlsym(c->lib, "fb_cupti_recorder_now");
    *(void **)&c->stop = dlsym(c->lib, "fb_cupti_recorder_stop");
    char msg[256] = "";
    if (!c->start || !c->now || !c->stop) {
        snprintf(why_not, why_not_size, "not available: %s lacks the fb_cupti_recorder_* symbols", path);
    } else if (c->start(msg, sizeof msg) == 0) {
        return 0;
    } else {
        snprintf(why_not, why_not_size, "not available: %s", msg);
    }
    /* Not dlclose()d: CUPTI may already hold the recorder's callbacks. */
    memset(c, 0, sizeof *c);
    return -1;
}
