/* cupti.h - the core's side of the CUPTI recorder (cupti_recorder.c): it is
 * dlopen()ed at run time in a GPU backend's child for the profiling pass, so
 * the core never links CUDA. Where the recorder or CUPTI is absent, or
 * CUPTI refuses (no driver, no GPU), why_cupti_open says "not available:
 * <why>" and the pass goes on without a kernel breakdown. */
#ifndef FB_WHY_CUPTI_H
#define FB_WHY_CUPTI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct why_cupti {
    void *lib;
    int (*start)(char *msg, size_t msg_size);
    uint64_t (*now)(void);
    long (*stop)(FILE *out, char *msg, size_t msg_size);
} why_cupti;

/* Load the recorder (path: FAIRBENCH_CUPTI_RECORDER when set, else the one
 * the build made) and start recording. 0, or -1 with why_not. */
int why_cupti_open(why_cupti *c, char *why_not, size_t why_not_size);
/* Where the recorder is looked for. (There is no close: the recorder stays
 * loaded until the child exits, as CUPTI keeps its callbacks.) */
const char *why_cupti_recorder_path(void);

#endif
