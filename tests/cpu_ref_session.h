/* cpu_ref_session.h - test helpers: open a model, find a backend through the
 * real loader (plugin folders, dlopen, vetting) and run it. */
#ifndef FB_TEST_CPU_REF_SESSION_H
#define FB_TEST_CPU_REF_SESSION_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "model.h"
#include "plugin_host.h"

typedef struct test_model {
    fb_model *model;
    fb_model_view_owner view;
} test_model;

static inline int test_model_open(const char *path, test_model *tm) {
    fb_error err;
    memset(tm, 0, sizeof *tm);
    if (fb_model_open(path, &tm->model, &err) || fb_model_view_build(tm->model, &tm->view, &err)) {
        printf("cannot open %s: %s\n", path, err.msg);
        return -1;
    }
    return 0;
}

static inline void test_model_close(test_model *tm) {
    fb_model_view_free(&tm->view);
    fb_model_close(tm->model);
}

/* The usable backend `name` from the build tree's plugin folder, or NULL. */
static inline const fb_plugin *test_find_backend(fb_backend_list *list, const char *name) {
    fb_error err;
    if (fb_backends_discover(NULL, 0, list, &err)) {
        printf("plugin discovery failed: %s\n", err.msg);
        return NULL;
    }
    const fb_backend *b = fb_backends_find(list, name);
    if (!b) printf("backend %s not found\n", name);
    return b ? b->api : NULL;
}

static inline fb_session *test_create(const fb_plugin *api, const test_model *tm, fb_precision precision, int threads,
                                      uint32_t max_context) {
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = precision,
                            .accumulate_precision = FB_PRECISION_F32,
                            .threads = threads,
                            .max_context = max_context};
    fb_session *s = NULL;
    char message[512] = "";
    fb_status st = api->create(fb_host_services(), &tm->view.view, &settings, &s, message, sizeof message);
    if (st != FB_OK) printf("create failed (%d): %s\n", (int)st, message);
    return s;
}

/* max |a - b| / max |b| over n values: the relative error the goldens use. */
static inline double rel_error(const float *a, const float *b, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > max_diff || isnan(d)) max_diff = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > max_ref) max_ref = fabs((double)b[i]);
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

static inline int argmax_f(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int)best;
}

#endif
