/* runner.c - the main job (see runner.h).
 *
 * Every entry, and the reference, runs in a child process of its own
 * (supervisor.c), forked before anything in the parent touches a device: a
 * cold start is cold, a memory peak belongs to one backend, and a backend
 * that crashes, hangs or runs out of memory takes only its own child down.
 * The parent sends commands down a pipe and waits for each answer at most
 * timeout_s. Children stay alive with the model loaded, so the parent can
 * interleave repetitions across backends in a seeded shuffled order per
 * round: drift and order effects fall on all alike.
 *
 * This file: the child's side (load one backend, answer commands), the
 * parent's side of one child (what each way of dying means), and the run.
 * Elsewhere: the timed loop (timing.c), the agreement maths (agreement.c),
 * the audit, ranking and warnings (verdict.c). */
#include "runner.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "agreement.h"
#include "backends.h"
#include "membw.h"
#include "model.h"
#include "options.h"
#include "why/energy.h"
#include "why/pass.h"
#include "plugin_host.h"
#include "quant.h"
#include "sha256.h"
#include "supervisor.h"
#include "timing.h"
#include "tokenizer.h"
#include "verdict.h"

static volatile sig_atomic_t interrupted;

void fb_run_interrupt(void) {
    interrupted = 1;
    fb_child_kill_all();
}

// ----------------------------------------------------------------------------
// Messages between parent and child (framed by supervisor.c)

enum { CMD_REP = 1, CMD_LOGITS = 2, CMD_FINAL = 3 };
enum { MSG_READY = 1, MSG_REP = 2, MSG_LOGITS = 3, MSG_FINAL = 4, MSG_PROGRESS = 5, MSG_WHY = 6 };

/* host->progress() from the child, any time before an answer. */
typedef struct progress_msg {
    double fraction;
    char stage[120];
} progress_msg;

typedef struct ready_msg {
    int32_t state; /* fb_entry_state */
    char reason[512];
    char version[32];
    char device[128];
    fb_effective_settings effective;
    int32_t has_effective;
    uint32_t capabilities;
    double load_s, cold_start_s, overhead_ns, copy_bandwidth;
    uint32_t n_vocab;
} ready_msg;

typedef struct final_msg {
    fb_memory_stats memory;
    uint64_t rss_peak_bytes;
    fb_effective_settings effective; /* again at the end: what the session did over the whole run */
    int32_t has_effective;
} final_msg;

/* The address-space limit a CPU backend's child runs under, in bytes (0:
 * none): FAIRBENCH_MEMORY_LIMIT_MB, else 3/4 of the physical memory, and
 * never above the limit fairbench itself was started with (prlimit, ulimit
 * -v). The parent computes the same figure to tell "out of memory" from a
 * crash. */
static uint64_t cpu_memory_limit_bytes(void) {
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer reserves terabytes of address space for its shadow
     * memory: an address-space limit would fail every allocation. */
    return 0;
#endif
    const char *env = getenv("FAIRBENCH_MEMORY_LIMIT_MB");
    uint64_t limit = 0;
    if (env) limit = strtoull(env, NULL, 10) << 20;
    else {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) limit = (uint64_t)pages * (uint64_t)page / 4 * 3;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (limit == 0 || rl.rlim_cur < limit))
        limit = rl.rlim_cur;
    return limit;
}

// ----------------------------------------------------------------------------
// The child: loads one backend and answers commands until FINAL.

typedef struct child_ctx {
    const fb_profile *profile;
    const char *plugin_path; /* its .so, found by the scout; NULL: not found */
    const char *not_found;   /* why not, when plugin_path is NULL */
    fb_fairness fairness;
    const int32_t *prompt;
    size_t n_prompt;
    uint32_t max_context;
    const fb_entry *entry; /* its per-backend options (ABI 1.1) */
} child_ctx;

/* Peak resident set since the child started (VmHWM, reset at start). */
static uint64_t rss_peak_bytes(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (fp && fgets(line, sizeof line, fp))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtoull(line + 6, NULL, 10);
    if (fp) fclose(fp);
    if (kb == 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) kb = (uint64_t)ru.ru_maxrss;
    }
    return kb * 1024;
}

/* host->progress() in the child: forwarded to the parent, at most every
 * 100 ms per stage (the last word of a stage, 1.0, always). */
static int progress_fd = -1;
static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;

static void child_progress(const fb_host *host, const char *stage, double fraction) {
    (void)host;
    static double last_s;
    static char last_stage[120];
    if (progress_fd < 0 || !stage) return;
    pthread_mutex_lock(&progress_lock);
    double now = fb_now_s();
    progress_msg m = {.fraction = fraction};
    snprintf(m.stage, sizeof m.stage, "%s", stage);
    if (fraction >= 1 || now - last_s >= 0.1 || strcmp(last_stage, m.stage) != 0) {
        fb_msg_send(progress_fd, MSG_PROGRESS, 0, &m, sizeof m);
        last_s = now;
        memcpy(last_stage, m.stage, sizeof last_stage);
    }
    pthread_mutex_unlock(&progress_lock);
}

static void on_cancel_timer(int sig) {
    (void)sig;
    fb_host_request_cancel();
}

/* host->is_cancelled() turns true at 80% of the time-out, so a long
 * create() that checks it can stop and say so before the parent kills the
 * child at the deadline. */
static void arm_cancel_timer(double timeout_s) {
    double at = 0.8 * timeout_s;
    struct itimerval t = {{0, 0}, {(time_t)at, (suseconds_t)((at - floor(at)) * 1e6)}};
    signal(SIGALRM, on_cancel_timer);
    setitimer(ITIMER_REAL, &t, NULL);
}

static void disarm_cancel_timer(void) {
    struct itimerval t = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &t, NULL);
}

static fb_settings settings_for(const child_ctx *c, fb_option options[FB_MAX_OPTIONS]) {
    fb_settings s = {.struct_size = sizeof s,
                     .weight_precision = c->fairness.weight_precision,
                     .accumulate_precision = c->fairness.accumulate_precision,
                     .allow_jit = c->fairness.allow_jit,
                     .allow_graphs = c->fairness.allow_graphs,
                     .jit_cache = c->fairness.jit_cache,
                     .threads = c->fairness.threads,
                     .max_context = c->max_context,
                     .cache_dir = NULL,
                     .device_index = 0,
                     .n_options = fb_options_view(c->entry, options),
                     .options = options};
    return s;
}

/* A plugin's strings end inside their arrays, whatever it wrote. */
static void terminate_strings(fb_effective_settings *e) {
    e->device[sizeof e->device - 1] = '\0';
    e->notes[sizeof e->notes - 1] = '\0';
    e->options[sizeof e->options - 1] = '\0';
}

/* Load, create, cold start: what READY reports. Returns the session, or
 * NULL with ready->state saying why not. */
