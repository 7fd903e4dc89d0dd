"""tinygrad - a LLaMA decode written with TinyGrad, as a TinyGrad user writes
it: Tensors, scaled_dot_product_attention with grouped-query attention, a KV
cache Tensor updated with assign(), a symbolic position so kernels are built
once, and TinyJit around the decode step when the profile allows it.

Weights come from the host's mapped GGUF (the same bytes as every backend),
converted in numpy to the asked precision and copied into TinyGrad's buffers:
that copy is the load time. Tested with tinygrad 0.13.0 (the 0.14.0 wheel
lacks tinygrad.llm.kernels, so its own LLaMA cannot be imported; this module
does not use it, but scripts/setup-frameworks.sh pins 0.13.0, what works).

Precision, truthfully: weights are stored at the profile's precision (f32,
f16 or bf16); activations, the KV cache, norms and every sum are f32 (a
matmul of f32 activations with f16 weights is computed in f32: the origin's
"mixed"). TinyGrad generates and compiles every kernel at run time, with or
without TinyJit: it cannot run with allow_jit = false, and refuses it
(FB_ERR_UNSUPPORTED) rather than report a JIT-free run that is not. TinyJit
(which captures a decode step's kernels and replays them) is on by default;
the option `tinyjit = false` runs without it (still compiled kernels), to
measure what TinyJit itself gives. Its graph replay (the captured kernels
batched into one graph) only when allow_graphs.
"""
DESCRIPTION = "TinyGrad (tinygrad 0.13): LLaMA decode in Tensors, TinyJit when allowed"
CAPABILITIES = "cpu gpu f32 f16 bf16 jit graphs threads"
OPTIONS = "device tinyjit"

import numpy as np

import fairbench as fb

import tinygrad  # noqa: E402  (a missing tinygrad is reported by the bridge)
from tinygrad import Device, Tensor, TinyJit, UOp, dtypes
from tinygrad.helpers import CACHELEVEL, CPU_COUNT, Context

_DTYPES = {"f32": dtypes.float32, "f16": dtypes.float16, "bf16": dtypes.bfloat16}


def _version():
    return getattr(tinygrad, "__version__", None) or _dist_version()


def _dist_version():
    try:
        from importlib.metadata import version
        return version("tinygrad")
    except Exception:
        return "unknown"


def _device(choice):
    if choice in ("", "auto"):
        return "CUDA" if _has_cuda() else "CPU"
    if choice.upper() not in ("CPU", "CUDA"):
        raise ValueError(f"tinygrad: option device must be auto, cpu or cuda, not '{choice}'")
    return choice.upper()


def _has_cuda():
    try:
        Device["CUDA"]
        return True
    except Exception:
        return False


def probe():
    return fb.Probe(True, _device_string(_device("auto")))


def _device_string(device):
    if device == "CPU":
        return fb.cpu_device(f"tinygrad {_version()}")
    return f"CUDA GPU, tinygrad {_version()}"


def rmsnorm(x, weight, eps):
    return x * (x.square().mean(axis=-1, keepdim=True) + eps).rsqrt() * weight


