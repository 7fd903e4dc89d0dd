/* cmd_backends.h - the `plugins` and `generate` commands. */
#ifndef FB_CMD_BACKENDS_H
#define FB_CMD_BACKENDS_H

int fb_cmd_plugins(int argc, char **argv);
int fb_cmd_generate(int argc, char **argv);

#endif
