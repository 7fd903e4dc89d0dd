/* test_profiling.c - the profiling pass's parts on known input: the trace
 * parser (the .trace files in tests/data/why, written by hand with the answers in their
 * comments), the breakdown (busy, idle, gaps, launches, classes, top kernels,
 * GB/s), the name-to-class table and a plugin's refinement of it, the energy
 * summary on synthetic NVML samples, RAPL on a fake powercap folder, and
 * absent NVML / CUPTI / perf counters as "not available", never a failure.
 *
 * usage: test_profiling DATA_DIR TMP_DIR FAKE_NVML.so [CUPTI_RECORDER.so] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "why/analyze.h"
#include "why/cupti.h"
#include "why/energy.h"
#include "why/hwcount.h"
#include "why/trace.h"

static int NEAR(double a, double b) { return fabs(a - b) <= 1e-9 + 1e-9 * fabs(b); }

static int read_trace(const char *dir, const char *name, why_trace *t) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "r");
    if (!fp) return printf("cannot open %s\n", path), -1;
    fb_error err;
    int rc = why_trace_read(fp, path, t, &err);
    if (rc) printf("%s\n", err.msg);
    fclose(fp);
    return rc;
}

static const why_top_kernel *top_named(const why_breakdown *b, const char *name) {
    for (size_t i = 0; i < b->n_top; i++)
        if (strcmp(b->top[i].name, name) == 0) return &b->top[i];
    return NULL;
}

static void test_gpu_trace(const char *dir) {
    why_trace t = {0};
    CHECK(read_trace(dir, "small.trace", &t) == 0, "small.trace parses");
    CHECK(t.n_steps == 2 && t.n_records == 8, "%zu steps, %zu records", t.n_steps, t.n_records);
    CHECK(strcmp(t.records[2].name, "flash_attention_decode<float, 64>") == 0 && t.records[2].grid[1] == 8,
          "a name with spaces is the rest of the line: '%s'", t.records[2].name);
    why_breakdown b;
    fb_error err;
    CHECK(why_analyze(&t, NULL, 0, &b, &err) == 0, "analysis runs");
    CHECK(NEAR(b.step_ms, 0.010), "step %.6f ms", b.step_ms);
    CHECK(NEAR(b.busy_ms, 0.0045), "busy %.6f ms (overlap merged, the tail clipped at the step's end)", b.busy_ms);
    CHECK(NEAR(b.idle_ms, 0.0055), "idle %.6f ms", b.idle_ms);
    CHECK(NEAR(b.busy_fraction, 0.45), "busy fraction %.4f", b.busy_fraction);
    CHECK(NEAR(b.busy_fraction_median, 0.45), "median of 0.6 and 0.3: %.4f", b.busy_fraction_median);
    CHECK(NEAR(b.kernels_per_token, 3) && NEAR(b.copies_per_token, 0.5) && NEAR(b.launches_per_token, 3.5),
          "kernels %.2f, copies %.2f, launches %.2f per token", b.kernels_per_token, b.copies_per_token,
          b.launches_per_token);
    CHECK(NEAR(b.gaps_per_step, 2) && NEAR(b.max_gap_us, 1.5), "gaps %.2f/step, longest %.3f us", b.gaps_per_step,
          b.max_gap_us);
    CHECK(b.n_outside == 1, "%zu record(s) outside the steps", b.n_outside);
    CHECK(NEAR(b.recorded_ms, 0.00475), "recorded %.6f ms per step", b.recorded_ms);
    CHECK(NEAR(b.class_ms[WHY_CLASS_MATVEC], 0.002) && NEAR(b.class_ms[WHY_CLASS_NORM], 0.0005) &&
              NEAR(b.class_ms[WHY_CLASS_ATTENTION], 0.0005) && NEAR(b.class_ms[WHY_CLASS_COPY], 0.00025) &&
              NEAR(b.class_ms[WHY_CLASS_ARGMAX], 0.001) && NEAR(b.class_ms[WHY_CLASS_OTHER], 0.0005) &&
              b.class_ms[WHY_CLASS_ELEMENTWISE] == 0,
          "classes: matvec %g norm %g attention %g copy %g argmax %g other %g elementwise %g",
          b.class_ms[WHY_CLASS_MATVEC], b.class_ms[WHY_CLASS_NORM], b.class_ms[WHY_CLASS_ATTENTION],
          b.class_ms[WHY_CLASS_COPY], b.class_ms[WHY_CLASS_ARGMAX], b.class_ms[WHY_CLASS_OTHER],
          b.class_ms[WHY_CLASS_ELEMENTWISE]);
    CHECK(b.n_top == 6 && strcmp(b.top[0].name, "gemv_f16_kernel") == 0, "top kernel '%s' of %zu", b.top[0].name, b.n_top);
    CHECK(NEAR(b.top[0].share, 4000.0 / 9500) && NEAR(b.top[0].calls_per_step, 1) && NEAR(b.top[0].avg_us, 2) &&
              b.top[0].gb_per_s < 0,
          "gemv: share %.4f, %.2f calls/step, %.3f us, GB/s %g (unknown bytes)", b.top[0].share,
          b.top[0].calls_per_step, b.top[0].avg_us, b.top[0].gb_per_s);
    const why_top_kernel *copy = top_named(&b, "DtoH");
    CHECK(copy && NEAR(copy->gb_per_s, 4096.0 / 500), "a copy's GB/s from its bytes: %g", copy ? copy->gb_per_s : -1);

    /* a plugin refines the table: its entries win, and say bytes per launch */
    const fb_kernel_class plugin[] = {{"fused_thing", "elementwise", 1000000}, {"gemv", "matvec", 4000000},
                                      {"rmsnorm", "no_such_class", 0}};
    CHECK(why_analyze(&t, plugin, 3, &b, &err) == 0, "analysis with the plugin's table");
    CHECK(NEAR(b.class_ms[WHY_CLASS_ELEMENTWISE], 0.0005) && b.class_ms[WHY_CLASS_OTHER] == 0,
          "my_fused_thing is elementwise by the plugin's word: elementwise %g other %g",
          b.class_ms[WHY_CLASS_ELEMENTWISE], b.class_ms[WHY_CLASS_OTHER]);
    CHECK(NEAR(b.class_ms[WHY_CLASS_NORM], 0.0005), "an entry with an unknown class is skipped: norm %g",
          b.class_ms[WHY_CLASS_NORM]);
    const why_top_kernel *g = top_named(&b, "gemv_f16_kernel"), *f = top_named(&b, "my_fused_thing");
    CHECK(g && NEAR(g->gb_per_s, 2.0 * 4000000 / 4000), "gemv GB/s %g", g ? g->gb_per_s : -1);
    CHECK(f && NEAR(f->gb_per_s, 1000000.0 / 1000), "fused GB/s %g", f ? f->gb_per_s : -1);

    /* what is written reads back the same */
    FILE *fp = tmpfile();
    why_trace back = {0};
    CHECK(fp && why_trace_write(fp, &t) == 0, "trace written");
    if (fp) {
        rewind(fp);
        CHECK(why_trace_read(fp, "round trip", &back, &err) == 0 && back.n_records == t.n_records &&
                  back.n_steps == t.n_steps && memcmp(back.records, t.records, t.n_records * sizeof *t.records) == 0,
              "round trip keeps every record");
        fclose(fp);
    }
    why_trace_free(&back);
    why_trace_free(&t);
}

