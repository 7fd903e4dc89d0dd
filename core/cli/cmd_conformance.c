/* cmd_conformance.c - `fairbench conformance PLUGIN.so`: the plugin ABI's
 * contract, checked on any plugin.
 *
 * Two synthetic models are written to a temporary folder, shaped so that a
 * wrong guess about the forward pass fails (write_models(),
 * docs/forward-pass.md): "tiny" (F32, context 64) and "gqa" (Q8_0, tied
 * output, RoPE factors, context 48), both grouped-query with several KV
 * heads and n_rot < head_dim. The token array of every call is valid for
 * its n_tokens (a plugin may read every id before anything else). cpu_ref, found
 * in the plugin folders, computes the reference logits of a fixed token
 * sequence at f32 on each. Then every check runs in a child process of its
 * own that loads the plugin, so a crash becomes a FAIL line naming the
 * signal, a hang is killed after --timeout seconds, and one defect does not
 * hide the others. The parent never loads the plugin (nor cpu_ref: the
 * reference runs in a child too), so CUDA plugins initialise their runtime
 * in the child that uses it.
 *
 * Every check prints one line, `PASS name: what was seen` or `FAIL name:
 * why`; `SKIP name: why` when the plugin's probe says its hardware is not
 * here. A check also fails when the plugin wrote to stdout, or when its
 * process ended with a non-zero status after reporting (a leak report or a
 * crash at exit).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT: what threads = 0 means */
#endif
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "abi_names.h"
#include "supervisor.h"
#include "agreement.h"
#include "backends.h"
#include "fb_version.h"
#include "model.h"
#include "plugin_host.h"
#include "profile.h"
#include "synth.h"

#define MAX_PLUGIN_DIRS 16
#define N_MODELS 2
#define CREATE_CYCLES 8       /* create_destroy: sessions made and destroyed */
#define MAX_PREFILL_LENGTH 32 /* prefill_lengths: 1..this, then the whole context */
#define GUARD_FLOATS 64       /* sentinel floats after every logits buffer */
#define GUARD_BYTES 64        /* sentinel bytes after every struct the plugin fills */

static const float GUARD_VALUE = -12345.678f;

// ----------------------------------------------------------------------------
// What the checks share

typedef struct conf_model {
    const char *label; /* "tiny", "gqa" */
    char shape[200];   /* for the header line */
    char path[PATH_MAX + 32];
    fb_model *model;
    fb_model_view_owner view;
    uint32_t n_ctx, n_vocab;
    int32_t *tokens; /* n_ctx ids: the sequence every check feeds */
    float *ref;      /* [n_ctx][n_vocab] cpu_ref's f32 logits (a shared mapping) */
    size_t ref_bytes;
} conf_model;

typedef struct conf {
    const char *plugin_path;
    const char *backend_name; /* --backend: which of a factory's backends (NULL: the only one) */
    fb_precision precision;
    int threads;
    double timeout_s;
    const char *dirs[MAX_PLUGIN_DIRS];
    size_t n_dirs;
    char tmpdir[PATH_MAX];
    conf_model models[N_MODELS];
    bool no_rss_check;    /* --no-rss-check: a plugin built with a sanitizer (its allocator keeps memory) */
    uint32_t caps;        /* the plugin's capabilities, known after the load check */
    const fb_plugin *api; /* in a check's child: the loaded plugin */
} conf;

/* What a check's child sends back through its pipe. */
typedef struct check_result {
    char verdict; /* 'P' pass, 'F' fail, 'S' skip */
    char text[1200];
    uint32_t caps;     /* load: the plugin's capabilities */
    int32_t available; /* probe: 1 available, 0 not, -1 unknown */
    char name[64], version[32];
} check_result;

static void set_result(check_result *r, char verdict, const char *fmt, va_list ap) {
    r->verdict = verdict;
    vsnprintf(r->text, sizeof r->text, fmt, ap);
}

static void pass(check_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pass(check_result *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_result(r, 'P', fmt, ap);
    va_end(ap);
}

static void failf(check_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(check_result *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_result(r, 'F', fmt, ap);
    va_end(ap);
}

/* Inside a check: on a false condition, record the reason and leave. */
#define REQUIRE(cond, ...)         \
    do {                           \
        if (!(cond)) {             \
            failf(r, __VA_ARGS__); \
            goto out;              \
        }                          \
    } while (0)

/* What *out holds before a create() that must fail: it must become NULL. */
static char sentinel_byte;
#define SENTINEL_SESSION ((fb_session *)(void *)&sentinel_byte)

/* True when the n bytes of a char array hold a NUL. */
static bool terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

// ----------------------------------------------------------------------------
// Sessions and buffers, inside a check's child

static fb_settings settings_for(const conf *c, uint32_t max_context) {
    fb_settings st = {
        .struct_size = sizeof st,
        .weight_precision = c->precision,
        .accumulate_precision = FB_PRECISION_F32,
        .allow_jit = 1,
        .allow_graphs = 1,
        .jit_cache = FB_JIT_CACHE_WARM,
        .threads = c->threads,
        .max_context = max_context,
        .cache_dir = NULL,
        .device_index = 0,
    };
    return st;
}

/* create(), with the reason in r when it fails. */
static fb_session *open_session(const conf *c, const conf_model *m, const fb_settings *settings, check_result *r) {
    fb_session *s = NULL;
    char message[512];
    memset(message, 0, sizeof message);
    fb_status st = c->api->create(fb_host_services(), &m->view.view, settings, &s, message, sizeof message);
    if (st != FB_OK) {
        message[sizeof message - 1] = '\0';
        failf(r, "create on the %s model (%s) returned %s: %s", m->label, fb_precision_name(settings->weight_precision),
              fb_status_name(st), message[0] ? message : "(no message)");
        return NULL;
    }
    if (!s) failf(r, "create on the %s model returned FB_OK but no session", m->label);
    return s;
}

/* A logits buffer of n floats and its guard, every float a sentinel. */
typedef struct logits_buf {
    float *data;
    size_t n;
} logits_buf;

static int logits_alloc(logits_buf *b, size_t n) {
    b->n = n;
    b->data = malloc((n + GUARD_FLOATS) * sizeof *b->data);
    return b->data ? 0 : -1;
}

/* NaN in the buffer (a plugin that does not write logits leaves NaN), the
 * sentinel in the guard. */
static void logits_poison(logits_buf *b) {
    for (size_t i = 0; i < b->n; i++) b->data[i] = NAN;
    for (size_t i = 0; i < GUARD_FLOATS; i++) b->data[b->n + i] = GUARD_VALUE;
}

/* The guard is intact after the first `used` floats of the buffer (a plugin
 * may write only what the call asked for). */
static bool logits_guard_ok(const logits_buf *b, size_t used) {
    for (size_t i = used; i < b->n; i++)
        if (!isnan(b->data[i])) return false;
    for (size_t i = 0; i < GUARD_FLOATS; i++)
        if (b->data[b->n + i] != GUARD_VALUE) return false;
    return true;
}

// ----------------------------------------------------------------------------
// Agreement with the reference: the main job's bars and maths (agreement.h),
// against cpu_ref's f32 logits

typedef fb_agreement agreement;

static int agreement_check(const agreement *a, char *why, size_t size) {
    return fb_agreement_check(a, "cpu_ref", why, size);
}

/* One call's output: the logits written where asked and nowhere else, and
 * next_token the argmax of the last position's logits (lowest id on ties).
 * rows: how many positions of logits the call wrote (0 with FB_LOGITS_NONE);
 * first_pos: the position of the first of them. Adds them to a. */
static int check_output(const conf_model *m, const logits_buf *b, uint32_t rows, int first_pos, int32_t next,
                        agreement *a, const char *what, check_result *r) {
    uint32_t V = m->n_vocab;
    if (!logits_guard_ok(b, (size_t)rows * V)) {
        failf(r, "%s wrote past the %u logits it was asked for (a sentinel after them changed)", what, rows * V);
        return -1;
    }
    if (next < 0 || (uint32_t)next >= V) {
        failf(r, "%s returned next token %d, outside the vocabulary of %u", what, (int)next, V);
        return -1;
    }
    for (uint32_t i = 0; i < rows; i++) {
        const float *row = b->data + (size_t)i * V;
        for (uint32_t v = 0; v < V; v++)
            if (!isfinite(row[v])) {
                failf(r, "%s: logit %u of position %d is %s (not written, or not finite)", what, v, first_pos + (int)i,
                      isnan(row[v]) ? "NaN" : "infinite");
                return -1;
            }
        fb_agreement_add(a, row, m->ref + (size_t)(first_pos + (int)i) * V, V, first_pos + (int)i);
    }
    if (rows > 0) {
        int own = fb_argmax(b->data + (size_t)(rows - 1) * V, V);
        if (own != next) {
            failf(r,
                  "%s returned next token %d, but the argmax of its own logits at position %d is %d (lowest id on "
                  "ties)",
                  what, (int)next, first_pos + (int)rows - 1, own);
            return -1;
        }
    }
    return 0;
}

/* prefill of tokens [pos, pos + n) of m, checked as above. */
static int prefill_checked(const conf *c, fb_session *s, const conf_model *m, int pos, uint32_t n, uint32_t flags,
                           logits_buf *b, agreement *a, int32_t *next_out, check_result *r) {
    char what[96];
    snprintf(what, sizeof what, "prefill of %u token%s at position %d (%s)", n, n == 1 ? "" : "s", pos,
             flags == FB_LOGITS_ALL    ? "all logits"
             : flags == FB_LOGITS_LAST ? "last logits"
                                       : "no logits");
    logits_poison(b);
    int32_t next = -1;
    fb_status st = c->api->prefill(s, m->tokens + pos, n, flags, flags == FB_LOGITS_NONE ? NULL : b->data, &next);
    if (st != FB_OK) {
        failf(r, "%s returned %s: %s", what, fb_status_name(st), c->api->last_error(s));
        return -1;
    }
    uint32_t rows = flags == FB_LOGITS_ALL ? n : flags == FB_LOGITS_LAST ? 1 : 0;
    int first = flags == FB_LOGITS_ALL ? pos : pos + (int)n - 1;
    if (check_output(m, b, rows, first, next, a, what, r)) return -1;
    if (next_out) *next_out = next;
    return 0;
}

/* decode of token m->tokens[pos] at position pos; logits when with_logits. */
static int decode_checked(const conf *c, fb_session *s, const conf_model *m, int pos, bool with_logits, logits_buf *b,
                          agreement *a, int32_t *next_out, check_result *r) {
    char what[96];
    snprintf(what, sizeof what, "decode at position %d (%s)", pos, with_logits ? "with logits" : "no logits");
    logits_poison(b);
    int32_t next = -1;
    fb_status st = c->api->decode(s, m->tokens[pos], with_logits ? b->data : NULL, &next);
    if (st != FB_OK) {
        failf(r, "%s returned %s: %s", what, fb_status_name(st), c->api->last_error(s));
        return -1;
    }
    if (check_output(m, b, with_logits ? 1 : 0, pos, next, a, what, r)) return -1;
    if (next_out) *next_out = next;
    return 0;
}

/* After a call that must fail: the status expected, and a sentence. */
static int expect_refusal(const conf *c, fb_session *s, fb_status got, fb_status want, const char *what,
                          check_result *r) {
    if (got == FB_OK) {
        failf(r, "%s returned FB_OK; it must be refused with %s", what, fb_status_name(want));
        return -1;
    }
    if (got != want) {
        failf(r, "%s returned %s; the ABI's status for it is %s", what, fb_status_name(got), fb_status_name(want));
        return -1;
    }
    const char *e = c->api->last_error(s);
    if (!e || !e[0]) {
        failf(r, "%s was refused with %s, but last_error() is empty afterwards", what, fb_status_name(got));
        return -1;
    }
    return 0;
}

static int agreement_require(const agreement *a, const char *what, check_result *r) {
    char why[512];
    if (agreement_check(a, why, sizeof why) == 0) return 0;
    failf(r, "%s: %s", what, why);
    return -1;
}

// ----------------------------------------------------------------------------
// Process-wide figures for the create/destroy check

static long rss_bytes(void) {
    FILE *fp = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!fp) return -1;
    int n = fscanf(fp, "%ld %ld", &size, &resident);
    fclose(fp);
    return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

static int thread_count(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    int threads = -1;
    if (!fp) return -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "Threads: %d", &threads) == 1) break;
    fclose(fp);
    return threads;
}