static fb_session *child_load(const child_ctx *c, fb_backend *backend, ready_msg *ready, fb_model **model,
                              fb_model_view_owner *view) {
    /* The host's services, with progress going to the parent. */
    static fb_host child_host;
    child_host = *fb_host_services();
    child_host.progress = child_progress;
    const fb_host *host = &child_host;
    fb_error err;
    if (!c->plugin_path) {
        ready->state = FB_ENTRY_SKIPPED;
        snprintf(ready->reason, sizeof ready->reason, "%s", c->not_found);
        return NULL;
    }
    /* Only this entry's plugin is loaded: another plugin's libraries (a CUDA
     * runtime, cuBLAS) would count in this backend's memory. */
    if (fb_backend_load(c->plugin_path, c->entry->plugin, backend, NULL, 0) != 0) {
        ready->state = FB_ENTRY_SKIPPED;
        snprintf(ready->reason, sizeof ready->reason, "unusable: %.490s", backend->reason);
        return NULL;
    }
    const fb_plugin *api = backend->api;
    snprintf(ready->version, sizeof ready->version, "%s", api->version ? api->version : "?");
    ready->capabilities = api->capabilities;
    fb_probe_result probe = {.struct_size = sizeof probe};
    if (api->probe(host, &probe) != FB_OK || !probe.available) {
        ready->state = FB_ENTRY_SKIPPED;
        snprintf(ready->reason, sizeof ready->reason, "unavailable: %s", probe.reason);
        return NULL;
    }
    snprintf(ready->device, sizeof ready->device, "%s", probe.device);
    if (fb_model_open(c->profile->model, model, &err) || fb_model_view_build(*model, view, &err)) {
        ready->state = FB_ENTRY_FAILED;
        snprintf(ready->reason, sizeof ready->reason, "%s", err.msg);
        return NULL;
    }
    if (!(api->capabilities & FB_CAP_GPU)) {
        /* A runaway CPU backend gets a failed allocation in its own child
         * rather than the machine's out-of-memory killer. GPU backends are
         * left alone: drivers reserve huge address ranges. */
        uint64_t limit = cpu_memory_limit_bytes();
        struct rlimit rl = {limit, limit};
        if (limit) setrlimit(RLIMIT_AS, &rl);
    }
    ready->n_vocab = (*model)->hp.n_vocab;
    fb_option options[FB_MAX_OPTIONS];
    fb_settings settings = settings_for(c, options);
    char message[512] = "";
    fb_session *s = NULL;
    arm_cancel_timer(c->profile->timeout_s);
    double t0 = fb_now_s();
    fb_status st = api->create(host, &view->view, &settings, &s, message, sizeof message);
    ready->load_s = fb_now_s() - t0;
    disarm_cancel_timer();
    if (st != FB_OK) {
        ready->state = st == FB_ERR_OUT_OF_MEMORY ? FB_ENTRY_OUT_OF_MEMORY
                       : st == FB_ERR_UNAVAILABLE ? FB_ENTRY_SKIPPED
                       : st == FB_ERR_UNSUPPORTED ? FB_ENTRY_UNSUPPORTED
                       : st == FB_ERR_CANCELLED   ? FB_ENTRY_TIMED_OUT
                                                  : FB_ENTRY_FAILED;
        if (st == FB_ERR_UNSUPPORTED) snprintf(ready->reason, sizeof ready->reason, "%.500s", message);
        else if (st == FB_ERR_CANCELLED)
            snprintf(ready->reason, sizeof ready->reason,
                     "create ran %.1f s, past 80%% of timeout_s (%g s), and "
                     "stopped when asked: %.400s",
                     ready->load_s, c->profile->timeout_s, message);
        else
            snprintf(ready->reason, sizeof ready->reason, "create failed: %.480s", message);
        return NULL;
    }
    int32_t next;
    t0 = fb_now_s();
    st = api->prefill(s, c->prompt, (uint32_t)c->n_prompt, FB_LOGITS_NONE, NULL, &next);
    if (st == FB_OK) st = api->decode(s, next, NULL, &next);
    ready->cold_start_s = fb_now_s() - t0;
    if (st != FB_OK) {
        ready->state = st == FB_ERR_OUT_OF_MEMORY ? FB_ENTRY_OUT_OF_MEMORY : FB_ENTRY_FAILED;
        snprintf(ready->reason, sizeof ready->reason, "first prefill/decode failed: %.460s", api->last_error(s));
    }
    ready->effective.struct_size = sizeof ready->effective;
    ready->has_effective = api->effective_settings(s, &ready->effective) == FB_OK;
    terminate_strings(&ready->effective);
    ready->overhead_ns = fb_harness_overhead_ns();
    if (api->copy_bandwidth && api->copy_bandwidth(s, &ready->copy_bandwidth) != FB_OK) ready->copy_bandwidth = 0;
    return s;
}

/* Teacher-forced: the prompt, then the given tokens; the logits of the
 * position after the prompt and after each token but the last, and the
 * token the backend returned at each. */
static fb_status child_logits_pass(const child_ctx *c, const fb_plugin *api, fb_session *s, uint32_t n_vocab,
                                   const int32_t *tokens, uint32_t n, float *logits, int32_t *returned) {
    fb_status st = api->reset(s);
    if (st == FB_OK) st = api->prefill(s, c->prompt, (uint32_t)c->n_prompt, FB_LOGITS_LAST, logits, &returned[0]);
    for (uint32_t i = 0; i + 1 < n && st == FB_OK; i++)
        st = api->decode(s, tokens[i], logits + (size_t)(i + 1) * n_vocab, &returned[i + 1]);
    return st;
}

static void send_error(int res_fd, uint32_t type, fb_status st, const fb_plugin *api, fb_session *s) {
    const char *why = api->last_error(s);
    fb_msg_send(res_fd, type, st, why, strlen(why) + 1);
}