static void test_spans(const char *dir) {
    why_trace t = {0};
    CHECK(read_trace(dir, "spans.trace", &t) == 0, "spans.trace parses");
    why_breakdown b;
    fb_error err;
    CHECK(why_analyze(&t, NULL, 0, &b, &err) == 0, "spans analysed");
    CHECK(!b.source_gpu && NEAR(b.spans_per_token, 3) && b.launches_per_token == 0, "spans: %g per token, %g launches",
          b.spans_per_token, b.launches_per_token);
    CHECK(NEAR(b.busy_fraction, 0.95) && NEAR(b.gaps_per_step, 0.5) && NEAR(b.max_gap_us, 0.1),
          "busy %.4f, gaps %.2f, longest %.3f us", b.busy_fraction, b.gaps_per_step, b.max_gap_us);
    CHECK(NEAR(b.class_ms[WHY_CLASS_OTHER], 0.00055), "'qkv' is no default name: other %g", b.class_ms[WHY_CLASS_OTHER]);
    const fb_kernel_class plugin[] = {{"qkv", "matvec", 0}};
    CHECK(why_analyze(&t, plugin, 1, &b, &err) == 0 && NEAR(b.class_ms[WHY_CLASS_MATVEC], 0.00055),
          "refined: matvec %g", b.class_ms[WHY_CLASS_MATVEC]);
    /* a third step, 90% idle (preempted), moves the mean, not the median */
    why_trace_add_step(&t, 4000, 14000);
    why_record r = {.kind = WHY_SPAN, .start_ns = 4000, .end_ns = 5000, .layer = 0, .name = "qkv"};
    why_trace_add(&t, &r);
    CHECK(why_analyze(&t, NULL, 0, &b, &err) == 0 && NEAR(b.busy_fraction_median, 0.9) && b.busy_fraction < 0.3,
          "median %.4f, mean %.4f", b.busy_fraction_median, b.busy_fraction);
    why_trace_free(&t);
    why_trace empty = {0};
    CHECK(why_analyze(&empty, NULL, 0, &b, &err) != 0 && strstr(err.msg, "no step"), "no step: '%s'", err.msg);
}

