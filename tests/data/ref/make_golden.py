#!/usr/bin/env python3
"""Write fairbench's golden reference logits (tests/data/ref/*.fbrl and manifest.tsv).

For each (model, prompt) this runs llama_ref.py's float64 decode, teacher-forced over the
prompt and then over its own greedy tokens, and stores the logits of the first 16 positions
(or their top-5) and the 32 greedy tokens that follow the prompt.

    python3 tests/data/ref/make_golden.py [--fairbench build-ref/fairbench]
                                          [--smollm2 PATH.gguf] [--out tests/data/ref]

The synthetic models are regenerated with `fairbench synth`; the manifest records the exact
command and the sha256 of the file it wrote, so the C test can rebuild the model and check it
is byte-identical before it compares logits. File format: see README.md in this folder.
"""

import argparse
import hashlib
import importlib.metadata
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402

N_POS = 16      # positions whose logits (or top-k) are stored
N_GREEDY = 32   # greedy tokens generated after the prompt
N_TOP = 5       # top-k stored for the prompts that do not keep full logits

SMOLLM2_PATH = "/root/.cache/fairbench/models/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# Synthetic models: (golden file, synth arguments, prompt seed, prompt length, description).
SYNTH = [
    ("synth_tiny_s11.fbrl",
     ["--preset", "tiny", "--seed", "11", "-o", "tiny_s11.gguf"],
     1011, 7,
     "F32, 64 wide, 2 layers, 4 heads / 2 KV heads, untied output, vocab 512"),
    ("synth_tied_q4k_l3rope_s12.fbrl",
     ["--preset", "tiny", "--seed", "12", "--type", "Q4_K", "--tied", "--llama3-rope",
      "--dim", "256", "--heads", "8", "--kv-heads", "2", "--ff", "512", "-o", "tied_q4k_s12.gguf"],
     1012, 16,
     "Q4_K (+F32 norms and rope_freqs), 256 wide, 2 layers, 8 heads / 2 KV heads (group 4), "
     "tied output, Llama-3 RoPE factors, vocab 512"),
]

# SmolLM2 prompts: (golden file, text, store full logits?).
SMOLLM2_PROMPTS = [
    ("smollm2_capital.fbrl", "The capital of France is", True),
    ("smollm2_chat.fbrl",
     "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", False),
]

# English text without digits for the RoPE-layout check (perplexity under both layouts).
ROPE_CHECK_TEXT = ("The Eiffel Tower is a wrought iron lattice tower on the Champ de Mars in Paris, "
                   "France. It is named after the engineer Gustave Eiffel, whose company designed "
                   "and built the tower.")


# ----------------------------------------------------------------------------
# Prompt ids from the GGUF vocabulary (a small GPT-2 byte-level BPE, enough for ASCII English)