/* The device string's format (plugin.h): one line of printable text, the
 * hardware first; a CPU backend's begins "CPU" then ':' (the model name
 * follows), ',' or the end. NULL when it keeps to it, else what is wrong. */
static const char *device_format_error(const char *device, uint32_t caps) {
    if (!device[0]) return "it is empty";
    for (const unsigned char *p = (const unsigned char *)device; *p; p++)
        if (*p < 0x20 || *p == 0x7F) return "it holds a control character (one line of printable text)";
    if ((caps & FB_CAP_CPU) && !(caps & FB_CAP_GPU) &&
        !(strncmp(device, "CPU", 3) == 0 && (device[3] == '\0' || device[3] == ':' || device[3] == ',')))
        return "a CPU backend's device begins \"CPU: <model name>\" (or \"CPU,\" when the model is unknown)";
    return NULL;
}

// ----------------------------------------------------------------------------
// The checks. Each runs in a child that has loaded the plugin (c->api).

typedef void (*check_fn)(const conf *c, const conf_model *m, check_result *r);

/* The table: vetted by the loader already; here what the loader lets pass. */
static void check_load(const conf *c, const conf_model *m, check_result *r) {
    (void)m;
    const fb_plugin *p = c->api;
    char caps[128];
    fb_caps_format(p->capabilities, caps, sizeof caps);
    r->caps = p->capabilities;
    snprintf(r->name, sizeof r->name, "%s", p->name);
    snprintf(r->version, sizeof r->version, "%s", p->version ? p->version : "");
    REQUIRE(p->version && p->version[0], "the plugin table has no version string");
    REQUIRE(p->description && p->description[0], "the plugin table has no description");
    REQUIRE(p->capabilities & (FB_CAP_CPU | FB_CAP_GPU), "capabilities (%s) name neither FB_CAP_CPU nor FB_CAP_GPU",
            caps);
    REQUIRE(p->capabilities &
                (FB_CAP_PRECISION_F32 | FB_CAP_PRECISION_F16 | FB_CAP_PRECISION_BF16 | FB_CAP_PRECISION_NATIVE),
            "capabilities (%s) claim no weight precision (FB_CAP_PRECISION_*)", caps);
    REQUIRE(p->abi_minor > FB_ABI_MINOR || !(p->capabilities & ~FB_KNOWN_CAPS),
            "capabilities have bits ABI %u.%u does not define (0x%x)", p->abi_major, p->abi_minor,
            p->capabilities & ~FB_KNOWN_CAPS);
    REQUIRE(!(p->capabilities & FB_CAP_COPY_PROBE) || p->copy_bandwidth,
            "capabilities claim FB_CAP_COPY_PROBE but copy_bandwidth is NULL");
    pass(r, "%s %s, ABI %u.%u, capabilities %s", p->name, p->version, p->abi_major, p->abi_minor, caps);
out:;
}

/* Fill a probe result the way the host does, sentinel bytes elsewhere. */
static fb_status probe_once(const conf *c, fb_probe_result *out) {
    memset(out, 0x5A, sizeof *out);
    out->struct_size = sizeof *out;
    return c->api->probe(fb_host_services(), out);
}

static void check_probe(const conf *c, const conf_model *m, check_result *r) {
    (void)m;
    fb_probe_result a, b;
    uint32_t p_caps = c->api->capabilities;
    r->available = -1;
    fb_status st = probe_once(c, &a);
    REQUIRE(st == FB_OK, "probe returned %s (it returns FB_OK whether or not the hardware is here)",
            fb_status_name(st));
    REQUIRE(a.available == 0 || a.available == 1, "probe set available = %d (0 or 1)", (int)a.available);
    REQUIRE(terminated(a.device, sizeof a.device), "probe left device[] without a terminating NUL");
    REQUIRE(terminated(a.reason, sizeof a.reason), "probe left reason[] without a terminating NUL");
    REQUIRE(!a.available || a.device[0], "probe says available but names no device");
    REQUIRE(a.available || a.reason[0], "probe says unavailable but gives no reason");
    const char *bad_device = a.available ? device_format_error(a.device, p_caps) : NULL;
    REQUIRE(!bad_device, "probe's device '%s' does not follow plugin.h's format: %s", a.device, bad_device);
    st = probe_once(c, &b);
    REQUIRE(st == FB_OK && b.available == a.available, "a second probe answered differently (%s, available %d)",
            fb_status_name(st), (int)b.available);
    r->available = a.available;
    if (a.available) pass(r, "available: %s", a.device);
    else
        pass(r, "unavailable: %s", a.reason);
out:;
}

/* Probe said unavailable: create must fail cleanly, not crash. */
static void check_create_unavailable(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    fb_session *s = SENTINEL_SESSION;
    char message[512];
    memset(message, 0x5A, sizeof message);
    fb_status st = c->api->create(fb_host_services(), &m->view.view, &settings, &s, message, sizeof message);
    if (st == FB_OK) {
        if (s && s != SENTINEL_SESSION) c->api->destroy(s);
        failf(r, "probe says unavailable, but create succeeded");
        return;
    }
    REQUIRE(s == NULL, "create returned %s but did not set *out to NULL", fb_status_name(st));
    REQUIRE(terminated(message, sizeof message) && message[0],
            "create returned %s without a NUL-terminated sentence in the message buffer", fb_status_name(st));
    pass(r, "create refused with %s: %s", fb_status_name(st), message);
out:;
}

/* Sessions made and destroyed repeatedly: each one works, memory and
 * threads come back, and destroy(NULL) is allowed. */
static void check_create_destroy(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    uint64_t first_host = 0, first_device = 0, session_bytes = 0;
    long rss_after_first = 0, rss_after_last = 0;
    int threads_after_first = 0, threads_after_last = 0;
    REQUIRE(logits_alloc(&b, m->n_vocab) == 0, "out of memory");
    for (int i = 0; i < CREATE_CYCLES; i++) {
        fb_session *s = open_session(c, m, &settings, r);
        if (!s) {
            char why[sizeof r->text];
            snprintf(why, sizeof why, "%s", r->text);
            failf(r, "session %d of %d: %s", i + 1, CREATE_CYCLES, why);
            goto out;
        }
        fb_memory_stats mem;
        memset(&mem, 0, sizeof mem);
        mem.struct_size = sizeof mem;
        fb_status st = c->api->memory(s, &mem);
        agreement a;
        fb_agreement_init(&a, c->precision);
        int32_t next;
        int bad = st != FB_OK || prefill_checked(c, s, m, 0, 2, FB_LOGITS_LAST, &b, &a, &next, r);
        c->api->destroy(s);
        REQUIRE(st == FB_OK, "memory() on session %d returned %s", i + 1, fb_status_name(st));
        if (bad) goto out;
        if (i == 0) {
            first_host = mem.host_bytes, first_device = mem.device_bytes;
            session_bytes = mem.host_bytes + mem.device_bytes;
        }
        REQUIRE(mem.host_bytes <= first_host + first_host / 10 + 65536 &&
                    mem.device_bytes <= first_device + first_device / 10 + 65536,
                "session %d reports %llu host and %llu device bytes, the first %llu and %llu: memory kept from one "
                "session to the next?",
                i + 1, (unsigned long long)mem.host_bytes, (unsigned long long)mem.device_bytes,
                (unsigned long long)first_host, (unsigned long long)first_device);
        if (i == 1) rss_after_first = rss_bytes(), threads_after_first = thread_count();
        if (i == CREATE_CYCLES - 1) rss_after_last = rss_bytes(), threads_after_last = thread_count();
    }
    c->api->destroy(NULL); /* "NULL is allowed" */
    REQUIRE(threads_after_last <= threads_after_first,
            "%d threads after session 2 was destroyed, %d after session %d: destroy() leaves threads running",
            threads_after_first, threads_after_last, CREATE_CYCLES);
    if (strcmp(FB_BUILD_FLAVOUR, "sanitizer") == 0 || c->no_rss_check) {
        /* A sanitizer's allocator keeps freed memory (ASan's quarantine,
         * TSan's shadow): RSS says nothing; its leak report at exit says it
         * instead. */
        pass(r, "%d sessions created, used and destroyed; threads stable (RSS not checked: %s)", CREATE_CYCLES,
             c->no_rss_check ? "--no-rss-check" : "fairbench built with AddressSanitizer");
    } else {
        long growth = rss_after_last - rss_after_first;
        long allowed = (long)(3 * session_bytes) > (1L << 20) ? (long)(3 * session_bytes) : (1L << 20);
        REQUIRE(growth <= allowed,
                "resident memory grew by %.1f MB over %d create/destroy cycles (a session reports %.1f MB): destroy() "
                "does not free everything",
                growth / 1048576.0, CREATE_CYCLES - 2, session_bytes / 1048576.0);
        pass(r, "%d sessions created, used and destroyed; RSS %+.2f MB over the last %d, threads stable", CREATE_CYCLES,
             growth / 1048576.0, CREATE_CYCLES - 2);
    }
out:
    free(b.data);
}

