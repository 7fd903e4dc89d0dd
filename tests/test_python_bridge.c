/* test_python_bridge.c - the Python bridge plugin (python.so) driven directly
 * through its factory, as the host will: each check is one mode, so the
 * script can also look at what the process printed.
 *
 *   test_python_bridge PYTHON_SO MODEL.gguf list                the published backends and their probes
 *   test_python_bridge PYTHON_SO MODEL.gguf agree NAME SEED [K=V]  backend NAME against cpu_ref at f32:
 *                                                               <= 1e-4 relative error (+jit, +graphs: allow them)
 *   test_python_bridge PYTHON_SO MODEL.gguf errors              exceptions -> statuses and sentences
 *   test_python_bridge PYTHON_SO MODEL.gguf quiet               a backend's print() reaches no stdout (prints nothing)
 *   test_python_bridge PYTHON_SO MODEL.gguf threads             calls from other threads: the GIL is released
 *   test_python_bridge PYTHON_SO MODEL.gguf overhead [MAX_US]   the bridge's own cost per decode (noop backend)
 *   test_python_bridge PYTHON_SO MODEL.gguf fault KIND          one decode of faulty with fault=KIND (hang, crash)
 *
 * The test backends (noop, faulty, missing) come from
 * plugins/python/test_backends through FAIRBENCH_PYTHON_BACKENDS. */
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include "cpu_ref_session.h"

static const fb_plugin *g_container;

static const fb_plugin *python_backend(const char *name) {
    uint32_t n = g_container->factory_count(fb_host_services());
    for (uint32_t i = 0; i < n; i++) {
        const fb_plugin *p = g_container->factory_get(fb_host_services(), i);
        if (p && strcmp(p->name, name) == 0) return p;
    }
    printf("python.so publishes no backend '%s'\n", name);
    return NULL;
}

static int g_allow_jit, g_allow_graphs; /* agree's +jit and +graphs */

static fb_status create_with(const fb_plugin *api, const test_model *tm, fb_precision precision, const fb_option *opts,
                             uint32_t n_opts, fb_session **s, char *message, size_t size) {
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = precision,
                            .accumulate_precision = FB_PRECISION_F32,
                            .threads = 1,
                            .max_context = 64,
                            .allow_jit = g_allow_jit,
                            .allow_graphs = g_allow_graphs,
                            .n_options = n_opts,
                            .options = opts};
    message[0] = 0;
    return api->create(fb_host_services(), &tm->view.view, &settings, s, message, size);
}

static int failures;
#define EXPECT(cond, ...)                               \
    do {                                                \
        if (!(cond)) {                                  \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                        \
            printf("\n");                               \
            failures++;                                 \
        }                                               \
    } while (0)

/* ------------------------------------------------------------------------ */

static int mode_list(void) {
    uint32_t n = g_container->factory_count(fb_host_services());
    for (uint32_t i = 0; i < n; i++) {
        const fb_plugin *p = g_container->factory_get(fb_host_services(), i);
        fb_probe_result r = {.struct_size = sizeof r};
        fb_status st = p->probe(fb_host_services(), &r);
        printf("%s\t%s\t%s\n", p->name,
               st != FB_OK   ? "probe failed"
               : r.available ? "available"
                             : "unavailable",
               r.available ? r.device : r.reason);
    }
    EXPECT(g_container->factory_get(fb_host_services(), n) == NULL, "factory_get(count) is not NULL");
    return failures ? 1 : 0;
}

/* A Python backend and cpu_ref at f32, same model, same random tokens,
 * teacher-forced; options KEY=VALUE go to the Python backend. */
