"""numpy_ref - a LLaMA decode in numpy, f32: the smallest complete Python
backend, the example of docs/python-backends.md and the bridge's test backend.

Reads like cpu_ref: weights as float32 arrays (views of the mapped file when
it is F32, converted otherwise), a KV cache allocated once, one function per
block of the forward pass.
"""
DESCRIPTION = "numpy, f32: the readable example of a Python backend (the bridge's test backend)"
CAPABILITIES = "cpu f32"

import numpy as np

import fairbench as fb


def probe():
    return fb.Probe(True, fb.cpu_device(f"numpy {np.__version__}"))


def rmsnorm(x, weight, eps):
    # x / sqrt(mean(x^2) + eps) * weight
    return x * np.float32(1.0 / np.sqrt(np.mean(x * x, dtype=np.float32) + np.float32(eps))) * weight


def rope(vec, n_heads, head_dim, n_rot, cos, sin):
    # rotate adjacent pairs (2i, 2i+1) of each head by pos * inv_freq[i], i < n_rot / 2
    v = vec.reshape(n_heads, head_dim)
    even, odd = v[:, 0:n_rot:2].copy(), v[:, 1:n_rot:2].copy()
    v[:, 0:n_rot:2] = even * cos - odd * sin
    v[:, 1:n_rot:2] = even * sin + odd * cos


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Backend(fb.Backend):
    def __init__(self, model, settings):
        if settings.weight_precision != "f32":
            raise fb.Unsupported(f"numpy_ref keeps weights in f32 only, not {settings.weight_precision}")
        if settings.accumulate_precision != "f32":
            raise fb.Unsupported(f"numpy_ref accumulates in f32 only, not {settings.accumulate_precision}")
        self.m, self.max_context, self.host_bytes = model, settings.max_context, 0

        def weight(tensor):
            a = tensor.array() if tensor.type in (fb.F32, fb.F16, fb.BF16) else tensor.dequantize()
            if a.dtype != np.float32 or not a.flags.c_contiguous:
                a = np.ascontiguousarray(a, dtype=np.float32)
                self.host_bytes += a.nbytes  # a converted copy; an F32 view of the file costs nothing
            return a

        m = model
        self.token_embd = weight(m.tensor("token_embd.weight"))            # (n_vocab, n_embd)
        self.output_norm = weight(m.tensor("output_norm.weight"))          # (n_embd,)
        self.output = self.token_embd if m.tied_output else weight(m.tensor("output.weight"))
        names = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down")
        self.layers = [{n: weight(m.layer(i, n)) for n in names} for i in range(m.n_layer)]
        # RoPE: theta_i = pos * base^(-2i / n_rot), divided by Llama-3 factors when present
        inv = float(m.rope_freq_base) ** (-2.0 * np.arange(m.n_rot // 2) / m.n_rot)
        if "rope_freqs.weight" in m.tensors:
            inv = inv / m.tensor("rope_freqs.weight").array().astype(np.float64)
        self.inv_freq = inv.astype(np.float32).astype(np.float64)
        kv_dim = m.n_head_kv * m.head_dim
        self.key_cache = np.zeros((m.n_layer, self.max_context, kv_dim), dtype=np.float32)
        self.value_cache = np.zeros_like(self.key_cache)
        self.host_bytes += 2 * self.key_cache.nbytes
        self.pos = 0

    def decode(self, token, logits):
        m, pos = self.m, self.pos
        hd, n_head, n_kv = m.head_dim, m.n_head, m.n_head_kv
        angle = pos * self.inv_freq
        cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
        x = self.token_embd[token].astype(np.float32)                        # (n_embd,)
        for i, w in enumerate(self.layers):
            # attention: q, k, v of this position; k and v into the cache
            xb = rmsnorm(x, w["attn_norm"], m.rms_eps)
            q, k, v = w["attn_q"] @ xb, w["attn_k"] @ xb, w["attn_v"] @ xb
            rope(q, n_head, hd, m.n_rot, cos, sin)
            rope(k, n_kv, hd, m.n_rot, cos, sin)
            self.key_cache[i, pos], self.value_cache[i, pos] = k, v
            # grouped-query attention over positions 0..pos
            keys = self.key_cache[i, :pos + 1].reshape(pos + 1, n_kv, hd)
            values = self.value_cache[i, :pos + 1].reshape(pos + 1, n_kv, hd)
            group = np.arange(n_head) // (n_head // n_kv)                   # query head -> KV head
            qh = q.reshape(n_head, hd)
            scores = np.einsum("hd,thd->ht", qh, keys[:, group]) * np.float32(1.0 / np.sqrt(hd))
            out = np.einsum("ht,thd->hd", softmax(scores), values[:, group]).reshape(-1)
            x = x + w["attn_output"] @ out                                   # residual
            # feed-forward: down(silu(gate(x)) * up(x))
            xb = rmsnorm(x, w["ffn_norm"], m.rms_eps)
            gate = w["ffn_gate"] @ xb
            x = x + w["ffn_down"] @ (gate / (1.0 + np.exp(-gate)) * (w["ffn_up"] @ xb))
        scores = self.output @ rmsnorm(x, self.output_norm, m.rms_eps)        # (n_vocab,)
        self.pos += 1
        if logits is not None:
            fb.write_logits(logits, scores)
        return fb.argmax(scores)

    def reset(self):
        self.pos = 0

    def memory(self):
        return fb.Memory(host_bytes=self.host_bytes)

    def effective_settings(self):
        return fb.Effective("f32", "f32", threads=fb.cpu_count(),
                            device=fb.cpu_device(f"numpy {np.__version__}"),
                            notes="numpy's BLAS chooses its own threads; weights from the host's mapped file")
