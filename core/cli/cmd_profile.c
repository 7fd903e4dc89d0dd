/* cmd_profile.c - `fairbench profile -c PROFILE`: only the profiling pass.
 * Each backend of the profile runs in a child process of its own (fork, load
 * the plugin, create, warm up, record N decode steps, untimed), which sends
 * its "why" object back through a pipe; the parent samples the GPU with NVML
 * meanwhile (never touching the child), adds energy, clocks and throttling
 * over the child's recorded window, and prints the breakdowns. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends.h"
#include "model.h"
#include "options.h"
#include "plugin_host.h"
#include "profile.h"
#include "tokenizer.h"
#include "why/energy.h"
#include "why/analyze.h"
#include "why/pass.h"
#include "why/trace.h"
#include "why/why_text.h"

typedef struct profile_options {
    const char *profile_name, *output, *trace_dir, *replay;
    const char *sets[64];
    int n_sets;
    char set_buf[2][1200];
    const char *dirs[MAX_PLUGIN_DIRS];
    size_t n_dirs;
    int steps, warmup;
    bool json;
} profile_options;

void fb_profile_usage(FILE *out) {
    fprintf(out, "usage: fairbench profile -c PROFILE [--set SECTION.KEY=VALUE]... [--model FILE.gguf]\n"
                 "                         [--backends A,B,...] [--steps N] [--warmup N]\n"
                 "                         [--format text|json] [-o FILE] [--trace-dir DIR] [--plugin-dir DIR]...\n"
                 "only the profiling pass (untimed, apart from any timed run): each backend in a\n"
                 "child process is created, prefilled with the profile's prompt, warmed up (--warmup\n"
                 "decode steps, default 4), then --steps decode steps (default 16) are recorded: GPU\n"
                 "kernels and copies through CUPTI, the plugin's named spans (ABI 1.1), CPU counters\n"
                 "(perf_event_open) and energy (RAPL; NVML for GPUs, sampled by this process). Prints\n"
                 "launches/token, busy vs idle time per step, time by class and the top kernels.\n"
                 "--trace-dir keeps each recorded trace (LABEL.gpu.trace, LABEL.spans.trace), which\n"
                 "docs/why.md describes. Missing CUPTI, NVML, counters or RAPL: 'not available'.\n"
                 "fairbench profile --replay FILE.trace [--format text|json]: the breakdown of a kept\n"
                 "(or hand-written) trace, through the same parser and analysis.\n"
                 "exit status: 0 ok (skipped backends included), 1 a backend failed, 2 usage\n");
}

static int parse_args(int argc, char **argv, profile_options *o) {
    enum { O_SET = 256, O_MODEL, O_BACKENDS, O_FORMAT, O_PLUGIN_DIR, O_STEPS, O_WARMUP, O_TRACE_DIR, O_REPLAY };
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"set", required_argument, NULL, O_SET},
                                             {"model", required_argument, NULL, O_MODEL},
                                             {"backends", required_argument, NULL, O_BACKENDS},
                                             {"format", required_argument, NULL, O_FORMAT},
                                             {"output", required_argument, NULL, 'o'},
                                             {"plugin-dir", required_argument, NULL, O_PLUGIN_DIR},
                                             {"steps", required_argument, NULL, O_STEPS},
                                             {"warmup", required_argument, NULL, O_WARMUP},
                                             {"trace-dir", required_argument, NULL, O_TRACE_DIR},
                                             {"replay", required_argument, NULL, O_REPLAY},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    o->steps = 16;
    o->warmup = 4;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->profile_name = optarg; break;
        case 'o': o->output = optarg; break;
        case O_TRACE_DIR: o->trace_dir = optarg; break;
        case O_REPLAY: o->replay = optarg; break;
        case O_SET:
        case O_MODEL:
        case O_BACKENDS:
            if (o->n_sets == 62) return fprintf(stderr, "fairbench profile: too many --set options\n"), EXIT_USAGE;
            if (c == O_SET) o->sets[o->n_sets++] = optarg;
            else {
                char *b = o->set_buf[c == O_MODEL ? 0 : 1];
                snprintf(b, sizeof o->set_buf[0], "run.%s=%s", c == O_MODEL ? "model" : "backends", optarg);
                o->sets[o->n_sets++] = b;
            }
            break;
        case O_FORMAT:
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                return fprintf(stderr, "fairbench profile: --format must be text or json, not '%s'\n", optarg),
                       EXIT_USAGE;
            o->json = strcmp(optarg, "json") == 0;
            break;
        case O_STEPS:
        case O_WARMUP: {
            long v = strtol(optarg, &end, 10);
            if (*end || v < (c == O_STEPS) || v > 100000)
                return fprintf(stderr, "fairbench profile: --%s expects %d to 100000, got '%s'\n",
                               c == O_STEPS ? "steps" : "warmup", c == O_STEPS, optarg),
                       EXIT_USAGE;
            *(c == O_STEPS ? &o->steps : &o->warmup) = (int)v;
            break;
        }
        case O_PLUGIN_DIR:
            if (o->n_dirs == MAX_PLUGIN_DIRS) return EXIT_USAGE;
            o->dirs[o->n_dirs++] = optarg;
            break;
        case 'h': fb_profile_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (!o->profile_name == !o->replay || optind != argc) {
        fb_profile_usage(stderr);
        return EXIT_USAGE;
    }
    return -1; /* go on */
}