class Tokenizer:
    """Byte-level BPE with the GGUF's own merges; special tokens are matched whole first."""

    WORDS = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")

    def __init__(self, path):
        reader = gguf.GGUFReader(path)
        self.vocab = reader.fields["tokenizer.ggml.tokens"].contents()
        types = reader.fields["tokenizer.ggml.token_type"].contents()
        merges = reader.fields["tokenizer.ggml.merges"].contents()
        self.ids = {piece: i for i, piece in enumerate(self.vocab)}
        self.rank = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.special = [p for p, t in zip(self.vocab, types) if t == gguf.TokenType.CONTROL]

    def _bpe(self, word):
        parts = [ref.BYTE_ENCODER[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            ranks = [self.rank.get((a, b), None) for a, b in zip(parts, parts[1:])]
            best = min((r, i) for i, r in enumerate(ranks) if r is not None) if any(
                r is not None for r in ranks) else None
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return parts

    def encode(self, text):
        pieces = []
        pattern = "(" + "|".join(re.escape(s) for s in self.special) + ")"
        for chunk in re.split(pattern, text):
            if chunk in self.special:
                pieces.append(chunk)
            elif chunk:
                for word in self.WORDS.findall(chunk):
                    pieces.extend(self._bpe(word))
        ids = [self.ids[p] for p in pieces]  # KeyError here means a piece is not in the vocab
        assert ref.detokenize(self.vocab, ids) == text, "prompt ids do not decode to the text"
        return ids, pieces


# ----------------------------------------------------------------------------
# Golden file writer

def write_fbrl(path, n_vocab, prompt, fed, logits, top_ids, top_values, greedy):
    """The FBRL v1 format (little-endian); see README.md."""
    n_pos = 0 if logits is None else len(fed)
    n_top = 0 if top_ids is None else top_ids.shape[1]
    with open(path, "wb") as f:
        f.write(b"FBRL")
        f.write(struct.pack("<6I", 1, n_vocab, len(prompt), n_pos, len(greedy), n_top))
        f.write(np.asarray(prompt, dtype="<i4").tobytes())
        if n_pos:
            f.write(np.asarray(fed, dtype="<i4").tobytes())
            assert logits.shape == (n_pos, n_vocab)
            f.write(np.asarray(logits, dtype="<f4").tobytes())
        if n_top:
            assert top_ids.shape == (N_POS, n_top)
            f.write(np.asarray(top_ids, dtype="<i4").tobytes())
            f.write(np.asarray(top_values, dtype="<f4").tobytes())
        f.write(np.asarray(greedy, dtype="<i4").tobytes())


def read_fbrl(path):
    """Read a golden file back (used to check what was written)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"FBRL"
    version, n_vocab, n_prompt, n_pos, n_greedy, n_top = struct.unpack_from("<6I", data, 4)
    off = 28

    def take(dtype, count):
        nonlocal off
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=off)
        off += arr.nbytes
        return arr

    out = dict(version=version, n_vocab=n_vocab, prompt=take("<i4", n_prompt))
    out["fed"] = take("<i4", n_pos)
    out["logits"] = take("<f4", n_pos * n_vocab).reshape(n_pos, n_vocab)
    n_pos_top = N_POS if n_top else 0
    out["top_ids"] = take("<i4", n_pos_top * n_top).reshape(n_pos_top, n_top)
    out["top_values"] = take("<f4", n_pos_top * n_top).reshape(n_pos_top, n_top)
    out["greedy"] = take("<i4", n_greedy)
    assert off == len(data), f"{path}: {len(data) - off} trailing bytes"
    return out


def top_k(logits, k):
    """Per row: the k largest values, largest first, ties to the lower id."""
    ids = np.stack([np.lexsort((np.arange(row.size), -row))[:k] for row in logits])
    return ids.astype(np.int32), np.take_along_axis(logits, ids, axis=1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------
# One (model, prompt)

def golden(model, prompt, full_logits, out_path):
    """Decode, self-check, write; return (greedy ids, smallest relative top-1/top-2 gap of any
    greedy choice or stored position, all checks passed)."""
    gen, logits, margins = ref.greedy(model, prompt, N_GREEDY)
    fed_all = list(prompt) + gen[:-1]
    fed = fed_all[:N_POS]
    assert len(fed_all) >= N_POS, "prompt + greedy shorter than the stored positions"
    stored = logits[:N_POS]

    print(f"  prompt {list(prompt)}")
    print(f"  fed    {fed}")
    print(f"  greedy {gen}")
    if model.vocab is not None:
        print(f"  text   {ref.detokenize(model.vocab, list(prompt) + gen)!r}")
    ok = ref.self_check_logits(stored)
    ok &= ref.self_check_formulations(model, fed_all, logits)
    rel_margin = [m / np.max(np.abs(row)) for m, row in zip(margins, logits[len(prompt) - 1:])]
    print(f"  greedy top-1 minus top-2: min {min(margins):.4g} "
          f"(min relative to the position's max|logit| {min(rel_margin):.2e})")
    top2 = np.sort(stored, axis=1)[:, -2:]
    stored_margin = float(np.min((top2[:, 1] - top2[:, 0]) / np.max(np.abs(stored), axis=1)))
    print(f"  stored positions' top-1 minus top-2, min relative to max|logit|: {stored_margin:.2e}")

    if full_logits:
        write_fbrl(out_path, model.n_vocab, prompt, fed, stored, None, None, gen)
    else:
        ids, values = top_k(stored, N_TOP)
        write_fbrl(out_path, model.n_vocab, prompt, fed, None, ids, values, gen)
    back = read_fbrl(out_path)
    assert list(back["greedy"]) == gen and list(back["prompt"]) == list(prompt)
    if full_logits:
        assert ref.rel_err(back["logits"], stored) < 1e-6
    print(f"  wrote {out_path} ({os.path.getsize(out_path)} bytes)")
    return gen, min(min(rel_margin), stored_margin), ok


def check_rope_layout(model, tokenizer):
    """Perplexity of English text under the adjacent-pair layout vs the half-split one."""
    ids, _ = tokenizer.encode(ROPE_CHECK_TEXT)
    nll = {}
    for rope in (ref.rope_pairs, ref.rope_pairs_neox):
        logits = ref.decode_logits(model, ids, rope)
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        nll[rope.__name__] = -np.mean([logp[i, ids[i + 1]] for i in range(len(ids) - 1)])
    for name, value in nll.items():
        print(f"  RoPE layout {name:16s}: mean NLL {value:.3f} nats/token (perplexity "
              f"{np.exp(value):.1f}) over {len(ids)} tokens")
    ok = nll["rope_pairs"] < nll["rope_pairs_neox"] - 0.5
    print(f"  self-check: adjacent-pair RoPE fits English clearly better {'ok' if ok else 'FAILED'}")
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fairbench", default=os.path.join(repo, "build-ref", "fairbench"))
    ap.add_argument("--smollm2", default=SMOLLM2_PATH)
    ap.add_argument("--out", default=here)
    ap.add_argument("--skip-rope-check", action="store_true")
    args = ap.parse_args()
    args.fairbench = os.path.abspath(args.fairbench)  # synth runs in a temporary folder

    print(f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}, python {sys.version.split()[0]}")
    manifest, all_ok = [], True

    # Synthetic models, regenerated by fairbench itself.
    with tempfile.TemporaryDirectory() as work:
        for name, synth_args, prompt_seed, n_prompt, desc in SYNTH:
            subprocess.run([args.fairbench, "synth", *synth_args], cwd=work, check=True,
                           stdout=subprocess.DEVNULL)
            gguf_path = os.path.join(work, synth_args[synth_args.index("-o") + 1])
            digest = sha256(gguf_path)
            command = "fairbench synth " + shlex.join(synth_args)
            model = ref.Model(gguf_path)
            print(f"\n{name}: {command}\n  sha256 {digest}\n  {model.config}, vocab {model.n_vocab}, "
                  f"tied {model.tied}, rope_freqs {model.rope_freqs is not None}")
            prompt = np.random.default_rng(prompt_seed).integers(0, model.n_vocab, n_prompt).tolist()
            gen, margin, ok = golden(model, prompt, True, os.path.join(args.out, name))
            all_ok &= ok
            manifest.append((name, command, digest,
                             f"{desc}; prompt: {n_prompt} ids from numpy default_rng({prompt_seed})"
                             f".integers(0, {model.n_vocab}); full logits x{N_POS}, {N_GREEDY} greedy; "
                             f"min top-1/top-2 gap {margin:.1e} of max|logit|"))

    # SmolLM2, the real model.
    digest = sha256(args.smollm2)
    if digest != SMOLLM2_SHA256:
        sys.exit(f"{args.smollm2}: sha256 {digest}, expected {SMOLLM2_SHA256}")
    model = ref.Model(args.smollm2)
    tokenizer = Tokenizer(args.smollm2)
    print(f"\nSmolLM2: {args.smollm2}\n  {model.config}, vocab {model.n_vocab}, tied {model.tied}")
    if not args.skip_rope_check:
        all_ok &= check_rope_layout(model, tokenizer)
    for name, text, full in SMOLLM2_PROMPTS:
        prompt, pieces = tokenizer.encode(text)
        print(f"\n{name}: {text!r}\n  pieces {pieces}")
        gen, margin, ok = golden(model, prompt, full, os.path.join(args.out, name))
        all_ok &= ok
        stored = f"full logits x{N_POS}" if full else f"top-{N_TOP} ids and values x{N_POS}"
        manifest.append((name, os.path.basename(args.smollm2), digest,
                         f"SmolLM2-135M-Instruct Q4_1; prompt {text!r} = {prompt}; {stored}, "
                         f"{N_GREEDY} greedy: {ref.detokenize(model.vocab, gen)!r}; "
                         f"min top-1/top-2 gap {margin:.1e} of max|logit|"))

    with open(os.path.join(args.out, "manifest.tsv"), "w") as f:
        f.write("# file\tmodel\tsha256\tdescription\n")
        for row in manifest:
            f.write("\t".join(r.replace("\t", " ").replace("\n", "\\n") for r in row) + "\n")
    print(f"\nwrote {os.path.join(args.out, 'manifest.tsv')}; all self-checks "
          f"{'passed' if all_ok else 'FAILED'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
