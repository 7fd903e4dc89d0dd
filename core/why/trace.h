/* trace.h - the profiling pass's trace: what one backend did during a few
 * recorded decode steps, as a list of timed records, and its text format.
 *
 * The same text format is written by the CUPTI recorder (GPU kernels and
 * copies), by the CPU path (spans a plugin reports through the ABI 1.1
 * profile_spans call), and by hand for the tests, and one parser reads it, so
 * a recorded GPU trace replays through exactly the code a live one takes.
 *
 *     # fairbench trace 1                  first line, required
 *     step    BEGIN_NS END_NS              one decode() call, host side
 *     kernel  START_NS END_NS GX GY GZ NAME    a kernel (grid dimensions)
 *     memcpy  START_NS END_NS BYTES NAME   a copy (NAME: HtoD, DtoH, DtoD, ...)
 *     memset  START_NS END_NS BYTES NAME
 *     span    START_NS END_NS LAYER NAME   a named span (LAYER -1: outside the layers)
 *     # ...                                comments and blank lines are ignored
 *
 * Times are integers in nanoseconds of one clock per file (CLOCK_MONOTONIC
 * for spans, CUPTI's timestamp for GPU records: a step's markers are taken on
 * the same clock as its records). NAME is the rest of the line (a demangled
 * C++ name may hold spaces), at most WHY_NAME_MAX - 1 bytes. Records need not
 * be sorted; a record belongs to the step whose window holds its start. */
#ifndef FB_WHY_TRACE_H
#define FB_WHY_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fb_error.h"

#define WHY_NAME_MAX 160

typedef enum why_kind { WHY_KERNEL = 0, WHY_MEMCPY = 1, WHY_MEMSET = 2, WHY_SPAN = 3 } why_kind;

typedef struct why_record {
    why_kind kind;
    uint64_t start_ns, end_ns;
    int32_t grid[3];      /* kernels */
    uint64_t bytes;       /* copies and sets */
    int32_t layer;        /* spans; -1 outside the layers */
    char name[WHY_NAME_MAX];
} why_record;

typedef struct why_step {
    uint64_t begin_ns, end_ns;
} why_step;

typedef struct why_trace {
    why_record *records;
    size_t n_records, cap_records;
    why_step *steps;
    size_t n_steps, cap_steps;
} why_trace;

/* Append (the trace grows as needed); -1 when out of memory. */
int why_trace_add_step(why_trace *t, uint64_t begin_ns, uint64_t end_ns);
int why_trace_add(why_trace *t, const why_record *r);
void why_trace_free(why_trace *t);

/* Read a trace in the format above from fp; `source` names it in messages
 * ("trace.txt:12: ..."). Appends to t (which may be empty, zeroed). -1 with
 * one sentence on a malformed line, an end before its start, or a missing
 * header. */
int why_trace_read(FILE *fp, const char *source, why_trace *t, fb_error *err);

/* Write t in the format above (header first). -1 on a write error. */
int why_trace_write(FILE *fp, const why_trace *t);

#endif