/* The prompt as the main job makes it: tokenized, repeated or cut to prompt_tokens. */
static int make_prompt(const fb_profile *p, const fb_model *m, int32_t **ids, size_t *n, fb_error *err) {
    fb_tokenizer *tok;
    if (fb_tokenizer_load(m->file, &tok, err)) return -1;
    int rc = fb_tokenize(tok, p->prompt, strlen(p->prompt), true, false, ids, n, err);
    fb_tokenizer_free(tok);
    if (rc) return -1;
    if (*n == 0) return free(*ids), fb_error_set(err, "%s: the prompt tokenizes to nothing", p->path);
    if (p->prompt_tokens > 0) {
        int32_t *sized = malloc((size_t)p->prompt_tokens * sizeof *sized);
        if (!sized) return free(*ids), fb_error_set(err, "out of memory");
        for (int i = 0; i < p->prompt_tokens; i++) sized[i] = (*ids)[(size_t)i % *n];
        free(*ids);
        *ids = sized;
        *n = (size_t)p->prompt_tokens;
    }
    return 0;
}

static void write_all(int fd, const char *s) {
    size_t len = strlen(s);
    while (len) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        len -= (size_t)w;
    }
}

/* The child: one entry's pass; writes {"status": ..., ...} to fd and exits. */
static void child(const profile_options *o, const fb_profile *p, const fb_entry *e, const fb_model_view *view,
                  const int32_t *prompt, size_t n_prompt, int fd) {
    alarm((unsigned)(3 * p->timeout_s + 1)); /* create, prefill and the steps: each under timeout_s */
    cJSON *msg = cJSON_CreateObject();
    fb_backend_list list = {0};
    fb_error err;
    int status = 1;
    const fb_backend *b = NULL;
    fb_probe_result probe = {.struct_size = sizeof probe};
    if (fb_backends_discover(o->dirs, o->n_dirs, &list, &err)) {
        cJSON_AddStringToObject(msg, "status", "failed");
        cJSON_AddStringToObject(msg, "reason", err.msg);
    } else if (!(b = fb_backends_find(&list, e->plugin))) {
        cJSON_AddStringToObject(msg, "status", "skipped");
        cJSON_AddStringToObject(msg, "reason", "no usable plugin of this name (see fairbench plugins)");
        status = 0;
    } else if (b->api->probe(fb_host_services(), &probe) != FB_OK || !probe.available) {
        probe.reason[sizeof probe.reason - 1] = '\0';
        cJSON_AddStringToObject(msg, "status", "skipped");
        cJSON_AddStringToObject(msg, "reason", probe.reason);
        status = 0;
    } else {
        fb_option options[FB_MAX_OPTIONS];
        fb_settings settings = {.struct_size = sizeof settings,
                                .weight_precision = e->fairness.weight_precision,
                                .accumulate_precision = e->fairness.accumulate_precision,
                                .allow_jit = e->fairness.allow_jit,
                                .allow_graphs = e->fairness.allow_graphs,
                                .jit_cache = e->fairness.jit_cache,
                                .threads = e->fairness.threads,
                                .max_context = (uint32_t)(n_prompt + (size_t)o->warmup + (size_t)o->steps + 2),
                                .n_options = fb_options_view(e, options),
                                .options = options};
        char prefix[1024];
        if (o->trace_dir) snprintf(prefix, sizeof prefix, "%s/%s", o->trace_dir, e->label);
        why_pass_config pc = {b->api,   fb_host_services(),          view, &settings, prompt, n_prompt, o->warmup,
                              o->steps, o->trace_dir ? prefix : NULL};
        cJSON *why = why_profile_pass(&pc, &err);
        if (why) {
            cJSON_AddStringToObject(msg, "status", "ok");
            cJSON_AddItemToObject(msg, "why", why);
            status = 0;
        } else {
            cJSON_AddStringToObject(msg, "status", "failed");
            cJSON_AddStringToObject(msg, "reason", err.msg);
        }
    }
    char *text = cJSON_PrintUnformatted(msg);
    if (text) write_all(fd, text);
    _exit(status);
}

