"""torch - a LLaMA decode in PyTorch, written the way a PyTorch user writes
one: an nn.Module per block, F.scaled_dot_product_attention with grouped-query
attention, a static KV cache (fixed shapes, the position as a tensor, so
torch.compile and CUDA graphs capture one step and replay it).

Settings, mapped truthfully:
  weight precision   f32 / f16 / bf16: the whole module in that dtype
                     (model.to(dtype)), as PyTorch users run half precision;
                     `native` (the file's block formats) is refused.
  accumulation f32   TF32 off (matmul and cuDNN), reduced-precision fp16 and
                     bf16 reductions off, float32 matmul precision "highest";
                     the effective settings read these flags back. PyTorch has
                     no switch for f16 accumulation: refused.
  allow_jit          torch.compile (inductor) of the decode step; a compile
                     failure is an error with PyTorch's message, never a
                     fallback to eager (dynamo's suppress_errors is off).
  allow_graphs       with allow_jit: compile's mode "reduce-overhead" (CUDA
                     graphs); without: the eager step captured with
                     torch.cuda.CUDAGraph. CUDA only: on the CPU there are no
                     graphs, and the effective settings say graphs = 0.
  threads            torch.set_num_threads (0: all cores).
  device             CUDA when present, else the CPU (option device =
                     auto | cpu | cuda).
"""
DESCRIPTION = "PyTorch: LLaMA decode as an nn.Module (SDPA, static KV cache), torch.compile / CUDA graphs when allowed"
CAPABILITIES = "cpu gpu f32 f16 bf16 jit graphs threads"
OPTIONS = "device"

import numpy as np

import fairbench as fb

import torch
import torch.nn as nn
import torch.nn.functional as F

_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def _cuda():
    return torch.cuda.is_available()


def _device_name(device):
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} (sm_{p.major}{p.minor}), torch {torch.__version__}"
    return fb.cpu_device(f"torch {torch.__version__}")


def probe():
    device = torch.device("cuda" if _cuda() else "cpu")
    return fb.Probe(True, _device_name(device))


