/* energy.c - NVML sampling, RAPL reading and the energy summary (energy.h). */
#include "why/energy.h"

#include <cjson/cJSON.h>

#include "why/pass.h" /* why_not_available_json */

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t why_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// ----------------------------------------------------------------------------
// the summary

/* Linear interpolation of the energy counter at time t (clamped to the samples). */
static double energy_at(const why_sample *s, size_t n, uint64_t t) {
    if (t <= s[0].t_ns) return s[0].energy_mj;
    for (size_t i = 1; i < n; i++)
        if (t <= s[i].t_ns) {
            double f = (double)(t - s[i - 1].t_ns) / (double)(s[i].t_ns - s[i - 1].t_ns);
            return s[i - 1].energy_mj + f * (s[i].energy_mj - s[i - 1].energy_mj);
        }
    return s[n - 1].energy_mj;
}

void why_energy_summarize(const why_sample *s, size_t n, uint64_t t0, uint64_t t1, uint64_t tokens, why_energy *out) {
    memset(out, 0, sizeof *out);
    out->joules = out->j_per_token = out->avg_power_w = out->peak_power_w = -1;
    out->avg_sm_mhz = out->avg_mem_mhz = out->max_temp_c = -1;
    if (n < 2 || t1 <= t0) {
        snprintf(out->why_not, sizeof out->why_not, "not available: %zu sample(s) over the window", n);
        return;
    }
    int counter = 1, power = 1;
    double sm = 0, mem = 0, n_sm = 0, n_mem = 0;
    for (size_t i = 0; i < n; i++) {
        counter &= s[i].energy_mj >= 0;
        power &= s[i].power_w >= 0;
        if (s[i].t_ns < t0 || s[i].t_ns > t1) continue;
        out->n_samples++;
        if (s[i].power_w > out->peak_power_w) out->peak_power_w = s[i].power_w;
        if (s[i].sm_mhz >= 0) sm += s[i].sm_mhz, n_sm++;
        if (s[i].mem_mhz >= 0) mem += s[i].mem_mhz, n_mem++;
        if (s[i].temp_c > out->max_temp_c) out->max_temp_c = s[i].temp_c;
        out->throttle |= s[i].throttle;
    }
    if (n_sm) out->avg_sm_mhz = sm / n_sm;
    if (n_mem) out->avg_mem_mhz = mem / n_mem;
    double seconds = (double)(t1 - t0) * 1e-9;
    if (counter) {
        out->joules = (energy_at(s, n, t1) - energy_at(s, n, t0)) * 1e-3;
        out->method_counter = 1;
    } else if (power) {
        double j = 0;
        for (size_t i = 1; i < n; i++) {
            uint64_t a = s[i - 1].t_ns > t0 ? s[i - 1].t_ns : t0, b = s[i].t_ns < t1 ? s[i].t_ns : t1;
            if (b > a) j += 0.5 * (s[i - 1].power_w + s[i].power_w) * (double)(b - a) * 1e-9;
        }
        out->joules = j;
    } else {
        snprintf(out->why_not, sizeof out->why_not,
                 "not available: neither the energy counter nor the power was readable");
        return;
    }
    out->available = 1;
    out->avg_power_w = out->joules / seconds;
    out->j_per_token = tokens ? out->joules / (double)tokens : -1;
}

void why_throttle_names(uint64_t bits, char *out, size_t out_size) {
    static const struct {
        uint64_t bit;
        const char *name;
    } names[] = {{WHY_THROTTLE_GPU_IDLE, "gpu_idle"},
                 {WHY_THROTTLE_APP_CLOCKS, "applications_clocks"},
                 {WHY_THROTTLE_SW_POWER_CAP, "sw_power_cap"},
                 {WHY_THROTTLE_HW_SLOWDOWN, "hw_slowdown"},
                 {WHY_THROTTLE_SYNC_BOOST, "sync_boost"},
                 {WHY_THROTTLE_SW_THERMAL, "sw_thermal"},
                 {WHY_THROTTLE_HW_THERMAL, "hw_thermal"},
                 {WHY_THROTTLE_HW_POWER_BRAKE, "hw_power_brake"},
                 {WHY_THROTTLE_DISPLAY_CLOCKS, "display_clocks"}};
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(bits & names[i].bit)) continue;
        int w = snprintf(out + len, out_size - len, "%s%s", len ? ", " : "", names[i].name);
        if (w < 0 || (size_t)w >= out_size - len) break;
        len += (size_t)w;
    }
    uint64_t known = 0x1ffull;
    if (bits & ~known && len + 16 < out_size)
        snprintf(out + len, out_size - len, "%sother 0x%" PRIx64, len ? ", " : "", bits & ~known);
    if (!bits) snprintf(out, out_size, "none");
}

// ----------------------------------------------------------------------------
// NVML, declared here from its public API (nvml.h): every call returns an
// nvmlReturn_t (0 = success); a device is an opaque pointer.

typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;
enum { NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_TEMPERATURE_GPU = 0 };

