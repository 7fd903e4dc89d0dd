#!/usr/bin/env python3
"""An independent LLaMA reference decode for fairbench, in numpy, computed in float64.

It reads a GGUF "llama" model with the PyPI `gguf` package, dequantizes every weight with
`gguf.quants.dequantize` (the same bits fairbench's C decoders must reproduce), and runs the
model the way llama.cpp does for GGUF llama files:

    x = token_embd[token]
    for each layer:
        h = rmsnorm(x) * attn_norm
        q, k, v = Wq h, Wk h, Wv h                 (q: n_head heads, k/v: n_head_kv heads)
        q, k = rope(q, pos), rope(k, pos)          ("normal" mode: adjacent pairs, see rope_*)
        attn = softmax(q.k / sqrt(head_dim), causal) @ v   (query head h reads KV head h // group)
        x += Wo attn
        h = rmsnorm(x) * ffn_norm
        x += Wdown (silu(Wgate h) * (Wup h))
    logits = Woutput (rmsnorm(x) * output_norm)    (Woutput = token_embd when output is absent)

    rmsnorm(x) = x / sqrt(mean(x^2) + eps)

Two formulations of the same model live here on purpose, so that a mistake in one shows up as
a disagreement with the other (see `self_check_formulations`):

    Decoder.step()      one token at a time with a KV cache, RoPE as explicit cos/sin on pairs,
                        attention as a loop over heads and cached positions;
    prefill_logits()    the whole sequence at once, RoPE as a complex multiplication,
                        attention as one batched matrix product with a causal mask.

Usage as a script:  python3 llama_ref.py MODEL.gguf ID ID ID ... [--greedy N]
prints the hyper-parameters, the logits' top-5 at each position and the greedy continuation.
"""

import argparse
import sys

import numpy as np
import gguf

# ----------------------------------------------------------------------------
# Model loading

ARCH = "llama"


def _field(reader, key, default=None):
    """The scalar (or string) value of a metadata key, or `default` when the key is absent."""
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


