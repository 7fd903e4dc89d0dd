/* cmd_conformance.h - `fairbench conformance PLUGIN.so`: runs one plugin
 * through the ABI contract on synthetic models, against cpu_ref, each check
 * in a process of its own; one line per check. Exit status: 0 every check
 * passed, 1 a check failed, 2 bad usage or the checks could not be set up,
 * 77 the plugin's hardware is not here (the checks that need it skipped). */
#ifndef FB_CMD_CONFORMANCE_H
#define FB_CMD_CONFORMANCE_H

int fb_cmd_conformance(int argc, char **argv);

#endif
