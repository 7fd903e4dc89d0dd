/* runner.c - the main job (see runner.h).
 *
 * Every entry, and the reference, runs in a child process of its own, forked
 * before anything in the parent touches a device: a cold start is cold, a
 * memory peak belongs to one backend, and a backend that crashes, hangs or
 * runs out of memory takes only its own child down. The parent talks to each
 * child over a pair of pipes (commands down, results up) and waits for every
 * answer at most timeout_s. Children stay alive with the model loaded, so the
 * parent can interleave repetitions across backends in a seeded shuffled
 * order per round: drift and order effects fall on all alike. */
#include "runner.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends.h"
#include "fb_version.h"
#include "membw.h"
#include "model.h"
#include "options.h"
#include "plugin_host.h"
#include "quant.h"
#include "sha256.h"
#include "tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ----------------------------------------------------------------------------
// Messages between parent and child: a header, then `bytes` of payload.

enum { CMD_REP = 1, CMD_LOGITS = 2, CMD_FINAL = 3 };
enum { MSG_READY = 1, MSG_REP = 2, MSG_LOGITS = 3, MSG_FINAL = 4 };

typedef struct msg_header {
    uint32_t type;
    uint32_t status; /* fb_status of the call */
    uint64_t bytes;
} msg_header;

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

static int send_msg(int fd, uint32_t type, uint32_t status, const void *payload, size_t bytes) {
    msg_header h = {type, status, bytes};
    return write_all(fd, &h, sizeof h) || (bytes && write_all(fd, payload, bytes)) ? -1 : 0;
}

/* Read n bytes, waiting at most until `deadline` (now_s() clock). Returns 0,
 * -1 on EOF or error (the child is gone), -2 on time-out. */
