/* report.h - writing a run's report (see report.c for the layouts). */
#ifndef FB_REPORT_H
#define FB_REPORT_H

#include <stdio.h>

#include "profile.h"
#include "runner.h"

typedef enum fb_report_format { FB_REPORT_TEXT, FB_REPORT_MARKDOWN, FB_REPORT_CSV, FB_REPORT_JSON } fb_report_format;

int fb_report_write(const fb_profile *p, const fb_run_result *r, fb_report_format format, FILE *out);

#endif
