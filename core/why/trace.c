/* trace.c - the profiling trace's records and its text format (trace.h). */
#include "why/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_HEADER "# fairbench trace 1"

int why_trace_add_step(why_trace *t, uint64_t begin_ns, uint64_t end_ns) {
    if (t->n_steps == t->cap_steps) {
        size_t cap = t->cap_steps ? 2 * t->cap_steps : 16;
        why_step *s = realloc(t->steps, cap * sizeof *s);
        if (!s) return -1;
        t->steps = s;
        t->cap_steps = cap;
    }
    t->steps[t->n_steps++] = (why_step){begin_ns, end_ns};
    return 0;
}

int why_trace_add(why_trace *t, const why_record *r) {
    if (t->n_records == t->cap_records) {
        size_t cap = t->cap_records ? 2 * t->cap_records : 256;
        why_record *v = realloc(t->records, cap * sizeof *v);
        if (!v) return -1;
        t->records = v;
        t->cap_records = cap;
    }
    t->records[t->n_records++] = *r;
    return 0;
}

void why_trace_free(why_trace *t) {
    free(t->records);
    free(t->steps);
    memset(t, 0, sizeof *t);
}

// ----------------------------------------------------------------------------
// reading

/* Next whitespace-separated integer field; advances *p. -1 when absent or bad. */
static int field_u64(const char **p, uint64_t *out) {
    const char *s = *p + strspn(*p, " \t");
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || (*end && *end != ' ' && *end != '\t')) return -1;
    *out = (uint64_t)v;
    *p = end;
    return 0;
}

static int field_i32(const char **p, int32_t *out) {
    const char *s = *p + strspn(*p, " \t");
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno || v < INT32_MIN || v > INT32_MAX || (*end && *end != ' ' && *end != '\t')) return -1;
    *out = (int32_t)v;
    *p = end;
    return 0;
}

/* The rest of the line as the name (trimmed); -1 when empty or too long. */
static int field_name(const char *p, char *out) {
    p += strspn(p, " \t");
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (n == 0 || n >= WHY_NAME_MAX) return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int why_trace_read(FILE *fp, const char *source, why_trace *t, fb_error *err) {
    char line[1024];
    int line_no = 0;
    int have_header = 0;
    while (fgets(line, sizeof line, fp)) {
        line_no++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n')
            return fb_error_set(err, "%s:%d: line longer than %zu bytes", source, line_no, sizeof line - 2);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!have_header) {
            if (strcmp(line, TRACE_HEADER) != 0)
                return fb_error_set(err, "%s:%d: not a fairbench trace (the first line must be '%s')", source, line_no,
                                    TRACE_HEADER);
            have_header = 1;
            continue;
        }
        const char *p = line + strspn(line, " \t");
        if (*p == '\0' || *p == '#') continue;
        size_t word = strcspn(p, " \t");
        why_record r = {.layer = -1};
        uint64_t a = 0, b = 0;
        const char *q = p + word;
        int bad = field_u64(&q, &a) || field_u64(&q, &b);
        if (!bad && b < a)
            return fb_error_set(err, "%s:%d: the end (%" PRIu64 ") is before the start (%" PRIu64 ")", source, line_no,
                                b, a);
        r.start_ns = a;
        r.end_ns = b;
        if (word == 4 && memcmp(p, "step", 4) == 0) {
            q += strspn(q, " \t");
            if (bad || *q) return fb_error_set(err, "%s:%d: expected 'step BEGIN_NS END_NS'", source, line_no);
            if (why_trace_add_step(t, a, b)) return fb_error_set(err, "out of memory reading %s", source);
            continue;
        } else if (word == 6 && memcmp(p, "kernel", 6) == 0) {
            r.kind = WHY_KERNEL;
            if (bad || field_i32(&q, &r.grid[0]) || field_i32(&q, &r.grid[1]) || field_i32(&q, &r.grid[2]) ||
                field_name(q, r.name))
                return fb_error_set(err, "%s:%d: expected 'kernel START_NS END_NS GX GY GZ NAME'", source, line_no);
        } else if (word == 6 && (memcmp(p, "memcpy", 6) == 0 || memcmp(p, "memset", 6) == 0)) {
            r.kind = p[3] == 'c' ? WHY_MEMCPY : WHY_MEMSET;
            if (bad || field_u64(&q, &r.bytes) || field_name(q, r.name))
                return fb_error_set(err, "%s:%d: expected '%.6s START_NS END_NS BYTES NAME'", source, line_no, p);
        } else if (word == 4 && memcmp(p, "span", 4) == 0) {
            r.kind = WHY_SPAN;
            if (bad || field_i32(&q, &r.layer) || field_name(q, r.name))
                return fb_error_set(err, "%s:%d: expected 'span START_NS END_NS LAYER NAME'", source, line_no);
        } else {
            return fb_error_set(err, "%s:%d: unknown record '%.*s' (step, kernel, memcpy, memset or span)", source,
                                line_no, (int)(word > 32 ? 32 : word), p);
        }
        if (why_trace_add(t, &r)) return fb_error_set(err, "out of memory reading %s", source);
    }
    if (ferror(fp)) return fb_error_set(err, "%s: read error", source);
    if (!have_header) return fb_error_set(err, "%s: empty file (not a fairbench trace)", source);
    return 0;
}

// ----------------------------------------------------------------------------
// writing

int why_trace_write(FILE *fp, const why_trace *t) {
    int bad = fprintf(fp, "%s\n", TRACE_HEADER) < 0;
    for (size_t i = 0; i < t->n_steps && !bad; i++)
        bad = fprintf(fp, "step %" PRIu64 " %" PRIu64 "\n", t->steps[i].begin_ns, t->steps[i].end_ns) < 0;
    for (size_t i = 0; i < t->n_records && !bad; i++) {
        const why_record *r = &t->records[i];
        switch (r->kind) {
        case WHY_KERNEL:
            bad = fprintf(fp, "kernel %" PRIu64 " %" PRIu64 " %d %d %d %s\n", r->start_ns, r->end_ns, r->grid[0],
                          r->grid[1], r->grid[2], r->name) < 0;
            break;
        case WHY_MEMCPY:
        case WHY_MEMSET:
            bad = fprintf(fp, "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", r->kind == WHY_MEMCPY ? "memcpy" : "memset",
                          r->start_ns, r->end_ns, r->bytes, r->name) < 0;
            break;
        case WHY_SPAN:
            bad = fprintf(fp, "span %" PRIu64 " %" PRIu64 " %d %s\n", r->start_ns, r->end_ns, r->layer, r->name) < 0;
            break;
        }
    }
    return bad || fflush(fp) ? -1 : 0;
}