static int mode_agree(const test_model *tm, const char *name, unsigned seed, char **opt_args, int n_opt_args) {
    const fb_plugin *py = python_backend(name);
    fb_backend_list list;
    const fb_plugin *ref = test_find_backend(&list, "cpu_ref");
    if (!py || !ref) return 1;
    char message[512];
    fb_option opts[8];
    int n_opts = 0;
    for (int i = 0; i < n_opt_args && n_opts < 8; i++) {
        if (strcmp(opt_args[i], "+jit") == 0) g_allow_jit = 1;
        if (strcmp(opt_args[i], "+graphs") == 0) g_allow_graphs = 1;
        char *eq = strchr(opt_args[i], '=');
        if (eq) *eq = 0, opts[n_opts++] = (fb_option){opt_args[i], eq + 1};
    }
    fb_session *ps = NULL;
    fb_status st = create_with(py, tm, FB_PRECISION_F32, opts, (uint32_t)n_opts, &ps, message, sizeof message);
    if (st != FB_OK) {
        printf("FAIL %s create (%d): %s\n", name, (int)st, message);
        return 1;
    }
    fb_session *rs = test_create(ref, tm, FB_PRECISION_F32, 1, 64);
    if (!rs) return 1;
    uint32_t n_vocab = tm->view.view.n_vocab, n_prompt = 7, n_decode = 12;
    printf("seed %u\n", seed);
    srand(seed);
    int32_t prompt[7];
    for (uint32_t i = 0; i < n_prompt; i++) prompt[i] = rand() % (int)n_vocab;
    float *a = malloc(sizeof(float) * n_prompt * n_vocab), *b = malloc(sizeof(float) * n_prompt * n_vocab);
    int32_t next_a = -1, next_b = -2;
    double worst = 0;
    EXPECT(py->prefill(ps, prompt, n_prompt, FB_LOGITS_ALL, a, &next_a) == FB_OK, "prefill: %s", py->last_error(ps));
    EXPECT(ref->prefill(rs, prompt, n_prompt, FB_LOGITS_ALL, b, &next_b) == FB_OK, "cpu_ref prefill failed");
    double e = rel_error(a, b, (size_t)n_prompt * n_vocab);
    worst = e > worst ? e : worst;
    EXPECT(e <= 1e-4, "prefill logits: relative error %.3g > 1e-4", e);
    EXPECT(next_a == next_b, "prefill next token %d, cpu_ref %d", next_a, next_b);
    int32_t token = next_b;
    for (uint32_t i = 0; i < n_decode; i++) {
        EXPECT(py->decode(ps, token, a, &next_a) == FB_OK, "decode: %s", py->last_error(ps));
        EXPECT(ref->decode(rs, token, b, &next_b) == FB_OK, "cpu_ref decode failed");
        e = rel_error(a, b, n_vocab);
        worst = e > worst ? e : worst;
        EXPECT(e <= 1e-4, "decode %u: relative error %.3g > 1e-4", i, e);
        EXPECT(next_a == argmax_f(a, n_vocab), "decode %u: next token %d is not the argmax %d of its logits", i, next_a,
               argmax_f(a, n_vocab));
        token = next_b;
    }
    /* reset, then the same prompt again: the same logits */
    EXPECT(py->reset(ps) == FB_OK, "reset: %s", py->last_error(ps));
    EXPECT(py->prefill(ps, prompt, n_prompt, FB_LOGITS_LAST, a, &next_a) == FB_OK, "prefill after reset");
    EXPECT(ref->reset(rs) == FB_OK && ref->prefill(rs, prompt, n_prompt, FB_LOGITS_LAST, b, &next_b) == FB_OK,
           "cpu_ref prefill after reset");
    e = rel_error(a, b, n_vocab);
    EXPECT(e <= 1e-4, "after reset: relative error %.3g > 1e-4", e);
    fb_effective_settings eff = {.struct_size = sizeof eff};
    EXPECT(py->effective_settings(ps, &eff) == FB_OK, "effective_settings: %s", py->last_error(ps));
    EXPECT(eff.weight_precision == FB_PRECISION_F32 && eff.threads >= 1 && eff.device[0],
           "effective settings: precision %d, threads %d, device '%s'", (int)eff.weight_precision, (int)eff.threads,
           eff.device);
    fb_memory_stats mem = {.struct_size = sizeof mem};
    EXPECT(py->memory(ps, &mem) == FB_OK && mem.host_bytes > 0, "memory: %llu host bytes",
           (unsigned long long)mem.host_bytes);
    printf("%s vs cpu_ref at f32 (jit %s, graphs %s): max relative error %.3g over %u prompt and %u decode positions "
           "(%s; jit %d, graphs %d; %s)\n",
           name, g_allow_jit ? "allowed" : "off", g_allow_graphs ? "allowed" : "off", worst, n_prompt, n_decode,
           eff.device, (int)eff.jit, (int)eff.graphs, eff.notes);
    py->destroy(ps);
    ref->destroy(rs);
    free(a), free(b);
    fb_backends_free(&list);
    return failures ? 1 : 0;
}

