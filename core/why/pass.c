/* pass.c - the profiling pass in a backend's child (pass.h). */
#include "why/pass.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "why/cupti.h"
#include "why/energy.h"
#include "why/hwcount.h"
#include "why/trace.h"

// ----------------------------------------------------------------------------
// JSON of a breakdown

cJSON *why_not_available_json(const char *why_not) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "available", 0);
    cJSON_AddStringToObject(o, "why_not", why_not);
    return o;
}

cJSON *why_breakdown_json(const why_breakdown *b) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "available", 1);
    cJSON_AddNumberToObject(o, "steps", (double)b->n_steps);
    cJSON_AddNumberToObject(o, "step_ms", b->step_ms);
    cJSON_AddNumberToObject(o, "busy_ms", b->busy_ms);
    cJSON_AddNumberToObject(o, "idle_ms", b->idle_ms);
    cJSON_AddNumberToObject(o, "busy_fraction", b->busy_fraction);
    cJSON_AddNumberToObject(o, "busy_fraction_median", b->busy_fraction_median);
    cJSON_AddNumberToObject(o, "launches_per_token", b->launches_per_token);
    cJSON_AddNumberToObject(o, "kernels_per_token", b->kernels_per_token);
    cJSON_AddNumberToObject(o, "copies_per_token", b->copies_per_token);
    cJSON_AddNumberToObject(o, "spans_per_token", b->spans_per_token);
    cJSON_AddNumberToObject(o, "gaps_per_step", b->gaps_per_step);
    cJSON_AddNumberToObject(o, "max_gap_us", b->max_gap_us);
    cJSON_AddNumberToObject(o, "recorded_ms", b->recorded_ms);
    cJSON_AddNumberToObject(o, "records_outside_steps", (double)b->n_outside);
    cJSON *classes = cJSON_AddObjectToObject(o, "class_ms");
    for (int c = 0; c < WHY_N_CLASSES; c++) cJSON_AddNumberToObject(classes, why_class_name((why_class)c), b->class_ms[c]);
    cJSON *top = cJSON_AddArrayToObject(o, "top");
    for (size_t i = 0; i < b->n_top; i++) {
        const why_top_kernel *k = &b->top[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", k->name);
        cJSON_AddStringToObject(t, "class", why_class_name(k->cls));
        cJSON_AddNumberToObject(t, "calls_per_step", k->calls_per_step);
        cJSON_AddNumberToObject(t, "ms_per_step", k->ms_per_step);
        cJSON_AddNumberToObject(t, "share", k->share);
        cJSON_AddNumberToObject(t, "avg_us", k->avg_us);
        if (k->gb_per_s >= 0) cJSON_AddNumberToObject(t, "gb_per_s", k->gb_per_s);
        else cJSON_AddNullToObject(t, "gb_per_s");
        cJSON_AddItemToArray(top, t);
    }
    return o;
}

// ----------------------------------------------------------------------------
// the pass

static void span_sink(void *data, const char *name, int32_t layer, uint64_t begin_ns, uint64_t end_ns) {
    why_trace *t = data;
    why_record r = {.kind = WHY_SPAN, .start_ns = begin_ns, .end_ns = end_ns < begin_ns ? begin_ns : end_ns,
                    .layer = layer};
    snprintf(r.name, sizeof r.name, "%s", name ? name : "unnamed");
    why_trace_add(t, &r); /* out of memory: the span is lost, the breakdown says less */
}

static void write_trace(const char *prefix, const char *kind, const why_trace *t) {
    char path[1024];
    snprintf(path, sizeof path, "%s.%s.trace", prefix, kind);
    FILE *fp = fopen(path, "w");
    if (!fp) return;
    why_trace_write(fp, t);
    fclose(fp);
}

static cJSON *analysed(const why_trace *t, const fb_kernel_class *table, size_t n_table) {
    why_breakdown b;
    fb_error e;
    if (why_analyze(t, table, n_table, &b, &e)) return why_not_available_json(e.msg);
    return why_breakdown_json(&b);
}

