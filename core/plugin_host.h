/* plugin_host.h - the core's side of the plugin ABI: the host services table
 * and the read-only model view handed to plugins. */
#ifndef FB_PLUGIN_HOST_H
#define FB_PLUGIN_HOST_H

#include "fairbench/plugin.h"
#include "fb_error.h"
#include "model.h"

/* The process-wide host services table (static; never freed). */
const fb_host *fb_host_services(void);

/* Ask running plugin calls to stop (host->is_cancelled() turns non-zero).
 * Async-signal-safe. */
void fb_host_request_cancel(void);

/* A model view and the storage behind it; valid while the fb_model is open. */
typedef struct fb_model_view_owner {
    fb_model_view view;
    fb_tensor_view token_embd, output_norm, output, rope_freqs;
    fb_layer_view *layers;
} fb_model_view_owner;

int fb_model_view_build(const fb_model *m, fb_model_view_owner *out, fb_error *err);
void fb_model_view_free(fb_model_view_owner *v);

#endif
