/* inspect.c - `fairbench inspect`: what a GGUF model holds and what one
 * decode step must read. */
#include "inspect.h"

#include <inttypes.h>
#include <string.h>

#include "model.h"
#include "quant.h"

static void format_bytes(uint64_t b, char *buf, size_t n) {
    if (b >= (1ull << 30)) snprintf(buf, n, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, n, "%.2f MiB", (double)b / (1ull << 20));
    else if (b >= (1ull << 10))
        snprintf(buf, n, "%.1f KiB", (double)b / (1ull << 10));
    else
        snprintf(buf, n, "%" PRIu64 " B", b);
}

static void print_metadata(const gguf_file *f, FILE *out) {
    fprintf(out, "\nmetadata (%" PRIu64 " keys)\n", gguf_n_kv(f));
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char value[96];
        gguf_value_format(&kv->value, value, sizeof value);
        fprintf(out, "  %-44s %-7s %s\n", kv->key.data, gguf_vtype_name(kv->value.type), value);
    }
}

static void print_tensor_table(const gguf_file *f, FILE *out) {
    fprintf(out, "\ntensors (%" PRIu64 ")\n  %-32s %-6s %-22s %12s\n", gguf_n_tensors(f), "name", "type", "shape",
            "bytes");
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char shape[64];
        size_t n = 0;
        for (uint32_t d = 0; d < t->n_dims && n < sizeof shape; d++)
            n += (size_t)snprintf(shape + n, sizeof shape - n, d ? " x %" PRId64 : "%" PRId64, t->ne[d]);
        fprintf(out, "  %-32s %-6s %-22s %12" PRIu64 "\n", t->name, quant_type_get(t->type)->name, shape, t->n_bytes);
    }
}

static void print_type_totals(const gguf_file *f, FILE *out) {
    uint64_t count[GGUF_TYPE_COUNT_] = {0}, bytes[GGUF_TYPE_COUNT_] = {0}, elems[GGUF_TYPE_COUNT_] = {0};
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        count[t->type]++;
        bytes[t->type] += t->n_bytes;
        elems[t->type] += t->n_elems;
    }
    fprintf(out, "\ntotals by type\n");
    for (uint32_t ty = 0; ty < GGUF_TYPE_COUNT_; ty++) {
        if (!count[ty]) continue;
        char b[32];
        format_bytes(bytes[ty], b, sizeof b);
        fprintf(out, "  %-6s %5" PRIu64 " tensors %14" PRIu64 " values %12s (%.2f bits/value)\n",
                quant_type_get(ty)->name, count[ty], elems[ty], b, 8.0 * (double)bytes[ty] / (double)elems[ty]);
    }
}

static void print_decode_bytes(const fb_model *m, FILE *out) {
    struct {
        const char *label;
        int type;
    } rows[] = {{"f32", GGUF_TYPE_F32}, {"f16", GGUF_TYPE_F16}, {"native", -1}};
    fprintf(out, "\nbytes one decode step reads (weights; the KV cache adds per position)\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t b = fb_model_decode_bytes(m, rows[i].type);
        char s[32];
        format_bytes(b, s, sizeof s);
        fprintf(out, "  %-7s %14" PRIu64 " bytes  %s\n", rows[i].label, b, s);
    }
    char kv16[32];
    format_bytes(fb_model_kv_bytes_per_pos(m, 2), kv16, sizeof kv16);
    fprintf(out, "  KV cache: %" PRIu64 " bytes per position at f16 (%s), %" PRIu64 " at f32\n",
            fb_model_kv_bytes_per_pos(m, 2), kv16, fb_model_kv_bytes_per_pos(m, 4));
}

int fb_inspect(const char *path, const fb_inspect_options *opt, FILE *out, fb_error *err) {
    fb_model *m;
    if (fb_model_open(path, &m, err)) return -1;
    const gguf_file *f = m->file;
    const fb_hparams *hp = &m->hp;
    char size[32];
    format_bytes(gguf_file_size(f), size, sizeof size);

    fprintf(out, "file          %s\n", path);
    fprintf(out,
            "format        GGUF v%" PRIu32 ", %" PRIu64 " bytes (%s), alignment %" PRIu32 ", %" PRIu64 " keys, %" PRIu64
            " tensors\n",
            gguf_version(f), gguf_file_size(f), size, gguf_alignment(f), gguf_n_kv(f), gguf_n_tensors(f));
    fprintf(out, "name          %s\n", m->name[0] ? m->name : "(none)");
    fprintf(out, "architecture  %s, %.1fM parameters\n", m->arch, (double)fb_model_n_params(m) / 1e6);
    fprintf(out, "\nhyper-parameters\n");
    fprintf(out, "  embedding length      %" PRIu32 "\n", hp->n_embd);
    fprintf(out, "  blocks                %" PRIu32 "\n", hp->n_layer);
    fprintf(out, "  heads / KV heads      %" PRIu32 " / %" PRIu32 " (head dimension %" PRIu32 ")\n", hp->n_head,
            hp->n_head_kv, hp->head_dim);
    fprintf(out, "  feed-forward length   %" PRIu32 "\n", hp->n_ff);
    fprintf(out, "  context length        %" PRIu32 "\n", hp->n_ctx);
    fprintf(out, "  vocabulary            %" PRIu32 "\n", hp->n_vocab);
    fprintf(out, "  RoPE                  base %g, %" PRIu32 " dimensions%s\n", (double)hp->rope_freq_base, hp->n_rot,
            m->rope_freqs ? ", Llama-3 frequency factors (rope_freqs.weight)" : "");
    fprintf(out, "  RMS norm epsilon      %g\n", (double)hp->rms_eps);
    fprintf(out, "  output                %s\n", m->tied_output ? "tied to token_embd" : "output.weight");
    if (m->tokenizer_model[0])
        fprintf(out, "\ntokenizer     %s%s%s%s, %" PRIu64 " tokens, %" PRIu64 " merges\n", m->tokenizer_model,
                m->tokenizer_pre[0] ? " (pre-tokenizer " : "", m->tokenizer_pre, m->tokenizer_pre[0] ? ")" : "",
                m->tokenizer_n_tokens, m->tokenizer_n_merges);
    else
        fprintf(out, "\ntokenizer     none in the file\n");

    if (opt && opt->show_metadata) print_metadata(f, out);
    if (!opt || opt->show_tensors) print_tensor_table(f, out);
    print_type_totals(f, out);
    print_decode_bytes(m, out);
    fb_model_close(m);
    return 0;
}