static void test_bad_traces(const char *tmp) {
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"kernel 1 2 1 1 1 k\n", ":1: not a fairbench trace"},
        {"# fairbench trace 1\nstep 10 5\n", ":2: the end (5) is before the start (10)"},
        {"# fairbench trace 1\nkernel 1 2 1 1 k\n", ":2: expected 'kernel"},
        {"# fairbench trace 1\n\nkernel 1 2 1 1 1\n", ":3: expected 'kernel"},
        {"# fairbench trace 1\nmemcpy 1 2 x DtoH\n", ":2: expected 'memcpy"},
        {"# fairbench trace 1\nspan 1 2 zero qkv\n", ":2: expected 'span"},
        {"# fairbench trace 1\nlaunch 1 2\n", ":2: unknown record 'launch'"},
        {"# fairbench trace 1\nstep 1 2 3\n", ":2: expected 'step"},
        {"", "empty file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/bad%zu.trace", tmp, i);
        FILE *fp = fopen(path, "w+");
        if (!fp) {
            CHECK(0, "cannot write %s", path);
            continue;
        }
        fputs(cases[i].text, fp);
        rewind(fp);
        why_trace t = {0};
        fb_error err = {{0}};
        int rc = why_trace_read(fp, path, &t, &err);
        CHECK(rc != 0 && strstr(err.msg, cases[i].expect) && strstr(err.msg, path), "bad trace %zu: '%s'", i, err.msg);
        why_trace_free(&t);
        fclose(fp);
    }
}