struct why_nvml {
    void *lib;
    nvml_device dev;
    nvml_return (*shutdown)(void);
    const char *(*error_string)(nvml_return);
    nvml_return (*total_energy)(nvml_device, unsigned long long *);
    nvml_return (*power_usage)(nvml_device, unsigned int *);
    nvml_return (*clock_info)(nvml_device, int, unsigned int *);
    nvml_return (*temperature)(nvml_device, int, unsigned int *);
    nvml_return (*throttle_reasons)(nvml_device, unsigned long long *);
    double period_ms;
    pthread_t thread;
    int running;
    pthread_mutex_t lock;
    int stop;
    why_sample *samples;
    size_t n_samples, cap_samples;
};

static void nvml_unload(why_nvml *n) {
    if (n->lib) dlclose(n->lib);
    free(n->samples);
    free(n);
}

why_nvml *why_nvml_open(const char *lib, unsigned device_index, char *why_not, size_t why_not_size) {
    if (!lib) lib = getenv("FAIRBENCH_NVML_LIB");
    if (!lib || !*lib) lib = "libnvidia-ml.so.1";
    why_nvml *n = calloc(1, sizeof *n);
    if (!n) {
        snprintf(why_not, why_not_size, "not available: out of memory");
        return NULL;
    }
    n->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        snprintf(why_not, why_not_size, "not available: NVML (%s) cannot be loaded (no NVIDIA driver here?)", lib);
        nvml_unload(n);
        return NULL;
    }
    nvml_return (*init)(void);
    nvml_return (*handle_by_index)(unsigned, nvml_device *);
    *(void **)&init = dlsym(n->lib, "nvmlInit_v2");
    *(void **)&handle_by_index = dlsym(n->lib, "nvmlDeviceGetHandleByIndex_v2");
    *(void **)&n->shutdown = dlsym(n->lib, "nvmlShutdown");
    *(void **)&n->error_string = dlsym(n->lib, "nvmlErrorString");
    *(void **)&n->total_energy = dlsym(n->lib, "nvmlDeviceGetTotalEnergyConsumption");
    *(void **)&n->power_usage = dlsym(n->lib, "nvmlDeviceGetPowerUsage");
    *(void **)&n->clock_info = dlsym(n->lib, "nvmlDeviceGetClockInfo");
    *(void **)&n->temperature = dlsym(n->lib, "nvmlDeviceGetTemperature");
    *(void **)&n->throttle_reasons = dlsym(n->lib, "nvmlDeviceGetCurrentClocksEventReasons");
    if (!n->throttle_reasons)
        *(void **)&n->throttle_reasons = dlsym(n->lib, "nvmlDeviceGetCurrentClocksThrottleReasons");
    if (!init || !handle_by_index || !n->shutdown) {
        snprintf(why_not, why_not_size,
                 "not available: %s lacks nvmlInit_v2, nvmlDeviceGetHandleByIndex_v2 or nvmlShutdown", lib);
        nvml_unload(n);
        return NULL;
    }
    nvml_return rc = init();
    if (rc != 0) {
        snprintf(why_not, why_not_size, "not available: nvmlInit failed: %s",
                 n->error_string ? n->error_string(rc) : "unknown error");
        nvml_unload(n);
        return NULL;
    }
    rc = handle_by_index(device_index, &n->dev);
    if (rc != 0) {
        snprintf(why_not, why_not_size, "not available: NVML has no device %u: %s", device_index,
                 n->error_string ? n->error_string(rc) : "unknown error");
        n->shutdown();
        nvml_unload(n);
        return NULL;
    }
    pthread_mutex_init(&n->lock, NULL);
    return n;
}

static void nvml_sample(why_nvml *n, why_sample *s) {
    unsigned long long e, reasons;
    unsigned int v;
    s->t_ns = why_now_ns();
    s->energy_mj = n->total_energy && n->total_energy(n->dev, &e) == 0 ? (double)e : -1;
    s->power_w = n->power_usage && n->power_usage(n->dev, &v) == 0 ? v * 1e-3 : -1;
    s->sm_mhz = n->clock_info && n->clock_info(n->dev, NVML_CLOCK_SM, &v) == 0 ? (double)v : -1.0;
    s->mem_mhz = n->clock_info && n->clock_info(n->dev, NVML_CLOCK_MEM, &v) == 0 ? (double)v : -1.0;
    s->temp_c = n->temperature && n->temperature(n->dev, NVML_TEMPERATURE_GPU, &v) == 0 ? (double)v : -1.0;
    s->throttle = n->throttle_reasons && n->throttle_reasons(n->dev, &reasons) == 0 ? (uint64_t)reasons : 0;
}