/* Precisions the plugin does not claim, and one no ABI defines, are refused
 * at create with a sentence: never a crash, never a silent substitute. */
static void check_unsupported_precision(const conf *c, const conf_model *m, check_result *r) {
    char refused[600] = "";
    size_t used = 0;
    for (int p = 0; p <= 4; p++) {
        bool defined = p <= FB_PRECISION_NATIVE;
        if (defined && (c->caps & fb_precision_cap((fb_precision)p))) continue;
        fb_settings settings = settings_for(c, 0);
        settings.weight_precision = (fb_precision)(defined ? p : 7);
        fb_session *s = SENTINEL_SESSION;
        char message[512];
        memset(message, 0x5A, sizeof message);
        char what[64];
        if (defined) snprintf(what, sizeof what, "%s (not in its capabilities)", fb_precision_name((fb_precision)p));
        else
            snprintf(what, sizeof what, "precision 7 (no such fb_precision)");
        fb_status st = c->api->create(fb_host_services(), &m->view.view, &settings, &s, message, sizeof message);
        if (st == FB_OK) {
            if (s && s != SENTINEL_SESSION) c->api->destroy(s);
            failf(r, "create with weight precision %s returned FB_OK; it must be refused", what);
            return;
        }
        REQUIRE(defined ? st == FB_ERR_UNSUPPORTED : st == FB_ERR_UNSUPPORTED || st == FB_ERR_INVALID_ARGUMENT,
                "create with weight precision %s returned %s, not FB_ERR_UNSUPPORTED", what, fb_status_name(st));
        REQUIRE(s == NULL, "create with weight precision %s failed but did not set *out to NULL", what);
        REQUIRE(terminated(message, sizeof message) && message[0],
                "create with weight precision %s failed without a NUL-terminated sentence in the message buffer", what);
        if (used < sizeof refused)
            used += (size_t)snprintf(refused + used, sizeof refused - used, "%s%s", used ? ", " : "",
                                     defined ? fb_precision_name((fb_precision)p) : "precision 7");
    }
    pass(r, "refused %s with FB_ERR_UNSUPPORTED and a sentence", refused);
out:;
}

/* Token ids outside the vocabulary are FB_ERR_INVALID_ARGUMENT, and the
 * session is unchanged by the refused calls. */
static void check_invalid_token(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) return;
    REQUIRE(logits_alloc(&b, (size_t)4 * m->n_vocab) == 0, "out of memory");
    int32_t bad[3][2] = {{(int32_t)m->n_vocab, 0}, {-1, 0}, {m->tokens[0], (int32_t)m->n_vocab + 7}};
    uint32_t lengths[3] = {1, 1, 2};
    int32_t next = 0;
    for (int i = 0; i < 3; i++) {
        char what[96];
        if (lengths[i] == 2) snprintf(what, sizeof what, "prefill of [%d, %d]", (int)bad[i][0], (int)bad[i][1]);
        else
            snprintf(what, sizeof what, "prefill of [%d]", (int)bad[i][0]);
        logits_poison(&b);
        fb_status st = c->api->prefill(s, bad[i], lengths[i], FB_LOGITS_LAST, b.data, &next);
        if (expect_refusal(c, s, st, FB_ERR_INVALID_ARGUMENT, what, r)) goto out;
    }
    fb_status st = c->api->decode(s, (int32_t)m->n_vocab, b.data, &next);
    char what[64];
    snprintf(what, sizeof what, "decode of token %u", m->n_vocab);
    if (expect_refusal(c, s, st, FB_ERR_INVALID_ARGUMENT, what, r)) goto out;
    // The refused calls left the session at position 0:
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (prefill_checked(c, s, m, 0, 4, FB_LOGITS_ALL, &b, &a, NULL, r)) goto out;
    if (agreement_require(&a, "after the refused calls, positions 0..3", r)) goto out;
    pass(r,
         "ids %u, -1 and a bad second id refused by prefill, %u by decode, all FB_ERR_INVALID_ARGUMENT with a "
         "sentence; the session stayed at position 0",
         m->n_vocab, m->n_vocab);
out:
    free(b.data);
    c->api->destroy(s);
}

/* reset() forgets every position: the same prompt gives the same answer. */
static void check_reset(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf first = {0}, again = {0};
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) return;
    REQUIRE(logits_alloc(&first, m->n_vocab) == 0 && logits_alloc(&again, m->n_vocab) == 0, "out of memory");
    fb_status st = c->api->reset(s);
    REQUIRE(st == FB_OK, "reset on a fresh session returned %s: %s", fb_status_name(st), c->api->last_error(s));
    agreement a;
    fb_agreement_init(&a, c->precision);
    int32_t next1, next2, ignored;
    if (prefill_checked(c, s, m, 0, 6, FB_LOGITS_LAST, &first, &a, &next1, r)) goto out;
    for (int pos = 6; pos < 10; pos++)
        if (decode_checked(c, s, m, pos, false, &again, &a, &ignored, r)) goto out;
    st = c->api->reset(s);
    REQUIRE(st == FB_OK, "reset returned %s: %s", fb_status_name(st), c->api->last_error(s));
    if (prefill_checked(c, s, m, 0, 6, FB_LOGITS_LAST, &again, &a, &next2, r)) {
        char why[sizeof r->text];
        snprintf(why, sizeof why, "%s", r->text);
        failf(r, "after reset: %s", why);
        goto out;
    }
    double max_diff = 0, max_ref = 0;
    for (uint32_t v = 0; v < m->n_vocab; v++) {
        double d = fabs((double)again.data[v] - (double)first.data[v]);
        if (d > max_diff) max_diff = d;
        if (fabs((double)first.data[v]) > max_ref) max_ref = fabs((double)first.data[v]);
    }
    REQUIRE(next1 == next2 && max_diff <= 1e-4 * max_ref + 1e-6,
            "the same 6-token prompt after reset gives next token %d and logits up to %.3g apart, before it gave %d: "
            "reset does not forget the earlier positions",
            (int)next2, max_diff, (int)next1);
    if (agreement_require(&a, "prefill and decode around a reset", r)) goto out;
    st = c->api->reset(s);
    REQUIRE(st == FB_OK, "a second reset returned %s", fb_status_name(st));
    st = c->api->reset(s);
    REQUIRE(st == FB_OK, "reset twice in a row returned %s", fb_status_name(st));
    pass(r, "the same prompt after reset gives the same next token and logits within %.2g (%s)", max_diff,
         max_diff == 0 ? "bit for bit" : "rounding");
out:
    free(first.data);
    free(again.data);
    c->api->destroy(s);
}

/* Prompts of every length from 1 up, and the whole context at once. */
static void check_prefill_lengths(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    int32_t nexts[MAX_PREFILL_LENGTH + 1];
    uint32_t max_len = m->n_ctx < MAX_PREFILL_LENGTH ? m->n_ctx : MAX_PREFILL_LENGTH;
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) return;
    REQUIRE(logits_alloc(&b, (size_t)m->n_ctx * m->n_vocab) == 0, "out of memory");
    agreement a;
    fb_agreement_init(&a, c->precision);
    for (uint32_t len = 1; len <= max_len; len++) {
        fb_status st = c->api->reset(s);
        REQUIRE(st == FB_OK, "reset returned %s", fb_status_name(st));
        if (prefill_checked(c, s, m, 0, len, FB_LOGITS_LAST, &b, &a, &nexts[len], r)) goto out;
    }
    REQUIRE(c->api->reset(s) == FB_OK, "reset failed");
    int32_t next;
    if (prefill_checked(c, s, m, 0, m->n_ctx, FB_LOGITS_ALL, &b, &a, &next, r)) goto out;
    // Without logits, the same next token.
    uint32_t len = max_len < 5 ? max_len : 5;
    REQUIRE(c->api->reset(s) == FB_OK, "reset failed");
    if (prefill_checked(c, s, m, 0, len, FB_LOGITS_NONE, &b, &a, &next, r)) goto out;
    REQUIRE(next == nexts[len], "prefill of %u tokens gives next token %d without logits but %d with them", len,
            (int)next, (int)nexts[len]);
    if (agreement_require(&a, "prefill", r)) goto out;
    char summary[200];
    fb_agreement_text(&a, summary, sizeof summary);
    pass(r, "lengths 1..%u (last logits) and %u (all logits) agree with cpu_ref: %s", max_len, m->n_ctx, summary);
out:
    free(b.data);
    c->api->destroy(s);
}

