/* cmd_plugins.c - `fairbench plugins`: what backends are here, and why not
 * the others. */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abi_names.h"
#include "backends.h"
#include "model.h"
#include "plugin_host.h"
#include "tokenizer.h"

// ----------------------------------------------------------------------------
// fairbench plugins

void fb_plugins_usage(FILE *out) {
    fprintf(out, "usage: fairbench plugins [--plugin-dir DIR]...\n"
                 "lists every backend found, with name, version, ABI, capabilities and\n"
                 "availability, and every .so that cannot be used, with the reason\n");
}

int fb_cmd_plugins(int argc, char **argv) {
    const char *dirs[MAX_PLUGIN_DIRS];
    size_t n_dirs = 0;
    static const struct option longopts[] = {
        {"plugin-dir", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'P':
            if (n_dirs == MAX_PLUGIN_DIRS) {
                fprintf(stderr, "fairbench plugins: at most %d --plugin-dir options\n", MAX_PLUGIN_DIRS);
                return EXIT_USAGE;
            }
            dirs[n_dirs++] = optarg;
            break;
        case 'h': fb_plugins_usage(stdout); return EXIT_OK;
        default: return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "fairbench plugins: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    fb_backend_list list;
    fb_error err;
    if (fb_backends_discover(dirs, n_dirs, &list, &err)) {
        fprintf(stderr, "fairbench plugins: %s\n", err.msg);
        return EXIT_FAILURES;
    }
    printf("plugin folders searched:\n");
    for (size_t i = 0; i < list.n_dirs; i++) printf("  %s\n", list.dirs[i]);
    printf("\n%-12s %-8s %-5s %-42s %s\n", "backend", "version", "ABI", "capabilities", "availability");
    size_t n_usable = 0, n_unusable = 0;
    for (size_t i = 0; i < list.n; i++) {
        const fb_backend *b = &list.items[i];
        if (!b->usable) {
            n_unusable++;
            continue;
        }
        n_usable++;
        char caps[128], abi[16];
        fb_caps_format(b->api->capabilities, caps, sizeof caps);
        snprintf(abi, sizeof abi, "%u.%u", b->api->abi_major, b->api->abi_minor);
        fb_probe_result probe = {.struct_size = sizeof probe};
        fb_status st = b->api->probe(fb_host_services(), &probe);
        char availability[400];
        if (st != FB_OK) snprintf(availability, sizeof availability, "unavailable: probe failed (status %d)", (int)st);
        else if (probe.available) snprintf(availability, sizeof availability, "available: %s", probe.device);
        else snprintf(availability, sizeof availability, "unavailable: %s", probe.reason);
        printf("%-12s %-8s %-5s %-42s %s\n", b->name, b->api->version ? b->api->version : "?", abi, caps, availability);
        if (b->container[0]) printf("%-12s (published by %s's factory, %s)\n", "", b->container, b->path);
    }
    if (n_usable == 0) printf("(none)\n");
    if (n_unusable) {
        printf("\nunusable:\n");
        for (size_t i = 0; i < list.n; i++)
            if (!list.items[i].usable) printf("  %s\n", list.items[i].reason);
    }
    fb_backends_free(&list);
    return EXIT_OK;
}