static void child_main(void *arg, int cmd_fd, int res_fd) {
    const child_ctx *c = arg;
    /* The peak RSS must be this backend's, not the parent's pages it was
     * forked with: Linux resets the high-water mark on "5" (clear_refs). */
    FILE *refs = fopen("/proc/self/clear_refs", "w");
    if (refs) {
        fputs("5", refs);
        fclose(refs);
    }
    progress_fd = res_fd;
    ready_msg ready;
    memset(&ready, 0, sizeof ready);
    fb_backend backend;
    memset(&backend, 0, sizeof backend);
    fb_model *model = NULL;
    fb_model_view_owner view;
    fb_session *s = child_load(c, &backend, &ready, &model, &view);
    fb_msg_send(res_fd, MSG_READY, 0, &ready, sizeof ready);
    if (ready.state != FB_ENTRY_OK) _exit(0);
    const fb_plugin *api = backend.api;
    uint32_t n_vocab = ready.n_vocab;
    for (;;) {
        uint32_t cmd[2];
        if (fb_read_until(cmd_fd, cmd, sizeof cmd, INFINITY)) _exit(0);
        uint32_t n = cmd[1];
        if (cmd[0] == CMD_REP) {
            /* payload: prefill seconds, n latencies (ms), n tokens */
            size_t bytes = sizeof(double) + (size_t)n * (sizeof(double) + sizeof(int32_t));
            double *payload = malloc(bytes);
            if (!payload) _exit(1);
            fb_status st = fb_timed_repetition(api, s, c->prompt, (uint32_t)c->n_prompt, n, payload, payload + 1,
                                               (int32_t *)(void *)(payload + 1 + n));
            if (st != FB_OK) send_error(res_fd, MSG_REP, st, api, s);
            else
                fb_msg_send(res_fd, MSG_REP, 0, payload, bytes);
            free(payload);
        } else if (cmd[0] == CMD_LOGITS) {
            /* payload: n x n_vocab logits, then n returned tokens */
            size_t bytes = (size_t)n * n_vocab * sizeof(float) + (size_t)n * sizeof(int32_t);
            int32_t *tokens = malloc((size_t)n * sizeof *tokens);
            float *logits = malloc(bytes);
            if (!tokens || !logits || fb_read_until(cmd_fd, tokens, (size_t)n * sizeof *tokens, INFINITY)) _exit(1);
            int32_t *returned = (int32_t *)(void *)(logits + (size_t)n * n_vocab);
            fb_status st = child_logits_pass(c, api, s, n_vocab, tokens, n, logits, returned);
            if (st != FB_OK) send_error(res_fd, MSG_LOGITS, st, api, s);
            else
                fb_msg_send(res_fd, MSG_LOGITS, 0, logits, bytes);
            free(tokens);
            free(logits);
        } else { /* CMD_FINAL */
            final_msg fin;
            memset(&fin, 0, sizeof fin);
            fin.memory.struct_size = sizeof fin.memory;
            api->memory(s, &fin.memory);
            fin.rss_peak_bytes = rss_peak_bytes();
            fin.effective.struct_size = sizeof fin.effective;
            fin.has_effective = api->effective_settings(s, &fin.effective) == FB_OK;
            terminate_strings(&fin.effective);
            fb_msg_send(res_fd, MSG_FINAL, 0, &fin, sizeof fin);
            api->destroy(s);
            _exit(0);
        }
    }
}

// ----------------------------------------------------------------------------
// The scout: finds the plugins in a child process of its own, so that the
// parent never loads a plugin (nor the libraries it pulls in) and a plugin
// whose loading crashes takes down only the scout.

typedef struct scouted {
    char name[64];
    char path[1024];
    int32_t usable;
    char reason[512];
} scouted;

typedef struct scout_list {
    scouted *items;
    size_t n;
} scout_list;

/* The scout also asks each entry's plugin to vet its per-backend options: a
 * refusal is sent as a record with usable = -1 and the "file:line: ..."
 * sentence, which scout_plugins turns into its error. */
typedef struct scout_arg {
    const fb_profile *profile;
    const fb_run_options *opt;
} scout_arg;

static void scout_main(void *arg, int cmd_fd, int res_fd) {
    const scout_arg *sa = arg;
    const fb_run_options *opt = sa->opt;
    (void)cmd_fd;
    fb_backend_list list;
    fb_error e;
    if (fb_backends_discover(opt->plugin_dirs, opt->n_plugin_dirs, &list, &e) == 0)
        for (size_t i = 0; i < list.n; i++) {
            scouted s;
            memset(&s, 0, sizeof s);
            snprintf(s.name, sizeof s.name, "%s", list.items[i].name);
            snprintf(s.path, sizeof s.path, "%s", list.items[i].path);
            s.usable = list.items[i].usable;
            snprintf(s.reason, sizeof s.reason, "%s", list.items[i].reason);
            if (fb_write_all(res_fd, &s, sizeof s)) break;
        }
    if (fb_options_vet(sa->profile, &list, &e)) {
        scouted s;
        memset(&s, 0, sizeof s);
        s.usable = -1;
        snprintf(s.reason, sizeof s.reason, "%s", e.msg);
        fb_write_all(res_fd, &s, sizeof s);
    }
    _exit(0);
}

static int scout_plugins(const fb_profile *p, const fb_run_options *opt, double timeout_s, scout_list *out,
                         fb_error *err) {
    memset(out, 0, sizeof *out);
    fb_child ch;
    scout_arg arg = {p, opt};
    if (fb_child_spawn(&ch, scout_main, &arg)) return fb_error_set(err, "cannot fork: %s", strerror(errno));
    double deadline = fb_now_s() + timeout_s;
    scouted s;
    int rc;
    while ((rc = fb_read_until(ch.res_fd, &s, sizeof s, deadline)) == 0) {
        scouted *items = realloc(out->items, (out->n + 1) * sizeof *items);
        if (!items) break;
        out->items = items;
        out->items[out->n++] = s;
    }
    fb_child_end end;
    fb_child_bury(&ch, rc == FB_CHILD_TIMED_OUT, &end);
    if (rc == FB_CHILD_TIMED_OUT)
        return fb_error_set(err, "finding plugins took longer than %.0f s (a plugin's loading hangs)", timeout_s);
    for (size_t i = 0; i < out->n; i++)
        if (out->items[i].usable < 0) {
            fb_error_set(err, "%s", out->items[i].reason);
            free(out->items);
            memset(out, 0, sizeof *out);
            return -1;
        }
    return 0;
}

/* The usable plugin `name`: its path, or NULL with why not. */
static const char *scout_find(const scout_list *l, const char *name, char *why, size_t why_size) {
    snprintf(why, why_size, "no usable plugin named '%s' (see fairbench plugins)", name);
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i].name, name) != 0) continue;
        if (l->items[i].usable) return l->items[i].path;
        snprintf(why, why_size, "unusable: %.490s", l->items[i].reason);
    }
    return NULL;
}

/* A name that no plugin provides, usable or not, is a typo or a missing
 * install: an error before anything runs, with the closest name. */
static int check_plugin_name(const fb_profile *p, const scout_list *l, const char *label, const char *plugin,
                             fb_error *err) {
    const char *names[256] = {0};
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i].name, plugin) == 0) return 0;
        if (n < 256) names[n++] = l->items[i].name;
    }
    const char *closest = fb_closest_name(plugin, names, n);
    char known[1024] = "";
    for (size_t i = 0, used = 0; i < n && used < sizeof known; i++)
        used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", names[i]);
    char what[160];
    if (strcmp(label, plugin) == 0) snprintf(what, sizeof what, "backend '%s'", plugin);
    else
        snprintf(what, sizeof what, "backend '%s' (plugin '%s')", label, plugin);
    if (closest)
        return fb_error_set(err, "%s: no plugin provides %s; did you mean '%s'?", p->path[0] ? p->path : "profile",
                            what, closest);
    return fb_error_set(err, "%s: no plugin provides %s (plugins found: %s)", p->path[0] ? p->path : "profile", what,
                        known[0] ? known : "none");
}