static void test_default_classes(void) {
    static const struct {
        const char *name;
        why_class cls;
    } cases[] = {
        {"void gemv_q4_kernel<128>(...)", WHY_CLASS_MATVEC}, {"sm90_xmma_gemm_f16f16_f32", WHY_CLASS_MATVEC},
        {"cutlass::Kernel<...>", WHY_CLASS_MATVEC},        {"void splitKreduce_kernel<32, 16>", WHY_CLASS_MATVEC},        {"attn_norm", WHY_CLASS_NORM},
        {"rms_norm_f32", WHY_CLASS_NORM},                   {"rope_f16", WHY_CLASS_ROPE_KV},
        {"kv_cache_store", WHY_CLASS_ROPE_KV},              {"flash_decode", WHY_CLASS_ATTENTION},
        {"softmax_rows", WHY_CLASS_ATTENTION},              {"attention", WHY_CLASS_ATTENTION},
        {"ArgMax_reduce", WHY_CLASS_ARGMAX},                {"silu_mul", WHY_CLASS_ELEMENTWISE},
        {"residual", WHY_CLASS_ELEMENTWISE},                {"copy_f32_f16", WHY_CLASS_COPY},
        {"mystery", WHY_CLASS_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why_class c = why_classify(cases[i].name, NULL, 0, NULL);
        CHECK(c == cases[i].cls, "'%s' is %s, expected %s", cases[i].name, why_class_name(c), why_class_name(cases[i].cls));
    }
    size_t n;
    const fb_kernel_class *d = why_default_classes(&n);
    for (size_t i = 0; i < n; i++) CHECK(why_class_parse(d[i].kclass) >= 0, "default entry '%s' has a class", d[i].match);
    for (int c = 0; c < WHY_N_CLASSES; c++)
        CHECK(why_class_parse(why_class_name((why_class)c)) == c, "class %d round-trips", c);
}

static void test_energy(void) {
    /* 100, 200, then 300 W for a second each, sampled each second; the
     * window is 0.5 s .. 2.5 s: 50 + 200 + 150 = 400 J */
    static const double counter_mj[4] = {0, 100000, 300000, 600000};
    why_sample s[4];
    for (int i = 0; i < 4; i++)
        s[i] = (why_sample){(uint64_t)i * 1000000000u, counter_mj[i], 100, 1400 + 10 * i, 2600, 60 + i, 0};
    s[2].throttle = WHY_THROTTLE_HW_THERMAL | WHY_THROTTLE_GPU_IDLE;
    s[3].throttle = WHY_THROTTLE_SW_POWER_CAP; /* after the window */
    s[2].power_w = 250;
    why_energy e;
    why_energy_summarize(s, 4, 500000000u, 2500000000u, 100, &e);
    CHECK(e.available && e.method_counter && NEAR(e.joules, 400) && NEAR(e.j_per_token, 4) && NEAR(e.avg_power_w, 200),
          "counter: %g J, %g J/token, %g W", e.joules, e.j_per_token, e.avg_power_w);
    CHECK(NEAR(e.peak_power_w, 250) && NEAR(e.avg_sm_mhz, 1415) && NEAR(e.max_temp_c, 62) && e.n_samples == 2,
          "peak %g W, SM %g MHz, %g C, %zu samples in the window", e.peak_power_w, e.avg_sm_mhz, e.max_temp_c, e.n_samples);
    CHECK(e.throttle == (WHY_THROTTLE_HW_THERMAL | WHY_THROTTLE_GPU_IDLE) && (e.throttle & WHY_THROTTLE_SLOWDOWN),
          "throttle 0x%llx: only the window's, and a slowdown", (unsigned long long)e.throttle);
    char names[128];
    why_throttle_names(e.throttle, names, sizeof names);
    CHECK(strcmp(names, "gpu_idle, hw_thermal") == 0, "throttle names '%s'", names);
    why_throttle_names(0, names, sizeof names);
    CHECK(strcmp(names, "none") == 0, "no throttle: '%s'", names);
    /* no energy counter: the power integrated (a constant 100 W) */
    for (int i = 0; i < 4; i++) s[i].energy_mj = -1, s[i].power_w = 100;
    why_energy_summarize(s, 4, 500000000u, 2500000000u, 100, &e);
    CHECK(e.available && !e.method_counter && NEAR(e.joules, 200) && NEAR(e.j_per_token, 2),
          "power integrated: %g J, %g J/token", e.joules, e.j_per_token);
    why_energy_summarize(s, 1, 0, 1, 1, &e);
    CHECK(!e.available && strncmp(e.why_not, "not available", 13) == 0, "one sample: '%s'", e.why_not);
}

/* The NVML path through dlopen, the sampling thread and the summary, on
 * tests/why/fake_nvml.c: a constant 150 W, SM 1755 MHz, memory 2619 MHz,
 * 55 C, throttled by the software power cap. */
/* Wait until the sampler has at least `at_least` samples (10 s at most). */
static size_t wait_samples(why_nvml *n, size_t at_least) {
    struct timespec tick = {0, 5000000};
    size_t count = 0;
    for (int i = 0; i < 2000 && (count = why_nvml_sample_count(n)) < at_least; i++) nanosleep(&tick, NULL);
    return count;
}

static void test_fake_nvml(const char *lib) {
    char why_not[512] = "";
    why_nvml *n = why_nvml_open(lib, 1, why_not, sizeof why_not);
    CHECK(!n && strstr(why_not, "no device 1"), "device 1 of the fake: '%s'", why_not);
    n = why_nvml_open(lib, 0, why_not, sizeof why_not);
    CHECK(n != NULL, "fake NVML opens: '%s'", why_not);
    if (!n) return;
    CHECK(why_nvml_start(n, 5, why_not, sizeof why_not) == 0, "sampler starts");
    /* a window with samples before, inside and after it, however loaded the machine */
    size_t before = wait_samples(n, 3), inside;
    uint64_t t0 = why_now_ns();
    inside = wait_samples(n, before + 3);
    uint64_t t1 = why_now_ns();
    wait_samples(n, inside + 3);
    why_nvml_stop(n);
    size_t count;
    const why_sample *s = why_nvml_samples(n, &count);
    CHECK(count >= 9, "%zu samples", count);
    why_energy e;
    why_energy_summarize(s, count, t0, t1, 10, &e);
    double seconds = (double)(t1 - t0) * 1e-9;
    /* the counter has 1 mJ steps: 150 W over the window, known to 2 mJ */
    CHECK(e.available && e.method_counter && fabs(e.joules - 150 * seconds) < 0.002 &&
              fabs(e.j_per_token - 15 * seconds) < 0.0002,
          "%g J (expected %g), %g J/token", e.joules, 150 * seconds, e.j_per_token);
    CHECK(fabs(e.avg_power_w - 150) < 0.0021 / seconds && NEAR(e.peak_power_w, 150), "%g W average, %g W peak", e.avg_power_w,
          e.peak_power_w);
    CHECK(NEAR(e.avg_sm_mhz, 1755) && NEAR(e.avg_mem_mhz, 2619) && NEAR(e.max_temp_c, 55), "clocks %g/%g MHz, %g C",
          e.avg_sm_mhz, e.avg_mem_mhz, e.max_temp_c);
    CHECK(e.throttle == WHY_THROTTLE_SW_POWER_CAP && (e.throttle & WHY_THROTTLE_SLOWDOWN), "throttle 0x%llx",
          (unsigned long long)e.throttle);
    why_nvml_close(n);
}

static void test_absent(const char *tmp, const char *recorder) {
    char why_not[512] = "";
    why_nvml *n = why_nvml_open("/nonexistent/libnvidia-ml.so.1", 0, why_not, sizeof why_not);
    CHECK(!n && strncmp(why_not, "not available: ", 15) == 0 && strstr(why_not, "/nonexistent"), "NVML absent: '%s'",
          why_not);
    setenv("FAIRBENCH_CUPTI_RECORDER", "/nonexistent/fb_cupti_recorder.so", 1);
    why_cupti c;
    CHECK(why_cupti_open(&c, why_not, sizeof why_not) != 0 && strncmp(why_not, "not available: ", 15) == 0,
          "recorder absent: '%s'", why_not);
    if (recorder) {
        /* the real recorder on a machine without a GPU: it loads, and CUPTI
         * either refuses (not available) or records nothing; never a crash */
        setenv("FAIRBENCH_CUPTI_RECORDER", recorder, 1);
        int rc = why_cupti_open(&c, why_not, sizeof why_not);
        CHECK(rc == 0 || strncmp(why_not, "not available: ", 15) == 0, "recorder here: rc %d '%s'", rc, why_not);
        printf("the CUPTI recorder here: %s\n", rc == 0 ? "started" : why_not);
    }
    unsetenv("FAIRBENCH_CUPTI_RECORDER");

    why_hwcount h;
    int opened = why_hwcount_open(&h);
    for (int i = 0; i < WHY_HW_N; i++)
        CHECK(h.fd[i] >= 0 || strncmp(h.why_not[i], "not available: ", 15) == 0, "%s: fd %d '%s'", why_hwcount_name(i),
              h.fd[i], h.why_not[i]);
    printf("perf counters here: %d of %d open\n", opened, WHY_HW_N);
    why_hwcount_close(&h);

    /* RAPL on a fake powercap zone, with a wrap-around */
    uint64_t uj, range;
    char zone[1024], path[1100];
    snprintf(zone, sizeof zone, "%s/rapl-zone", tmp);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", zone);
    CHECK(system(cmd) == 0, "cleared %s", zone);
    CHECK(why_rapl_read(zone, &uj, &range, why_not, sizeof why_not) != 0 && strncmp(why_not, "not available: ", 15) == 0,
          "no zone: '%s'", why_not);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", zone);
    CHECK(system(cmd) == 0, "made %s", zone);
    snprintf(path, sizeof path, "%s/energy_uj", zone);
    FILE *fp = fopen(path, "w");
    if (fp) fputs("999000000\n", fp), fclose(fp);
    snprintf(path, sizeof path, "%s/max_energy_range_uj", zone);
    fp = fopen(path, "w");
    if (fp) fputs("1000000000\n", fp), fclose(fp);
    CHECK(why_rapl_read(zone, &uj, &range, why_not, sizeof why_not) == 0 && uj == 999000000u && range == 1000000000u,
          "fake zone read: %llu of %llu", (unsigned long long)uj, (unsigned long long)range);
    CHECK(NEAR(why_rapl_joules(uj, 2000000, range), 3), "wrap-around: %g J", why_rapl_joules(uj, 2000000, range));
    CHECK(NEAR(why_rapl_joules(1000000, 3500000, range), 2.5), "plain: %g J", why_rapl_joules(1000000, 3500000, range));
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_profiling DATA_DIR TMP_DIR FAKE_NVML.so [CUPTI_RECORDER.so]\n");
        return 2;
    }
    test_gpu_trace(argv[1]);
    test_spans(argv[1]);
    test_bad_traces(argv[2]);
    test_default_classes();
    test_energy();
    test_fake_nvml(argv[3]);
    test_absent(argv[2], argc > 4 ? argv[4] : NULL);
    return check_summary();
}