/* Each exception class gives its status, the exception's text the sentence. */
static int mode_errors(const test_model *tm) {
    const fb_plugin *faulty = python_backend("faulty"), *np = python_backend("numpy_ref"),
                    *missing = python_backend("missing");
    if (!faulty || !np || !missing) return 1;
    char message[512];
    fb_session *s = NULL;
    int32_t next;

    fb_option raise_opt = {"fault", "raise"};
    EXPECT(create_with(faulty, tm, FB_PRECISION_F32, &raise_opt, 1, &s, message, sizeof message) == FB_OK,
           "create faulty: %s", message);
    if (s) {
        fb_status st = faulty->decode(s, 1, NULL, &next);
        const char *why = faulty->last_error(s);
        printf("raise: status %d: %s\n", (int)st, why);
        EXPECT(st == FB_ERR_INTERNAL, "a RuntimeError gave status %d, not FB_ERR_INTERNAL", (int)st);
        EXPECT(strcmp(why, "faulty: decode: RuntimeError: deliberate failure in decode; second line of the message") ==
                   0,
               "the sentence is '%s'", why);
        EXPECT(!strchr(why, '\n'), "the sentence has a line break");
        faulty->destroy(s), s = NULL;
    }
    fb_option value_opt = {"fault", "value"};
    EXPECT(create_with(faulty, tm, FB_PRECISION_F32, &value_opt, 1, &s, message, sizeof message) == FB_OK,
           "create faulty: %s", message);
    if (s) {
        fb_status st = faulty->decode(s, 1, NULL, &next);
        EXPECT(st == FB_ERR_INVALID_ARGUMENT, "a ValueError gave status %d", (int)st);
        EXPECT(strstr(faulty->last_error(s), "ValueError: deliberate bad value"), "sentence '%s'",
               faulty->last_error(s));
        faulty->destroy(s), s = NULL;
    }
    fb_option unsup_opt = {"fault", "unsupported"};
    fb_status st = create_with(faulty, tm, FB_PRECISION_F32, &unsup_opt, 1, &s, message, sizeof message);
    printf("unsupported: status %d: %s\n", (int)st, message);
    EXPECT(st == FB_ERR_UNSUPPORTED && s == NULL, "fb.Unsupported in create gave status %d", (int)st);
    EXPECT(strcmp(message, "faulty: create: faulty refuses weight precision f32 on purpose") == 0, "message '%s'",
           message);

    st = create_with(np, tm, FB_PRECISION_F16, NULL, 0, &s, message, sizeof message);
    printf("numpy_ref at f16: status %d: %s\n", (int)st, message);
    EXPECT(st == FB_ERR_UNSUPPORTED && s == NULL && strstr(message, "f32 only"), "numpy_ref at f16: %d '%s'", (int)st,
           message);

    /* options: vetted without Python */
    st = faulty->check_option(fb_host_services(), "faults", "x", message, sizeof message);
    EXPECT(st == FB_ERR_INVALID_ARGUMENT && strstr(message, "unknown option 'faults'"), "check_option faults: %d '%s'",
           (int)st, message);
    EXPECT(faulty->check_option(fb_host_services(), "fault", "raise", message, sizeof message) == FB_OK,
           "check_option fault: %s", message);
    st = np->check_option(fb_host_services(), "python", "/nonexistent/python3", message, sizeof message);
    EXPECT(st == FB_ERR_UNSUPPORTED && strstr(message, "/nonexistent/python3"), "check_option python: %d '%s'", (int)st,
           message);

    /* a framework that is not installed: probe says so, create is UNAVAILABLE */
    fb_probe_result r = {.struct_size = sizeof r};
    EXPECT(missing->probe(fb_host_services(), &r) == FB_OK, "probe failed");
    printf("missing: available %d: %s\n", (int)r.available, r.reason);
    EXPECT(!r.available && strstr(r.reason, "fairbench_no_such_framework is not installed in /"), "probe: %d '%s'",
           (int)r.available, r.reason);
    st = create_with(missing, tm, FB_PRECISION_F32, NULL, 0, &s, message, sizeof message);
    EXPECT(st == FB_ERR_UNAVAILABLE && strstr(message, "is not installed in"), "create missing: %d '%s'", (int)st,
           message);

    /* the bridge's own checks: tokens and the context */
    EXPECT(create_with(np, tm, FB_PRECISION_F32, NULL, 0, &s, message, sizeof message) == FB_OK, "create: %s", message);
    if (s) {
        EXPECT(np->decode(s, (int32_t)tm->view.view.n_vocab, NULL, &next) == FB_ERR_INVALID_ARGUMENT,
               "a token id = n_vocab was accepted");
        int32_t tokens[65] = {0};
        EXPECT(np->prefill(s, tokens, 65, FB_LOGITS_NONE, NULL, &next) == FB_ERR_CONTEXT_FULL,
               "65 tokens into a context of 64 were accepted");
        EXPECT(np->prefill(s, tokens, 64, FB_LOGITS_NONE, NULL, &next) == FB_OK, "64 tokens: %s", np->last_error(s));
        EXPECT(np->decode(s, 1, NULL, &next) == FB_ERR_CONTEXT_FULL, "a decode past the context was accepted");
        EXPECT(np->reset(s) == FB_OK && np->decode(s, 1, NULL, &next) == FB_OK, "reset did not free the context");
        np->destroy(s);
    }
    return failures ? 1 : 0;
}

