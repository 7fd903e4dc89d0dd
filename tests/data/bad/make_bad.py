#!/usr/bin/env python3
"""Writes the crafted bad GGUF files in this folder and expected.tsv.

Independent of fairbench's own writer: the bytes are packed here with
`struct`, from the GGUF format description (magic, version, counts, key-value
pairs, tensor infos, aligned data). Each case breaks one thing; expected.tsv
says which field fairbench must name and at which byte offset.

    python3 tests/data/bad/make_bad.py      # rewrites the folder
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q4_0 = 0, 1, 2


class G:
    """Builds a GGUF byte string and remembers where each part starts."""

    def __init__(self, version=3):
        self.b = bytearray(b"GGUF" + struct.pack("<IQQ", version, 0, 0))
        self.n_kv = 0
        self.n_tensors = 0
        self.at = {}

    def mark(self, name):
        self.at[name] = len(self.b)

    def s(self, text, length=None):
        data = text.encode()
        self.b += struct.pack("<Q", len(data) if length is None else length) + data

    def kv(self, key, vtype, payload):
        self.mark("kv%d" % self.n_kv)
        self.s(key)
        self.mark("kv%d.type" % self.n_kv)
        self.b += struct.pack("<I", vtype)
        self.mark("kv%d.value" % self.n_kv)
        self.b += payload
        self.n_kv += 1

    def tensor(self, name, dims, ttype, offset):
        i = self.n_tensors
        self.mark("t%d" % i)
        self.s(name)
        self.mark("t%d.n_dims" % i)
        self.b += struct.pack("<I", len(dims))
        self.mark("t%d.dims" % i)
        for d in dims:
            self.b += struct.pack("<Q", d)
        self.mark("t%d.type" % i)
        self.b += struct.pack("<I", ttype)
        self.mark("t%d.offset" % i)
        self.b += struct.pack("<Q", offset)
        self.n_tensors += 1

    def align(self, a=32):
        while len(self.b) % a:
            self.b += b"\0"

    def done(self):
        struct.pack_into("<QQ", self.b, 8, self.n_tensors, self.n_kv)
        return bytes(self.b)


def sval(text):
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def base(extra_kv=()):
    g = G()
    g.kv("general.architecture", STRING, sval("llama"))
    for k, t, p in extra_kv:
        g.kv(k, t, p)
    return g


cases = []  # (file name, expected field text, expected byte offset or None)


def case(name, data, field, offset):
    with open(os.path.join(HERE, name + ".gguf"), "wb") as f:
        f.write(data)
    cases.append((name + ".gguf", field, "" if offset is None else str(offset)))


def main():
    for old in os.listdir(HERE):
        if old.endswith(".gguf"):
            os.remove(os.path.join(HERE, old))

    good = base().done()
    case("bad_magic", b"GGUX" + good[4:], "header.magic", 0)
    case("version_1", good[:4] + struct.pack("<I", 1) + good[8:], "header.version", 4)
    case("version_99", good[:4] + struct.pack("<I", 99) + good[8:], "header.version", 4)
    case("big_endian", good[:4] + struct.pack(">I", 3) + good[8:], "byte-swapped", 4)
    case("empty", b"", "header", 0)
    case("short_header", good[:10], "header", 0)
    case("huge_n_tensors", good[:8] + struct.pack("<Q", 1 << 60) + good[16:], "header.n_tensors", 8)
    case("huge_n_kv", good[:16] + struct.pack("<Q", 1 << 60) + good[24:], "header.n_kv", 16)

    g = G()
    g.kv("general.architecture", STRING, sval("llama"))
    data = bytearray(g.done())
    struct.pack_into("<Q", data, 24, 1 << 40)  # key length
    case("key_past_eof", bytes(data), "kv[0].key", 24)

    g = G()
    g.kv("general.architecture", STRING, struct.pack("<Q", 1 << 33) + b"llama")
    case("string_value_past_eof", g.done(), "kv[0] 'general.architecture' value", g.at["kv0.value"])

    g = base([("weird", 77, b"\0" * 8)])
    case("unknown_value_type", g.done(), "kv[1] 'weird' type", g.at["kv1.type"])

    g = base([("big.array", ARRAY, struct.pack("<IQ", U32, 1 << 62))])
    case("array_count_huge", g.done(), "kv[1] 'big.array' value", g.at["kv1.value"] + 4)

    g = base([("strings", ARRAY, struct.pack("<IQ", STRING, 1 << 50) + sval("a"))])
    case("string_array_count_huge", g.done(), "kv[1] 'strings' value", g.at["kv1.value"] + 4)

    nested = struct.pack("<IQ", U8, 1) + b"\x07"
    for _ in range(9):
        nested = struct.pack("<IQ", ARRAY, 1) + nested
    g = base([("deep", ARRAY, nested)])
    case("array_too_deep", g.done(), "kv[1] 'deep' value", g.at["kv1.value"] + 12 * 8)

    g = base([("flag", BOOL, b"\x02")])
    case("bool_not_0_or_1", g.done(), "kv[1] 'flag' value", g.at["kv1.value"])

    g = base([("general.architecture", STRING, sval("llama"))])
    case("duplicate_key", g.done(), "kv[1] 'general.architecture'", g.at["kv1"])

    g = base([("general.alignment", U32, struct.pack("<I", 33))])
    case("alignment_not_power_of_two", g.done(), "kv[1] 'general.alignment' value", g.at["kv1.value"])

    g = base([("general.alignment", U64, struct.pack("<Q", 32))])
    case("alignment_wrong_type", g.done(), "kv[1] 'general.alignment' value", g.at["kv1.value"])

    def one_tensor(name, dims, ttype, offset, data_bytes, kv=()):
        g = base(kv)
        g.tensor(name, dims, ttype, offset)
        g.align()
        g.b += b"\x11" * data_bytes
        return g

    g = one_tensor("w", [1, 1, 1, 1, 1], T_F32, 0, 32)
    case("n_dims_5", g.done(), "tensor_info[0] 'w' n_dims", g.at["t0.n_dims"])

    g = one_tensor("w", [4, 0], T_F32, 0, 32)
    case("dim_zero", g.done(), "tensor_info[0] 'w' dims", g.at["t0.dims"] + 8)

    g = one_tensor("w", [1 << 32, 1 << 32], T_F32, 0, 32)
    case("dims_overflow", g.done(), "tensor_info[0] 'w' dims", g.at["t0.dims"])

    g = one_tensor("w", [8], 4, 0, 32)
    case("type_id_gap", g.done(), "tensor_info[0] 'w' type", g.at["t0.type"])

    g = one_tensor("w", [8], 999, 0, 32)
    case("type_id_unknown", g.done(), "tensor_info[0] 'w' type", g.at["t0.type"])

    g = one_tensor("w", [33], T_Q4_0, 0, 64)
    case("row_not_block_multiple", g.done(), "tensor_info[0] 'w' type", g.at["t0.type"])

    g = one_tensor("w", [8], T_F32, 1, 64)
    case("misaligned_offset", g.done(), "tensor_info[0] 'w' offset", g.at["t0.offset"])

    g = one_tensor("w", [64], T_F32, 0, 100)
    case("data_past_eof", g.done(), "tensor_info[0] 'w' data", g.at["t0"])

    g = one_tensor("w", [1 << 40], T_F32, 0, 32)
    case("huge_tensor_past_eof", g.done(), "tensor_info[0] 'w' data", g.at["t0"])

    g = base()
    g.tensor("a", [16], T_F32, 0)
    g.tensor("b", [16], T_F32, 32)  # a covers 0..64
    g.align()
    g.b += b"\x22" * 128
    case("overlapping_tensors", g.done(), "tensor_info[1] 'b' offset", g.at["t1"])

    g = base()
    g.tensor("a", [8], T_F32, 0)
    g.tensor("a", [8], T_F32, 32)
    g.align()
    g.b += b"\x22" * 64
    case("duplicate_tensor", g.done(), "tensor_info[1] 'a'", g.at["t1"])

    g = base()
    g.tensor("a", [8], T_F32, 0)
    data = g.done()  # ends right after the infos, before the aligned data section
    case("no_data_section", data + b"\0" if len(data) % 32 == 0 else data, "data", None)

    g = base()
    g.tensor("a", [8], T_F32, 0)
    data = bytearray(g.done())
    struct.pack_into("<Q", data, g.at["t0"], 1 << 45)  # tensor name length
    case("tensor_name_past_eof", bytes(data), "tensor_info[0].name", g.at["t0"])

    # Valid GGUF, invalid model: what the model view must name.
    g = G()
    g.kv("general.architecture", STRING, sval("gpt2"))
    case("unsupported_architecture", g.done(), "unsupported architecture 'gpt2'", None)

    g = base([("llama.embedding_length", U32, struct.pack("<I", 8)),
              ("llama.block_count", U32, struct.pack("<I", 1)),
              ("llama.attention.head_count", U32, struct.pack("<I", 2)),
              ("llama.feed_forward_length", U32, struct.pack("<I", 16)),
              ("llama.context_length", U32, struct.pack("<I", 16)),
              ("llama.attention.layer_norm_rms_epsilon", F32, struct.pack("<f", 1e-5)),
              ("llama.vocab_size", U32, struct.pack("<I", 4))])
    case("layers_without_tensors", g.done(), "block_count = 1 but the file holds only 0 tensors", None)

    g = base([("llama.embedding_length", U32, struct.pack("<I", 8))])
    case("missing_key", g.done(), "'llama.block_count' is missing", None)

    with open(os.path.join(HERE, "expected.tsv"), "w") as f:
        f.write("# file\tfield the message must name\tbyte offset it must give (empty: none)\n")
        for name, field, offset in cases:
            f.write("%s\t%s\t%s\n" % (name, field, offset))
    print("wrote %d bad files" % len(cases))


if __name__ == "__main__":
    main()
