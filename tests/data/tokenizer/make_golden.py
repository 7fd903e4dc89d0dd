#!/usr/bin/env python3
"""make_golden.py - golden token ids for fairbench's tokenizer (tests/test_tokenizer.c).

What it makes, in the folder of this script:

  spm.gguf            a SentencePiece-style vocabulary (tokenizer.ggml.model = llama):
                      a SentencePiece BPE model trained here, with byte fallback
                      (<0x00>..<0xFF>) and one user-defined symbol (<sep>), on text
                      this script writes
  bpe-llama3.gguf     a Llama-3-style vocabulary (model gpt2, pre llama-bpe): a
                      byte-level BPE trained here with the HF `tokenizers` library,
                      pre-tokenized with Llama 3's regular expression, with seven
                      control tokens and two user-defined ones ("New York", "<think>")
  bpe-smollm.gguf, bpe-gpt2.gguf, bpe-default.gguf
                      the same tokens and merges labelled with the pre-tokenizers
                      smollm, gpt-2 and default
  *.golden.tsv        the ids the reference gives for each vocabulary, and for the
                      real SmolLM2-135M-Instruct GGUF (smollm2.golden.tsv; the model
                      is not committed: scripts/fetch-model.sh fetches it)

The reference: llama.cpp's own tokenizer, through llama-cpp-python loading each
GGUF with vocab_only=True and calling Llama.tokenize(text, add_bos=add_special,
special=parse_special), i.e. llama_tokenize() of the llama.cpp that the package
vendors. That is the implementation that defines what a GGUF vocabulary means
(model, pre, token_type, add_bos_token, add_space_prefix, scores, merges), so it
is the right oracle for "the model's own tokenizer"; it shares no code with
fairbench's C tokenizer.

A second, independent implementation checks the first one on every case, and
this script reports each disagreement (it does not change the golden ids):

  spm.gguf            sentencepiece itself (the model it trained; BOS added by hand).
                      Equivalent for these settings: identity normalisation, no
                      removal of extra white space, a dummy "▁" prefix, BPE merging
                      by piece score with byte fallback - exactly what llama.cpp's
                      SPM path does for tokenizer.ggml.model = llama. Expected to
                      differ only where llama.cpp splits special or user-defined
                      token texts out and then adds a "▁" prefix to the text after
                      them (sentencepiece does not).
  bpe-llama3.gguf     the HF tokenizer that was trained (Split with Llama 3's regex,
                      ByteLevel without regex, BPE with ignore_merges = true), which
                      is how Llama 3's tokenizer.json is built.
  bpe-smollm.gguf     an HF tokenizer with the same model and SmolLM's pre-tokenizer
                      (Digits(individual_digits) then ByteLevel with GPT-2's regex).
  bpe-gpt2.gguf       the same with only ByteLevel(use_regex) (GPT-2's regex).
  smollm2             an HF tokenizer built from the GGUF file's own tokens and merges
                      (read with the gguf package), with SmolLM2's pre-tokenizer as its
                      tokenizer.json has it (Digits(individual_digits) then ByteLevel with
                      GPT-2's regex) and its control tokens as special tokens.
                      (transformers' own GGUF loader, AutoTokenizer.from_pretrained(...,
                      gguf_file=...), needs torch, which cannot be installed here.)
  bpe-default.gguf    none (llama.cpp's "default" has no HF counterpart).

HF tokenizers always split added special tokens out of the text, so for texts
that contain special-token strings the HF cross-check is only compared with
parse_special on.

Cases: a hand-written corpus (English prose, source code, numbers, runs of spaces,
tabs and newlines, emoji, CJK, accented Latin, Arabic and other scripts, mixed
scripts, contractions, leading spaces, the empty string, special-token texts,
odd white space and control characters), seeded random Unicode strings, each
with and without add_special, and those that hold special-token texts also with
parse_special (with and without add_special); and the numbers 0-99999
written in chunks of 1000 ("0 1 2 ... 999"), stored as a count and an FNV-1a
hash of the ids, to keep the files small.

File format (tab-separated, '#' starts a comment):
  text     AP  HEX-OF-UTF8-TEXT  ID ID ID ...
  numbers  AP  LO-HI             COUNT:FNV1A64-OF-IDS-AS-INT32-LE (hex)
where A and P are 1 or 0 for add_special and parse_special.

Usage: python3 make_golden.py [--model SmolLM2.gguf] [--skip-train]
Needs: pip install llama-cpp-python sentencepiece tokenizers gguf
(see README.md for the versions used).
"""
import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPM_USER_DEFINED = ["<sep>"]                 # user-defined: always split out, as in llama.cpp
BPE_USER_DEFINED = ["New York", "<think>"]  # HF non-special added tokens (GGUF type 4, raw text)
BPE_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>", "<|im_start|>", "<|im_end|>"]

