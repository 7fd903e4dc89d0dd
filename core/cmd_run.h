/* cmd_run.h - `fairbench -c PROFILE`: the main job. */
#ifndef FB_CMD_RUN_H
#define FB_CMD_RUN_H

#include <stdio.h>

int fb_cmd_run(int argc, char **argv);
void fb_run_usage(FILE *out);

#endif