/* faulty with fault=print: the script checks that stdout stays empty. */
static int mode_quiet(const test_model *tm) {
    const fb_plugin *faulty = python_backend("faulty");
    if (!faulty) return 1;
    char message[512];
    fb_session *s = NULL;
    fb_option opt = {"fault", "print"};
    int32_t next;
    if (create_with(faulty, tm, FB_PRECISION_F32, &opt, 1, &s, message, sizeof message) != FB_OK ||
        faulty->decode(s, 1, NULL, &next) != FB_OK) {
        fprintf(stderr, "FAIL faulty print: %s%s\n", message, s ? faulty->last_error(s) : "");
        return 1;
    }
    faulty->destroy(s);
    fflush(stdout);
    return 0;
}

typedef struct thread_job {
    const fb_plugin *api;
    fb_session *s;
    fb_status st;
} thread_job;

static void *decode_on_thread(void *arg) {
    thread_job *job = arg;
    int32_t next;
    job->st = job->api->decode(job->s, 3, NULL, &next);
    return NULL;
}

/* Created on the main thread, called from two others in turn: each call
 * must find the GIL free (a held GIL would hang here; ctest's time-out says so). */
static int mode_threads(const test_model *tm) {
    const fb_plugin *np = python_backend("numpy_ref");
    if (!np) return 1;
    char message[512];
    fb_session *s = NULL;
    if (create_with(np, tm, FB_PRECISION_F32, NULL, 0, &s, message, sizeof message) != FB_OK) {
        printf("FAIL create: %s\n", message);
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        thread_job job = {np, s, FB_ERR_INTERNAL};
        pthread_t t;
        pthread_create(&t, NULL, decode_on_thread, &job);
        pthread_join(t, NULL);
        EXPECT(job.st == FB_OK, "decode on thread %d: %s", i, np->last_error(s));
    }
    int32_t next;
    EXPECT(np->decode(s, 3, NULL, &next) == FB_OK, "decode back on the main thread: %s", np->last_error(s));
    np->destroy(s);
    printf("decode from 2 other threads and the main one: ok\n");
    return failures ? 1 : 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The noop backend's decode: the bridge's cost (GIL, call, int conversions).
 * The median of 41 batches of 500 calls, so a busy machine's spikes do not
 * decide it. */
static int mode_overhead(const test_model *tm, double max_us) {
    const fb_plugin *noop = python_backend("noop");
    if (!noop) return 1;
    char message[512];
    fb_session *s = NULL;
    fb_settings settings = {.struct_size = sizeof settings,
                            .weight_precision = FB_PRECISION_F32,
                            .accumulate_precision = FB_PRECISION_F32,
                            .threads = 1,
                            .max_context = 0};
    if (noop->create(fb_host_services(), &tm->view.view, &settings, &s, message, sizeof message) != FB_OK) {
        printf("FAIL create: %s\n", message);
        return 1;
    }
    enum { BATCHES = 41, CALLS = 500 }; /* 500 < the tiny model's context */
    double per_call_us[BATCHES];
    int32_t next = 0;
    for (int b = 0; b < BATCHES; b++) {
        noop->reset(s);
        double t0 = now_s();
        for (int i = 0; i < CALLS; i++)
            if (noop->decode(s, i % 100, NULL, &next) != FB_OK || next != i % 100) {
                printf("FAIL decode: %s (next %d, noop echoes %d)\n", noop->last_error(s), next, i % 100);
                return 1;
            }
        per_call_us[b] = (now_s() - t0) / CALLS * 1e6;
    }
    noop->destroy(s);
    qsort(per_call_us, BATCHES, sizeof per_call_us[0], cmp_double);
    double median = per_call_us[BATCHES / 2];
    printf(
        "bridge overhead per decode call (noop backend): median %.2f us, min %.2f us, max %.2f us over %d x %d calls\n",
        median, per_call_us[0], per_call_us[BATCHES - 1], BATCHES, CALLS);
    EXPECT(median < max_us, "median %.2f us is over the %.1f us budget", median, max_us);
    return failures ? 1 : 0;
}

/* One decode of faulty with fault=KIND, for the script to watch it hang or
 * crash (the host's process isolation is what contains it). */
static int mode_fault(const test_model *tm, const char *kind) {
    const fb_plugin *faulty = python_backend("faulty");
    if (!faulty) return 1;
    char message[512];
    fb_session *s = NULL;
    fb_option opt = {"fault", kind};
    if (create_with(faulty, tm, FB_PRECISION_F32, &opt, 1, &s, message, sizeof message) != FB_OK) {
        printf("create: %s\n", message);
        return 1;
    }
    int32_t next;
    fb_status st = faulty->decode(s, 1, NULL, &next);
    printf("decode returned %d: %s\n", (int)st, faulty->last_error(s));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PYTHON_SO MODEL.gguf MODE [ARG]\n", argv[0]);
        return 2;
    }
    void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    fb_plugin_entry_fn entry = so ? (fb_plugin_entry_fn)(uintptr_t)dlsym(so, FB_PLUGIN_ENTRY_SYMBOL) : NULL;
    g_container = entry ? entry() : NULL;
    if (!g_container || !FB_PLUGIN_HAS(g_container, factory_get) || !g_container->factory_count) {
        printf("FAIL %s: no factory (%s)\n", argv[1], so ? "no entry or factory calls" : dlerror());
        return 1;
    }
    test_model tm;
    if (test_model_open(argv[2], &tm)) return 1;
    const char *mode = argv[3];
    int rc;
    if (strcmp(mode, "list") == 0) rc = mode_list();
    else if (strcmp(mode, "agree") == 0 && argc > 5)
        rc = mode_agree(&tm, argv[4], (unsigned)atoi(argv[5]), argv + 6, argc - 6);
    else if (strcmp(mode, "errors") == 0)
        rc = mode_errors(&tm);
    else if (strcmp(mode, "quiet") == 0)
        rc = mode_quiet(&tm);
    else if (strcmp(mode, "threads") == 0)
        rc = mode_threads(&tm);
    else if (strcmp(mode, "overhead") == 0)
        rc = mode_overhead(&tm, argc > 4 ? atof(argv[4]) : 20.0);
    else if (strcmp(mode, "fault") == 0 && argc > 4)
        rc = mode_fault(&tm, argv[4]);
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        rc = 2;
    }
    test_model_close(&tm);
    return rc;
}
