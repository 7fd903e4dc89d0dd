/* why_text.c - terminal rendering of the "why" object (why_text.h). */
#include "why/why_text.h"

#include <string.h>

#include "why/analyze.h"

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int available(const cJSON *o) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "available")); }

static void bar(FILE *out, double fraction, int width) {
    int n = (int)(fraction * width + 0.5);
    for (int i = 0; i < width; i++) fputc(i < n ? '#' : ' ', out);
}

static void breakdown(FILE *out, const char *title, const cJSON *b) {
    if (!b || !available(b)) {
        fprintf(out, "  %s: %s\n", title, b ? str(b, "why_not") : "not available");
        return;
    }
    int spans = num(b, "launches_per_token") == 0;
    fprintf(out, "  %s: step %.3f ms = busy %.3f ms (%.1f%%; median step %.1f%%) + idle %.3f ms; %.1f gaps/step, longest %.1f us\n",
            title, num(b, "step_ms"), num(b, "busy_ms"), 100 * num(b, "busy_fraction"), 100 * num(b, "busy_fraction_median"),
            num(b, "idle_ms"), num(b, "gaps_per_step"), num(b, "max_gap_us"));
    if (spans)
        fprintf(out, "    spans/token %.1f\n", num(b, "spans_per_token"));
    else
        fprintf(out, "    launches/token %.1f (kernels %.1f, copies and sets %.1f)\n", num(b, "launches_per_token"),
                num(b, "kernels_per_token"), num(b, "copies_per_token"));
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(b, "class_ms");
    double total = num(b, "recorded_ms");
    fprintf(out, "    time by class (ms/step, share of recorded %.3f ms):\n", total);
    const cJSON *c;
    cJSON_ArrayForEach(c, classes) {
        if (!cJSON_IsNumber(c) || c->valuedouble <= 0) continue;
        double f = total > 0 ? c->valuedouble / total : 0;
        fprintf(out, "      %-12s %9.3f %5.1f%% |", c->string, c->valuedouble, 100 * f);
        bar(out, f, 40);
        fprintf(out, "|\n");
    }
    fprintf(out, "    top %s by time:\n      %-40s %-11s %8s %9s %6s %9s %8s\n", spans ? "spans" : "kernels", "name", "class",
            "calls", "ms/step", "share", "avg us", "GB/s");
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(b, "top")) {
        char gbs[32] = "-";
        if (num(k, "gb_per_s") >= 0) snprintf(gbs, sizeof gbs, "%.1f", num(k, "gb_per_s"));
        fprintf(out, "      %-40.40s %-11s %8.1f %9.4f %5.1f%% %9.2f %8s\n", str(k, "name"), str(k, "class"),
                num(k, "calls_per_step"), num(k, "ms_per_step"), 100 * num(k, "share"), num(k, "avg_us"), gbs);
    }
}

void why_print_text(FILE *out, const char *label, const cJSON *why) {
    fprintf(out, "== %s (%s): %s; %.0f decode steps recorded", label, str(why, "backend"), str(why, "pass"),
            num(why, "steps"));
    if (num(why, "pass_seconds") >= 0) fprintf(out, "; the pass took %.2f s", num(why, "pass_seconds"));
    fprintf(out, "\n");
    /* a replayed trace has only one of the sections below */
    const cJSON *section = cJSON_GetObjectItemCaseSensitive(why, "gpu");
    if (section) breakdown(out, "gpu kernels (CUPTI)", section);
    if ((section = cJSON_GetObjectItemCaseSensitive(why, "spans"))) breakdown(out, "named spans (plugin)", section);
    const cJSON *hw = cJSON_GetObjectItemCaseSensitive(why, "hw_counters");
    if (!hw) return;
    fprintf(out, "  cpu counters per step:");
    for (int i = 0; i < 3; i++) {
        static const char *const names[] = {"cycles", "instructions", "llc_misses"};
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(hw, names[i]);
        if (cJSON_IsNumber(v)) fprintf(out, " %s %.3g;", names[i], v->valuedouble);
        else fprintf(out, " %s %s;", names[i], cJSON_IsString(v) ? v->valuestring : "not available");
    }
    if (num(hw, "ipc") >= 0) fprintf(out, " IPC %.2f", num(hw, "ipc"));
    fprintf(out, "\n");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(why, "cpu_energy");
    if (available(e))
        fprintf(out, "  cpu energy (RAPL package): %.4f J/token, %.1f W average\n", num(e, "j_per_token"), num(e, "avg_power_w"));
    else
        fprintf(out, "  cpu energy (RAPL): %s\n", str(e, "why_not"));
    e = cJSON_GetObjectItemCaseSensitive(why, "gpu_energy");
    if (!e) return;
    if (!available(e)) {
        fprintf(out, "  gpu energy (NVML): %s\n", str(e, "why_not"));
        return;
    }
    fprintf(out, "  gpu energy (NVML, %s): %.4f J/token, %.1f W average, %.1f W peak; SM %.0f MHz, memory %.0f MHz, %.0f C max\n",
            str(e, "method"), num(e, "j_per_token"), num(e, "avg_power_w"), num(e, "peak_power_w"), num(e, "sm_mhz"),
            num(e, "mem_mhz"), num(e, "max_temp_c"));
    fprintf(out, "  throttle reasons seen: %s\n", str(e, "throttle_reasons"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "throttled")))
        fprintf(out, "  WARNING: %s ran while the GPU was throttled (%s): its figures are slowed by it\n", label,
                str(e, "throttle_reasons"));
}
