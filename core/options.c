/* options.c - per-backend options (see options.h). */
#include "options.h"

#include <stdio.h>
#include <string.h>

#include "plugin_host.h"

static int refuse(const fb_profile *p, const fb_entry *e, const fb_profile_option *o, const char *why, fb_error *err) {
    const char *file = p->path[0] ? p->path : "(default profile)";
    if (o->line > 0)
        return fb_error_set(err, "%s:%d: [backend.%s] %s = %s: %s", file, o->line, e->label, o->key, o->value, why);
    return fb_error_set(err, "--set backend.%s.%s=%s: %s", e->label, o->key, o->value, why);
}

int fb_options_vet(const fb_profile *p, const fb_backend_list *list, fb_error *err) {
    for (int i = 0; i < p->n_entries; i++) {
        const fb_entry *e = &p->entries[i];
        const fb_backend *b = e->n_options ? fb_backends_find(list, e->plugin) : NULL;
        if (!b) continue;
        const fb_plugin *api = b->api;
        bool can_check = api->abi_minor >= 1 && FB_PLUGIN_HAS(api, check_option) && api->check_option;
        for (int j = 0; j < e->n_options; j++) {
            const fb_profile_option *o = &e->options[j];
            char why[512];
            if (!can_check) {
                snprintf(why, sizeof why, "backend '%s' (ABI %u.%u) takes no options: '%s' is neither a fairbench "
                         "key nor one of the plugin's", e->plugin, api->abi_major, api->abi_minor, o->key);
                return refuse(p, e, o, why, err);
            }
            char message[400] = "";
            fb_status st = api->check_option(fb_host_services(), o->key, o->value, message, sizeof message);
            message[sizeof message - 1] = '\0';
            if (st != FB_OK) {
                snprintf(why, sizeof why, "%s", message[0] ? message : "refused by the plugin without a reason");
                return refuse(p, e, o, why, err);
            }
        }
    }
    return 0;
}

uint32_t fb_options_view(const fb_entry *e, fb_option out[FB_MAX_OPTIONS]) {
    uint32_t n = 0;
    for (int i = 0; i < e->n_options && i < FB_MAX_OPTIONS; i++)
        out[n++] = (fb_option){.key = e->options[i].key, .value = e->options[i].value};
    return n;
}
