/* fake_nvml.c - a stand-in for libnvidia-ml.so.1 with the few calls the
 * profiling pass's sampler uses (core/why/energy.c), so the NVML path runs
 * without a GPU: one device drawing a constant FAKE_POWER_MW, its energy
 * counter the integral of that over CLOCK_MONOTONIC, fixed clocks and
 * temperature, and the software power cap as the throttle reason. Values and
 * signatures follow NVML's public API (nvml.h); the test knows these figures. */
#include <stdint.h>
#include <time.h>

#define FAKE_POWER_MW 150000u
#define EXPORT __attribute__((visibility("default")))

typedef struct nvml_device_st *nvml_device;
static int device_token;

EXPORT int nvmlInit_v2(void) { return 0; }
EXPORT int nvmlShutdown(void) { return 0; }
EXPORT const char *nvmlErrorString(int rc) { return rc ? "fake error" : "success"; }

EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned index, nvml_device *dev) {
    if (index != 0) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    *dev = (nvml_device)(void *)&device_token;
    return 0;
}

EXPORT int nvmlDeviceGetTotalEnergyConsumption(nvml_device dev, unsigned long long *mj) {
    (void)dev;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double seconds = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    *mj = (unsigned long long)(seconds * FAKE_POWER_MW); /* mW * s = mJ */
    return 0;
}

EXPORT int nvmlDeviceGetPowerUsage(nvml_device dev, unsigned *mw) {
    (void)dev;
    *mw = FAKE_POWER_MW;
    return 0;
}

EXPORT int nvmlDeviceGetClockInfo(nvml_device dev, int type, unsigned *mhz) {
    (void)dev;
    *mhz = type == 1 ? 1755u : type == 2 ? 2619u : 0u; /* SM, memory */
    return 0;
}

EXPORT int nvmlDeviceGetTemperature(nvml_device dev, int sensor, unsigned *c) {
    (void)dev, (void)sensor;
    *c = 55;
    return 0;
}

EXPORT int nvmlDeviceGetCurrentClocksThrottleReasons(nvml_device dev, unsigned long long *reasons) {
    (void)dev;
    *reasons = 0x4; /* software power cap */
    return 0;
}