# ---------------------------------------------------------------------------- the corpus

CODE_C = """\
/* Sum of a row, four lanes at a time. */
static float row_sum(const float *restrict x, size_t n) {
\tfloat acc[4] = {0};
\tfor (size_t i = 0; i + 4 <= n; i += 4)
\t\tfor (int k = 0; k < 4; k++) acc[k] += x[i + k];
\treturn acc[0] + acc[1] + acc[2] + acc[3]; // tail ignored
}
"""

CODE_PY = """\
def fib(n: int) -> list[int]:
    \"\"\"The first n Fibonacci numbers.\"\"\"
    out = [0, 1]
    while len(out) < n:
        out.append(out[-1] + out[-2])
    return out[:n]


if __name__ == "__main__":
    print({k: v for k, v in enumerate(fib(10)) if v % 2 == 0})  # {0: 0, 3: 2, ...}
"""

CODE_MISC = """\
SELECT name, COUNT(*) AS n FROM tokens WHERE id >= 0x10 GROUP BY name HAVING n > 2;
<div class="note">a &amp; b &lt;= c</div>
{"key": [1, 2.5e-3, null, true], "nested": {"x": "y\\n"}}
$ ./build/fairbench tokenize model.gguf --ids 'hello' | tr ',' '\\n' | wc -l
if (a!=b && c<=d || e>>=2) { x->y[i++] ^= ~0u; }
"""

