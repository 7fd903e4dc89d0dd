/* cmd_compare.h - `fairbench compare A.json B.json`. */
#ifndef FB_CMD_COMPARE_H
#define FB_CMD_COMPARE_H

int fb_cmd_compare(int argc, char **argv);

#endif