// ----------------------------------------------------------------------------
// The parent's side of one child

typedef struct backend_child {
    fb_child proc;
    fb_entry_result *res; /* where its figures and its fate are recorded */
    uint32_t n_vocab;
    uint32_t capabilities;
    double copy_bandwidth;
    bool ready; /* READY received: capabilities are known */
    const fb_run_options *opt;
    uint64_t model_bytes; /* for "x of y MB" in progress lines */
} backend_child;

/* A progress line on a terminal rewrites itself until the next line. */
static bool progress_line_open;

static void show_child_progress(const backend_child *bc, const progress_msg *m) {
    if (!bc->opt || !bc->opt->progress) return;
    double f = m->fraction < 0 ? 0 : m->fraction > 1 ? 1 : m->fraction;
    fprintf(stderr, "\r\033[Kfairbench: %s: %.100s %3.0f%% (%.1f of %.1f MB)", bc->res->entry->label, m->stage, 100 * f,
            f * (double)bc->model_bytes / 1e6, (double)bc->model_bytes / 1e6);
    progress_line_open = true;
}

/* The child is gone or must go: reap it and say why in its result. */
static void bury(backend_child *bc, bool timed_out, double timeout_s, const char *during) {
    if (!bc->proc.alive) return;
    fb_child_end end;
    fb_child_bury(&bc->proc, timed_out, &end);
    fb_entry_result *r = bc->res;
    if (end.rss_peak_bytes > r->host_rss_peak_bytes) r->host_rss_peak_bytes = end.rss_peak_bytes;
    bool gpu = bc->ready && (bc->capabilities & FB_CAP_GPU);
    uint64_t limit = gpu ? 0 : cpu_memory_limit_bytes();
    if (interrupted) {
        r->state = FB_ENTRY_INTERRUPTED;
        snprintf(r->reason, sizeof r->reason, "stopped by Ctrl-C during %s", during);
    } else if (timed_out) {
        r->state = FB_ENTRY_TIMED_OUT;
        snprintf(r->reason, sizeof r->reason, "no answer to %s within %g s; killed", during, timeout_s);
    } else if (end.signaled && end.sig == SIGKILL) {
        r->state = FB_ENTRY_OUT_OF_MEMORY;
        snprintf(r->reason, sizeof r->reason,
                 "killed by SIGKILL during %s, likely by the out-of-memory killer (RSS peak %.0f MB)", during,
                 (double)end.rss_peak_bytes / 1e6);
    } else if (end.signaled && limit && end.rss_peak_bytes >= limit / 10 * 8) {
        /* An allocation failed at the address-space limit and the backend
         * did not check it (a NULL dereference, an abort in new). */
        r->state = FB_ENTRY_OUT_OF_MEMORY;
        snprintf(r->reason, sizeof r->reason, "during %s: RSS reached %.0f MB of the %.0f MB memory limit, then %s",
                 during, (double)end.rss_peak_bytes / 1e6, (double)limit / 1e6, strsignal(end.sig));
    } else if (end.signaled) {
        r->state = FB_ENTRY_CRASHED;
        snprintf(r->reason, sizeof r->reason, "during %s: signal %d (%s)", during, end.sig, strsignal(end.sig));
    } else if (r->state == FB_ENTRY_OK && (strcmp(during, "destroy") != 0 || end.exit_status != 0)) {
        r->state = FB_ENTRY_CRASHED;
        snprintf(r->reason, sizeof r->reason, "the child exited (status %d) during %s", end.exit_status, during);
    }
}

/* Receive one message; on failure the child is buried with the cause. */
static int receive(backend_child *bc, uint32_t type, double timeout_s, const char *during, fb_msg_header *h,
                   void **payload) {
    double deadline = fb_now_s() + timeout_s; /* progress reports do not extend it */
    int rc;
    while ((rc = fb_child_receive(&bc->proc, FB_MSG_ANY, deadline, h, payload)) == 0 && h->type == MSG_PROGRESS) {
        if (h->bytes == sizeof(progress_msg)) show_child_progress(bc, *payload);
        free(*payload);
    }
    if (rc == 0 && h->type != type) {
        free(*payload);
        *payload = NULL;
        rc = FB_CHILD_GONE;
    }
    if (rc) bury(bc, rc == FB_CHILD_TIMED_OUT, timeout_s, during);
    return rc;
}

static int send_command(backend_child *bc, uint32_t cmd, uint32_t n, const char *during) {
    uint32_t c[2] = {cmd, n};
    if (fb_write_all(bc->proc.cmd_fd, c, sizeof c) == 0) return 0;
    bury(bc, false, 0, during);
    return -1;
}

/* A call returned an error status: the child is of no further use. */
static void call_failed(backend_child *bc, const fb_msg_header *h, const void *payload, const char *call) {
    fb_entry_state state = h->status == FB_ERR_OUT_OF_MEMORY ? FB_ENTRY_OUT_OF_MEMORY : FB_ENTRY_FAILED;
    char reason[512];
    snprintf(reason, sizeof reason, "%s failed (status %u): %.400s", call, h->status,
             h->bytes ? (const char *)payload : "");
    fb_child_end end;
    fb_child_bury(&bc->proc, true, &end);
    bc->res->state = state;
    snprintf(bc->res->reason, sizeof bc->res->reason, "%s", reason);
}

/* Wait for READY; fills the result's identity and load figures. */
static int child_ready(backend_child *bc, double timeout_s) {
    fb_msg_header h;
    void *payload;
    if (receive(bc, MSG_READY, timeout_s, "loading (create and the first prefill/decode)", &h, &payload)) return -1;
    const ready_msg *m = payload;
    fb_entry_result *r = bc->res;
    bc->ready = true;
    r->state = (fb_entry_state)m->state;
    snprintf(r->reason, sizeof r->reason, "%s", m->reason);
    snprintf(r->plugin_version, sizeof r->plugin_version, "%s", m->version);
    snprintf(r->device, sizeof r->device, "%s", m->device);
    r->effective = m->effective;
    r->has_effective = m->has_effective;
    r->load_s = m->load_s;
    r->cold_start_s = m->cold_start_s;
    r->harness_overhead_ns = m->overhead_ns;
    bc->n_vocab = m->n_vocab;
    bc->capabilities = m->capabilities;
    bc->copy_bandwidth = m->copy_bandwidth;
    free(payload);
    if (r->state != FB_ENTRY_OK) {
        fb_child_end end;
        fb_child_bury(&bc->proc, false, &end);
        return -1;
    }
    return 0;
}

