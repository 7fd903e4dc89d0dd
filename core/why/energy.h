/* energy.h - energy, power, clocks, temperature and throttling while a
 * backend runs: NVML for NVIDIA GPUs (libnvidia-ml.so.1 from the driver,
 * dlopen()ed at run time: the core links nothing of CUDA), sampled by a
 * thread of the parent process so the child being measured is undisturbed;
 * the powercap (RAPL) energy counter for CPUs, where readable.
 *
 * Samples carry CLOCK_MONOTONIC times, which every process on the machine
 * shares, so the parent's samples can be cut to the window a child reports
 * (its first and last timed step). Anything absent says "not available:
 * <why>" and is never a failure. */
#ifndef FB_WHY_ENERGY_H
#define FB_WHY_ENERGY_H

#include <stddef.h>
#include <stdint.h>

/* NVML's clock-throttle reason bits (public nvml.h values). */
#define WHY_THROTTLE_GPU_IDLE 0x1ull
#define WHY_THROTTLE_APP_CLOCKS 0x2ull
#define WHY_THROTTLE_SW_POWER_CAP 0x4ull
#define WHY_THROTTLE_HW_SLOWDOWN 0x8ull
#define WHY_THROTTLE_SYNC_BOOST 0x10ull
#define WHY_THROTTLE_SW_THERMAL 0x20ull
#define WHY_THROTTLE_HW_THERMAL 0x40ull
#define WHY_THROTTLE_HW_POWER_BRAKE 0x80ull
#define WHY_THROTTLE_DISPLAY_CLOCKS 0x100ull
/* The reasons that slow a run down (idle, application clocks and display
 * clocks are not a slowdown of work in progress). */
#define WHY_THROTTLE_SLOWDOWN                                                                                   \
    (WHY_THROTTLE_SW_POWER_CAP | WHY_THROTTLE_HW_SLOWDOWN | WHY_THROTTLE_SW_THERMAL | WHY_THROTTLE_HW_THERMAL | \
     WHY_THROTTLE_HW_POWER_BRAKE)

typedef struct why_sample {
    uint64_t t_ns;                  /* CLOCK_MONOTONIC */
    double energy_mj;               /* the device's total energy counter (mJ); < 0 when unreadable */
    double power_w;                 /* < 0 when unreadable */
    double sm_mhz, mem_mhz, temp_c; /* < 0 when unreadable */
    uint64_t throttle;              /* reason bits; 0 when unreadable */
} why_sample;

typedef struct why_energy {
    int available;
    char why_not[256];          /* when not available */
    double joules, j_per_token; /* < 0 when not known */
    double avg_power_w, peak_power_w;
    double avg_sm_mhz, avg_mem_mhz, max_temp_c;
    uint64_t throttle;  /* every reason seen in the window */
    int method_counter; /* 1: from the energy counter; 0: power integrated over the samples */
    size_t n_samples;
} why_energy;

/* Summarise the samples (sorted by time) over the window [t0_ns, t1_ns] in
 * which `tokens` tokens were decoded: energy from the counter (linearly
 * interpolated at both ends) when every sample has it, else the power
 * integrated (trapezoids). Fewer than two samples: not available. */
void why_energy_summarize(const why_sample *s, size_t n, uint64_t t0_ns, uint64_t t1_ns, uint64_t tokens,
                          why_energy *out);

/* "sw_power_cap, hw_thermal" for the bits set, "none" for 0. */
void why_throttle_names(uint64_t bits, char *out, size_t out_size);

// ---------------------------------------------------------------- NVML

typedef struct why_nvml why_nvml;

/* Load NVML (lib: a path or soname; NULL = "libnvidia-ml.so.1", or
 * FAIRBENCH_NVML_LIB when set), initialise it and pick the device. NULL with
 * a sentence in why_not when anything is missing. */
why_nvml *why_nvml_open(const char *lib, unsigned device_index, char *why_not, size_t why_not_size);
/* Start a thread sampling every period_ms; 0 or -1 with why_not. */
int why_nvml_start(why_nvml *n, double period_ms, char *why_not, size_t why_not_size);
/* Stop the thread; the samples stay until close. */
void why_nvml_stop(why_nvml *n);
/* The samples, once stopped. */
const why_sample *why_nvml_samples(const why_nvml *n, size_t *count);
/* How many samples so far (safe while the thread runs). */
size_t why_nvml_sample_count(why_nvml *n);
void why_nvml_close(why_nvml *n);

// ---------------------------------------------------------------- RAPL

/* The package energy counter of powercap zone `zone_dir` (NULL:
 * /sys/class/powercap/intel-rapl:0), in microjoules, and its wrap-around
 * range. -1 with why_not when unreadable (most VMs, or not root). */
int why_rapl_read(const char *zone_dir, uint64_t *energy_uj, uint64_t *max_range_uj, char *why_not,
                  size_t why_not_size);
/* Joules between two readings, allowing one wrap-around. */
double why_rapl_joules(uint64_t before_uj, uint64_t after_uj, uint64_t max_range_uj);

uint64_t why_now_ns(void); /* CLOCK_MONOTONIC */

/* GPU energy, clocks and throttling over a "why" object's recorded window
 * (window_begin_ns .. window_end_ns, steps) from the samples of nvml, as the
 * JSON "gpu_energy" member; {"available": false, ...} when nvml is NULL. */
struct cJSON;
struct cJSON *why_gpu_energy_json(why_nvml *nvml, const char *nvml_why_not, const struct cJSON *why);

#endif