/* Prefill continues where the session is: in pieces, between decodes. */
static void check_prefill_continues(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) return;
    REQUIRE(logits_alloc(&b, (size_t)16 * m->n_vocab) == 0, "out of memory");
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (prefill_checked(c, s, m, 0, 5, FB_LOGITS_LAST, &b, &a, NULL, r) ||
        prefill_checked(c, s, m, 5, 7, FB_LOGITS_ALL, &b, &a, NULL, r) ||
        decode_checked(c, s, m, 12, true, &b, &a, NULL, r) ||
        prefill_checked(c, s, m, 13, 3, FB_LOGITS_LAST, &b, &a, NULL, r) ||
        prefill_checked(c, s, m, 16, 1, FB_LOGITS_ALL, &b, &a, NULL, r) ||
        decode_checked(c, s, m, 17, true, &b, &a, NULL, r))
        goto out;
    if (agreement_require(&a, "prefill in pieces", r)) goto out;
    char summary[200];
    fb_agreement_text(&a, summary, sizeof summary);
    pass(r, "prefill of 5, 7, decode, 3, 1, decode in one session: %s", summary);
out:
    free(b.data);
    c->api->destroy(s);
}

/* Teacher-forced decode over the whole context, with logits and without. */
static void check_decode(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    int32_t *nexts = calloc(m->n_ctx, sizeof *nexts);
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) {
        free(nexts);
        return;
    }
    REQUIRE(nexts && logits_alloc(&b, m->n_vocab) == 0, "out of memory");
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (prefill_checked(c, s, m, 0, 1, FB_LOGITS_LAST, &b, &a, &nexts[0], r)) goto out;
    for (uint32_t pos = 1; pos < m->n_ctx; pos++)
        if (decode_checked(c, s, m, (int)pos, true, &b, &a, &nexts[pos], r)) goto out;
    if (agreement_require(&a, "teacher-forced decode", r)) goto out;
    REQUIRE(c->api->reset(s) == FB_OK, "reset failed");
    agreement ignored;
    fb_agreement_init(&ignored, c->precision);
    int32_t next;
    if (prefill_checked(c, s, m, 0, 1, FB_LOGITS_NONE, &b, &ignored, &next, r)) goto out;
    for (uint32_t pos = 1; pos < m->n_ctx; pos++) {
        if (decode_checked(c, s, m, (int)pos, false, &b, &ignored, &next, r)) goto out;
        REQUIRE(next == nexts[pos], "decode at position %u gives next token %d without logits, %d with them", pos,
                (int)next, (int)nexts[pos]);
    }
    char summary[200];
    fb_agreement_text(&a, summary, sizeof summary);
    pass(r, "positions 0..%u teacher-forced: %s; the same tokens without logits", m->n_ctx - 1, summary);
out:
    free(b.data);
    free(nexts);
    c->api->destroy(s);
}

/* The session's context ends where settings.max_context (or the model's
 * n_ctx) says: its last position works, the next call is FB_ERR_CONTEXT_FULL
 * and changes nothing, and reset makes the session usable again. */
static void check_context_end(const conf *c, const conf_model *m, check_result *r) {
    /* tiny: the model's own context (max_context 0); gqa: a shorter one. */
    uint32_t max_context = strcmp(m->label, "tiny") == 0 ? 0 : 20;
    uint32_t C = max_context ? max_context : m->n_ctx;
    fb_settings settings = settings_for(c, max_context);
    logits_buf b = {0};
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) return;
    REQUIRE(logits_alloc(&b, (size_t)4 * m->n_vocab) == 0, "out of memory");
    agreement a;
    fb_agreement_init(&a, c->precision);
    int32_t next;
    char what[128];
    if (prefill_checked(c, s, m, 0, C - 2, FB_LOGITS_LAST, &b, &a, NULL, r)) goto out;
    /* Three ids of its own, so the array is valid for all n_tokens even when
     * C is the model's whole context (a plugin may read every id before it
     * looks at the context: that is its choice, not a host overflow). */
    int32_t three[3] = {m->tokens[C - 2], m->tokens[C - 1], m->tokens[0]};
    fb_status st = c->api->prefill(s, three, 3, FB_LOGITS_LAST, b.data, &next);
    snprintf(what, sizeof what, "prefill of 3 tokens at position %u of a %u-position context", C - 2, C);
    if (expect_refusal(c, s, st, FB_ERR_CONTEXT_FULL, what, r)) goto out;
    if (decode_checked(c, s, m, (int)C - 2, true, &b, &a, NULL, r) ||
        decode_checked(c, s, m, (int)C - 1, true, &b, &a, NULL, r)) {
        char why[sizeof r->text];
        snprintf(why, sizeof why, "%s", r->text);
        failf(r, "after the refused prefill: %s", why);
        goto out;
    }
    st = c->api->decode(s, m->tokens[0], b.data, &next);
    snprintf(what, sizeof what, "decode at position %u with max_context %u (context %u)", C, max_context, C);
    if (expect_refusal(c, s, st, FB_ERR_CONTEXT_FULL, what, r)) goto out;
    st = c->api->prefill(s, m->tokens, 1, FB_LOGITS_NONE, NULL, &next);
    snprintf(what, sizeof what, "prefill of 1 token at position %u (context %u)", C, C);
    if (expect_refusal(c, s, st, FB_ERR_CONTEXT_FULL, what, r)) goto out;
    if (agreement_require(&a, "up to the context end", r)) goto out;
    st = c->api->reset(s);
    REQUIRE(st == FB_OK, "reset after a full context returned %s", fb_status_name(st));
    if (prefill_checked(c, s, m, 0, 1, FB_LOGITS_LAST, &b, &a, NULL, r)) goto out;
    if (agreement_require(&a, "after reset from a full context", r)) goto out;
    pass(r,
         "positions up to %u (max_context %u) agree; prefill and decode past it are FB_ERR_CONTEXT_FULL and change "
         "nothing; reset recovers",
         C - 1, max_context);
out:
    free(b.data);
    c->api->destroy(s);
}

/* Two sessions at once do not share state. */
static void check_sessions_independent(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    fb_session *s1 = open_session(c, m, &settings, r), *s2 = NULL;
    if (!s1) return;
    s2 = open_session(c, m, &settings, r);
    if (!s2) goto out;
    REQUIRE(logits_alloc(&b, (size_t)8 * m->n_vocab) == 0, "out of memory");
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (prefill_checked(c, s1, m, 0, 4, FB_LOGITS_LAST, &b, &a, NULL, r) ||
        prefill_checked(c, s2, m, 0, 8, FB_LOGITS_LAST, &b, &a, NULL, r) ||
        decode_checked(c, s1, m, 4, true, &b, &a, NULL, r) || decode_checked(c, s2, m, 8, true, &b, &a, NULL, r) ||
        decode_checked(c, s1, m, 5, true, &b, &a, NULL, r))
        goto out;
    c->api->destroy(s1);
    s1 = NULL;
    if (decode_checked(c, s2, m, 9, true, &b, &a, NULL, r)) goto out;
    if (agreement_require(&a, "two sessions interleaved", r)) goto out;
    pass(r, "two sessions interleaved at different positions, then one destroyed: both agree with cpu_ref");
out:
    free(b.data);
    c->api->destroy(s1);
    c->api->destroy(s2);
}

/* Effective settings after some decoding, in a buffer with a guard. */
static int effective_after_decoding(const conf *c, const conf_model *m, const fb_settings *settings,
                                    fb_effective_settings *eff, agreement *a, check_result *r) {
    logits_buf b = {0};
    int rc = -1;
    fb_session *s = open_session(c, m, settings, r);
    if (!s) return -1;
    union {
        fb_effective_settings eff;
        unsigned char bytes[sizeof(fb_effective_settings) + GUARD_BYTES];
    } buf;
    REQUIRE(logits_alloc(&b, m->n_vocab) == 0, "out of memory");
    if (prefill_checked(c, s, m, 0, 4, FB_LOGITS_LAST, &b, a, NULL, r)) goto out;
    for (int pos = 4; pos < 16; pos++)
        if (decode_checked(c, s, m, pos, pos % 2 == 0, &b, a, NULL, r)) goto out;
    memset(&buf, 0x5A, sizeof buf);
    buf.eff.struct_size = sizeof buf.eff;
    memset(buf.eff.options, 0, sizeof buf.eff.options); /* as the host hands it (plugin.h) */
    fb_status st = c->api->effective_settings(s, &buf.eff);
    REQUIRE(st == FB_OK, "effective_settings returned %s: %s", fb_status_name(st), c->api->last_error(s));
    for (size_t i = sizeof buf.eff; i < sizeof buf.bytes; i++)
        REQUIRE(buf.bytes[i] == 0x5A, "effective_settings wrote past the %zu bytes of out->struct_size",
                sizeof buf.eff);
    *eff = buf.eff;
    rc = 0;
out:
    free(b.data);
    c->api->destroy(s);
    return rc;
}

/* What the session reports doing: present, well formed, what was asked
 * where the plugin can do it, and within its capabilities. */