/* One repetition: prefill + n decode steps; appends timings when `timed`. */
static int child_rep(backend_child *bc, uint32_t n, bool timed, double timeout_s, int32_t **tokens_out) {
    fb_msg_header h;
    void *payload;
    if (send_command(bc, CMD_REP, n, "a repetition")) return -1;
    if (receive(bc, MSG_REP, timeout_s, "a repetition", &h, &payload)) return -1;
    if (h.status != FB_OK) {
        call_failed(bc, &h, payload, "a repetition (reset, prefill or decode)");
        free(payload);
        return -1;
    }
    const double *prefill_s = payload, *lat = prefill_s + 1;
    const int32_t *tokens = (const int32_t *)(const void *)(lat + n);
    fb_entry_result *r = bc->res;
    if (timed) {
        r->prefill_s[r->n_prefill++] = *prefill_s;
        memcpy(r->latency_ms + r->n_latency, lat, n * sizeof *lat);
        r->n_latency += n;
    }
    if (tokens_out && !*tokens_out) {
        *tokens_out = malloc(n * sizeof **tokens_out);
        if (*tokens_out) memcpy(*tokens_out, tokens, n * sizeof **tokens_out);
    }
    free(payload);
    return 0;
}

/* The teacher-forced pass: n x n_vocab logits followed by n returned tokens
 * (malloc'd), or NULL with the child buried. */
static float *child_logits(backend_child *bc, const int32_t *tokens, uint32_t n, double timeout_s) {
    fb_msg_header h;
    void *payload;
    if (send_command(bc, CMD_LOGITS, n, "the agreement pass")) return NULL;
    if (fb_write_all(bc->proc.cmd_fd, tokens, n * sizeof *tokens)) {
        bury(bc, false, 0, "the agreement pass");
        return NULL;
    }
    if (receive(bc, MSG_LOGITS, timeout_s, "the agreement pass", &h, &payload)) return NULL;
    if (h.status != FB_OK) {
        call_failed(bc, &h, payload, "the agreement pass (teacher-forced decode with logits)");
        free(payload);
        return NULL;
    }
    if (h.bytes != (uint64_t)n * bc->n_vocab * sizeof(float) + (uint64_t)n * sizeof(int32_t)) {
        free(payload);
        return NULL;
    }
    return payload;
}

/* Memory figures and the final effective settings; then destroy, which
 * must end the child within the time-out too. */
static void child_final(backend_child *bc, double timeout_s) {
    fb_msg_header h;
    void *payload;
    if (!bc->proc.alive || send_command(bc, CMD_FINAL, 0, "the final report")) return;
    if (receive(bc, MSG_FINAL, timeout_s, "the final report (memory, effective settings)", &h, &payload)) return;
    const final_msg *f = payload;
    bc->res->device_peak_bytes = f->memory.device_peak_bytes;
    bc->res->host_rss_peak_bytes = f->rss_peak_bytes;
    /* A backend may only know at the end what it did (graphs are reported
     * once replayed): the audit uses the final word. */
    if (f->has_effective) {
        bc->res->effective = f->effective;
        bc->res->has_effective = true;
    }
    free(payload);
    char eof;
    int rc = fb_read_until(bc->proc.res_fd, &eof, 1, fb_now_s() + timeout_s);
    bury(bc, rc == FB_CHILD_TIMED_OUT, timeout_s, "destroy");
    if (bc->res->state != FB_ENTRY_OK)
        snprintf(bc->res->reason + strlen(bc->res->reason), sizeof bc->res->reason - strlen(bc->res->reason),
                 " (in destroy, after its figures were in)");
}

static int start_backend(backend_child *bc, child_ctx *ctx, fb_entry_result *res, const fb_run_options *opt,
                         uint64_t model_bytes) {
    memset(bc, 0, sizeof *bc);
    bc->res = res;
    bc->opt = opt;
    bc->model_bytes = model_bytes;
    return fb_child_spawn(&bc->proc, child_main, ctx);
}

// ----------------------------------------------------------------------------
// Figures

static int precision_type(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return GGUF_TYPE_F32;
    case FB_PRECISION_F16: return GGUF_TYPE_F16;
    case FB_PRECISION_BF16: return GGUF_TYPE_BF16;
    default: return -1;
    }
}

static void compute_figures(fb_entry_result *r, const fb_model *m, size_t n_prompt, uint32_t gen_tokens,
                            double ceiling_bytes_s) {
    if (r->n_latency == 0) return;
    fb_summarize(r->latency_ms, r->n_latency, &r->decode);
    fb_summary pre;
    fb_summarize(r->prefill_s, r->n_prefill, &pre);
    r->prefill_tok_s = pre.median > 0 ? (double)n_prompt / pre.median : 0;
    r->throughput_tok_s = r->decode.mean > 0 ? 1000.0 / r->decode.mean : 0;
    fb_precision p = r->has_effective ? r->effective.weight_precision : r->entry->fairness.weight_precision;
    uint64_t kv = fb_model_kv_bytes_per_pos(m, 4) * (uint64_t)(n_prompt + gen_tokens / 2);
    r->bytes_per_step = fb_model_decode_bytes(m, precision_type(p)) + kv;
    r->bandwidth_gb_s = r->decode.median > 0 ? (double)r->bytes_per_step / (r->decode.median * 1e-3) / 1e9 : 0;
    r->ceiling_gb_s = ceiling_bytes_s / 1e9;
    r->roofline_pct = ceiling_bytes_s > 0 ? 100.0 * r->bandwidth_gb_s * 1e9 / ceiling_bytes_s : 0;
}

/* Agreement of one backend's teacher-forced pass with the reference's. */
static void judge_agreement(fb_entry_result *r, const float *got, const float *want, uint32_t n_pos, uint32_t n_vocab,
                            const char *reference) {
    fb_precision p = r->has_effective ? r->effective.weight_precision : r->entry->fairness.weight_precision;
    fb_agreement a;
    fb_agreement_init(&a, p);
    const int32_t *returned = (const int32_t *)(const void *)(got + (size_t)n_pos * n_vocab);
    for (uint32_t i = 0; i < n_pos; i++) {
        fb_agreement_add(&a, got + (size_t)i * n_vocab, want + (size_t)i * n_vocab, n_vocab, (int)i);
        fb_agreement_add_returned(&a, got + (size_t)i * n_vocab, n_vocab, returned[i], (int)i);
    }
    fb_agreement_bar bar = fb_agreement_bar_for(p);
    r->agreement_checked = true;
    r->top1 = fb_agreement_top1(&a);
    r->max_abs_diff = a.max_abs;
    r->mean_kl = fb_agreement_mean_kl(&a);
    r->wrong = fb_agreement_check(&a, reference, r->reason, sizeof r->reason) != 0;
    snprintf(r->agreement_note, sizeof r->agreement_note,
             "%u positions; bar for %s: top-1 >= %.2f, KL <= %.0e, max |logit diff| <= %g%% of the largest |logit|",
             n_pos, fb_precision_name(p), bar.min_top1, bar.max_kl, 100 * bar.max_diff_share);
}