class Config:
    """Hyper-parameters read from the GGUF metadata."""

    def __init__(self, reader):
        arch = _field(reader, "general.architecture")
        if arch != ARCH:
            raise ValueError(f"general.architecture is {arch!r}, this reference only runs {ARCH!r}")
        k = lambda name, default=None: _field(reader, f"{ARCH}.{name}", default)
        self.n_embd = int(k("embedding_length"))
        self.n_layer = int(k("block_count"))
        self.n_head = int(k("attention.head_count"))
        self.n_head_kv = int(k("attention.head_count_kv", self.n_head))
        self.n_ff = int(k("feed_forward_length"))
        self.head_dim = int(k("attention.key_length", self.n_embd // self.n_head))
        self.rope_base = float(k("rope.freq_base", 10000.0))
        self.n_rot = int(k("rope.dimension_count", self.head_dim))
        self.eps = float(k("attention.layer_norm_rms_epsilon"))
        if self.n_head % self.n_head_kv != 0:
            raise ValueError(f"head_count {self.n_head} is not a multiple of head_count_kv {self.n_head_kv}")
        if self.n_rot % 2 != 0 or self.n_rot > self.head_dim:
            raise ValueError(f"rope.dimension_count {self.n_rot} is odd or exceeds head_dim {self.head_dim}")

    def __str__(self):
        return (f"n_embd {self.n_embd}, n_layer {self.n_layer}, n_head {self.n_head}, "
                f"n_head_kv {self.n_head_kv}, head_dim {self.head_dim}, n_ff {self.n_ff}, "
                f"rope base {self.rope_base:g} over {self.n_rot} dims, eps {self.eps:g}")


def load_tensor(tensor):
    """Dequantize one GGUF tensor to float64, in numpy order (GGUF dims reversed).

    A GGUF weight listed as [n_in, n_out] (innermost first) becomes an (n_out, n_in) matrix W,
    applied as y = W @ x.
    """
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    numpy_shape = tuple(int(d) for d in reversed(tensor.shape))
    if values.shape != numpy_shape:  # gguf-py already reverses; say so loudly if that changes
        raise ValueError(f"{tensor.name}: dequantized shape {values.shape}, expected {numpy_shape}")
    return values.astype(np.float64)


class Model:
    """Config, weights (float64) and vocabulary of one GGUF llama file."""

    def __init__(self, path):
        reader = gguf.GGUFReader(path)
        self.path = path
        self.config = c = Config(reader)
        by_name = {t.name: t for t in reader.tensors}

        def weight(name, shape):
            if name not in by_name:
                raise KeyError(f"{path}: tensor {name} missing")
            w = load_tensor(by_name[name])
            if w.shape != shape:
                raise ValueError(f"{path}: {name} has shape {w.shape}, expected {shape}")
            return w

        self.token_embd = by_name["token_embd.weight"]  # keep the GGUF tensor to learn n_vocab
        self.n_vocab = int(self.token_embd.shape[1])
        self.token_embd = weight("token_embd.weight", (self.n_vocab, c.n_embd))
        q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        self.layers = []
        for i in range(c.n_layer):
            p = f"blk.{i}."
            self.layers.append(dict(
                attn_norm=weight(p + "attn_norm.weight", (c.n_embd,)),
                wq=weight(p + "attn_q.weight", (q_dim, c.n_embd)),
                wk=weight(p + "attn_k.weight", (kv_dim, c.n_embd)),
                wv=weight(p + "attn_v.weight", (kv_dim, c.n_embd)),
                wo=weight(p + "attn_output.weight", (c.n_embd, q_dim)),
                ffn_norm=weight(p + "ffn_norm.weight", (c.n_embd,)),
                w_gate=weight(p + "ffn_gate.weight", (c.n_ff, c.n_embd)),
                w_up=weight(p + "ffn_up.weight", (c.n_ff, c.n_embd)),
                w_down=weight(p + "ffn_down.weight", (c.n_embd, c.n_ff)),
            ))
        self.output_norm = weight("output_norm.weight", (c.n_embd,))
        self.tied = "output.weight" not in by_name
        self.output = self.token_embd if self.tied else weight("output.weight", (self.n_vocab, c.n_embd))
        # Llama-3 RoPE scaling: one divisor per rotated pair.
        self.rope_freqs = (weight("rope_freqs.weight", (c.n_rot // 2,))
                           if "rope_freqs.weight" in by_name else None)
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        self.vocab = tokens.contents() if tokens is not None else None

    def rope_angles(self, pos):
        """theta_i = pos * base^(-2i/n_rot) [/ rope_freqs[i]] for the n_rot/2 rotated pairs."""
        c = self.config
        i = np.arange(c.n_rot // 2, dtype=np.float64)
        theta = pos * c.rope_base ** (-2.0 * i / c.n_rot)
        if self.rope_freqs is not None:
            theta = theta / self.rope_freqs
        return theta


# ----------------------------------------------------------------------------
# Blocks shared by both formulations

def rmsnorm(x, weight, eps):
    """x (..., n) -> x / sqrt(mean(x^2) + eps) * weight, over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def silu(x):
    return x / (1.0 + np.exp(-x))


def ffn(layer, h):
    """SwiGLU feed-forward: Wdown (silu(Wgate h) * (Wup h)); h (..., n_embd)."""
    return (silu(h @ layer["w_gate"].T) * (h @ layer["w_up"].T)) @ layer["w_down"].T


# ----------------------------------------------------------------------------
# Formulation 1: token-by-token decode with a KV cache (the shape of cpu_ref)

def rope_pairs(vec, theta, n_rot):
    """Rotate one head vector in llama.cpp's "normal" layout, explicitly pair by pair.

    Pair i is (vec[2i], vec[2i+1]) for i < n_rot/2, rotated by theta[i]; the rest is unchanged.
    """
    out = vec.copy()
    for i in range(n_rot // 2):
        x0, x1 = vec[2 * i], vec[2 * i + 1]
        c, s = np.cos(theta[i]), np.sin(theta[i])
        out[2 * i] = x0 * c - x1 * s
        out[2 * i + 1] = x0 * s + x1 * c
    return out


def rope_pairs_neox(vec, theta, n_rot):
    """The *other* layout (HF rotate_half, llama.cpp NEOX): pair i is (vec[i], vec[i + n_rot/2]).

    Not used for GGUF llama files; kept only so the SmolLM2 self-check can show that it is wrong.
    """
    out = vec.copy()
    half = n_rot // 2
    for i in range(half):
        x0, x1 = vec[i], vec[i + half]
        c, s = np.cos(theta[i]), np.sin(theta[i])
        out[i] = x0 * c - x1 * s
        out[i + half] = x0 * s + x1 * c
    return out


class Decoder:
    """Runs one token at a time; keeps the rotated keys and the values of every past position."""

    def __init__(self, model, rope=rope_pairs):
        self.model = model
        self.rope = rope
        c = model.config
        self.k_cache = [[] for _ in range(c.n_layer)]  # per layer: list of (n_head_kv, head_dim)
        self.v_cache = [[] for _ in range(c.n_layer)]
        self.pos = 0

    def step(self, token):
        """Feed `token` at the next position; return its logits (n_vocab,) in float64."""
        m, c = self.model, self.model.config
        pos = self.pos
        theta = m.rope_angles(pos)
        group = c.n_head // c.n_head_kv
        scale = 1.0 / np.sqrt(c.head_dim)

        x = m.token_embd[token].copy()
        for li, layer in enumerate(m.layers):
            # attention block
            h = rmsnorm(x, layer["attn_norm"], c.eps)
            q = (layer["wq"] @ h).reshape(c.n_head, c.head_dim)
            k = (layer["wk"] @ h).reshape(c.n_head_kv, c.head_dim)
            v = (layer["wv"] @ h).reshape(c.n_head_kv, c.head_dim)
            q = np.stack([self.rope(q[hd], theta, c.n_rot) for hd in range(c.n_head)])
            k = np.stack([self.rope(k[hd], theta, c.n_rot) for hd in range(c.n_head_kv)])
            self.k_cache[li].append(k)
            self.v_cache[li].append(v)

            attn = np.zeros((c.n_head, c.head_dim))
            for hd in range(c.n_head):
                kv = hd // group
                scores = np.array([q[hd] @ self.k_cache[li][t][kv] for t in range(pos + 1)]) * scale
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                for t in range(pos + 1):
                    attn[hd] += weights[t] * self.v_cache[li][t][kv]
            # residual connection back into x
            x = x + layer["wo"] @ attn.reshape(-1)

            # feed-forward block
            h = rmsnorm(x, layer["ffn_norm"], c.eps)
            x = x + ffn(layer, h)

        self.pos += 1
        return m.output @ rmsnorm(x, m.output_norm, c.eps)


def decode_logits(model, tokens, rope=rope_pairs):
    """Teacher-forced logits (len(tokens), n_vocab), one decode step per token."""
    dec = Decoder(model, rope)
    return np.stack([dec.step(t) for t in tokens])


def greedy(model, prompt, n_new, rope=rope_pairs):
    """Feed the prompt, then n_new greedy tokens (argmax; ties go to the lowest id).

    Returns (generated ids, logits (len(prompt) + n_new - 1, n_vocab) of every fed position,
    top-2 margin of each greedy choice).
    """
    dec = Decoder(model, rope)
    all_logits = [dec.step(t) for t in prompt]
    out, margins = [], []
    for i in range(n_new):
        logits = all_logits[-1]
        nxt = int(np.argmax(logits))
        top2 = np.sort(logits)[-2:]
        out.append(nxt)
        margins.append(float(top2[1] - top2[0]))
        if i + 1 < n_new:
            all_logits.append(dec.step(nxt))
    return out, np.stack(all_logits), margins


# ----------------------------------------------------------------------------
# Formulation 2: the whole sequence at once (vectorised, complex RoPE, masked attention)

def rope_complex(x, theta_by_pos, n_rot):
    """x (n_pos, n_heads, head_dim); pairs (2i, 2i+1) as complex numbers times e^{i theta}."""
    out = x.copy()
    z = x[..., 0:n_rot:2] + 1j * x[..., 1:n_rot:2]
    z = z * np.exp(1j * theta_by_pos)[:, None, :]
    out[..., 0:n_rot:2] = z.real
    out[..., 1:n_rot:2] = z.imag
    return out


def prefill_logits(model, tokens):
    """Logits (n_pos, n_vocab) for every position of `tokens`, computed in one causal pass."""
    m, c = model, model.config
    n = len(tokens)
    theta = np.stack([m.rope_angles(p) for p in range(n)])  # (n, n_rot/2)
    group = c.n_head // c.n_head_kv
    causal = np.triu(np.full((n, n), -np.inf), k=1)

    x = m.token_embd[np.asarray(tokens)]  # (n, n_embd)
    for layer in m.layers:
        h = rmsnorm(x, layer["attn_norm"], c.eps)
        q = (h @ layer["wq"].T).reshape(n, c.n_head, c.head_dim)
        k = (h @ layer["wk"].T).reshape(n, c.n_head_kv, c.head_dim)
        v = (h @ layer["wv"].T).reshape(n, c.n_head_kv, c.head_dim)
        q, k = rope_complex(q, theta, c.n_rot), rope_complex(k, theta, c.n_rot)
        k = np.repeat(k, group, axis=1)  # KV head j serves query heads j*group .. j*group+group-1
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(c.head_dim) + causal
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attn = np.einsum("hqk,khd->qhd", scores, v).reshape(n, -1)
        x = x + attn @ layer["wo"].T
        x = x + ffn(layer, rmsnorm(x, layer["ffn_norm"], c.eps))
    return rmsnorm(x, m.output_norm, c.eps) @ m.output.T


# ----------------------------------------------------------------------------
# Checks and helpers

def rel_err(a, b):
    """max over positions of max|a - b| / max|b| over that position's logits (b: reference)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return float(np.max(np.max(np.abs(a - b), axis=1) / np.max(np.abs(b), axis=1)))


def self_check_formulations(model, tokens, decoded_logits):
    """The decode-step logits must agree with the whole-sequence pass to float64 rounding."""
    err = rel_err(decoded_logits, prefill_logits(model, tokens))
    ok = err < 1e-10
    print(f"  self-check: decode-step vs whole-sequence formulation, rel err {err:.2e} "
          f"{'ok' if ok else 'FAILED'}")
    return ok


def self_check_logits(logits):
    finite = bool(np.all(np.isfinite(logits)))
    varied = bool(np.all(np.ptp(logits, axis=1) > 0))
    print(f"  self-check: logits finite {finite}, not all equal at any position {varied}, "
          f"range [{logits.min():.3f}, {logits.max():.3f}]")
    return finite and varied


def _byte_decoder():
    """GPT-2 byte-level BPE: printable unicode char -> byte (the inverse of bytes_to_unicode)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


BYTE_DECODER = _byte_decoder()
BYTE_ENCODER = {v: k for k, v in BYTE_DECODER.items()}


def detokenize(vocab, ids):
    """GPT-2 byte-level ids -> text ('Ġ' is a space, 'Ċ' a newline)."""
    raw = bytearray()
    for i in ids:
        # printable ASCII maps to itself, so special tokens such as <|im_end|> come out as written
        raw += bytes(BYTE_DECODER.get(ch, ord("?")) for ch in vocab[i])
    return raw.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("ids", nargs="+", type=int)
    ap.add_argument("--greedy", type=int, default=16)
    args = ap.parse_args()
    model = Model(args.model)
    print(f"{args.model}: {model.config}, vocab {model.n_vocab}, tied {model.tied}, "
          f"rope_freqs {model.rope_freqs is not None}")
    gen, logits, margins = greedy(model, args.ids, args.greedy)
    fed = list(args.ids) + gen[:-1]
    for p, row in enumerate(logits):
        top = np.argsort(-row)[:5]
        print(f"  pos {p:2d} fed {fed[p]:6d}: top5 " + " ".join(f"{t}:{row[t]:.4f}" for t in top))
    print(f"  greedy: {gen}")
    if model.vocab is not None:
        print(f"  text: {detokenize(model.vocab, list(args.ids) + gen)!r}")
    ok = self_check_logits(logits) and self_check_formulations(model, fed, logits)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