static int read_until(int fd, void *p, size_t n, double deadline) {
    char *c = p;
    while (n > 0) {
        double left = deadline - now_s();
        if (left <= 0) return -2;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, left > 1e6 ? -1 : (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) continue; /* loop re-checks the deadline */
        ssize_t k = read(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// The child: loads one backend and answers commands until FINAL.

typedef struct ready_msg {
    int32_t state;             /* fb_entry_state */
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

typedef struct child_ctx {
    const fb_profile *profile;
    const char *plugin;        /* plugin name */
    const char *plugin_path;   /* its .so, found by the scout; NULL: not found */
    const char *not_found;     /* why not, when plugin_path is NULL */
    fb_fairness fairness;
    const fb_run_options *opt;
    const int32_t *prompt;
    size_t n_prompt;
    uint32_t max_context;
    const fb_entry *entry;     /* its per-backend options (ABI 1.1) */
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

/* The harness's own cost per token: the timed loop around decode with the
 * call taken out (two clock reads and a store). */
static double measure_overhead_ns(void) {
    enum { N = 20000 };
    static double lat[N];
    double t_begin = now_s();
    for (int i = 0; i < N; i++) {
        double t0 = now_s();
        double t1 = now_s();
        lat[i] = (t1 - t0) * 1e3;
    }
    double elapsed = now_s() - t_begin;
    volatile double sink = lat[N / 2]; /* keep the stores, which are part of what is measured */
    (void)sink;
    return elapsed / N * 1e9;
}

static void memory_limit_for_cpu_backends(void) {
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer reserves terabytes of address space for its shadow
     * memory: an address-space limit would fail every allocation. */
    return;
#endif
    /* A runaway CPU backend gets a failed allocation in its own child rather
     * than the machine's out-of-memory killer. GPU backends are left alone:
     * drivers reserve huge address ranges. */
    const char *env = getenv("FAIRBENCH_MEMORY_LIMIT_MB");
    uint64_t limit = 0;
    if (env) limit = strtoull(env, NULL, 10) << 20;
    else {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages > 0 && page > 0) limit = (uint64_t)pages * (uint64_t)page / 4 * 3;
    }
    if (limit) {
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_AS, &rl);
    }
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

static void child_main(const child_ctx *c, int cmd_fd, int res_fd) __attribute__((noreturn));
static void child_main(const child_ctx *c, int cmd_fd, int res_fd) {
    dup2(STDERR_FILENO, STDOUT_FILENO); /* nothing but the parent's report reaches stdout */
    /* The peak RSS must be this backend's, not the parent's pages it was
     * forked with: Linux resets the high-water mark on "5" (clear_refs). */
    FILE *refs = fopen("/proc/self/clear_refs", "w");
    if (refs) {
        fputs("5", refs);
        fclose(refs);
    }
    ready_msg ready;
    memset(&ready, 0, sizeof ready);
    fb_error err;
    fb_model *model = NULL;
    fb_model_view_owner view;
    fb_session *s = NULL;
    const fb_plugin *api = NULL;
    const fb_host *host = fb_host_services();

    /* Only this entry's plugin is loaded: another plugin's libraries (a CUDA
     * runtime, cuBLAS) would count in this backend's memory. */
    fb_backend backend;
    memset(&backend, 0, sizeof backend);
    if (!c->plugin_path) {
        ready.state = FB_ENTRY_SKIPPED;
        snprintf(ready.reason, sizeof ready.reason, "%s", c->not_found);
    } else if (fb_backend_load(c->plugin_path, c->plugin, &backend, NULL, 0) != 0) {
        ready.state = FB_ENTRY_SKIPPED;
        snprintf(ready.reason, sizeof ready.reason, "unusable: %.490s", backend.reason);
    } else {
        api = backend.api;
    }
    if (api) {
        snprintf(ready.version, sizeof ready.version, "%s", api->version ? api->version : "?");
        ready.capabilities = api->capabilities;
        fb_probe_result probe = {.struct_size = sizeof probe};
        if (api->probe(host, &probe) != FB_OK || !probe.available) {
            ready.state = FB_ENTRY_SKIPPED;
            snprintf(ready.reason, sizeof ready.reason, "unavailable: %s", probe.reason);
            api = NULL;
        } else {
            snprintf(ready.device, sizeof ready.device, "%s", probe.device);
        }
    }
    if (api && (fb_model_open(c->profile->model, &model, &err) || fb_model_view_build(model, &view, &err))) {
        ready.state = FB_ENTRY_FAILED;
        snprintf(ready.reason, sizeof ready.reason, "%s", err.msg);
        api = NULL;
    }
    if (api) {
        if (!(api->capabilities & FB_CAP_GPU)) memory_limit_for_cpu_backends();
        ready.n_vocab = model->hp.n_vocab;
        fb_option options[FB_MAX_OPTIONS];
        fb_settings settings = settings_for(c, options);
        char message[512] = "";
        double t0 = now_s();
        fb_status st = api->create(host, &view.view, &settings, &s, message, sizeof message);
        ready.load_s = now_s() - t0;
        if (st != FB_OK) {
            ready.state = st == FB_ERR_OUT_OF_MEMORY ? FB_ENTRY_OUT_OF_MEMORY
                          : st == FB_ERR_UNAVAILABLE ? FB_ENTRY_SKIPPED : FB_ENTRY_FAILED;
            snprintf(ready.reason, sizeof ready.reason, "create failed: %.480s", message);
            s = NULL;
        }
    }
    if (s) {
        int32_t next;
        double t0 = now_s();
        fb_status st = api->prefill(s, c->prompt, (uint32_t)c->n_prompt, FB_LOGITS_NONE, NULL, &next);
        if (st == FB_OK) st = api->decode(s, next, NULL, &next);
        ready.cold_start_s = now_s() - t0;
        if (st != FB_OK) {
            ready.state = FB_ENTRY_FAILED;
            snprintf(ready.reason, sizeof ready.reason, "first prefill/decode failed: %s", api->last_error(s));
        }
        ready.effective.struct_size = sizeof ready.effective;
        ready.has_effective = api->effective_settings(s, &ready.effective) == FB_OK;
        terminate_strings(&ready.effective);
        ready.overhead_ns = measure_overhead_ns();
        if (api->copy_bandwidth && api->copy_bandwidth(s, &ready.copy_bandwidth) != FB_OK) ready.copy_bandwidth = 0;
    }
    send_msg(res_fd, MSG_READY, 0, &ready, sizeof ready);
    if (ready.state != FB_ENTRY_OK) _exit(0);

    uint32_t n_vocab = ready.n_vocab;
    for (;;) {
        uint32_t cmd[2];
        if (read_until(cmd_fd, cmd, sizeof cmd, INFINITY)) _exit(0);
        if (cmd[0] == CMD_REP) {
            uint32_t n = cmd[1];
            size_t bytes = sizeof(double) + (size_t)n * (sizeof(double) + sizeof(int32_t));
            char *payload = malloc(bytes);
            double *prefill_s = (double *)(void *)payload, *lat = prefill_s + 1;
            int32_t *tokens = (int32_t *)(void *)(lat + n), next;
            fb_status st = api->reset(s);
            double t0 = now_s();
            if (st == FB_OK) st = api->prefill(s, c->prompt, (uint32_t)c->n_prompt, FB_LOGITS_NONE, NULL, &next);
            *prefill_s = now_s() - t0;
            for (uint32_t i = 0; i < n && st == FB_OK; i++) {
                tokens[i] = next;
                double t_start = now_s();
                st = api->decode(s, next, NULL, &next);
                lat[i] = (now_s() - t_start) * 1e3;
            }
            if (st != FB_OK) {
                const char *why = api->last_error(s);
                send_msg(res_fd, MSG_REP, st, why, strlen(why) + 1);
            } else {
                send_msg(res_fd, MSG_REP, 0, payload, bytes);
            }
            free(payload);
        } else if (cmd[0] == CMD_LOGITS) {
            /* Teacher-forced: the prompt, then the given tokens; logits of
             * the position after the prompt and after each token but the last. */
            uint32_t n = cmd[1];
            int32_t *tokens = malloc((size_t)n * sizeof *tokens);
            float *logits = malloc((size_t)n * n_vocab * sizeof *logits);
            if (!tokens || !logits || read_until(cmd_fd, tokens, (size_t)n * sizeof *tokens, INFINITY)) _exit(1);
            int32_t next;
            fb_status st = api->reset(s);
            if (st == FB_OK) st = api->prefill(s, c->prompt, (uint32_t)c->n_prompt, FB_LOGITS_LAST, logits, &next);
            for (uint32_t i = 0; i + 1 < n && st == FB_OK; i++)
                st = api->decode(s, tokens[i], logits + (size_t)(i + 1) * n_vocab, &next);
            if (st != FB_OK) {
                const char *why = api->last_error(s);
                send_msg(res_fd, MSG_LOGITS, st, why, strlen(why) + 1);
            } else {
                send_msg(res_fd, MSG_LOGITS, 0, logits, (size_t)n * n_vocab * sizeof *logits);
            }
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
            send_msg(res_fd, MSG_FINAL, 0, &fin, sizeof fin);
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

/* Also asks each entry's plugin to vet its per-backend options: a refusal is
 * sent as a record with usable = -1 and the "file:line: ..." sentence, and
 * becomes this function's error. */
static int scout_plugins(const fb_profile *p, const fb_run_options *opt, double timeout_s, scout_list *out,
                         fb_error *err) {
    int fds[2];
    memset(out, 0, sizeof *out);
    if (pipe(fds)) return fb_error_set(err, "cannot create a pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return fb_error_set(err, "cannot fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        dup2(STDERR_FILENO, STDOUT_FILENO);
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
                if (write_all(fds[1], &s, sizeof s)) break;
            }
        if (fb_options_vet(p, &list, &e)) {
            scouted s;
            memset(&s, 0, sizeof s);
            s.usable = -1;
            snprintf(s.reason, sizeof s.reason, "%s", e.msg);
            write_all(fds[1], &s, sizeof s);
        }
        _exit(0);
    }
    close(fds[1]);
    double deadline = now_s() + timeout_s;
    scouted s;
    int rc;
    while ((rc = read_until(fds[0], &s, sizeof s, deadline)) == 0) {
        scouted *items = realloc(out->items, (out->n + 1) * sizeof *items);
        if (!items) break;
        out->items = items;
        out->items[out->n++] = s;
    }
    if (rc == -2) kill(pid, SIGKILL);
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (rc == -2) return fb_error_set(err, "finding plugins took longer than %.0f s (a plugin's loading hangs)", timeout_s);
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

// ----------------------------------------------------------------------------
// The parent's side of one child

typedef struct child {
    pid_t pid;
    int cmd_fd, res_fd;
    bool alive;
    fb_entry_result *res; /* where failures are recorded */
    uint32_t n_vocab;
    uint32_t capabilities;
    double copy_bandwidth;
} child;

static int start_child(child *ch, const child_ctx *ctx, fb_entry_result *res) {
    int down[2], up[2];
    memset(ch, 0, sizeof *ch);
    ch->res = res;
    if (pipe(down) || pipe(up)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        child_main(ctx, down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    ch->pid = pid;
    ch->cmd_fd = down[1];
    ch->res_fd = up[0];
    ch->alive = true;
    return 0;
}

/* The child is gone or must go: reap it and say why in its result. */
static void bury_child(child *ch, bool timed_out, double timeout_s, const char *during) {
    if (!ch->alive) return;
    if (timed_out) kill(ch->pid, SIGKILL);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(ch->pid, &status, 0, &ru) < 0 && errno == EINTR) {}
    close(ch->cmd_fd);
    close(ch->res_fd);
    ch->alive = false;
    fb_entry_result *r = ch->res;
    uint64_t rss = (uint64_t)ru.ru_maxrss * 1024;
    if (rss > r->host_rss_peak_bytes) r->host_rss_peak_bytes = rss;
    if (timed_out) {
        r->state = FB_ENTRY_TIMED_OUT;
        snprintf(r->reason, sizeof r->reason, "no answer to %s within %.0f s; killed", during, timeout_s);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *limit_env = getenv("FAIRBENCH_MEMORY_LIMIT_MB");
        uint64_t limit = limit_env ? strtoull(limit_env, NULL, 10) << 20 : 0;
        if (sig == SIGKILL) {
            r->state = FB_ENTRY_OUT_OF_MEMORY;
            snprintf(r->reason, sizeof r->reason,
                     "killed by SIGKILL during %s, likely by the out-of-memory killer (RSS peak %.0f MB)", during,
                     (double)rss / 1e6);
        } else if (limit && rss >= limit / 10 * 8) {
            r->state = FB_ENTRY_OUT_OF_MEMORY;
            snprintf(r->reason, sizeof r->reason,
                     "during %s: RSS reached %.0f MB of the %.0f MB limit, then %s", during,
                     (double)rss / 1e6, (double)limit / 1e6, strsignal(sig));
        } else {
            r->state = FB_ENTRY_CRASHED;
            snprintf(r->reason, sizeof r->reason, "during %s: signal %d (%s)", during, sig, strsignal(sig));
        }
    } else if (r->state == FB_ENTRY_OK && strcmp(during, "exit") != 0) {
        r->state = FB_ENTRY_CRASHED;
        snprintf(r->reason, sizeof r->reason, "the child exited (status %d) during %s", WEXITSTATUS(status), during);
    }
}

/* Read one message of `type` (payload malloc'd into *payload). 0 on success;
 * on failure the child is buried and its result says why. */
static int receive(child *ch, uint32_t type, double timeout_s, const char *during, msg_header *h, void **payload) {
    *payload = NULL;
    double deadline = now_s() + timeout_s;
    int rc = read_until(ch->res_fd, h, sizeof *h, deadline);
    if (rc == 0 && (h->type != type || h->bytes > ((uint64_t)1 << 34))) rc = -1;
    if (rc == 0) {
        *payload = malloc(h->bytes ? h->bytes : 1);
        rc = *payload ? read_until(ch->res_fd, *payload, h->bytes, deadline) : -1;
    }
    if (rc != 0) {
        free(*payload);
        *payload = NULL;
        bury_child(ch, rc == -2, timeout_s, during);
        return -1;
    }
    return 0;
}

static void call_failed(child *ch, const msg_header *h, const void *payload, const char *during) {
    fb_entry_result *r = ch->res;
    r->state = h->status == FB_ERR_OUT_OF_MEMORY ? FB_ENTRY_OUT_OF_MEMORY : FB_ENTRY_FAILED;
    snprintf(r->reason, sizeof r->reason, "%s failed (status %u): %.400s", during, h->status,
             h->bytes ? (const char *)payload : "");
    uint32_t cmd[2] = {CMD_FINAL, 0};
    write_all(ch->cmd_fd, cmd, sizeof cmd);
    kill(ch->pid, SIGKILL);
    bury_child(ch, false, 0, during);
    r->state = h->status == FB_ERR_OUT_OF_MEMORY ? FB_ENTRY_OUT_OF_MEMORY : FB_ENTRY_FAILED;
}

/* Wait for READY; fills the result's identity and load figures. */
static int child_ready(child *ch, double timeout_s) {
    msg_header h;
    void *payload;
    if (receive(ch, MSG_READY, timeout_s, "loading (create)", &h, &payload)) return -1;
    const ready_msg *m = payload;
    fb_entry_result *r = ch->res;
    r->state = (fb_entry_state)m->state;
    snprintf(r->reason, sizeof r->reason, "%s", m->reason);
    snprintf(r->plugin_version, sizeof r->plugin_version, "%s", m->version);
    snprintf(r->device, sizeof r->device, "%s", m->device);
    r->effective = m->effective;
    r->has_effective = m->has_effective;
    r->load_s = m->load_s;
    r->cold_start_s = m->cold_start_s;
    r->harness_overhead_ns = m->overhead_ns;
    ch->n_vocab = m->n_vocab;
    ch->capabilities = m->capabilities;
    ch->copy_bandwidth = m->copy_bandwidth;
    free(payload);
    if (r->state != FB_ENTRY_OK) {
        bury_child(ch, false, 0, "loading");
        return -1;
    }
    return 0;
}

/* One repetition: prefill + n decode steps; appends timings when `timed`. */
static int child_rep(child *ch, uint32_t n, bool timed, double timeout_s, int32_t **tokens_out) {
    uint32_t cmd[2] = {CMD_REP, n};
    msg_header h;
    void *payload;
    if (write_all(ch->cmd_fd, cmd, sizeof cmd)) {
        bury_child(ch, false, 0, "a repetition");
        return -1;
    }
    if (receive(ch, MSG_REP, timeout_s, "a repetition", &h, &payload)) return -1;
    if (h.status != FB_OK) {
        call_failed(ch, &h, payload, "decode");
        free(payload);
        return -1;
    }
    const double *prefill_s = payload, *lat = prefill_s + 1;
    const int32_t *tokens = (const int32_t *)(const void *)(lat + n);
    fb_entry_result *r = ch->res;
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

static float *child_logits(child *ch, const int32_t *tokens, uint32_t n, double timeout_s) {
    uint32_t cmd[2] = {CMD_LOGITS, n};
    msg_header h;
    void *payload;
    if (write_all(ch->cmd_fd, cmd, sizeof cmd) || write_all(ch->cmd_fd, tokens, n * sizeof *tokens)) {
        bury_child(ch, false, 0, "the agreement check");
        return NULL;
    }
    if (receive(ch, MSG_LOGITS, timeout_s, "the agreement check", &h, &payload)) return NULL;
    if (h.status != FB_OK) {
        call_failed(ch, &h, payload, "teacher-forced decode");
        free(payload);
        return NULL;
    }
    return payload;
}

static void child_final(child *ch, double timeout_s) {
    uint32_t cmd[2] = {CMD_FINAL, 0};
    msg_header h;
    void *payload;
    if (!ch->alive) return;
    if (write_all(ch->cmd_fd, cmd, sizeof cmd)) {
        bury_child(ch, false, 0, "the final report");
        return;
    }
    if (receive(ch, MSG_FINAL, timeout_s, "the final report (destroy)", &h, &payload)) return;
    const final_msg *f = payload;
    ch->res->device_peak_bytes = f->memory.device_peak_bytes;
    ch->res->host_rss_peak_bytes = f->rss_peak_bytes;
    /* A backend may only know at the end what it did (graphs are reported
     * once replayed): the audit uses the final word. */
    if (f->has_effective) {
        ch->res->effective = f->effective;
        ch->res->has_effective = true;
    }
    free(payload);
    bury_child(ch, false, 0, "exit");
}

// ----------------------------------------------------------------------------
// Agreement: teacher-forced logits against the reference's

typedef struct agreement_bar {
    double min_top1, max_kl;
} agreement_bar;

/* Thresholds by storage precision: f32 must be the reference up to
 * summation order; 16-bit and block formats round the weights. */
static agreement_bar bar_for(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return (agreement_bar){0.99, 1e-4};
    case FB_PRECISION_F16: return (agreement_bar){0.95, 5e-3};
    case FB_PRECISION_BF16: return (agreement_bar){0.90, 2e-2};
    default: return (agreement_bar){0.90, 5e-2};
    }
}

static void compare_logits(fb_entry_result *r, const float *got, const float *want, uint32_t n_pos, uint32_t n_vocab) {
    uint32_t agree = 0;
    double max_abs = 0, kl_sum = 0;
    for (uint32_t i = 0; i < n_pos; i++) {
        const float *g = got + (size_t)i * n_vocab, *w = want + (size_t)i * n_vocab;
        uint32_t ag = 0, aw = 0;
        double mg = g[0], mw = w[0];
        for (uint32_t v = 0; v < n_vocab; v++) {
            double d = fabs((double)g[v] - (double)w[v]);
            if (d > max_abs || isnan(d)) max_abs = isnan(d) ? INFINITY : d;
            if (g[v] > mg) mg = g[v], ag = v;
            if (w[v] > mw) mw = w[v], aw = v;
        }
        agree += ag == aw;
        /* KL(reference || backend) of the softmax distributions, in double */
        double zg = 0, zw = 0;
        for (uint32_t v = 0; v < n_vocab; v++) zg += exp((double)g[v] - mg), zw += exp((double)w[v] - mw);
        double lzg = log(zg), lzw = log(zw), kl = 0;
        for (uint32_t v = 0; v < n_vocab; v++) {
            double lw = (double)w[v] - mw - lzw, lg = (double)g[v] - mg - lzg;
            kl += exp(lw) * (lw - lg);
        }
        kl_sum += kl;
    }
    r->agreement_checked = true;
    r->top1 = (double)agree / n_pos;
    r->max_abs_diff = max_abs;
    r->mean_kl = kl_sum / n_pos;
    fb_precision p = r->has_effective ? r->effective.weight_precision : r->entry->fairness.weight_precision;
    agreement_bar bar = bar_for(p);
    r->wrong = !(r->top1 >= bar.min_top1 && r->mean_kl <= bar.max_kl);
    snprintf(r->agreement_note, sizeof r->agreement_note, "%u positions; bar for %s: top-1 >= %.2f, KL <= %.0e",
             n_pos, fb_precision_name(p), bar.min_top1, bar.max_kl);
}

// ----------------------------------------------------------------------------
// Figures, audit, verdict

static int precision_type(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return GGUF_TYPE_F32;
    case FB_PRECISION_F16: return GGUF_TYPE_F16;
    case FB_PRECISION_BF16: return GGUF_TYPE_BF16;
    default: return -1;
    }
}

static void append(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
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

/* The value of fairness key k (in fb_profile_fairness_keys order) as a number. */
static int fairness_value(const fb_fairness *f, int k) {
    switch (k) {
    case 0: return (int)f->weight_precision;
    case 1: return (int)f->accumulate_precision;
    case 2: return f->allow_jit;
    case 3: return f->allow_graphs;
    case 4: return (int)f->jit_cache;
    default: return f->threads;
    }
}

/* An override is unfair when it leaves this entry's setting different from
 * another entry's; the same override on every entry is a common setting. */
static bool override_differs(const fb_run_result *out, int i, int k) {
    int v = fairness_value(&out->entries[i].entry->fairness, k);
    for (int j = 0; j < out->n_entries; j++)
        if (j != i && fairness_value(&out->entries[j].entry->fairness, k) != v) return true;
    return false;
}

static void audit(fb_run_result *out) {
    const char *const *keys;
    int n_keys;
    keys = fb_profile_fairness_keys(&n_keys);
    char reasons[2048] = "";
    const fb_entry_result *first = NULL;
    for (int i = 0; i < out->n_entries; i++) {
        const fb_entry_result *r = &out->entries[i];
        const fb_entry *e = r->entry;
        for (int k = 0; k < n_keys; k++)
            if ((e->overridden & (1u << k)) && override_differs(out, i, k)) append(reasons, sizeof reasons, "%s%s overrides %s", reasons[0] ? "; " : "", e->label, keys[k]);
        if (!r->has_effective) continue;
        const fb_effective_settings *eff = &r->effective;
        if (eff->weight_precision != e->fairness.weight_precision)
            append(reasons, sizeof reasons, "%s%s was asked for %s weights but ran %s", reasons[0] ? "; " : "", e->label,
                   fb_precision_name(e->fairness.weight_precision), fb_precision_name(eff->weight_precision));
        if (eff->accumulate_precision != e->fairness.accumulate_precision)
            append(reasons, sizeof reasons, "%s%s accumulated in %s, not %s", reasons[0] ? "; " : "", e->label,
                   fb_precision_name(eff->accumulate_precision), fb_precision_name(e->fairness.accumulate_precision));
        if (eff->jit && !e->fairness.allow_jit)
            append(reasons, sizeof reasons, "%s%s used JIT compilation, which the profile forbids", reasons[0] ? "; " : "", e->label);
        if (eff->graphs && !e->fairness.allow_graphs)
            append(reasons, sizeof reasons, "%s%s replayed graphs, which the profile forbids", reasons[0] ? "; " : "", e->label);
        if (!first) {
            first = r;
        } else if (eff->weight_precision != first->effective.weight_precision) {
            append(reasons, sizeof reasons, "%sweight precision differs: %s %s, %s %s", reasons[0] ? "; " : "",
                   first->entry->label, fb_precision_name(first->effective.weight_precision), e->label,
                   fb_precision_name(eff->weight_precision));
        } else if (eff->threads && first->effective.threads && eff->threads != first->effective.threads) {
            append(reasons, sizeof reasons, "%sCPU threads differ: %s %d, %s %d", reasons[0] ? "; " : "",
                   first->entry->label, first->effective.threads, e->label, eff->threads);
        }
    }
    out->fair = reasons[0] == '\0';
    snprintf(out->verdict, sizeof out->verdict, "%s%.2030s", out->fair ? "fair" : "unfair: ", reasons);
}

static void warn(fb_run_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(fb_run_result *out, const char *fmt, ...) {
    size_t len = strlen(out->warnings);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->warnings + len, sizeof out->warnings - len, fmt, ap);
    va_end(ap);
    len = strlen(out->warnings);
    if (len + 1 < sizeof out->warnings) out->warnings[len] = '\n', out->warnings[len + 1] = '\0';
}

static void advantage_and_warnings(const fb_profile *p, fb_run_result *out) {
    /* Advantage: throughput against the slowest correct backend, with a 95%
     * bootstrap interval of the ratio of mean latencies. */
    const fb_entry_result *slowest = NULL;
    for (int i = 0; i < out->n_entries; i++) {
        const fb_entry_result *r = &out->entries[i];
        if (r->state != FB_ENTRY_OK || r->wrong || r->n_latency == 0) continue;
        if (!slowest || r->decode.mean > slowest->decode.mean) slowest = r;
    }
    for (int i = 0; i < out->n_entries; i++) {
        fb_entry_result *r = &out->entries[i];
        if (!slowest || r->state != FB_ENTRY_OK || r->wrong || r->n_latency == 0) continue;
        r->advantage = slowest->decode.mean / r->decode.mean;
        fb_ratio_ci(slowest->latency_ms, slowest->n_latency, r->latency_ms, r->n_latency, p->seed, 1000,
                    &r->advantage_low, &r->advantage_high);
        if (r->decode.cv > p->cv_warn)
            warn(out, "%s: decode latency varies (coefficient of variation %.1f%% > %.1f%%): other load on the "
                      "machine, frequency scaling, or too few tokens per repetition",
                 r->entry->label, 100 * r->decode.cv, 100 * p->cv_warn);
        if (r->decode.n_outliers)
            warn(out, "%s: %zu of %zu decode steps are outliers (robust z-score > 3.5 on the median absolute deviation)",
                 r->entry->label, r->decode.n_outliers, r->decode.n);
        if (r->roofline_pct > 100)
            warn(out, "%s: above its measured ceiling (%.0f%%): %.1f MB per step likely fits in the CPU's caches, so "
                      "the roofline share against memory bandwidth does not apply",
                 r->entry->label, r->roofline_pct, (double)r->bytes_per_step / 1e6);
        if (r->harness_overhead_ns > 1000)
            warn(out, "%s: the harness costs %.0f ns per token, above the 1 us goal", r->entry->label, r->harness_overhead_ns);
    }
    /* Break-even: a backend that starts slower but decodes faster repays its
     * start after (start difference) / (per-token saving) tokens. */
    for (int i = 0; i < out->n_entries; i++)
        for (int j = 0; j < out->n_entries; j++) {
            const fb_entry_result *a = &out->entries[i], *b = &out->entries[j];
            if (i == j || a->state != FB_ENTRY_OK || b->state != FB_ENTRY_OK || !a->n_latency || !b->n_latency) continue;
            double start_a = a->load_s + a->cold_start_s, start_b = b->load_s + b->cold_start_s;
            double saving_ms = b->decode.mean - a->decode.mean;
            if (start_a > start_b && saving_ms > 0)
                warn(out, "break-even: %s starts %.0f ms slower than %s but decodes %.3f ms/token faster: it repays "
                          "its start after %.0f tokens",
                     a->entry->label, (start_a - start_b) * 1e3, b->entry->label, saving_ms,
                     ceil((start_a - start_b) * 1e3 / saving_ms));
        }
    if (strcmp(FB_BUILD_FLAVOUR, "release") != 0)
        warn(out, "this fairbench is a %s build: its timings are not representative", FB_BUILD_FLAVOUR);
}

// ----------------------------------------------------------------------------
// The run

static void progress(const fb_run_options *opt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(const fb_run_options *opt, const char *fmt, ...) {
    if (!opt->progress) return;
    va_list ap;
    va_start(ap, fmt);
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

int fb_run(const fb_profile *p, const fb_run_options *opt, fb_run_result *out, fb_error *err) {
    memset(out, 0, sizeof *out);
    double t_start = now_s();
    fb_model *m;
    if (fb_model_open(p->model, &m, err)) return -1;
    if (make_prompt(p, m, out, err)) {
        fb_model_close(m);
        return -1;
    }
    out->model_bytes = gguf_file_size(m->file);
    if (fb_sha256_file(p->model, out->model_sha256)) snprintf(out->model_sha256, sizeof out->model_sha256, "unreadable");
    fb_sha256_buffer(p->text, strlen(p->text), out->profile_sha256);
    uint32_t gen = (uint32_t)p->gen_tokens;
    uint32_t max_context = (uint32_t)out->n_prompt + gen + 2;
    if (max_context > m->hp.n_ctx) {
        fb_model_close(m);
        return fb_error_set(err, "%s: prompt (%zu tokens) + gen_tokens (%u) pass the model's context of %u", p->path,
                            out->n_prompt, gen, m->hp.n_ctx);
    }

    /* CPU ceilings first, on a quiet machine: one per distinct thread count. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double ceiling_by_threads[4097] = {0};
    for (int i = 0; i < p->n_entries; i++) {
        int t = p->entries[i].fairness.threads > 0 ? p->entries[i].fairness.threads : (int)(cores > 0 ? cores : 1);
        if (t > 4096) t = 4096;
        if (ceiling_by_threads[t] == 0) {
            progress(opt, "measuring the streaming-read bandwidth with %d thread%s", t, t > 1 ? "s" : "");
            ceiling_by_threads[t] = fb_read_bandwidth((size_t)1 << 30, t, 5);
        }
    }

    out->n_entries = p->n_entries;
    child children[FB_MAX_ENTRIES];
    memset(children, 0, sizeof children);
    size_t cap = (size_t)(p->repetitions) * gen;
    for (int i = 0; i < p->n_entries; i++) {
        fb_entry_result *r = &out->entries[i];
        r->entry = &p->entries[i];
        r->latency_ms = calloc(cap ? cap : 1, sizeof *r->latency_ms);
        r->prefill_s = calloc((size_t)p->repetitions + 1, sizeof *r->prefill_s);
        if (!r->latency_ms || !r->prefill_s) {
            fb_model_close(m);
            return fb_error_set(err, "out of memory");
        }
    }

    scout_list plugins;
    if (scout_plugins(p, opt, p->timeout_s, &plugins, err)) {
        fb_model_close(m);
        return -1;
    }

    /* The reference: its own child, at f32, first; its greedy tokens are the
     * sequence every backend is teacher-forced on. */
    float *ref_logits = NULL;
    uint32_t n_vocab = m->hp.n_vocab;
    {
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
        const char *path = scout_find(&plugins, ref_entry.plugin, why, sizeof why);
        child_ctx ctx = {p, ref_entry.plugin, path, why, ref_entry.fairness, opt, out->prompt, out->n_prompt, max_context,
                         &ref_entry};
        child ch;
        snprintf(out->reference_label, sizeof out->reference_label, "%.56s (f32)", ref_entry.plugin);
        progress(opt, "reference %s at f32: loading", ref_entry.plugin);
        if (start_child(&ch, &ctx, &ref_result) == 0 && child_ready(&ch, p->timeout_s) == 0 &&
            child_rep(&ch, gen, false, p->timeout_s, &out->reference_tokens) == 0) {
            out->n_reference_tokens = gen;
            progress(opt, "reference: teacher-forced logits over %u positions", gen);
            ref_logits = child_logits(&ch, out->reference_tokens, gen, p->timeout_s);
            child_final(&ch, p->timeout_s);
        }
        if (ch.alive) bury_child(&ch, true, 0, "shutdown");
        if (ref_logits) snprintf(out->reference_status, sizeof out->reference_status, "ok");
        else snprintf(out->reference_status, sizeof out->reference_status, "%.250s", ref_result.reason[0] ? ref_result.reason : "failed");
    }

    /* Start every entry, one at a time so that cold starts do not overlap. */
    for (int i = 0; i < p->n_entries; i++) {
        fb_entry_result *r = &out->entries[i];
        char why[600];
        const char *path = scout_find(&plugins, r->entry->plugin, why, sizeof why);
        child_ctx ctx = {p, r->entry->plugin, path, why, r->entry->fairness, opt, out->prompt, out->n_prompt, max_context,
                         r->entry};
        progress(opt, "%s: loading (%s, %s weights)", r->entry->label, r->entry->plugin,
                 fb_precision_name(r->entry->fairness.weight_precision));
        if (start_child(&children[i], &ctx, r)) {
            r->state = FB_ENTRY_FAILED;
            snprintf(r->reason, sizeof r->reason, "cannot start a child process: %s", strerror(errno));
            continue;
        }
        if (child_ready(&children[i], p->timeout_s) == 0)
            progress(opt, "%s: loaded in %.3f s, cold start %.1f ms", r->entry->label, r->load_s, r->cold_start_s * 1e3);
        else
            progress(opt, "%s: %s", r->entry->label, r->reason);
    }

    /* Repetitions: warm-up rounds, then timed rounds. */
    uint64_t rng = p->seed * 2654435761u + 1;
    int order[FB_MAX_ENTRIES];
    int rounds = p->warmup + p->repetitions;
    if (p->order == FB_ORDER_INTERLEAVED) {
        snprintf(out->order, sizeof out->order, "interleaved: one repetition of each backend per round, shuffled per round (seed %" PRIu64 ")", p->seed);
        for (int round = 0; round < rounds; round++) {
            for (int i = 0; i < p->n_entries; i++) order[i] = i;
            for (int i = p->n_entries - 1; i > 0; i--) { /* Fisher-Yates */
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                int j = (int)((rng >> 33) % (uint64_t)(i + 1)), t = order[i];
                order[i] = order[j], order[j] = t;
            }
            bool timed = round >= p->warmup;
            progress(opt, "round %d of %d%s", round + 1, rounds, timed ? "" : " (warm-up)");
            for (int k = 0; k < p->n_entries; k++) {
                child *ch = &children[order[k]];
                if (ch->alive) child_rep(ch, gen, timed, p->timeout_s, &ch->res->tokens);
            }
        }
    } else {
        snprintf(out->order, sizeof out->order, "sequential: all repetitions of one backend, then the next");
        for (int i = 0; i < p->n_entries; i++)
            for (int round = 0; round < rounds && children[i].alive; round++)
                child_rep(&children[i], gen, round >= p->warmup, p->timeout_s, &children[i].res->tokens);
    }

    /* Agreement, then memory figures and shutdown. */
    for (int i = 0; i < p->n_entries; i++) {
        child *ch = &children[i];
        fb_entry_result *r = &out->entries[i];
        if (r->tokens) r->n_tokens = gen;
        if (ch->alive && ref_logits) {
            progress(opt, "%s: agreement with the reference", r->entry->label);
            float *logits = child_logits(ch, out->reference_tokens, gen, p->timeout_s);
            if (logits) compare_logits(r, logits, ref_logits, gen, n_vocab);
            free(logits);
        }
        child_final(ch, p->timeout_s);
        if (ch->alive) bury_child(ch, true, 0, "shutdown");
        double ceiling = ch->copy_bandwidth > 0 ? ch->copy_bandwidth : 0;
        if (!(ch->capabilities & FB_CAP_GPU)) {
            int t = r->has_effective && r->effective.threads > 0 ? r->effective.threads
                    : r->entry->fairness.threads > 0           ? r->entry->fairness.threads
                                                               : (int)(cores > 0 ? cores : 1);
            ceiling = t <= 4096 && ceiling_by_threads[t] > 0 ? ceiling_by_threads[t] : fb_read_bandwidth((size_t)1 << 30, t, 3);
        }
        compute_figures(r, m, out->n_prompt, gen, ceiling);
    }
    free(ref_logits);
    free(plugins.items);
    advantage_and_warnings(p, out);
    audit(out);
    fb_model_close(m);
    out->wall_s = now_s() - t_start;
    return 0;
}

void fb_run_result_free(fb_run_result *r) {
    for (int i = 0; i < r->n_entries; i++) {
        free(r->entries[i].latency_ms);
        free(r->entries[i].prefill_s);
        free(r->entries[i].tokens);
    }
    free(r->reference_tokens);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

bool fb_run_has_failures(const fb_run_result *r) {
    for (int i = 0; i < r->n_entries; i++) {
        const fb_entry_result *e = &r->entries[i];
        if ((e->state != FB_ENTRY_OK && e->state != FB_ENTRY_SKIPPED) || e->wrong) return true;
    }
    return strcmp(r->reference_status, "ok") != 0;
}

const char *fb_entry_state_name(fb_entry_state s) {
    static const char *names[] = {"ok", "skipped", "failed", "crashed", "timed out", "out of memory"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}