/* --replay: a trace file through the parser and the analysis, no plugin. */
static int replay(const profile_options *o) {
    FILE *fp = fopen(o->replay, "r");
    if (!fp) return fprintf(stderr, "fairbench profile: cannot open %s: %s\n", o->replay, strerror(errno)), EXIT_USAGE;
    why_trace t = {0};
    why_breakdown b;
    fb_error err;
    int bad = why_trace_read(fp, o->replay, &t, &err) || why_analyze(&t, NULL, 0, &b, &err);
    fclose(fp);
    why_trace_free(&t);
    if (bad) return fprintf(stderr, "fairbench profile: %s\n", err.msg), EXIT_USAGE;
    cJSON *why = cJSON_CreateObject();
    cJSON_AddStringToObject(why, "pass", "a replayed trace");
    cJSON_AddStringToObject(why, "backend", o->replay);
    cJSON_AddNumberToObject(why, "steps", (double)b.n_steps);
    cJSON_AddItemToObject(why, b.source_gpu ? "gpu" : "spans", why_breakdown_json(&b));
    if (o->json) {
        char *text = cJSON_Print(why);
        if (text) printf("%s\n", text);
        free(text);
    } else {
        why_print_text(stdout, "replay", why);
    }
    cJSON_Delete(why);
    return EXIT_OK;
}