def rope(x, cos, sin):
    # GGUF llama layout: rotate adjacent pairs (2i, 2i+1) of each head, i < n_rot / 2
    n_rot = cos.shape[-1] * 2
    pairs = x[..., :n_rot].unflatten(-1, (n_rot // 2, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
    return rotated if n_rot == x.shape[-1] else torch.cat((rotated, x[..., n_rot:]), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim), requires_grad=False)

    def forward(self, x):
        xf = x.float()  # the norm's sum in f32, as LLaMA's reference code does
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class Block(nn.Module):
    def __init__(self, m, max_context):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = m.n_head, m.n_head_kv, m.head_dim
        q_dim, kv_dim = m.n_head * m.head_dim, m.n_head_kv * m.head_dim
        self.attn_norm, self.ffn_norm = RMSNorm(m.n_embd, m.rms_eps), RMSNorm(m.n_embd, m.rms_eps)
        self.attn_q = nn.Linear(m.n_embd, q_dim, bias=False)
        self.attn_k = nn.Linear(m.n_embd, kv_dim, bias=False)
        self.attn_v = nn.Linear(m.n_embd, kv_dim, bias=False)
        self.attn_output = nn.Linear(q_dim, m.n_embd, bias=False)
        self.ffn_gate = nn.Linear(m.n_embd, m.n_ff, bias=False)
        self.ffn_up = nn.Linear(m.n_embd, m.n_ff, bias=False)
        self.ffn_down = nn.Linear(m.n_ff, m.n_embd, bias=False)
        # the static KV cache: (batch 1, KV heads, positions, head_dim)
        self.register_buffer("cache_k", torch.zeros(1, m.n_head_kv, max_context, m.head_dim), persistent=False)
        self.register_buffer("cache_v", torch.zeros(1, m.n_head_kv, max_context, m.head_dim), persistent=False)

    def forward(self, x, pos, cos, sin, mask):
        # attention: q, k, v of this position; k and v into the cache at pos
        h = self.attn_norm(x)                                                   # (1, 1, n_embd)
        q = self.attn_q(h).view(1, 1, self.n_head, self.head_dim).transpose(1, 2)
        k = self.attn_k(h).view(1, 1, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.attn_v(h).view(1, 1, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        self.cache_k.index_copy_(2, pos, k)
        self.cache_v.index_copy_(2, pos, v)
        attn = F.scaled_dot_product_attention(q, self.cache_k, self.cache_v, attn_mask=mask, enable_gqa=True)
        x = x + self.attn_output(attn.transpose(1, 2).reshape(1, 1, -1))
        # feed-forward: down(silu(gate(x)) * up(x))
        h = self.ffn_norm(x)
        return x + self.ffn_down(F.silu(self.ffn_gate(h)) * self.ffn_up(h))


class Llama(nn.Module):
    def __init__(self, m, max_context):
        super().__init__()
        self.token_embd = nn.Embedding(m.n_vocab, m.n_embd)
        self.blocks = nn.ModuleList(Block(m, max_context) for _ in range(m.n_layer))
        self.output_norm = RMSNorm(m.n_embd, m.rms_eps)
        self.output = nn.Linear(m.n_embd, m.n_vocab, bias=False)

    def init_buffers(self, m, max_context, device):
        """The RoPE angles (f32) for every position (theta_i = pos * base^(-2i/n_rot) / factor_i), the
        positions, and empty KV caches in the module's dtype."""
        inv = float(m.rope_freq_base) ** (-2.0 * np.arange(m.n_rot // 2) / m.n_rot)
        if "rope_freqs.weight" in m.tensors:
            inv = inv / m.tensor("rope_freqs.weight").array().astype(np.float64)
        angles = np.arange(max_context)[:, None] * inv.astype(np.float32).astype(np.float64)[None, :]
        self.register_buffer("cos", torch.from_numpy(np.cos(angles).astype(np.float32)).to(device), persistent=False)
        self.register_buffer("sin", torch.from_numpy(np.sin(angles).astype(np.float32)).to(device), persistent=False)
        self.register_buffer("positions", torch.arange(max_context, device=device), persistent=False)
        for block in self.blocks:
            block.cache_k.zero_()
            block.cache_v.zero_()

    def forward(self, token, pos):
        """token, pos: (1,) int64 tensors -> (logits (n_vocab,) f32, argmax (1,))"""
        x = self.token_embd(token).view(1, 1, -1)
        cos, sin = self.cos[pos].to(x.dtype), self.sin[pos].to(x.dtype)
        mask = (self.positions <= pos).view(1, 1, 1, -1)                      # causal: positions 0..pos
        for block in self.blocks:
            x = block(x, pos, cos, sin, mask)
        logits = self.output(self.output_norm(x)).view(-1).float()
        return logits, torch.argmax(logits).view(1)


def _load_weights(llama, model):
    """The host's mapped tensors (F32/F16 read in place, other formats through
    the host's decoder) copied into the module's parameters (converted to
    their dtype and device by copy_)."""
    def put(param, tensor):
        a = tensor.array() if tensor.type in (fb.F32, fb.F16) else tensor.dequantize()
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.array(a, dtype=np.float32)).reshape(param.shape))
    m = model
    put(llama.token_embd.weight, m.tensor("token_embd.weight"))
    put(llama.output_norm.weight, m.tensor("output_norm.weight"))
    put(llama.output.weight, m.tensor("output.weight"))
    for i, block in enumerate(llama.blocks):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            put(getattr(block, name).weight, m.layer(i, name))
        put(block.attn_norm.weight, m.layer(i, "attn_norm"))
        put(block.ffn_norm.weight, m.layer(i, "ffn_norm"))
    llama.requires_grad_(False)


def _f32_accumulation():
    """Sums in f32 everywhere PyTorch lets a user say so."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.set_float32_matmul_precision("highest")


def _accumulation_is_f32():
    b = torch.backends
    return not (b.cuda.matmul.allow_tf32 or b.cudnn.allow_tf32 or b.cuda.matmul.allow_fp16_reduced_precision_reduction
                or b.cuda.matmul.allow_bf16_reduced_precision_reduction) and \
        torch.get_float32_matmul_precision() == "highest"


class Backend(fb.Backend):
    def __init__(self, model, settings):
        s = settings
        if s.weight_precision not in _DTYPES:
            raise fb.Unsupported(f"torch keeps weights as f32, f16 or bf16, not {s.weight_precision} "
                                 "(PyTorch has no kernels for the file's block formats)")
        if s.accumulate_precision != "f32":
            raise fb.Unsupported(f"PyTorch has no switch for {s.accumulate_precision} accumulation; only f32")
        choice = s.options.get("device", "auto")
        if choice not in ("auto", "cpu", "cuda"):
            raise ValueError(f"torch: option device must be auto, cpu or cuda, not '{choice}'")
        if choice == "cuda" and not _cuda():
            raise fb.Unavailable(f"torch {torch.__version__} sees no CUDA device")
        use_cuda = choice == "cuda" or (choice == "auto" and _cuda())
        if use_cuda and s.device_index >= torch.cuda.device_count():
            raise fb.Unavailable(f"torch sees {torch.cuda.device_count()} CUDA devices; there is no device {s.device_index}")
        self.device = torch.device("cuda", s.device_index) if use_cuda else torch.device("cpu")
        self.settings = s
        _f32_accumulation()
        if self.device.type == "cpu":
            torch.set_num_threads(s.threads or fb.cpu_count())
        torch._dynamo.config.suppress_errors = False  # a compile failure is an error, never eager in disguise
        # jit_cache = cold: inductor neither reads nor writes its on-disk caches
        torch.compiler.config.force_disable_caches = s.jit_cache == "cold"
        with torch.device("meta"):  # shapes only: no memory, no random initialisation
            llama = Llama(model, s.max_context).to(_DTYPES[s.weight_precision])
        llama = llama.to_empty(device=self.device)
        _load_weights(llama, model)
        llama.init_buffers(model, s.max_context, self.device)
        self.llama = llama.eval()
        self.token = torch.zeros(1, dtype=torch.long, device=self.device)
        self.pos_t = torch.zeros(1, dtype=torch.long, device=self.device)
        self.graphs = bool(s.allow_graphs and self.device.type == "cuda")
        self.step = self.llama.forward
        self.compile_mode = None
        if s.allow_jit:
            self.compile_mode = "reduce-overhead" if self.graphs else "default"
            self.step = torch.compile(self.llama.forward, mode=self.compile_mode, fullgraph=True)
        self.cuda_graph = None    # eager step captured on first use when graphs without jit
        self.pos = 0

    def _capture(self):
        """The eager step captured once as a CUDA graph over static inputs."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):   # warm up: cuBLAS handles and workspaces before capture
                self.llama(self.token, self.pos_t)
        torch.cuda.current_stream().wait_stream(stream)
        self.cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.cuda_graph):
            self.graph_out = self.llama(self.token, self.pos_t)

    def decode(self, token, logits):
        self.token.fill_(token)
        self.pos_t.fill_(self.pos)
        with torch.inference_mode():
            if self.graphs and not self.settings.allow_jit:
                if self.cuda_graph is None:
                    self._capture()
                self.cuda_graph.replay()
                out, best = self.graph_out
            elif self.compile_mode:
                try:
                    out, best = self.step(self.token, self.pos_t)
                except Exception as e:
                    raise RuntimeError(f"torch.compile (mode {self.compile_mode}) failed: {fb._last_line(e)}") from None
            else:
                out, best = self.step(self.token, self.pos_t)
        self.pos += 1
        if logits is not None:
            fb.write_logits(logits, out.cpu().numpy())
        return int(best.item())

    def reset(self):
        self.pos = 0  # positions past pos are masked out: the cache needs no clearing

    def memory(self):
        if self.device.type == "cuda":
            return fb.Memory(device_bytes=torch.cuda.memory_allocated(self.device),
                             device_peak_bytes=torch.cuda.max_memory_allocated(self.device))
        held = sum(t.numel() * t.element_size() for t in list(self.llama.parameters()) + list(self.llama.buffers()))
        return fb.Memory(host_bytes=held)

    def effective_settings(self):
        s = self.settings
        notes = f"torch.compile mode {self.compile_mode}" if self.compile_mode else "eager"
        if self.compile_mode and s.jit_cache == "cold":
            notes += " (inductor caches off)"
        if self.graphs and not self.compile_mode:
            notes += ", step captured as a CUDA graph"
        notes += f"; activations and KV cache in {s.weight_precision}, norms and matmul sums in f32"
        if not _accumulation_is_f32():
            notes += "; WARNING: TF32 or reduced-precision reductions are on"
        return fb.Effective(
            s.weight_precision, "f32" if _accumulation_is_f32() else "f16", jit=bool(self.compile_mode),
            graphs=self.graphs, threads=torch.get_num_threads() if self.device.type == "cpu" else 0,
            kernel_cache_hit=-1, device=_device_name(self.device), notes=notes,
            options={"device": self.device.type})
