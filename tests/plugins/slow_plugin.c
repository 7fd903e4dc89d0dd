/* slow_plugin.c - "slow_ref": cpu_ref itself, loaded from CPU_REF_PATH, with
 * a sleep of $FB_TEST_DECODE_DELAY_US microseconds (read at create) added to
 * every decode. It computes exactly what cpu_ref computes, so it passes the
 * agreement check; only its speed is changed, which is what the results
 * history's regression check (fairbench trend --fail-on-regression) must
 * notice. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

#include "fairbench/plugin.h"

static fb_plugin slow;
static fb_status (*inner_decode)(fb_session *s, int32_t token, float *logits, int32_t *next_token);
static fb_status (*inner_create)(const fb_host *host, const fb_model_view *model, const fb_settings *settings,
                                 fb_session **out, char *message, size_t message_size);
static long delay_us;

static fb_status create(const fb_host *host, const fb_model_view *model, const fb_settings *settings,
                        fb_session **out, char *message, size_t message_size) {
    const char *env = getenv("FB_TEST_DECODE_DELAY_US");
    delay_us = env ? strtol(env, NULL, 10) : 0;
    return inner_create(host, model, settings, out, message, message_size);
}

static fb_status decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    fb_status st = inner_decode(s, token, logits, next_token);
    if (delay_us > 0) {
        struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0) {}
    }
    return st;
}

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) {
    if (inner_decode) return &slow;
    void *so = dlopen(CPU_REF_PATH, RTLD_NOW | RTLD_LOCAL);
    fb_plugin_entry_fn entry = so ? (fb_plugin_entry_fn)dlsym(so, FB_PLUGIN_ENTRY_SYMBOL) : NULL;
    const fb_plugin *cpu_ref = entry ? entry() : NULL;
    if (!cpu_ref) return NULL;
    slow = *cpu_ref;
    slow.name = "slow_ref";
    slow.description = "cpu_ref with a sleep added to each decode ($FB_TEST_DECODE_DELAY_US), for regression tests";
    inner_create = cpu_ref->create;
    inner_decode = cpu_ref->decode;
    slow.create = create;
    slow.decode = decode;
    return &slow;
}