static void check_effective_settings(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    fb_effective_settings e;
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (effective_after_decoding(c, m, &settings, &e, &a, r)) return;
    REQUIRE(e.weight_precision == c->precision, "reports weight precision %s (%d); %s was asked and accepted",
            fb_precision_name(e.weight_precision), (int)e.weight_precision, fb_precision_name(c->precision));
    REQUIRE(e.accumulate_precision == FB_PRECISION_F32, "reports accumulate precision %s; f32 was asked and accepted",
            fb_precision_name(e.accumulate_precision));
    REQUIRE(e.jit == 0 || e.jit == 1, "reports jit = %d (0 or 1)", (int)e.jit);
    REQUIRE(e.graphs == 0 || e.graphs == 1, "reports graphs = %d (0 or 1)", (int)e.graphs);
    REQUIRE(!e.jit || (c->caps & FB_CAP_JIT), "reports jit = 1 but its capabilities lack FB_CAP_JIT");
    REQUIRE(!e.graphs || (c->caps & FB_CAP_GRAPHS), "reports graphs = 1 but its capabilities lack FB_CAP_GRAPHS");
    REQUIRE(e.kernel_cache_hit >= -1 && e.kernel_cache_hit <= 1, "reports kernel_cache_hit = %d (-1, 0 or 1)",
            (int)e.kernel_cache_hit);
    REQUIRE(e.threads >= 0, "reports threads = %d", (int)e.threads);
    REQUIRE(!(c->caps & FB_CAP_CPU) || (c->caps & FB_CAP_GPU) || e.threads >= 1, "a CPU backend reports %d threads",
            (int)e.threads);
    REQUIRE(!(c->caps & FB_CAP_THREADS) || c->threads <= 0 || e.threads == c->threads,
            "claims FB_CAP_THREADS but reports %d threads; %d were asked", (int)e.threads, c->threads);
    REQUIRE(terminated(e.device, sizeof e.device) && e.device[0], "device[] is empty or not NUL-terminated");
    const char *bad_device = device_format_error(e.device, c->caps);
    REQUIRE(!bad_device, "device '%s' does not follow plugin.h's format: %s", e.device, bad_device);
    REQUIRE(terminated(e.notes, sizeof e.notes), "notes[] is not NUL-terminated");
    REQUIRE(terminated(e.options, sizeof e.options), "options[] (ABI 1.1) is not NUL-terminated");
    if (agreement_require(&a, "decoding with JIT and graphs allowed", r)) return;
    pass(r, "weights %s, accumulate %s, jit %d, graphs %d, threads %d, cache %d, device '%s'",
         fb_precision_name(e.weight_precision), fb_precision_name(e.accumulate_precision), (int)e.jit, (int)e.graphs,
         (int)e.threads, (int)e.kernel_cache_hit, e.device);
out:;
}

/* Per-backend options (ABI 1.1): a key the backend does not know is refused
 * by check_option with a sentence; a session made with no options reports a
 * well-formed options string. A backend without check_option takes none. */
static void check_options(const conf *c, const conf_model *m, check_result *r) {
    const fb_plugin *p = c->api;
    if (p->abi_minor < 1 || !FB_PLUGIN_HAS(p, check_option) || !p->check_option) {
        pass(r, "ABI %u.%u, no check_option: the host refuses every per-backend option for it", p->abi_major,
             p->abi_minor);
        return;
    }
    static const char bogus[] = "fairbench_conformance_no_such_option";
    char message[300];
    memset(message, 0x5A, sizeof message);
    fb_status st = p->check_option(fb_host_services(), bogus, "1", message, sizeof message);
    REQUIRE(st == FB_ERR_INVALID_ARGUMENT || st == FB_ERR_UNSUPPORTED,
            "check_option(\"%s\", \"1\") returned %s; an unknown key must be FB_ERR_INVALID_ARGUMENT", bogus,
            fb_status_name(st));
    REQUIRE(terminated(message, sizeof message) && message[0], "check_option refused '%s' without a sentence", bogus);
    char said[200];
    snprintf(said, sizeof said, "%.190s", message);
    st = p->check_option(fb_host_services(), "", "", message, sizeof message);
    REQUIRE(st != FB_OK, "check_option accepted an empty key");
    fb_settings settings = settings_for(c, 0);
    fb_effective_settings e;
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (effective_after_decoding(c, m, &settings, &e, &a, r)) return;
    REQUIRE(terminated(e.options, sizeof e.options), "options[] is not NUL-terminated");
    pass(r, "an unknown key is refused (\"%s\"); options in effect: '%s'", said, e.options);
out:;
}

/* With JIT and graphs forbidden, the session must not use them, and say so.
 * A JIT backend whose kernels exist only by JIT (jit_fused) may instead
 * refuse allow_jit = 0 at create, with FB_ERR_UNSUPPORTED and a sentence, as
 * the ABI asks of any setting a backend cannot honour; graphs are then
 * checked with JIT allowed. */
static void check_no_jit_no_graphs(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    settings.allow_jit = 0;
    settings.allow_graphs = 0;
    char refusal[200] = "";
    if (c->api->capabilities & FB_CAP_JIT) {
        fb_session *s = NULL;
        char message[512];
        memset(message, 0, sizeof message);
        fb_status st = c->api->create(fb_host_services(), &m->view.view, &settings, &s, message, sizeof message);
        message[sizeof message - 1] = '\0';
        if (st == FB_OK && s) {
            c->api->destroy(s); // it can run without JIT: checked below like any backend
        } else {
            REQUIRE(st == FB_ERR_UNSUPPORTED && s == NULL && message[0],
                    "create with allow_jit = 0 returned %s with '%s': a backend that cannot run without JIT must "
                    "refuse with FB_ERR_UNSUPPORTED, no session and a sentence",
                    fb_status_name(st), message);
            snprintf(refusal, sizeof refusal, "refuses allow_jit = 0 (%.100s); ", message);
            settings.allow_jit = 1;
        }
    }
    fb_effective_settings e;
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (effective_after_decoding(c, m, &settings, &e, &a, r)) return;
    REQUIRE(settings.allow_jit || e.jit == 0, "reports jit = %d although allow_jit = 0", (int)e.jit);
    REQUIRE(e.graphs == 0, "reports graphs = %d although allow_graphs = 0", (int)e.graphs);
    REQUIRE(e.weight_precision == c->precision, "reports weight precision %s; %s was asked",
            fb_precision_name(e.weight_precision), fb_precision_name(c->precision));
    if (agreement_require(&a, "decoding with JIT and graphs forbidden", r)) return;
    char summary[200];
    fb_agreement_text(&a, summary, sizeof summary);
    pass(r, "%sallow_jit = %d, allow_graphs = 0: reports jit %d, graphs 0; %s", refusal, settings.allow_jit, (int)e.jit,
         summary);
out:;
}

/* memory(): present, peak >= current, and non-zero for a live session. */
static void check_memory(const conf *c, const conf_model *m, check_result *r) {
    fb_settings settings = settings_for(c, 0);
    logits_buf b = {0};
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) return;
    union {
        fb_memory_stats mem;
        unsigned char bytes[sizeof(fb_memory_stats) + GUARD_BYTES];
    } before, after;
    REQUIRE(logits_alloc(&b, m->n_vocab) == 0, "out of memory");
    memset(&before, 0x5A, sizeof before);
    before.mem.struct_size = sizeof before.mem;
    fb_status st = c->api->memory(s, &before.mem);
    REQUIRE(st == FB_OK, "memory() returned %s: %s", fb_status_name(st), c->api->last_error(s));
    for (size_t i = sizeof before.mem; i < sizeof before.bytes; i++)
        REQUIRE(before.bytes[i] == 0x5A, "memory() wrote past the %zu bytes of out->struct_size", sizeof before.mem);
    agreement a;
    fb_agreement_init(&a, c->precision);
    if (prefill_checked(c, s, m, 0, 8, FB_LOGITS_LAST, &b, &a, NULL, r)) goto out;
    for (int pos = 8; pos < 16; pos++)
        if (decode_checked(c, s, m, pos, false, &b, &a, NULL, r)) goto out;
    memset(&after, 0x5A, sizeof after);
    after.mem.struct_size = sizeof after.mem;
    st = c->api->memory(s, &after.mem);
    REQUIRE(st == FB_OK, "memory() after decoding returned %s", fb_status_name(st));
    const fb_memory_stats *m0 = &before.mem, *m1 = &after.mem;
    REQUIRE(m0->device_peak_bytes >= m0->device_bytes && m1->device_peak_bytes >= m1->device_bytes,
            "device_peak_bytes is below device_bytes (%llu < %llu)", (unsigned long long)m1->device_peak_bytes,
            (unsigned long long)m1->device_bytes);
    REQUIRE(m1->device_peak_bytes >= m0->device_peak_bytes, "device_peak_bytes fell from %llu to %llu while decoding",
            (unsigned long long)m0->device_peak_bytes, (unsigned long long)m1->device_peak_bytes);
    REQUIRE(!(c->caps & FB_CAP_GPU) || m1->device_bytes > 0,
            "a GPU backend reports 0 device bytes for a session holding a model");
    REQUIRE(m1->device_bytes + m1->host_bytes > 0, "reports no memory at all (host_bytes and device_bytes 0) for a "
                                                   "session holding a model");
    pass(r, "host %.2f MB, device %.2f MB (peak %.2f MB)", m1->host_bytes / 1048576.0, m1->device_bytes / 1048576.0,
         m1->device_peak_bytes / 1048576.0);
out:
    free(b.data);
    c->api->destroy(s);
}

/* The CPUs this process may run on: what threads = 0 resolves to. */
static int affinity_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* create() that must fail with `want`, no session and a sentence. */
static int expect_create_refusal(const conf *c, const conf_model *m, const fb_settings *settings, fb_status want,
                                 const char *what, check_result *r) {
    fb_session *s = SENTINEL_SESSION;
    char message[512];
    memset(message, 0x5A, sizeof message);
    fb_status st = c->api->create(fb_host_services(), &m->view.view, settings, &s, message, sizeof message);
    if (st == FB_OK) {
        if (s && s != SENTINEL_SESSION) c->api->destroy(s);
        failf(r, "create with %s returned FB_OK; it must be refused with %s", what, fb_status_name(want));
        return -1;
    }
    if (st != want || s != NULL || !terminated(message, sizeof message) || !message[0]) {
        failf(r, "create with %s returned %s%s%s; the convention is %s, *out = NULL and a sentence", what,
              fb_status_name(st), s != NULL ? " without setting *out to NULL" : "",
              terminated(message, sizeof message) && message[0] ? "" : " without a sentence", fb_status_name(want));
        return -1;
    }
    return 0;
}

/* The conventions plugin.h decides, one after the other on one session
 * whose max_context is above the model's n_ctx (so the context is n_ctx):
 * a NULL next_token is FB_ERR_INVALID_ARGUMENT; reserved prefill flag bits
 * are ignored; last_error stays a valid string after a success; a call
 * wrong twice (a full context and an invalid id) is FB_ERR_CONTEXT_FULL;
 * negative threads are FB_ERR_INVALID_ARGUMENT at create (FB_CAP_THREADS);
 * threads = 0 reports the CPUs of the affinity mask; a CPU-only backend
 * ignores device_index. */