FIXED_TEXTS = [
    ("empty", ""),
    ("word", "Hello"),
    ("sentence", "Hello world! How are you today?"),
    ("leading space", " Hello"),
    ("two leading spaces", "  Hello"),
    ("leading tab", "\tHello"),
    ("leading newline", "\nHello"),
    ("trailing spaces", "Hello   "),
    ("only spaces", "     "),
    ("one space", " "),
    ("spaces between", "a  b   c    d     e"),
    ("tabs", "\t\tindented\twith\ttabs\t"),
    ("newlines", "line one\nline two\n\nline four\n\n\n"),
    ("crlf", "windows\r\nline\r\nends\r\n"),
    ("mixed white space", " \n \t \r\n  x \n\n  y\t \n"),
    ("sixteen spaces", "                x"),
    ("contractions", "I'm sure you're right: he's gone, we've won, they'll see, I'd go, can't, won't, it's."),
    ("contractions upper", "I'M SURE YOU'RE RIGHT, HE'S GONE, WE'VE WON, THEY'LL SEE, I'D GO."),
    ("apostrophes", "'s 't 're 've 'm 'll 'd 'x '' rock'n'roll o'clock"),
    ("numbers small", "0 1 7 42 99 100 999 1000 4096 65535 99999 100000 1234567890"),
    ("numbers formatted", "3.14159, 1,234,567.89, -42, +7, 1e-10, 0x1F, 2024-11-27, 12:30:45, $19.99, 50%"),
    ("digits run", "12345678901234567890"),
    ("accented latin", "café naïve façade Ångström Łódź São Paulo Dvořák Øresund Straße œuvre"),
    ("combining marks", "e\u0301 a\u0308 n\u0303 A\u030a"),
    ("cjk chinese", "你好，世界！今天天气很好。我们一起去公园散步吧。"),
    ("cjk japanese", "こんにちは世界。カタカナとひらがなと漢字を混ぜた文です。"),
    ("cjk korean", "안녕하세요 세계! 오늘은 날씨가 좋네요."),
    ("arabic", "مرحبا بالعالم. كيف حالك اليوم؟ ١٢٣ ٤٥٦"),
    ("hebrew", "שלום עולם"),
    ("cyrillic", "Привет, мир! Как дела?"),
    ("greek", "Γειά σου Κόσμε, αβγδε"),
    ("devanagari", "नमस्ते दुनिया"),
    ("thai", "สวัสดีชาวโลก"),
    ("emoji", "🙂 😀😃 👍🏽 🇫🇷🇯🇵 👨‍👩‍👧‍👦 ❤️ ✨🚀"),
    ("mixed scripts", "Hello мир 世界 مرحبا 🙂 café 123 αβγ!"),
    ("mixed no spaces", "abcДЕЖ漢字123αβγ🙂xyz"),
    ("punctuation", "Wait... what?! (yes) [no] {maybe} <ok> \"quoted\" 'single' — dash – en-dash … ellipsis"),
    ("symbols", "© ® ™ ° ± × ÷ € £ ¥ ∑ ∞ ≠ ≤ ≥ → ← ↔ ♥ ♦"),
    ("nbsp and odd spaces", "a\u00a0b\u2009c\u3000d\u2028e\u0085f\u200bg\ufeffh\u180ei\u202fj"),
    ("control chars", "a\x00b\x01c\x1fd\x7fe"),
    ("bytes SmolLM2 lacks", "a\x04b\x06c\x13d\x14e\x16f\x1dg x\U00040000y \U00080000"),
    ("sentencepiece space", "\u2581leading \u2581 and\u2581\u2581inner"),
    ("long word", "pneumonoultramicroscopicsilicovolcanoconiosis " + "a" * 300),
    ("url and email", "https://example.org/path?q=1&r=two#frag user.name+tag@example.com"),
    ("chat template", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"),
    ("llama3 template", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"),
    ("spm specials", "<s>text</s> <unk> <s> and <0x41>"),
    ("special inside word", "abc<|im_end|>def <|endoftext|>ghi"),
    ("half special", "<|im_start <|im_end|| |>"),
    ("user-defined", "I moved to New York; New Yorkers<think>hmm</think> a<sep>b <sep> c"),
]


def prose_paragraphs():
    with open(os.path.join(HERE, "prose.txt"), encoding="utf-8") as f:
        text = f.read()
    paras = [p for p in text.split("\n\n") if p.strip()]
    return text, paras


def random_texts(seed=20241127, count=120):
    """Seeded random strings over many scripts, white space and symbols."""
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0x09, 0x0D), (0xA0, 0x24F), (0x370, 0x3FF),
              (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
              (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x22FF), (0x3000, 0x30FF), (0x4E00, 0x4FFF),
              (0xAC00, 0xAD00), (0xFF00, 0xFFEF), (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF)]
    out = []
    for i in range(count):
        n = rng.randint(1, 40)
        chars = []
        for _ in range(n):
            lo, hi = rng.choice(ranges)
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x41
            chars.append(chr(cp))
        s = "".join(chars)
        # keep only characters that are assigned in Python's Unicode database, so
        # that Unicode-version differences between the implementations stay out
        import unicodedata
        s = "".join(c for c in s if unicodedata.category(c) != "Cn")
        out.append((f"random {i}", s))
    return out


def all_texts():
    prose, paras = prose_paragraphs()
    texts = list(FIXED_TEXTS)
    texts.append(("prose paragraph", paras[0]))
    texts.append(("prose all", prose))
    texts.append(("code c", CODE_C))
    texts.append(("code python", CODE_PY))
    texts.append(("code misc", CODE_MISC))
    texts.extend(random_texts())
    return texts


def number_chunks():
    return [(lo, lo + 1000) for lo in range(0, 100000, 1000)]


def numbers_text(lo, hi):
    return " ".join(str(i) for i in range(lo, hi))  # test_tokenizer.c builds the same text


def fnv1a64_ids(ids):
    h = 0xCBF29CE484222325
    for b in struct.pack("<%di" % len(ids), *ids):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h

# ---------------------------------------------------------------------------- training text


def training_lines():
    prose, _ = prose_paragraphs()
    lines = []
    for para in prose.split("\n\n"):
        for sent in para.replace("\n", " ").split(". "):
            if sent.strip():
                lines.append(sent.strip() + ".")
    lines += CODE_C.splitlines() + CODE_PY.splitlines() + CODE_MISC.splitlines()
    # some other scripts, so that the vocabularies have merged non-ASCII pieces;
    # Arabic, Thai and emoji are left out on purpose (byte fallback is tested)
    lines += ["café naïve façade crème brûlée déjà vu", "Привет мир как дела хорошо спасибо",
              "你好世界今天天气很好我们一起去公园", "こんにちは世界ひらがなカタカナ", "Γειά σου Κόσμε",
              "Straße Größe Übung Ärger Öl", "numbers 1 22 333 4444 55555 2024 1999 3.14 100%",
              "    indented four\n", "\t\ttabbed", "I'm you're he's we've they'll I'd don't"]
    return [l for l in lines if l.strip()]

# ---------------------------------------------------------------------------- GGUF writing


def write_gguf(path, model, tokens, types, scores=None, merges=None, pre=None, bos=None, eos=None, unk=None,
               add_bos=None, add_eos=None, add_space_prefix=None):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(os.path.basename(path))
    # llama.cpp reads the hyper-parameters even with vocab_only: tiny made-up ones
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(16)
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    if scores is not None:
        w.add_token_scores(scores)
    w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if unk is not None:
        w.add_unk_token_id(unk)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if add_eos is not None:
        w.add_add_eos_token(add_eos)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build_spm(workdir):
    import sentencepiece as spm
    train = os.path.join(workdir, "spm_train.txt")
    with open(train, "w", encoding="utf-8") as f:
        f.write("\n".join(training_lines()) + "\n")
    prefix = os.path.join(workdir, "spm")
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=prefix, model_type="bpe", vocab_size=1000, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        split_digits=True, allow_whitespace_only_pieces=True, character_coverage=1.0,
        user_defined_symbols=SPM_USER_DEFINED,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    write_gguf(os.path.join(HERE, "spm.gguf"), "llama", tokens, types, scores=scores, bos=sp.bos_id(),
               eos=sp.eos_id(), unk=sp.unk_id(), add_bos=True, add_eos=False, add_space_prefix=True)
    return sp


def hf_from_gguf(path, pre):
    """An HF tokenizer from a GGUF file's tokens and merges, with pre-tokenizer `pre`."""
    import json
    from gguf import GGUFReader
    from tokenizers import AddedToken
    r = GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    spec = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
            "post_processor": None, "decoder": None,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": {t: i for i, t in enumerate(tokens)},
                      "merges": [m.split(" ", 1) for m in merges]}}
    tok = hf_tokenizer(json.dumps(spec), pre)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok, [t for t, ty in zip(tokens, types) if ty == 3]


