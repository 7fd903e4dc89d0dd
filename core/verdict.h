/* verdict.h - after the measurements: the fairness audit and verdict, the
 * ranking (advantage against the slowest correct backend), and the lines
 * under the table (warnings about the figures, informational notes).
 *
 * The audit compares what each backend was asked for with what it reports
 * it did (effective settings), and the entries with one another. A
 * difference in a key the profile declares in `[run] vary` is the
 * experiment, not a fault: the verdict is then "fair (varies by design:
 * KEY, KEY)". Any other difference is a reason for "unfair". Reasons, each
 * produced by a test in tests/test_verdict.sh:
 *   "L overrides KEY"                                   an override not in vary
 *   "L was asked for P weights but ran Q"               effective weight precision
 *   "L accumulated in P, not Q"                         effective accumulate precision
 *   "L used JIT compilation, which the profile forbids"
 *   "L replayed graphs, which the profile forbids"
 *   "L was asked for N threads but ran M"
 *   "weight precision differs: A P, B Q"                between entries, not in vary
 *   "CPU threads differ: A N, B M"                      between entries, not in vary
 *   "no comparison was made: ..."                       fewer than two backends measured */
#ifndef FB_VERDICT_H
#define FB_VERDICT_H

#include "profile.h"
#include "runner.h"

/* Fill out->verdict and out->fair from the entries' settings and results. */
void fb_audit(const fb_profile *p, fb_run_result *out);

/* Fill each correct backend's advantage (not a WRONG, failed or skipped
 * one's: those are not ranked), out->warnings and out->notes. */
void fb_rank_and_warn(const fb_profile *p, fb_run_result *out);

#endif