int fb_cmd_profile(int argc, char **argv) {
    static profile_options o; /* large: off the stack */
    memset(&o, 0, sizeof o);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    if (o.replay) return replay(&o);
    static fb_profile profile;
    char path[1024];
    fb_error err;
    if (fb_profile_resolve(o.profile_name, path, sizeof path, &err) || fb_profile_load(path, &profile, &err))
        return fprintf(stderr, "fairbench profile: %s\n", err.msg), EXIT_USAGE;
    for (int i = 0; i < o.n_sets; i++)
        if (fb_profile_set(&profile, o.sets[i], &err))
            return fprintf(stderr, "fairbench profile: %s\n", err.msg), EXIT_USAGE;
    if (fb_profile_finish(&profile, &err)) return fprintf(stderr, "fairbench profile: %s\n", err.msg), EXIT_USAGE;

    fb_model *model = NULL;
    fb_model_view_owner view = {0};
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    if (fb_model_open(profile.model, &model, &err) || fb_model_view_build(model, &view, &err) ||
        make_prompt(&profile, model, &prompt, &n_prompt, &err)) {
        fprintf(stderr, "fairbench profile: %s\n", err.msg);
        if (model) fb_model_view_free(&view), fb_model_close(model);
        return EXIT_USAGE;
    }
    if (n_prompt + (size_t)o.warmup + (size_t)o.steps + 2 > model->hp.n_ctx) {
        fprintf(stderr, "fairbench profile: %zu prompt + %d warm-up + %d recorded tokens pass the context length %u\n",
                n_prompt, o.warmup, o.steps, model->hp.n_ctx);
        rc = EXIT_USAGE;
        goto out;
    }

    char nvml_why_not[256] = "";
    why_nvml *nvml = why_nvml_open(NULL, 0, nvml_why_not, sizeof nvml_why_not);
    if (nvml && why_nvml_start(nvml, 20, nvml_why_not, sizeof nvml_why_not)) why_nvml_close(nvml), nvml = NULL;

    cJSON *report = cJSON_CreateObject();
    cJSON_AddStringToObject(report, "kind", "fairbench profiling pass");
    cJSON_AddNumberToObject(report, "why_schema_version", 1);
    cJSON_AddStringToObject(report, "profile", profile.path);
    cJSON_AddStringToObject(report, "model", profile.model);
    cJSON *entries = cJSON_AddArrayToObject(report, "backends");
    rc = EXIT_OK;
    fflush(NULL);
    for (int i = 0; i < profile.n_entries; i++) {
        const fb_entry *e = &profile.entries[i];
        int fds[2];
        if (pipe(fds)) {
            fprintf(stderr, "fairbench profile: cannot make a pipe: %s\n", strerror(errno));
            rc = EXIT_FAILURES;
            break;
        }
        /* no thread of ours runs across fork(): the child starts single-threaded
         * with no lock held; the sampling pauses for the fork only */
        why_nvml_stop(nvml);
        pid_t pid = fork();
        if (nvml && pid != 0 && why_nvml_start(nvml, 20, nvml_why_not, sizeof nvml_why_not))
            why_nvml_close(nvml), nvml = NULL;
        if (pid == 0) {
            close(fds[0]);
            child(&o, &profile, e, &view.view, prompt, n_prompt, fds[1]);
        }
        close(fds[1]);
        char *text = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
            if (len + 4096 + 1 > cap) {
                char *t = realloc(text, cap = 2 * cap + 8192);
                if (!t) break;
                text = t;
            }
            ssize_t r = pid > 0 ? read(fds[0], text + len, cap - len - 1) : 0;
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            len += (size_t)r;
        }
        close(fds[0]);
        if (text) text[len] = '\0';
        int wstatus = 0;
        if (pid > 0) waitpid(pid, &wstatus, 0);
        cJSON *msg = text && len ? cJSON_Parse(text) : NULL;
        free(text);
        if (!msg) {
            char reason[256];
            if (pid < 0) snprintf(reason, sizeof reason, "cannot fork: %s", strerror(errno));
            else if (WIFSIGNALED(wstatus))
                snprintf(reason, sizeof reason, "the child died of signal %d (%s)%s", WTERMSIG(wstatus),
                         strsignal(WTERMSIG(wstatus)), WTERMSIG(wstatus) == SIGALRM ? ": it passed the time-out" : "");
            else
                snprintf(reason, sizeof reason, "the child exited with status %d and no result", WEXITSTATUS(wstatus));
            msg = cJSON_CreateObject();
            cJSON_AddStringToObject(msg, "status", "failed");
            cJSON_AddStringToObject(msg, "reason", reason);
        }
        cJSON_AddStringToObject(msg, "label", e->label);
        cJSON_AddStringToObject(msg, "plugin", e->plugin);
        cJSON *why = cJSON_GetObjectItemCaseSensitive(msg, "why");
        if (why && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(why, "gpu_backend")))
            cJSON_AddItemToObject(why, "gpu_energy", why_gpu_energy_json(nvml, nvml_why_not, why));
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(msg, "status");
        if (!cJSON_IsString(status) || strcmp(status->valuestring, "failed") == 0) rc = EXIT_FAILURES;
        cJSON_AddItemToArray(entries, msg);
    }
    cJSON_AddStringToObject(report, "nvml", nvml ? "sampled every 20 ms by the parent" : nvml_why_not);
    why_nvml_close(nvml);

    FILE *out = o.output ? fopen(o.output, "w") : stdout;
    if (!out) {
        fprintf(stderr, "fairbench profile: cannot write %s: %s\n", o.output, strerror(errno));
        out = stdout;
        rc = EXIT_FAILURES;
    }
    if (o.json) {
        char *s = cJSON_Print(report);
        if (s) fprintf(out, "%s\n", s);
        free(s);
    } else {
        const cJSON *m;
        cJSON_ArrayForEach(m, entries) {
            const char *label = cJSON_GetObjectItemCaseSensitive(m, "label")->valuestring;
            const cJSON *why = cJSON_GetObjectItemCaseSensitive(m, "why");
            if (why) why_print_text(out, label, why);
            else
                fprintf(out, "== %s: %s: %s\n", label, cJSON_GetObjectItemCaseSensitive(m, "status")->valuestring,
                        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "reason")));
        }
    }
    if (out != stdout && fclose(out) != 0) rc = EXIT_FAILURES;
    cJSON_Delete(report);
out:
    free(prompt);
    fb_model_view_free(&view);
    fb_model_close(model);
    return rc;
}