// ----------------------------------------------------------------------------
// The run

static void progress(const fb_run_options *opt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const fb_run_options *opt, const char *fmt, ...) {
    if (!opt->progress) return;
    va_list ap;
    va_start(ap, fmt);
    if (progress_line_open) fputc('\n', stderr), progress_line_open = false;
    fprintf(stderr, "fairbench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* The prompt as token ids: tokenized once, then repeated or cut to exactly
 * prompt_tokens when the profile asks. */
static int make_prompt(const fb_profile *p, const fb_model *m, fb_run_result *out, fb_error *err) {
    fb_tokenizer *tok;
    if (fb_tokenizer_load(m->file, &tok, err)) return -1;
    int32_t *ids;
    size_t n;
    int rc = fb_tokenize(tok, p->prompt, strlen(p->prompt), true, false, &ids, &n, err);
    fb_tokenizer_free(tok);
    if (rc) return -1;
    if (n == 0) {
        free(ids);
        return fb_error_set(err, "%s: the prompt tokenizes to nothing", p->path);
    }
    if (p->prompt_tokens > 0) {
        int32_t *sized = malloc((size_t)p->prompt_tokens * sizeof *sized);
        if (!sized) {
            free(ids);
            return fb_error_set(err, "out of memory");
        }
        for (int i = 0; i < p->prompt_tokens; i++) sized[i] = ids[(size_t)i % n];
        free(ids);
        ids = sized;
        n = (size_t)p->prompt_tokens;
    }
    out->prompt = ids;
    out->n_prompt = n;
    snprintf(out->prompt_text, sizeof out->prompt_text, "%s", p->prompt);
    return 0;
}

/* The reference: its own child, at f32, first; its greedy tokens are the
 * sequence every backend is teacher-forced on. Returns its logits
 * (malloc'd) or NULL with out->reference_status saying why not. */
static float *run_reference(const fb_profile *p, const fb_run_options *opt, const scout_list *plugins, uint32_t gen,
                            uint32_t max_context, fb_run_result *out) {
    fb_entry ref_entry = {.fairness = p->fairness};
    snprintf(ref_entry.label, sizeof ref_entry.label, "%s", p->reference);
    snprintf(ref_entry.plugin, sizeof ref_entry.plugin, "%s", p->reference);
    for (int i = 0; i < p->n_entries; i++)
        if (strcmp(p->entries[i].label, p->reference) == 0) {
            snprintf(ref_entry.plugin, sizeof ref_entry.plugin, "%s", p->entries[i].plugin);
            memcpy(ref_entry.options, p->entries[i].options, sizeof ref_entry.options);
            ref_entry.n_options = p->entries[i].n_options;
        }
    ref_entry.fairness.weight_precision = FB_PRECISION_F32;
    ref_entry.fairness.accumulate_precision = FB_PRECISION_F32;
    fb_entry_result ref_result = {.entry = &ref_entry};
    char why[600];
    const char *path = scout_find(plugins, ref_entry.plugin, why, sizeof why);
    child_ctx ctx = {p, path, why, ref_entry.fairness, out->prompt, out->n_prompt, max_context, &ref_entry};
    snprintf(out->reference_label, sizeof out->reference_label, "%.56s (f32)", ref_entry.plugin);
    progress(opt, "reference %s at f32: loading", ref_entry.plugin);
    backend_child bc;
    float *ref_logits = NULL;
    if (start_backend(&bc, &ctx, &ref_result, opt, out->model_bytes) == 0 && child_ready(&bc, p->timeout_s) == 0 &&
        child_rep(&bc, gen, false, p->timeout_s, &out->reference_tokens) == 0) {
        out->n_reference_tokens = gen;
        progress(opt, "reference: teacher-forced logits over %u positions", gen);
        ref_logits = child_logits(&bc, out->reference_tokens, gen, p->timeout_s);
        child_final(&bc, p->timeout_s);
    }
    if (bc.proc.alive) bury(&bc, true, 0, "shutdown");
    if (ref_logits && ref_result.state == FB_ENTRY_OK) {
        snprintf(out->reference_status, sizeof out->reference_status, "ok");
    } else {
        free(ref_logits);
        ref_logits = NULL;
        snprintf(out->reference_status, sizeof out->reference_status, "%s: %.230s",
                 fb_entry_state_name(ref_result.state), ref_result.reason[0] ? ref_result.reason : "failed");
    }
    return ref_logits;
}

// ----------------------------------------------------------------------------
// The profiling pass: after an entry's timed figures are in and its child has
// ended, a child of its own loads the backend again and records why_steps
// decode steps (why_profile_pass: CUPTI kernels, the plugin's spans, CPU
// counters, RAPL). Nothing of it touches the timed figures; a pass that fails
// or crashes is said in the entry's "why" status and changes nothing else.

static void why_child_main(void *arg, int cmd_fd, int res_fd) {
    const child_ctx *c = arg;
    (void)cmd_fd;
    dup2(STDERR_FILENO, STDOUT_FILENO);
    fb_backend backend;
    fb_model *model = NULL;
    fb_model_view_owner view;
    fb_error err = {{0}};
    cJSON *why = NULL;
    fb_probe_result probe = {.struct_size = sizeof probe};
    if (fb_backend_load(c->plugin_path, c->entry->plugin, &backend, NULL, 0) != 0)
        fb_error_set(&err, "%s", backend.reason);
    else if (backend.api->probe(fb_host_services(), &probe) != FB_OK || !probe.available)
        fb_error_set(&err, "unavailable: %.200s", probe.reason);
    else if (!fb_model_open(c->profile->model, &model, &err) && !fb_model_view_build(model, &view, &err)) {
        fb_option options[FB_MAX_OPTIONS];
        fb_settings settings = settings_for(c, options);
        int steps = c->profile->why_steps, warmup = 4;
        settings.max_context = (uint32_t)(c->n_prompt + (size_t)warmup + (size_t)steps + 2);
        why_pass_config pc = {
            backend.api, fb_host_services(), &view.view, &settings, c->prompt, c->n_prompt, warmup, steps, NULL};
        why = why_profile_pass(&pc, &err);
    }
    char *text = why ? cJSON_PrintUnformatted(why) : NULL;
    if (text) fb_msg_send(res_fd, MSG_WHY, 0, text, strlen(text) + 1);
    else
        fb_msg_send(res_fd, MSG_WHY, 1, err.msg, strlen(err.msg) + 1);
    _exit(0);
}

/* GPU energy, clocks and throttling over the pass's recorded window, sampled
 * by this (the parent) process with NVML while the child runs; attached to the
 * "why" object of a GPU backend as "gpu_energy" ("not available" without NVML). */
static char *with_gpu_energy(char *why_text, why_nvml *nvml, const char *nvml_why_not) {
    cJSON *why = cJSON_Parse(why_text);
    if (!why || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(why, "gpu_backend"))) {
        cJSON_Delete(why);
        return why_text;
    }
    cJSON_AddItemToObject(why, "gpu_energy", why_gpu_energy_json(nvml, nvml_why_not, why));
    char *text = cJSON_PrintUnformatted(why);
    cJSON_Delete(why);
    if (!text) return why_text;
    free(why_text);
    return text;
}

static void why_pass(child_ctx *ctx, fb_entry_result *r, double timeout_s) {
    char nvml_why_not[256] = "";
    why_nvml *nvml = why_nvml_open(NULL, 0, nvml_why_not, sizeof nvml_why_not);
    fb_child ch;
    if (fb_child_spawn(&ch, why_child_main, ctx)) {
        snprintf(r->why_status, sizeof r->why_status, "not run: cannot start a child process: %s", strerror(errno));
        why_nvml_close(nvml);
        return;
    }
    /* The sampling thread starts after the fork: no thread of ours runs across it. */
    if (nvml && why_nvml_start(nvml, 20, nvml_why_not, sizeof nvml_why_not)) why_nvml_close(nvml), nvml = NULL;
    fb_msg_header h;
    void *payload = NULL;
    int rc = fb_child_receive(&ch, MSG_WHY, fb_now_s() + timeout_s, &h, &payload);
    fb_child_end end;
    fb_child_bury(&ch, rc != 0, &end);
    why_nvml_stop(nvml);
    if (rc == 0 && h.status == 0 && h.bytes > 0) {
        ((char *)payload)[h.bytes - 1] = '\0';
        r->why_json = with_gpu_energy(payload, nvml, nvml_why_not);
        snprintf(r->why_status, sizeof r->why_status, "ok");
        why_nvml_close(nvml);
        return;
    }
    why_nvml_close(nvml);
    if (rc == 0) snprintf(r->why_status, sizeof r->why_status, "failed: %.240s", h.bytes ? (char *)payload : "");
    else if (rc == FB_CHILD_TIMED_OUT)
        snprintf(r->why_status, sizeof r->why_status, "timed out after %g s", timeout_s);
    else
        snprintf(r->why_status, sizeof r->why_status, "failed: the pass's process ended without an answer");
    free(payload);
}

static int run_job(const fb_profile *p, const fb_run_options *opt, fb_run_result *out, fb_error *err) {
    memset(out, 0, sizeof *out);
    double t_start = fb_now_s();

    /* Plugins first: a backend that no plugin provides stops the run before
     * anything is measured. */
    scout_list plugins;
    if (scout_plugins(p, opt, p->timeout_s, &plugins, err)) return -1;
    if (interrupted) { /* the plugin list may be cut short: judge no name by it */
        free(plugins.items);
        out->interrupted = true;
        snprintf(out->verdict, sizeof out->verdict, "none: the run was interrupted (Ctrl-C) before it started");
        return 0;
    }
    for (int i = 0; i < p->n_entries; i++)
        if (check_plugin_name(p, &plugins, p->entries[i].label, p->entries[i].plugin, err)) goto fail_plugins;
    bool reference_is_entry = false;
    for (int i = 0; i < p->n_entries; i++) reference_is_entry |= strcmp(p->entries[i].label, p->reference) == 0;
    if (!reference_is_entry && check_plugin_name(p, &plugins, p->reference, p->reference, err)) goto fail_plugins;

    fb_model *m;
    if (fb_model_open(p->model, &m, err)) goto fail_plugins;
    if (make_prompt(p, m, out, err)) goto fail_model;
    out->model_bytes = gguf_file_size(m->file);
    if (fb_sha256_file(p->model, out->model_sha256))
        snprintf(out->model_sha256, sizeof out->model_sha256, "unreadable");
    fb_sha256_buffer(p->text, strlen(p->text), out->profile_sha256);
    uint32_t gen = (uint32_t)p->gen_tokens;
    uint32_t max_context = (uint32_t)out->n_prompt + gen + 2;
    if (max_context > m->hp.n_ctx) {
        fb_error_set(err, "%s: prompt (%zu tokens) + gen_tokens (%u) pass the model's context of %u", p->path,
                     out->n_prompt, gen, m->hp.n_ctx);
        goto fail_model;
    }
    out->n_entries = p->n_entries;
    size_t cap = (size_t)(p->repetitions) * gen;
    for (int i = 0; i < p->n_entries; i++) {
        fb_entry_result *r = &out->entries[i];
        r->entry = &p->entries[i];
        r->latency_ms = calloc(cap ? cap : 1, sizeof *r->latency_ms);
        r->prefill_s = calloc((size_t)p->repetitions + 1, sizeof *r->prefill_s);
        if (!r->latency_ms || !r->prefill_s) {
            fb_error_set(err, "out of memory");
            goto fail_model;
        }
    }

    /* CPU ceilings first, on a quiet machine: one per distinct thread count. */
    long cores = fb_usable_cpus();
    static double ceiling_by_threads[4097];
    memset(ceiling_by_threads, 0, sizeof ceiling_by_threads);
    for (int i = 0; i < p->n_entries && !interrupted; i++) {
        int t = p->entries[i].fairness.threads > 0 ? p->entries[i].fairness.threads : (int)(cores > 0 ? cores : 1);
        if (t > 4096) t = 4096;
        if (ceiling_by_threads[t] == 0) {
            progress(opt, "measuring the streaming-read bandwidth with %d thread%s", t, t > 1 ? "s" : "");
            ceiling_by_threads[t] = fb_cpu_ceiling(t);
        }
    }

    uint32_t n_vocab = m->hp.n_vocab;
    float *ref_logits = interrupted ? NULL : run_reference(p, opt, &plugins, gen, max_context, out);
    if (interrupted) snprintf(out->reference_status, sizeof out->reference_status, "interrupted");

    /* Start every entry, one at a time so that cold starts do not overlap. */
    backend_child children[FB_MAX_ENTRIES];
    child_ctx ctxs[FB_MAX_ENTRIES];
    char why[FB_MAX_ENTRIES][600];
    memset(children, 0, sizeof children);
    for (int i = 0; i < p->n_entries; i++) {
        fb_entry_result *r = &out->entries[i];
        children[i].res = r;
        if (interrupted) {
            r->state = FB_ENTRY_INTERRUPTED;
            snprintf(r->reason, sizeof r->reason, "not started: stopped by Ctrl-C");
            continue;
        }
        const char *path = scout_find(&plugins, r->entry->plugin, why[i], sizeof why[i]);
        ctxs[i] = (child_ctx){p, path, why[i], r->entry->fairness, out->prompt, out->n_prompt, max_context, r->entry};
        progress(opt, "%s: loading (%s, %s weights)", r->entry->label, r->entry->plugin,
                 fb_precision_name(r->entry->fairness.weight_precision));
        if (start_backend(&children[i], &ctxs[i], r, opt, out->model_bytes)) {
            r->state = FB_ENTRY_FAILED;
            snprintf(r->reason, sizeof r->reason, "cannot start a child process: %s", strerror(errno));
            continue;
        }
        if (child_ready(&children[i], p->timeout_s) == 0)
            progress(opt, "%s: loaded in %.3f s, cold start %.1f ms", r->entry->label, r->load_s,
                     r->cold_start_s * 1e3);
        else
            progress(opt, "%s: %s", r->entry->label, r->reason);
    }

    /* Repetitions: warm-up rounds, then timed rounds. */
    uint64_t rng = p->seed * 2654435761u + 1;
    int order[FB_MAX_ENTRIES];
    int rounds = p->warmup + p->repetitions;
    double t_rounds = fb_now_s();
    if (p->order == FB_ORDER_INTERLEAVED) {
        snprintf(out->order, sizeof out->order,
                 "interleaved: one repetition of each backend per round, shuffled per round (seed %" PRIu64 ")",
                 p->seed);
        for (int round = 0; round < rounds && !interrupted; round++) {
            for (int i = 0; i < p->n_entries; i++) order[i] = i;
            for (int i = p->n_entries - 1; i > 0; i--) { /* Fisher-Yates */
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                int j = (int)((rng >> 33) % (uint64_t)(i + 1)), t = order[i];
                order[i] = order[j], order[j] = t;
            }
            bool timed = round >= p->warmup;
            double elapsed = fb_now_s() - t_rounds;
            if (round > 0)
                progress(opt, "round %d of %d%s, about %.0f s left", round + 1, rounds, timed ? "" : " (warm-up)",
                         elapsed / round * (rounds - round));
            else
                progress(opt, "round %d of %d%s", round + 1, rounds, timed ? "" : " (warm-up)");
            for (int k = 0; k < p->n_entries; k++) {
                backend_child *bc = &children[order[k]];
                if (bc->proc.alive) child_rep(bc, gen, timed, p->timeout_s, &bc->res->tokens);
            }
        }
    } else {
        snprintf(out->order, sizeof out->order, "sequential: all repetitions of one backend, then the next");
        for (int i = 0; i < p->n_entries; i++)
            for (int round = 0; round < rounds && children[i].proc.alive; round++)
                child_rep(&children[i], gen, round >= p->warmup, p->timeout_s, &children[i].res->tokens);
    }

    /* Agreement, then memory figures and shutdown. */
    for (int i = 0; i < p->n_entries; i++) {
        backend_child *bc = &children[i];
        fb_entry_result *r = &out->entries[i];
        if (r->tokens) r->n_tokens = gen;
        if (bc->proc.alive && ref_logits) {
            progress(opt, "%s: agreement with the reference", r->entry->label);
            float *logits = child_logits(bc, out->reference_tokens, gen, p->timeout_s);
            if (logits) judge_agreement(r, logits, ref_logits, gen, n_vocab, out->reference_label);
            free(logits);
        }
        child_final(bc, p->timeout_s);
        if (bc->proc.alive) bury(bc, true, 0, "shutdown");
        double ceiling = bc->copy_bandwidth > 0 ? bc->copy_bandwidth : 0;
        if (!(bc->capabilities & FB_CAP_GPU) && r->n_latency > 0) {
            int t = r->has_effective && r->effective.threads > 0 ? r->effective.threads
                    : r->entry->fairness.threads > 0             ? r->entry->fairness.threads
                                                                 : (int)(cores > 0 ? cores : 1);
            ceiling = t <= 4096 && ceiling_by_threads[t] > 0 ? ceiling_by_threads[t] : fb_cpu_ceiling(t);
        }
        compute_figures(r, m, out->n_prompt, gen, ceiling);
    }
    /* The profiling pass, untimed, after every timed figure is in. */
    for (int i = 0; i < p->n_entries && p->why_steps > 0 && !interrupted; i++) {
        fb_entry_result *r = &out->entries[i];
        if (r->state != FB_ENTRY_OK) continue;
        if (out->n_prompt + 4 + (size_t)p->why_steps + 2 > m->hp.n_ctx) {
            snprintf(r->why_status, sizeof r->why_status,
                     "not run: %zu prompt + 4 warm-up + %d steps pass the "
                     "context length %u",
                     out->n_prompt, p->why_steps, m->hp.n_ctx);
            continue;
        }
        progress(opt, "%s: profiling pass (%d untimed decode steps)", r->entry->label, p->why_steps);
        why_pass(&ctxs[i], r, p->timeout_s);
    }
    free(ref_logits);
    free(plugins.items);
    fb_rank_and_warn(p, out);
    fb_audit(p, out);
    if (interrupted) {
        out->interrupted = true;
        out->fair = false;
        snprintf(out->verdict, sizeof out->verdict,
                 "none: the run was interrupted (Ctrl-C); these are partial results");
    }
    fb_model_close(m);
    out->wall_s = fb_now_s() - t_start;
    return 0;

fail_model:
    fb_model_close(m);
fail_plugins:
    free(plugins.items);
    return -1;
}

int fb_run(const fb_profile *p, const fb_run_options *opt, fb_run_result *out, fb_error *err) {
    /* A child that died (crashed, killed at its time-out or by Ctrl-C) leaves
     * a pipe with no reader: writing a command to it must be an error the
     * supervisor sees (EPIPE), not a SIGPIPE that ends fairbench itself. */
    struct sigaction ignore, old;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old);
    int rc = run_job(p, opt, out, err);
    sigaction(SIGPIPE, &old, NULL);
    return rc;
}

void fb_run_result_free(fb_run_result *r) {
    for (int i = 0; i < r->n_entries; i++) {
        free(r->entries[i].latency_ms);
        free(r->entries[i].prefill_s);
        free(r->entries[i].tokens);
        free(r->entries[i].why_json);
    }
    free(r->reference_tokens);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

bool fb_run_has_failures(const fb_run_result *r, bool allow_skips) {
    for (int i = 0; i < r->n_entries; i++) {
        const fb_entry_result *e = &r->entries[i];
        bool skipped = e->state == FB_ENTRY_SKIPPED || e->state == FB_ENTRY_UNSUPPORTED;
        if (skipped ? !allow_skips : e->state != FB_ENTRY_OK || e->wrong) return true;
    }
    return strcmp(r->reference_status, "ok") != 0;
}

const char *fb_entry_state_name(fb_entry_state s) {
    static const char *names[] = {"ok",        "skipped",       "failed",      "crashed",
                                  "timed out", "out of memory", "interrupted", "unsupported"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}