cJSON *why_profile_pass(const why_pass_config *c, fb_error *err) {
    const fb_plugin *api = c->api;
    int has_spans = FB_PLUGIN_HAS(api, profile_spans) && api->profile_spans;
    int has_classes = FB_PLUGIN_HAS(api, kernel_classes) && api->kernel_classes;
    char cupti_why_not[512] = "";
    why_cupti cupti = {0};
    uint64_t pass_begin = why_now_ns();
    int gpu = (api->capabilities & FB_CAP_GPU) != 0;
    int recording = 0;
    if (!gpu) snprintf(cupti_why_not, sizeof cupti_why_not, "not available: %s is not a GPU backend", api->name);
    else recording = why_cupti_open(&cupti, cupti_why_not, sizeof cupti_why_not) == 0; /* before create */

    why_hwcount hw = {{-1, -1, -1}, {""}};
    fb_session *s = NULL;
    char message[512] = "";
    fb_status st = api->create(c->host, c->model, c->settings, &s, message, sizeof message);
    if (st != FB_OK) {
        fb_error_set(err, "%s cannot run this model: %s", api->name, message);
        return NULL;
    }
    cJSON *why = NULL;
    why_trace gpu_trace = {0}, span_trace = {0};
    FILE *gpu_records = NULL;
    int32_t token = 0;
    st = api->prefill(s, c->prompt, (uint32_t)c->n_prompt, FB_LOGITS_NONE, NULL, &token);
    for (int i = 0; st == FB_OK && i < c->warmup_steps; i++) st = api->decode(s, token, NULL, &token);
    if (st != FB_OK) goto call_failed;

    const fb_kernel_class *table = NULL;
    uint32_t n_table = 0;
    if (has_classes && api->kernel_classes(s, &table, &n_table) != FB_OK) table = NULL, n_table = 0;
    int spans_on = has_spans && api->profile_spans(s, span_sink, &span_trace) == FB_OK;
    int n_hw = why_hwcount_open(&hw);
    uint64_t hw_sum[WHY_HW_N] = {0};
    char rapl_why_not[256] = "";
    uint64_t rapl0 = 0, rapl1 = 0, rapl_range = 0;
    int rapl = why_rapl_read(NULL, &rapl0, &rapl_range, rapl_why_not, sizeof rapl_why_not) == 0;

    uint64_t window0 = why_now_ns();
    for (int i = 0; i < c->steps; i++) {
        uint64_t hw0[WHY_HW_N], hw1[WHY_HW_N];
        why_hwcount_read(&hw, hw0);
        uint64_t g0 = recording ? cupti.now() : 0, t0 = why_now_ns();
        st = api->decode(s, token, NULL, &token);
        uint64_t t1 = why_now_ns(), g1 = recording ? cupti.now() : 0;
        why_hwcount_read(&hw, hw1);
        if (st != FB_OK) break;
        for (int k = 0; k < WHY_HW_N; k++) hw_sum[k] += hw1[k] - hw0[k];
        if (why_trace_add_step(&span_trace, t0, t1) || (recording && why_trace_add_step(&gpu_trace, g0, g1))) {
            fb_error_set(err, "out of memory recording the profiling pass");
            goto fail;
        }
    }
    uint64_t window1 = why_now_ns();
    if (spans_on) api->profile_spans(s, NULL, NULL);
    if (rapl && why_rapl_read(NULL, &rapl1, &rapl_range, rapl_why_not, sizeof rapl_why_not)) rapl = 0;
    if (st != FB_OK) goto call_failed;

    why = cJSON_CreateObject();
    cJSON_AddStringToObject(why, "pass", "profiling pass: untimed, in a process of its own, apart from the timed repetitions");
    cJSON_AddStringToObject(why, "backend", api->name);
    cJSON_AddBoolToObject(why, "gpu_backend", gpu);
    cJSON_AddNumberToObject(why, "steps", c->steps);
    cJSON_AddNumberToObject(why, "window_begin_ns", (double)window0);
    cJSON_AddNumberToObject(why, "window_end_ns", (double)window1);
    cJSON_AddNumberToObject(why, "plugin_class_entries", n_table);
    fb_effective_settings eff = {.struct_size = sizeof eff};
    if (api->effective_settings(s, &eff) == FB_OK) {
        eff.notes[sizeof eff.notes - 1] = '\0';
        cJSON_AddStringToObject(why, "plugin_notes", eff.notes);
    }

    /* GPU kernels: CUPTI's records, read back through the trace parser */
    if (recording) {
        char msg[256] = "";
        gpu_records = tmpfile();
        fb_error perr;
        if (!gpu_records || fprintf(gpu_records, "# fairbench trace 1\n") < 0 || cupti.stop(gpu_records, msg, sizeof msg) < 0) {
            cJSON_AddItemToObject(why, "gpu", why_not_available_json(*msg ? msg : "not available: no temporary file for CUPTI's records"));
        } else if (rewind(gpu_records), why_trace_read(gpu_records, "CUPTI records", &gpu_trace, &perr)) {
            cJSON_AddItemToObject(why, "gpu", why_not_available_json(perr.msg));
        } else {
            cJSON_AddItemToObject(why, "gpu", analysed(&gpu_trace, table, n_table));
            if (c->trace_prefix) write_trace(c->trace_prefix, "gpu", &gpu_trace);
        }
    } else {
        cJSON_AddItemToObject(why, "gpu", why_not_available_json(cupti_why_not));
    }

    /* the plugin's spans */
    if (!has_spans) {
        char w[256];
        snprintf(w, sizeof w, "not available: %s offers no named spans (ABI 1.1 profile_spans)", api->name);
        cJSON_AddItemToObject(why, "spans", why_not_available_json(w));
    } else if (!spans_on) {
        cJSON_AddItemToObject(why, "spans", why_not_available_json("not available: the session refused to report spans"));
    } else {
        cJSON *sp = analysed(&span_trace, table, n_table);
        cJSON_AddItemToObject(why, "spans", sp);
        if (c->trace_prefix) write_trace(c->trace_prefix, "spans", &span_trace);
    }

    /* CPU counters */
    cJSON *hwj = cJSON_AddObjectToObject(why, "hw_counters");
    cJSON_AddBoolToObject(hwj, "available", n_hw > 0);
    for (int k = 0; k < WHY_HW_N; k++) {
        if (hw.fd[k] >= 0) cJSON_AddNumberToObject(hwj, why_hwcount_name(k), (double)hw_sum[k] / (c->steps ? c->steps : 1));
        else cJSON_AddStringToObject(hwj, why_hwcount_name(k), hw.why_not[k]);
    }
    if (hw.fd[WHY_HW_CYCLES] >= 0 && hw.fd[WHY_HW_INSTRUCTIONS] >= 0 && hw_sum[WHY_HW_CYCLES])
        cJSON_AddNumberToObject(hwj, "ipc", (double)hw_sum[WHY_HW_INSTRUCTIONS] / (double)hw_sum[WHY_HW_CYCLES]);

    /* CPU energy (RAPL) */
    if (rapl) {
        double j = why_rapl_joules(rapl0, rapl1, rapl_range);
        cJSON *e = cJSON_AddObjectToObject(why, "cpu_energy");
        cJSON_AddBoolToObject(e, "available", j >= 0);
        cJSON_AddNumberToObject(e, "joules", j);
        cJSON_AddNumberToObject(e, "j_per_token", c->steps ? j / c->steps : 0);
        cJSON_AddNumberToObject(e, "avg_power_w", window1 > window0 ? j / ((double)(window1 - window0) * 1e-9) : 0);
    } else {
        cJSON_AddItemToObject(why, "cpu_energy", why_not_available_json(rapl_why_not));
    }
    /* the pass's own cost: create, prefill, warm-up, the steps and the analysis */
    cJSON_AddNumberToObject(why, "pass_seconds", (double)(why_now_ns() - pass_begin) * 1e-9);
    goto done;

call_failed:
    fb_error_set(err, "%s failed in the profiling pass: %s", api->name, api->last_error(s));
fail:
    cJSON_Delete(why);
    why = NULL;
done:
    why_hwcount_close(&hw);
    if (gpu_records) fclose(gpu_records);
    why_trace_free(&gpu_trace);
    why_trace_free(&span_trace);
    api->destroy(s);
    return why;
}