static void check_conventions(const conf *c, const conf_model *m, check_result *r) {
    bool cpu_only = (c->caps & FB_CAP_CPU) && !(c->caps & FB_CAP_GPU);
    fb_settings settings = settings_for(c, m->n_ctx + 16);
    if (cpu_only) settings.device_index = 3;
    logits_buf b = {0};
    char done[400] = "";
    fb_session *s = open_session(c, m, &settings, r);
    if (!s) {
        char why[sizeof r->text];
        snprintf(why, sizeof why, "%s", r->text);
        failf(r, "max_context %u (above n_ctx %u)%s: %s", m->n_ctx + 16, m->n_ctx,
              cpu_only ? ", device_index 3 on a CPU backend" : "", why);
        return;
    }
    REQUIRE(logits_alloc(&b, (size_t)2 * m->n_vocab) == 0, "out of memory");
    fb_status st = c->api->prefill(s, m->tokens, 1, FB_LOGITS_NONE, NULL, NULL);
    if (expect_refusal(c, s, st, FB_ERR_INVALID_ARGUMENT, "prefill with next_token = NULL", r)) goto out;
    st = c->api->decode(s, m->tokens[0], NULL, NULL);
    if (expect_refusal(c, s, st, FB_ERR_INVALID_ARGUMENT, "decode with next_token = NULL", r)) goto out;
    // Reserved flag bits are ignored: FB_LOGITS_LAST | 0x100 is FB_LOGITS_LAST. The refusals changed nothing.
    agreement a;
    fb_agreement_init(&a, c->precision);
    logits_poison(&b);
    int32_t next = -1;
    st = c->api->prefill(s, m->tokens, 2, FB_LOGITS_LAST | 0x100u, b.data, &next);
    REQUIRE(st == FB_OK,
            "prefill of 2 tokens with flags FB_LOGITS_LAST | 0x100 (a reserved bit, to be ignored) "
            "returned %s: %s",
            fb_status_name(st), c->api->last_error(s));
    if (check_output(m, &b, 1, 1, next, &a, "prefill with a reserved flag bit", r)) goto out;
    if (agreement_require(&a, "prefill with a reserved flag bit, after two refused calls", r)) goto out;
    const char *e = c->api->last_error(s);
    REQUIRE(e != NULL, "last_error() returned NULL after a successful call (it returns a string, \"\" if none)");
    REQUIRE(strlen(e) < 4096, "last_error() after a success is not a string");
    // Up to the model's context (max_context was above it), then a call wrong twice.
    st = c->api->prefill(s, m->tokens + 2, m->n_ctx - 2, FB_LOGITS_NONE, NULL, &next);
    REQUIRE(st == FB_OK, "prefill to position %u of a session with max_context %u returned %s: %s", m->n_ctx - 1,
            m->n_ctx + 16, fb_status_name(st), c->api->last_error(s));
    int32_t bad = (int32_t)m->n_vocab;
    char what[160];
    snprintf(what, sizeof what,
             "prefill of [%d] (an invalid id) at position %u, the end of the model's context of %u "
             "(max_context %u is above it)",
             (int)bad, m->n_ctx, m->n_ctx, m->n_ctx + 16);
    st = c->api->prefill(s, &bad, 1, FB_LOGITS_NONE, NULL, &next);
    if (expect_refusal(c, s, st, FB_ERR_CONTEXT_FULL, what, r)) goto out;
    snprintf(what, sizeof what, "decode at position %u (the model's context; max_context %u is above it)", m->n_ctx,
             m->n_ctx + 16);
    st = c->api->decode(s, m->tokens[0], NULL, &next);
    if (expect_refusal(c, s, st, FB_ERR_CONTEXT_FULL, what, r)) goto out;
    snprintf(done, sizeof done,
             "NULL next_token refused; flag 0x100 ignored; max_context above n_ctx gives n_ctx; "
             "full context wins over an invalid id%s",
             cpu_only ? "; device_index 3 ignored" : "");
    c->api->destroy(s);
    s = NULL;
    if (c->caps & FB_CAP_THREADS) {
        fb_settings neg = settings_for(c, 0);
        neg.threads = -1;
        if (expect_create_refusal(c, m, &neg, FB_ERR_INVALID_ARGUMENT, "threads = -1", r)) goto out;
        fb_settings all = settings_for(c, 0);
        all.threads = 0;
        fb_effective_settings eff;
        fb_agreement_init(&a, c->precision);
        if (effective_after_decoding(c, m, &all, &eff, &a, r)) goto out;
        int cpus = affinity_cpus();
        REQUIRE(eff.threads == cpus,
                "with threads = 0 it reports %d threads; 0 means the %d CPUs of the process's "
                "affinity mask, and effective settings report that resolved count",
                (int)eff.threads, cpus);
        size_t n = strlen(done);
        snprintf(done + n, sizeof done - n, "; threads -1 refused, 0 ran %d (the affinity mask)", cpus);
    }
    pass(r, "%s", done);
out:
    free(b.data);
    c->api->destroy(s);
}

// ----------------------------------------------------------------------------
// The table of checks, in the order they run

enum { MODEL_NONE = -1, MODEL_TINY = 0, MODEL_GQA = 1 };

typedef struct check_def {
    const char *name;
    check_fn fn;
    int model;
    const char *about; /* for --help */
} check_def;

static const check_def LOAD = {"load", check_load, MODEL_NONE,
                               "dlopen, fb_plugin_entry, ABI vetting, the table's strings and capabilities"};
static const check_def PROBE = {"probe", check_probe, MODEL_NONE,
                                "FB_OK, available 0/1, a device or a reason, the same answer twice"};
static const check_def CREATE_UNAVAILABLE = {
    "create_unavailable", check_create_unavailable, MODEL_TINY,
    "only when probe says unavailable: create fails with a status and a sentence"};

static const check_def SESSION_CHECKS[] = {
    {"create_destroy", check_create_destroy, MODEL_TINY,
     "8 sessions made, used, destroyed: memory and threads come back; destroy(NULL)"},
    {"unsupported_precision", check_unsupported_precision, MODEL_TINY,
     "a precision not in the capabilities, and an undefined one, refused at create with a sentence"},
    {"invalid_token", check_invalid_token, MODEL_TINY,
     "ids outside the vocabulary are FB_ERR_INVALID_ARGUMENT, and change nothing"},
    {"reset", check_reset, MODEL_TINY, "the same prompt after reset gives the same answer"},
    {"prefill_lengths/tiny", check_prefill_lengths, MODEL_TINY,
     "prompts of 1..32 tokens and the whole context agree with cpu_ref; next = own argmax"},
    {"prefill_lengths/gqa", check_prefill_lengths, MODEL_GQA, "the same on the GQA model"},
    {"prefill_continues", check_prefill_continues, MODEL_TINY, "prefill in pieces, between decodes"},
    {"decode/tiny", check_decode, MODEL_TINY,
     "teacher-forced decode over the whole context agrees with cpu_ref, with and without logits"},
    {"decode/gqa", check_decode, MODEL_GQA, "the same on the GQA model"},
    {"context_end/tiny", check_context_end, MODEL_TINY,
     "the last position of the model's context works; past it FB_ERR_CONTEXT_FULL, nothing changed"},
    {"context_end/gqa", check_context_end, MODEL_GQA, "the same with settings.max_context = 20"},
    {"sessions_independent", check_sessions_independent, MODEL_TINY, "two sessions at once share nothing"},
    {"effective_settings", check_effective_settings, MODEL_TINY,
     "reported precision, jit, graphs, threads, device: as asked and within the capabilities"},
    {"no_jit_no_graphs", check_no_jit_no_graphs, MODEL_TINY,
     "with allow_jit = allow_graphs = 0 the session reports neither"},
    {"memory", check_memory, MODEL_TINY, "memory(): peak >= current, non-zero, within its struct"},
    {"options", check_options, MODEL_TINY,
     "ABI 1.1: check_option refuses an unknown key with a sentence; options[] well formed"},
    {"conventions", check_conventions, MODEL_TINY,
     "NULL next_token, reserved flag bits, wrong twice, max_context > n_ctx, threads -1 and 0, device_index"},
};
#define N_SESSION_CHECKS (sizeof SESSION_CHECKS / sizeof SESSION_CHECKS[0])

// ----------------------------------------------------------------------------
// Running one check in a child process

/* Fork; in the child load the plugin and run the check; in the parent wait
 * (at most the time-out) and turn what happened into a result. */
/* The child of one check (the supervisor's child main): load the plugin, run
 * the check, report it, and exit() so that a sanitizer's leak check runs. */
typedef struct check_ctx {
    conf *c;
    const check_def *def;
    const char *stdout_path;
} check_ctx;