def hf_tokenizer(model_json, pre):
    """An HF tokenizer with the trained BPE model and the pre-tokenizer `pre`."""
    from tokenizers import Tokenizer, Regex, pre_tokenizers, decoders
    import json
    spec = json.loads(model_json)
    spec["model"]["ignore_merges"] = pre == "llama-bpe"
    tok = Tokenizer.from_str(json.dumps(spec))
    if pre == "llama-bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    elif pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True)])
    elif pre == "gpt-2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True)
    else:
        return None
    tok.decoder = decoders.ByteLevel()
    return tok


def build_bpe(workdir):
    from tokenizers import AddedToken, Tokenizer, Regex, models, pre_tokenizers, decoders, trainers
    import json
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, special_tokens=BPE_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_lines() * 3, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in BPE_USER_DEFINED])
    spec = json.loads(tok.to_str())
    vocab = dict(spec["model"]["vocab"])
    for added in spec["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    types = [3 if t in BPE_SPECIALS else 4 if t in BPE_USER_DEFINED else 1 for t in tokens]
    bos, eos = vocab["<|begin_of_text|>"], vocab["<|end_of_text|>"]
    for pre, name in [("llama-bpe", "bpe-llama3"), ("smollm", "bpe-smollm"), ("gpt-2", "bpe-gpt2"),
                      ("default", "bpe-default")]:
        write_gguf(os.path.join(HERE, name + ".gguf"), "gpt2", tokens, types, merges=merges, pre=pre, bos=bos,
                   eos=eos, add_bos=(pre == "llama-bpe"), add_eos=False)
    return tok.to_str()

# ---------------------------------------------------------------------------- references


class LlamaCppRef:
    def __init__(self, path):
        from llama_cpp import Llama
        self.llm = Llama(model_path=path, vocab_only=True, verbose=False)

    def tokenize(self, text, add_special, parse_special):
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=parse_special))