static void *sampler(void *arg) {
    why_nvml *n = arg;
    struct timespec period = {(time_t)(n->period_ms / 1000), (long)(n->period_ms * 1e6) % 1000000000L};
    for (;;) {
        why_sample s;
        nvml_sample(n, &s);
        pthread_mutex_lock(&n->lock);
        int stop = n->stop;
        if (n->n_samples == n->cap_samples) {
            size_t cap = n->cap_samples ? 2 * n->cap_samples : 1024;
            why_sample *v = realloc(n->samples, cap * sizeof *v);
            if (v) n->samples = v, n->cap_samples = cap;
        }
        if (n->n_samples < n->cap_samples) n->samples[n->n_samples++] = s;
        pthread_mutex_unlock(&n->lock);
        if (stop) break;
        nanosleep(&period, NULL);
    }
    return NULL;
}

int why_nvml_start(why_nvml *n, double period_ms, char *why_not, size_t why_not_size) {
    n->period_ms = period_ms > 1 ? period_ms : 1;
    n->stop = 0;
    int rc = pthread_create(&n->thread, NULL, sampler, n);
    if (rc) {
        snprintf(why_not, why_not_size, "not available: the NVML sampling thread cannot start: %s", strerror(rc));
        return -1;
    }
    n->running = 1;
    return 0;
}

void why_nvml_stop(why_nvml *n) {
    if (!n || !n->running) return;
    pthread_mutex_lock(&n->lock);
    n->stop = 1; /* the thread takes one last sample and ends */
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
    n->running = 0;
}

const why_sample *why_nvml_samples(const why_nvml *n, size_t *count) {
    *count = n->n_samples;
    return n->samples;
}

size_t why_nvml_sample_count(why_nvml *n) {
    pthread_mutex_lock(&n->lock);
    size_t count = n->n_samples;
    pthread_mutex_unlock(&n->lock);
    return count;
}

void why_nvml_close(why_nvml *n) {
    if (!n) return;
    why_nvml_stop(n);
    n->shutdown();
    pthread_mutex_destroy(&n->lock);
    nvml_unload(n);
}

// ----------------------------------------------------------------------------
// RAPL

static int read_u64_file(const char *path, uint64_t *out) {
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    unsigned long long v;
    int ok = fscanf(fp, "%llu", &v) == 1;
    fclose(fp);
    if (!ok) {
        errno = EINVAL;
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int why_rapl_read(const char *zone_dir, uint64_t *energy_uj, uint64_t *max_range_uj, char *why_not,
                  size_t why_not_size) {
    if (!zone_dir) zone_dir = "/sys/class/powercap/intel-rapl:0";
    char path[1024];
    snprintf(path, sizeof path, "%s/energy_uj", zone_dir);
    if (read_u64_file(path, energy_uj)) {
        snprintf(why_not, why_not_size, "not available: %s cannot be read: %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/max_energy_range_uj", zone_dir);
    if (read_u64_file(path, max_range_uj)) *max_range_uj = 0;
    return 0;
}

double why_rapl_joules(uint64_t before_uj, uint64_t after_uj, uint64_t max_range_uj) {
    if (after_uj >= before_uj) return (double)(after_uj - before_uj) * 1e-6;
    return max_range_uj > before_uj ? (double)(max_range_uj - before_uj + after_uj) * 1e-6 : -1;
}

/* Energy, clocks and throttling over the child's recorded window. */
cJSON *why_gpu_energy_json(why_nvml *nvml, const char *nvml_why_not, const cJSON *why) {
    if (!nvml) return why_not_available_json(nvml_why_not);
    const cJSON *w0 = cJSON_GetObjectItemCaseSensitive(why, "window_begin_ns");
    const cJSON *w1 = cJSON_GetObjectItemCaseSensitive(why, "window_end_ns");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(why, "steps");
    size_t n;
    const why_sample *s = why_nvml_samples(nvml, &n);
    why_energy e;
    why_energy_summarize(s, n, (uint64_t)w0->valuedouble, (uint64_t)w1->valuedouble, (uint64_t)steps->valuedouble, &e);
    if (!e.available) return why_not_available_json(e.why_not);
    cJSON *o = cJSON_CreateObject();
    char names[256];
    why_throttle_names(e.throttle, names, sizeof names);
    cJSON_AddBoolToObject(o, "available", 1);
    cJSON_AddStringToObject(o, "method", e.method_counter ? "energy counter" : "power integrated");
    cJSON_AddNumberToObject(o, "joules", e.joules);
    cJSON_AddNumberToObject(o, "j_per_token", e.j_per_token);
    cJSON_AddNumberToObject(o, "avg_power_w", e.avg_power_w);
    cJSON_AddNumberToObject(o, "peak_power_w", e.peak_power_w);
    cJSON_AddNumberToObject(o, "sm_mhz", e.avg_sm_mhz);
    cJSON_AddNumberToObject(o, "mem_mhz", e.avg_mem_mhz);
    cJSON_AddNumberToObject(o, "max_temp_c", e.max_temp_c);
    cJSON_AddNumberToObject(o, "samples", (double)e.n_samples);
    cJSON_AddStringToObject(o, "throttle_reasons", names);
    cJSON_AddBoolToObject(o, "throttled", (e.throttle & WHY_THROTTLE_SLOWDOWN) != 0);
    return o;
}