static void check_main(void *arg, int cmd_fd, int res_fd) {
    const check_ctx *x = arg;
    (void)cmd_fd;
    int fd = open(x->stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    check_result r;
    memset(&r, 0, sizeof r);
    r.available = -1;
    fb_backend backend;
    if (fb_backend_load(x->c->plugin_path, x->c->backend_name, &backend, NULL, 0) != 0) {
        failf(&r, "%s", backend.reason);
    } else {
        x->c->api = backend.api;
        const conf_model *m = x->def->model == MODEL_NONE ? NULL : &x->c->models[x->def->model];
        x->def->fn(x->c, m, &r);
        if (!r.verdict) failf(&r, "the check ended without a verdict (a bug in fairbench conformance)");
    }
    free(backend.path);
    int sent = fb_write_all(res_fd, &r, sizeof r);
    fflush(stdout);
    exit(sent == 0 ? 0 : 3);
}

static void run_check(conf *c, const check_def *def, check_result *out) {
    memset(out, 0, sizeof *out);
    out->available = -1;
    char stdout_path[PATH_MAX + 64];
    snprintf(stdout_path, sizeof stdout_path, "%s/stdout.txt", c->tmpdir);
    fflush(stdout);
    fflush(stderr);
    check_ctx x = {c, def, stdout_path};
    fb_child ch;
    if (fb_child_spawn(&ch, check_main, &x)) {
        failf(out, "cannot fork: %s", strerror(errno));
        return;
    }
    /* The time-out covers the whole process: the check, then its exit. */
    double deadline = fb_now_s() + c->timeout_s;
    check_result r;
    int rc = fb_read_until(ch.res_fd, &r, sizeof r, deadline);
    bool reported = rc == 0;
    if (reported) {
        char eof;
        rc = fb_read_until(ch.res_fd, &eof, 1, deadline) == FB_CHILD_TIMED_OUT ? FB_CHILD_TIMED_OUT : 0;
    }
    bool timed_out = rc == FB_CHILD_TIMED_OUT;
    fb_child_end end;
    fb_child_bury(&ch, timed_out, &end);
    if (reported) {
        r.text[sizeof r.text - 1] = '\0';
        r.name[sizeof r.name - 1] = '\0';
        r.version[sizeof r.version - 1] = '\0';
    }

    if (timed_out) {
        failf(out, "no answer within %g s: the check's process was killed (a hang?)", c->timeout_s);
    } else if (end.signaled) {
        int sig = end.sig;
        failf(out, "the check's process was killed by signal %d (%s)%s", sig, strsignal(sig),
              reported ? " after it reported, while exiting" : "");
    } else if (!reported) {
        failf(out,
              "the check's process ended with exit status %d before reporting (the plugin exited, or a "
              "sanitizer caught a crash; see stderr)",
              end.exit_status);
    } else if (end.exit_status != 0) {
        failf(out,
              "the check reported '%s: %.200s', but its process then ended with exit status %d (a leak or error "
              "report at exit; see stderr)",
              r.verdict == 'P' ? "pass" : "fail", r.text, end.exit_status);
    } else {
        *out = r;
    }
    if (reported) { // facts the parent needs, whatever the verdict
        out->caps = r.caps;
        out->available = r.available;
        memcpy(out->name, r.name, sizeof out->name);
        memcpy(out->version, r.version, sizeof out->version);
    }
    // A plugin never writes to stdout.
    struct stat st;
    if (out->verdict != 'F' && stat(stdout_path, &st) == 0 && st.st_size > 0) {
        char head[64] = "";
        FILE *fp = fopen(stdout_path, "r");
        if (fp) {
            size_t n = fread(head, 1, sizeof head - 1, fp);
            head[n] = '\0';
            fclose(fp);
            for (size_t i = 0; i < n; i++)
                if (head[i] == '\n' || head[i] == '\r' || head[i] == '\t') head[i] = ' ';
        }
        failf(out, "the plugin wrote %lld bytes to stdout (\"%.48s\"); a plugin must never write to stdout",
              (long long)st.st_size, head);
    }
    unlink(stdout_path);
}

// ----------------------------------------------------------------------------
// Set-up: models and the reference, in the parent (the reference in a child)

static uint32_t xorshift32(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* RoPE factors for the gqa model's 8 rotated pairs. Llama-3's own factors
 * only slow the slowest pairs down, which a 48-position context barely
 * sees; these speed some pairs up and slow others, so a backend that
 * ignores them (or reads them for the wrong pair) moves the logits far past
 * every precision's bar. */
static const float GQA_ROPE_FACTORS[8] = {1.0f, 0.25f, 4.0f, 0.1f, 0.05f, 20.0f, 0.02f, 0.5f};

/* The two models, shaped so that a wrong guess about the forward pass
 * changes the answer (docs/forward-pass.md):
 *   tiny (F32): 6 query heads on 2 KV heads (h / 3 and h % 2 differ for
 *     heads 1..4), head_dim 12 with n_rot 8 (4 dimensions per head are not
 *     rotated), width 72 and ff 200 (not multiples of 16), rms_eps 1e-3
 *     (about the mean square of the embeddings, so where eps sits matters);
 *   gqa (Q8_0): 8 query heads on 2 KV heads (group 4), head_dim 20 with
 *     n_rot 16, width 160 and ff 352 (multiples of Q8_0's block of 32, not
 *     of 64), tied output, rope_freqs that move the top-1 token. */
static int write_models(conf *c, fb_error *err) {
    for (int i = 0; i < N_MODELS; i++) {
        conf_model *m = &c->models[i];
        fb_synth_spec spec;
        fb_synth_preset("tiny", &spec);
        spec.n_threads = 1;
        if (i == MODEL_TINY) {
            m->label = "tiny";
            spec.n_embd = 72, spec.n_layer = 2, spec.n_head = 6, spec.n_head_kv = 2, spec.n_ff = 200, spec.n_rot = 8;
            spec.n_vocab = 512, spec.n_ctx = 64, spec.rms_eps = 1e-3f;
            spec.seed = 1;
            snprintf(spec.preset, sizeof spec.preset, "conformance-tiny");
        } else {
            m->label = "gqa";
            spec.n_embd = 160, spec.n_layer = 3, spec.n_head = 8, spec.n_head_kv = 2, spec.n_ff = 352, spec.n_rot = 16;
            spec.n_vocab = 384, spec.n_ctx = 48, spec.tied_output = true, spec.rope_freqs = GQA_ROPE_FACTORS;
            spec.type = 8; /* Q8_0 */
            spec.seed = 2;
            snprintf(spec.preset, sizeof spec.preset, "conformance-gqa");
        }
        snprintf(m->path, sizeof m->path, "%s/%s.gguf", c->tmpdir, m->label);
        if (fb_synth_write(&spec, m->path, NULL, err) || fb_model_open(m->path, &m->model, err) ||
            fb_model_view_build(m->model, &m->view, err))
            return -1;
        const fb_model_view *v = &m->view.view;
        m->n_ctx = v->n_ctx;
        m->n_vocab = v->n_vocab;
        snprintf(m->shape, sizeof m->shape,
                 "%u layers, width %u, %u heads / %u KV of %u (%u rotated), ff %u, vocab %u, context %u, eps %g, %s, "
                 "%s output%s",
                 v->n_layer, v->n_embd, v->n_head, v->n_head_kv, v->head_dim, v->n_rot, v->n_ff, v->n_vocab, v->n_ctx,
                 (double)v->rms_eps, fb_host_services()->type_name(v->layers[0].attn_q.type),
                 v->tied_output ? "tied" : "separate", v->rope_freqs ? ", RoPE factors" : "");
        m->tokens = malloc(m->n_ctx * sizeof *m->tokens);
        m->ref_bytes = (size_t)m->n_ctx * m->n_vocab * sizeof(float);
        void *ref = mmap(NULL, m->ref_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (!m->tokens || ref == MAP_FAILED) return fb_error_set(err, "out of memory for the reference logits");
        m->ref = ref;
        uint32_t state = 0x9E3779B9u + (uint32_t)i;
        for (uint32_t p = 0; p < m->n_ctx; p++) m->tokens[p] = (int32_t)(xorshift32(&state) % m->n_vocab);
    }
    return 0;
}

/* In the child: cpu_ref from the plugin folders, f32, every position's
 * logits of each model's token sequence, into the shared mappings. */
static void reference_child(conf *c, check_result *r) {
    fb_backend_list list;
    fb_error err;
    if (fb_backends_discover(c->dirs, c->n_dirs, &list, &err)) {
        failf(r, "%s", err.msg);
        return;
    }
    const fb_backend *b = fb_backends_find(&list, "cpu_ref");
    if (!b) {
        char dirs[900] = "";
        size_t used = 0;
        for (size_t i = 0; i < list.n_dirs && used < sizeof dirs; i++)
            used += (size_t)snprintf(dirs + used, sizeof dirs - used, "%s%s", i ? ", " : "", list.dirs[i]);
        failf(r, "no usable cpu_ref, the reference, in the plugin folders (%s); give its folder with --plugin-dir",
              used ? dirs : "none");
        fb_backends_free(&list);
        return;
    }
    for (int i = 0; i < N_MODELS; i++) {
        conf_model *m = &c->models[i];
        fb_settings settings = {.struct_size = sizeof settings,
                                .weight_precision = FB_PRECISION_F32,
                                .accumulate_precision = FB_PRECISION_F32,
                                .threads = 0,
                                .max_context = m->n_ctx};
        fb_session *s = NULL;
        char message[512] = "";
        fb_status st = b->api->create(fb_host_services(), &m->view.view, &settings, &s, message, sizeof message);
        if (st != FB_OK) {
            failf(r, "cpu_ref cannot load the %s model: %s", m->label, message);
            break;
        }
        int32_t next;
        st = b->api->prefill(s, m->tokens, m->n_ctx, FB_LOGITS_ALL, m->ref, &next);
        if (st != FB_OK) failf(r, "cpu_ref failed on the %s model: %s", m->label, b->api->last_error(s));
        b->api->destroy(s);
        if (st != FB_OK) break;
    }
    if (!r->verdict) pass(r, "cpu_ref %s (%s), f32", b->api->version, b->path);
    fb_backends_free(&list);
}

static int compute_reference(conf *c, char *line, size_t size) {
    int fds[2];
    if (pipe(fds) != 0) return snprintf(line, size, "cannot create a pipe: %s", strerror(errno)), -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return snprintf(line, size, "cannot fork: %s", strerror(errno)), -1;
    }
    if (pid == 0) {
        close(fds[0]);
        check_result r;
        memset(&r, 0, sizeof r);
        reference_child(c, &r);
        ssize_t n = write(fds[1], &r, sizeof r);
        close(fds[1]);
        exit(n == (ssize_t)sizeof r ? 0 : 3);
    }
    close(fds[1]);
    check_result r;
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof r) {
        snprintf(line, size, "the reference process (cpu_ref) ended without an answer (status 0x%x)", status);
        return -1;
    }
    r.text[sizeof r.text - 1] = '\0';
    snprintf(line, size, "%s", r.text);
    return r.verdict == 'P' ? 0 : -1;
}

// ----------------------------------------------------------------------------
// The command

void fb_conformance_usage(FILE *out) {
    fprintf(out, "usage: fairbench conformance PLUGIN.so [--backend NAME] [--precision f32|f16|bf16|native]\n"
                 "                             [--threads N] [--timeout SECONDS] [--plugin-dir DIR]... [--keep]\n"
                 "                             [--no-rss-check]\n"
                 "\n"
                 "Runs one backend plugin through the plugin ABI's contract on two synthetic models\n"
                 "(tiny: F32, 6 query heads on 2 KV heads, head_dim 12 with 8 rotated, width 72,\n"
                 "64 positions; gqa: Q8_0, 8 query heads on 2 KV heads, head_dim 20 with 16 rotated,\n"
                 "tied output, RoPE factors, 48 positions), comparing its logits with cpu_ref's\n"
                 "at f32 (found in the plugin folders like any backend).\n"
                 "Each check runs in a process of its own, so a crash is a FAIL naming the signal\n"
                 "and a hang is killed after --timeout seconds (default 120). Every check prints\n"
                 "one line: PASS name: what was seen, FAIL name: why, or SKIP name: why. A check\n"
                 "also fails when the plugin writes to stdout or its process ends with an error.\n"
                 "\n"
                 "  --backend NAME    which backend of a plugin that publishes several (an ABI 1.1\n"
                 "                    factory); needed only when it publishes more than one\n"
                 "  --precision P     the weight precision the sessions ask for (default f32); the\n"
                 "                    plugin must claim it. Agreement bars: the main job's top-1\n"
                 "                    rate and mean KL (f32 99%%, 1e-4; f16 95%%, 5e-3; bf16 90%%,\n"
                 "                    2e-2; native 90%%, 5e-2; an argmax that differs where cpu_ref's\n"
                 "                    two logits are a near tie counts as agreeing), and a largest\n"
                 "                    |logit difference| of at most 0.01%%, 1%%, 5%%, 5%% of the\n"
                 "                    largest |logit|\n"
                 "  --threads N       settings.threads (default 2; 0 = all cores)\n"
                 "  --timeout S       the longest one check may take (default 120)\n"
                 "  --plugin-dir DIR  a folder searched for cpu_ref before the usual ones\n"
                 "  --keep            keep the folder with the synthetic models\n"
                 "  --no-rss-check    for a plugin built with ASan or TSan (its runtime preloaded):\n"
                 "                    create_destroy does not hold resident memory against it (the\n"
                 "                    sanitizer's allocator keeps freed memory) and says so; its\n"
                 "                    leak report at exit still fails the check (PLUGINS.md)\n"
                 "\n"
                 "checks, in order:\n");
    const check_def *all[] = {&LOAD, &PROBE, &CREATE_UNAVAILABLE};
    for (size_t i = 0; i < 3; i++) fprintf(out, "  %-22s %s\n", all[i]->name, all[i]->about);
    for (size_t i = 0; i < N_SESSION_CHECKS; i++)
        fprintf(out, "  %-22s %s\n", SESSION_CHECKS[i].name, SESSION_CHECKS[i].about);
    fprintf(out, "\n"
                 "exit status: 0 every check passed; 1 a check failed; 2 bad usage, or the checks\n"
                 "could not be set up (no cpu_ref, the plugin does not claim --precision);\n"
                 "77 the plugin's probe says its hardware is not here: the checks that need it\n"
                 "were skipped and none of the others failed (not a pass)\n");
}

static void remove_tmpdir(conf *c, bool keep) {
    for (int i = 0; i < N_MODELS; i++) {
        conf_model *m = &c->models[i];
        fb_model_view_free(&m->view);
        fb_model_close(m->model);
        m->model = NULL;
        free(m->tokens);
        m->tokens = NULL;
        if (m->ref) munmap(m->ref, m->ref_bytes);
        m->ref = NULL;
        if (!keep && m->path[0]) unlink(m->path);
    }
    if (!keep && c->tmpdir[0]) rmdir(c->tmpdir);
}

typedef struct tally {
    int passed, failed, skipped;
} tally;

static void print_result(const char *name, const check_result *r, tally *t) {
    const char *word = r->verdict == 'P' ? "PASS" : r->verdict == 'S' ? "SKIP" : "FAIL";
    printf("%s %s: %s\n", word, name, r->text);
    fflush(stdout);
    if (r->verdict == 'P') t->passed++;
    else if (r->verdict == 'S')
        t->skipped++;
    else
        t->failed++;
}

int fb_cmd_conformance(int argc, char **argv) {
    conf c;
    memset(&c, 0, sizeof c);
    c.precision = FB_PRECISION_F32;
    c.threads = 2;
    c.timeout_s = 120;
    bool keep = false;
    enum { O_PRECISION = 256, O_THREADS, O_TIMEOUT, O_PLUGIN_DIR, O_KEEP, O_BACKEND, O_NO_RSS };
    static const struct option longopts[] = {{"backend", required_argument, NULL, O_BACKEND},
                                             {"precision", required_argument, NULL, O_PRECISION},
                                             {"threads", required_argument, NULL, O_THREADS},
                                             {"timeout", required_argument, NULL, O_TIMEOUT},
                                             {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
                                             {"keep", no_argument, NULL, O_KEEP},
                                             {"help", no_argument, NULL, 'h'},
                                             {"no-rss-check", no_argument, NULL, O_NO_RSS},
                                             {0}};
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_PRECISION:
            if (fb_precision_parse(optarg, &c.precision)) {
                fprintf(stderr, "fairbench conformance: --precision must be f32, f16, bf16 or native, not '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case O_THREADS: {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 4096) {
                fprintf(stderr, "fairbench conformance: --threads expects 0 (all cores) to 4096, got '%s'\n", optarg);
                return EXIT_USAGE;
            }
            c.threads = (int)v;
            break;
        }
        case O_TIMEOUT:
            c.timeout_s = strtod(optarg, &end);
            if (!*optarg || *end || !(c.timeout_s > 0 && c.timeout_s <= 86400)) {
                fprintf(stderr, "fairbench conformance: --timeout expects seconds, more than 0, got '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_PLUGIN_DIR:
            if (c.n_dirs == MAX_PLUGIN_DIRS) {
                fprintf(stderr, "fairbench conformance: at most %d --plugin-dir options\n", MAX_PLUGIN_DIRS);
                return EXIT_USAGE;
            }
            c.dirs[c.n_dirs++] = optarg;
            break;
        case O_KEEP: keep = true; break;
        case O_BACKEND: c.backend_name = optarg; break;
        case O_NO_RSS: c.no_rss_check = true; break;
        case 'h': fb_conformance_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "fairbench conformance: expected one plugin file (see fairbench conformance --help)\n");
        return EXIT_USAGE;
    }
    char plugin_path[PATH_MAX];
    struct stat st;
    if (!realpath(argv[optind], plugin_path) || stat(plugin_path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "fairbench conformance: %s: not a file (%s)\n", argv[optind], strerror(errno ? errno : ENOENT));
        return EXIT_USAGE;
    }
    c.plugin_path = plugin_path;

    const char *tmp = getenv("TMPDIR");
    snprintf(c.tmpdir, sizeof c.tmpdir, "%s/fairbench-conformance.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(c.tmpdir)) {
        fprintf(stderr, "fairbench conformance: cannot create a folder %s: %s\n", c.tmpdir, strerror(errno));
        return EXIT_USAGE;
    }
    fb_error err;
    if (write_models(&c, &err)) {
        fprintf(stderr, "fairbench conformance: cannot write the synthetic models: %s\n", err.msg);
        remove_tmpdir(&c, keep);
        return EXIT_USAGE;
    }
    char reference[1300];
    if (compute_reference(&c, reference, sizeof reference)) {
        fprintf(stderr, "fairbench conformance: %s\n", reference);
        remove_tmpdir(&c, keep);
        return EXIT_USAGE;
    }
    printf("fairbench conformance: %s\n", c.plugin_path);
    printf("reference: %s\n", reference);
    for (int i = 0; i < N_MODELS; i++) printf("model %s: %s\n", c.models[i].label, c.models[i].shape);
    printf("settings: weights %s, accumulate f32, threads %d, time-out %g s per check%s%s%s\n",
           fb_precision_name(c.precision), c.threads, c.timeout_s,
           c.no_rss_check ? "; resident memory not checked" : "", keep ? "; models kept in " : "",
           keep ? c.tmpdir : "");

    tally t = {0};
    check_result r;
    int rc = EXIT_OK;
    run_check(&c, &LOAD, &r);
    print_result(LOAD.name, &r, &t);
    if (r.verdict != 'P' && !r.name[0]) {
        printf("1 check, failed: the others need a plugin that loads\n");
        rc = EXIT_FAILURES;
        goto done;
    }
    c.caps = r.caps;
    if (!(c.caps & fb_precision_cap(c.precision))) {
        char caps[128];
        fb_caps_format(c.caps, caps, sizeof caps);
        fprintf(stderr,
                "fairbench conformance: %s does not claim weight precision %s (capabilities: %s); choose one "
                "it claims with --precision\n",
                r.name, fb_precision_name(c.precision), caps);
        rc = EXIT_USAGE;
        goto done;
    }
    run_check(&c, &PROBE, &r);
    print_result(PROBE.name, &r, &t);
    if (r.available != 1) {
        check_result skip = {.verdict = 'S'};
        if (r.available == 0) snprintf(skip.text, sizeof skip.text, "the plugin's probe says %.1100s", r.text);
        else
            snprintf(skip.text, sizeof skip.text, "probe did not say the hardware is here");
        if (r.available == 0) {
            run_check(&c, &CREATE_UNAVAILABLE, &r);
            print_result(CREATE_UNAVAILABLE.name, &r, &t);
        }
        for (size_t i = 0; i < N_SESSION_CHECKS; i++) print_result(SESSION_CHECKS[i].name, &skip, &t);
    } else {
        for (size_t i = 0; i < N_SESSION_CHECKS; i++) {
            run_check(&c, &SESSION_CHECKS[i], &r);
            print_result(SESSION_CHECKS[i].name, &r, &t);
        }
    }
    printf("%d checks: %d passed, %d failed, %d skipped\n", t.passed + t.failed + t.skipped, t.passed, t.failed,
           t.skipped);
    rc = t.failed ? EXIT_FAILURES : t.skipped ? EXIT_UNAVAILABLE : EXIT_OK;
done:
    remove_tmpdir(&c, keep);
    return rc;
}