def rope(x, cos, sin):
    # GGUF llama layout: rotate adjacent pairs (2i, 2i+1) of each head, i < n_rot / 2
    n_rot = cos.shape[-1] * 2
    head = x[..., :n_rot].reshape(*x.shape[:-1], n_rot // 2, 2)
    even, odd = head[..., 0], head[..., 1]
    rotated = (even * cos - odd * sin).unsqueeze(-1).cat((even * sin + odd * cos).unsqueeze(-1), dim=-1)
    rotated = rotated.reshape(*x.shape[:-1], n_rot)
    return rotated if n_rot == x.shape[-1] else rotated.cat(x[..., n_rot:], dim=-1)


class Block:
    def __init__(self, w, m, max_context, device):
        self.w, self.m = w, m
        self.cache_kv = Tensor.zeros(2, m.n_head_kv, max_context, m.head_dim, dtype=dtypes.float32,
                                     device=device).contiguous().realize()

    def __call__(self, x, start_pos, cos, sin):
        m, w = self.m, self.w
        # attention: q, k, v of this position; k and v into the cache
        h = rmsnorm(x, w["attn_norm"], m.rms_eps)
        q = (h @ w["attn_q"].T).reshape(m.n_head, 1, m.head_dim)
        k = (h @ w["attn_k"].T).reshape(m.n_head_kv, 1, m.head_dim)
        v = (h @ w["attn_v"].T).reshape(m.n_head_kv, 1, m.head_dim)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        self.cache_kv[:, :, start_pos:start_pos + 1, :].assign(Tensor.stack(k, v)).realize()
        keys = self.cache_kv[0, :, 0:start_pos + 1, :]
        values = self.cache_kv[1, :, 0:start_pos + 1, :]
        attn = q.scaled_dot_product_attention(keys, values, enable_gqa=True)     # (n_head, 1, head_dim)
        x = x + attn.reshape(1, m.n_head * m.head_dim) @ w["attn_output"].T
        # feed-forward: down(silu(gate(x)) * up(x))
        h = rmsnorm(x, w["ffn_norm"], m.rms_eps)
        return x + ((h @ w["ffn_gate"].T).silu() * (h @ w["ffn_up"].T)) @ w["ffn_down"].T


class Backend(fb.Backend):
    def __init__(self, model, settings):
        s = settings
        if s.weight_precision not in _DTYPES:
            raise fb.Unsupported(f"tinygrad keeps weights as f32, f16 or bf16, not {s.weight_precision} "
                                 "(the file's block formats are not run natively)")
        if s.accumulate_precision != "f32":
            raise fb.Unsupported(f"tinygrad here accumulates in f32 only, not {s.accumulate_precision}")
        if not s.allow_jit:
            raise fb.Unsupported("tinygrad generates and compiles every kernel at run time: it cannot run with "
                                 "allow_jit = false")
        tinyjit = s.options.get("tinyjit", "true").lower()
        if tinyjit not in ("true", "false"):
            raise ValueError(f"tinygrad: option tinyjit must be true or false, not '{tinyjit}'")
        self.tinyjit = tinyjit == "true"
        self.device = _device(s.options.get("device", "auto"))
        self.settings, self.m = s, model
        # jit_cache = cold: TinyGrad's on-disk cache of compiled kernels is neither read nor written
        CACHELEVEL.value = 0 if s.jit_cache == "cold" else 2
        self.threads = (s.threads or fb.cpu_count()) if self.device == "CPU" else 0
        if self.device == "CPU":
            CPU_COUNT.value = self.threads   # kernels are split over this many threads
        wdtype = _DTYPES[s.weight_precision]
        self.weight_bytes = 0

        def load(tensor, dtype):
            a = tensor.array() if tensor.type in (fb.F32, fb.F16) else tensor.dequantize()
            a = np.array(a, dtype=np.float32 if dtype != dtypes.float16 else np.float16, order="C")  # tinygrad copies from a writable array
            t = Tensor(a, device=self.device)
            if dtype == dtypes.bfloat16:
                t = t.cast(dtypes.bfloat16)
            t = t.contiguous().realize()
            self.weight_bytes += t.nbytes()
            return t

        m = model
        # the embedding table is read one row per token: kept f32 like cpu_ref's
        self.token_embd = load(m.tensor("token_embd.weight"), dtypes.float32)
        self.output_norm = load(m.tensor("output_norm.weight"), dtypes.float32)
        self.output = load(m.tensor("output.weight"), wdtype)
        norms = ("attn_norm", "ffn_norm")
        mats = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
        self.blocks = []
        for i in range(m.n_layer):
            w = {n: load(m.layer(i, n), dtypes.float32) for n in norms}
            w.update({n: load(m.layer(i, n), wdtype) for n in mats})
            self.blocks.append(Block(w, m, s.max_context, self.device))
        # RoPE angles for every position, f32 (theta_i = pos * base^(-2i/n_rot) / factor_i)
        inv = float(m.rope_freq_base) ** (-2.0 * np.arange(m.n_rot // 2) / m.n_rot)
        if "rope_freqs.weight" in m.tensors:
            inv = inv / m.tensor("rope_freqs.weight").array().astype(np.float64)
        angles = np.arange(s.max_context)[:, None] * inv.astype(np.float32).astype(np.float64)[None, :]
        self.cos = Tensor(np.cos(angles).astype(np.float32), device=self.device).realize()
        self.sin = Tensor(np.sin(angles).astype(np.float32), device=self.device).realize()
        self.kv_bytes = sum(b.cache_kv.nbytes() for b in self.blocks)
        self.v_pos = UOp.variable("start_pos", 0, s.max_context - 1)
        self.step = TinyJit(self._step) if self.tinyjit else self._step
        self.pos = 0

    def _step(self, token, start_pos):
        x = self.token_embd[token].reshape(1, self.m.n_embd)
        cos, sin = self.cos[start_pos].reshape(1, 1, -1), self.sin[start_pos].reshape(1, 1, -1)
        for block in self.blocks:
            x = block(x, start_pos, cos, sin)
        logits = (rmsnorm(x, self.output_norm, self.m.rms_eps) @ self.output.T).reshape(-1)
        return logits.realize(), logits.argmax().realize()

    def decode(self, token, logits):
        token_t = Tensor([token], dtype=dtypes.int32, device=self.device)
        # JIT=1: TinyJit replays its kernels as one graph; JIT=2: one by one
        with Context(JIT=1 if self.settings.allow_graphs else 2):
            out, best = self.step(token_t, self.v_pos.bind(self.pos))
        self.pos += 1
        if logits is not None:
            fb.write_logits(logits, out.numpy())
        return int(best.item())

    def reset(self):
        self.pos = 0   # positions past pos are never read: the causal window is 0..pos

    def memory(self):
        on_device = self.weight_bytes + self.kv_bytes
        if self.device == "CPU":
            return fb.Memory(host_bytes=on_device)
        return fb.Memory(device_bytes=on_device, device_peak_bytes=on_device)

    def effective_settings(self):
        s = self.settings
        return fb.Effective(
            s.weight_precision, "f32", jit=True, graphs=bool(self.tinyjit and s.allow_graphs), threads=self.threads,
            kernel_cache_hit=-1, device=_device_string(self.device),
            notes=("TinyJit on" if self.tinyjit else "TinyJit off (kernels still compiled at run time)") +
                  (", kernel cache off" if s.jit_cache == "cold" else ", kernel cache on") +
                  "; weights from the host's mapped GGUF; f32 activations and KV cache",
            options={"device": self.device.lower(), "tinyjit": str(self.tinyjit).lower()})