def has_special(text, specials):
    return any(s in text for s in specials)


FLAGS = [(False, False), (True, False), (False, True), (True, True)]


def write_golden(name, gguf_path, ref, second, second_name, specials, bos, add_bos, note):
    """Write NAME.golden.tsv with the reference's ids; compare with the second one."""
    texts = all_texts()
    lines = [f"# golden token ids for {note}",
             f"# reference: llama-cpp-python {llama_cpp_version()} (llama.cpp llama_tokenize, vocab_only)",
             f"# cross-check: {second_name if second else 'none'} ({VERSIONS})",
             f"# made by tests/data/tokenizer/make_golden.py"]
    n_cases = n_ids = agree = compared = 0
    disagreements = []
    for label, text in texts:
        # parse_special changes nothing for a text without special-token strings
        for add_special, parse_special in (FLAGS if has_special(text, specials) else FLAGS[:2]):
            ids = ref.tokenize(text, add_special, parse_special)
            lines.append("text\t%d%d\t%s\t%s" % (add_special, parse_special, text.encode("utf-8").hex(),
                                                  " ".join(map(str, ids))))
            n_cases += 1
            n_ids += len(ids)
            if second is None:
                continue
            if has_special(text, specials) and not parse_special:
                continue  # HF and sentencepiece differ here by design (see the docstring)
            other = second(text, parse_special)
            if add_special and add_bos:
                other = [bos] + other
            compared += 1
            if other == ids:
                agree += 1
            else:
                disagreements.append((label, add_special, parse_special, text, ids, other))
    for lo, hi in number_chunks():
        for add_special in (False, True):
            ids = ref.tokenize(numbers_text(lo, hi), add_special, False)
            lines.append("numbers\t%d0\t%d-%d\t%d:%016x" % (add_special, lo, hi, len(ids), fnv1a64_ids(ids)))
            n_cases += 1
            n_ids += len(ids)
            if second is not None:
                other = second(numbers_text(lo, hi), False)
                if add_special and add_bos:
                    other = [bos] + other
                compared += 1
                if other == ids:
                    agree += 1
                else:
                    disagreements.append((f"numbers {lo}-{hi}", add_special, False, "", ids[:20], other[:20]))
    summary = f"{name}: {n_cases} cases, {n_ids} ids"
    if second is not None:
        summary += f"; {second_name} agrees on {agree} of {compared} compared cases"
    lines.insert(4, "# " + summary)
    for d in disagreements[:50]:
        lines.insert(5, "# disagreement (%s, add_special=%d, parse_special=%d): reference %s, %s %s" % (
            d[0], d[1], d[2], d[4][:24], second_name, d[5][:24]))
    with open(os.path.join(HERE, name + ".golden.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(summary)
    for d in disagreements:
        print("  disagreement: %s add_special=%d parse_special=%d text=%r\n    llama.cpp %s\n    %s %s" % (
            d[0], d[1], d[2], d[3][:80], d[4][:40], second_name, d[5][:40]))


VERSIONS = ""


def gguf_version():
    from importlib.metadata import version
    return version("gguf")


def llama_cpp_version():
    import llama_cpp
    return llama_cpp.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="SmolLM2-135M-Instruct GGUF (default: scripts/fetch-model.sh --path)")
    ap.add_argument("--skip-train", action="store_true", help="reuse the committed vocabularies")
    args = ap.parse_args()

    import sentencepiece
    import tokenizers
    global VERSIONS
    VERSIONS = "llama-cpp-python %s, sentencepiece %s, tokenizers %s, gguf %s, python %s" % (
        llama_cpp_version(), sentencepiece.__version__, tokenizers.__version__, gguf_version(),
        sys.version.split()[0])
    print("versions:", VERSIONS)

    with tempfile.TemporaryDirectory() as workdir:
        if args.skip_train:
            sp = None
            model_json = None
        else:
            sp = build_spm(workdir)
            model_json = build_bpe(workdir)

        # SentencePiece-style
        if sp is not None:
            def sp_second(text, parse_special):
                return sp.encode(text)
        else:
            sp_second = None
        write_golden("spm", os.path.join(HERE, "spm.gguf"), LlamaCppRef(os.path.join(HERE, "spm.gguf")),
                     sp_second, "sentencepiece", ["<s>", "</s>", "<unk>"] + SPM_USER_DEFINED, 1, True,
                     "spm.gguf (SentencePiece BPE, byte fallback, add_bos_token, add_space_prefix)")

        # byte-level BPE, four pre-tokenizers over one vocabulary
        for pre, name in [("llama-bpe", "bpe-llama3"), ("smollm", "bpe-smollm"), ("gpt-2", "bpe-gpt2"),
                          ("default", "bpe-default")]:
            path = os.path.join(HERE, name + ".gguf")
            ref = LlamaCppRef(path)
            hf = hf_tokenizer(model_json, pre) if model_json else None
            second = (lambda text, parse_special, hf=hf: hf.encode(text, add_special_tokens=False).ids) if hf else None
            bos = ref.llm.token_bos()
            write_golden(name, path, ref, second, "HF tokenizers", BPE_SPECIALS + BPE_USER_DEFINED, bos,
                         pre == "llama-bpe",
                         f"{name}.gguf (byte-level BPE, pre {pre})")

        # the real default model
        model = args.model
        if not model:
            model = subprocess.run([os.path.join(ROOT, "scripts", "fetch-model.sh"), "--path"], check=True,
                                   capture_output=True, text=True).stdout.strip()
        if os.path.exists(model):
            hf, specials = hf_from_gguf(model, "smollm")
            second = lambda text, parse_special: hf.encode(text, add_special_tokens=False).ids
            write_golden("smollm2", model, LlamaCppRef(model), second, "HF tokenizers (from the GGUF)", specials, 1,
                         False, "SmolLM2-135M-Instruct.Q4_1.gguf (gpt2, pre smollm; sha256 b179c952...)")
        else:
            print(f"skipping SmolLM2: {model} is absent (scripts/fetch-model.sh fetches it)")


if __name__ == "__main__":
    main()
