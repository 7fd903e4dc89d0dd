#!/usr/bin/env python3
"""Make the golden files that tests/test_quant.c checks core/quant.c against.

The independent implementation is the PyPI `gguf` package (gguf-py, from the
llama.cpp repository) with numpy; nothing here shares code with core/quant.c.

  python3 tests/data/quant/make_golden.py [out_dir]   (default: this folder)

File format, all little-endian:
  char     magic[4] = "FBQG"
  uint32   version  = 1
  uint32   type     (GGML type id)
  uint32   n_rows
  uint32   n_cols   (values per row, a multiple of the block size)
  uint32   flags    (bit 0: the f32 input follows the decoded values)
  uint8    blocks[n_rows * row_bytes]   the encoded rows
  float32  decoded[n_rows * n_cols]     gguf.quants.dequantize(blocks)
  float32  input[n_rows * n_cols]       only with flag bit 0: what
                                        gguf.quants.quantize() was given

Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16, BF16: blocks = gguf.quants.quantize(input).
Q4_K, Q5_K, Q6_K: gguf-py cannot quantise them, so blocks are random valid
bytes with finite random half scales, and there is no input.
"""
import importlib.metadata
import os
import struct
import sys

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

SEED = 20240611
MAGIC = b"FBQG"
VERSION = 1
FLAG_HAS_INPUT = 1


def write_golden(path, qtype, blocks, decoded, inp=None):
    n_rows, n_cols = decoded.shape
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    assert n_cols % block_elems == 0
    assert blocks.dtype == np.uint8 and blocks.shape == (n_rows, n_cols // block_elems * block_bytes)
    assert decoded.dtype == np.float32
    flags = FLAG_HAS_INPUT if inp is not None else 0
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<5I", VERSION, int(qtype), n_rows, n_cols, flags))
        f.write(np.ascontiguousarray(blocks).tobytes())
        f.write(np.ascontiguousarray(decoded).astype("<f4").tobytes())
        if inp is not None:
            assert inp.dtype == np.float32 and inp.shape == decoded.shape
            f.write(np.ascontiguousarray(inp).astype("<f4").tobytes())
    return os.path.getsize(path)


def legacy_rows(rng, n_rows, n_cols):
    """Rows with a mix of scales, for formats with 32-value blocks."""
    x = np.empty((n_rows, n_cols), dtype=np.float32)
    for r in range(n_rows):
        kind = 8 if r == n_rows - 1 else r % 8
        if kind == 0:
            x[r] = rng.standard_normal(n_cols)
        elif kind == 1:
            x[r] = rng.standard_normal(n_cols) * 1e-3
        elif kind == 2:
            x[r] = rng.standard_normal(n_cols) * 100.0
        elif kind == 3:  # large values; the half scales stay finite
            x[r] = rng.standard_normal(n_cols) * 2e4
        elif kind == 4:  # a zero block and a block of one repeated value
            x[r] = rng.standard_normal(n_cols)
            x[r, 32:64] = 0.0
            x[r, 96:128] = 0.75
        elif kind == 5:  # negative-heavy
            x[r] = -np.abs(rng.standard_normal(n_cols)) * 3.0 + 0.1
        elif kind == 6:  # positive only, with an offset (exercises the min of Q4_1/Q5_1)
            x[r] = rng.uniform(5.0, 9.0, n_cols)
        elif kind == 7:  # heavy tails: a few outliers per block
            x[r] = rng.standard_normal(n_cols) * np.where(rng.random(n_cols) < 0.05, 50.0, 0.5)
        else:  # exact ties: each block's |max| is 127 so Q8_0 has d = 1, and
            # the rest are k + 0.5, which roundf (and gguf-py) round away from 0
            x[r] = rng.integers(-127, 127, n_cols) + 0.5
            x[r, ::32] = np.where(rng.random(n_cols // 32) < 0.5, 127.0, -127.0)
    return x


def float_edge_row(n_cols):
    """Values that exercise half/bf16 rounding: ties, subnormals, overflow, inf, NaN."""
    vals = [
        0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0,
        65519.99, 65520.0, 1e6, -1e6, float("inf"), float("-inf"), float("nan"),
        2.0**-14, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-26, 5 * 2.0**-26, 1e-10,
        1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-8 + 2.0**-20,
        3.0e38, -3.0e38, 1.17549435e-38, 1e-40, 0.1, 1 / 3, 2.0**-15 + 2.0**-25,
    ]
    row = np.zeros(n_cols, dtype=np.float32)
    row[: len(vals)] = np.array(vals, dtype=np.float32)
    return row


def make_quantised(rng, qtype, n_rows, n_cols, extra_rows=()):
    x = legacy_rows(rng, n_rows, n_cols)
    if extra_rows:
        x = np.concatenate([x, np.stack(extra_rows)], axis=0).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # F16 of 1e6 is inf, on purpose
        blocks = quantize(x, qtype)
    blocks = np.ascontiguousarray(blocks).view(np.uint8).reshape(x.shape[0], -1)
    decoded = dequantize(blocks, qtype).astype(np.float32, copy=False)
    return blocks, decoded, x


def random_halves(rng, n, scale):
    """Finite random halves around `scale`, a few exact zeros and subnormals."""
    v = (rng.standard_normal(n) * scale).astype(np.float16)
    v[rng.random(n) < 0.05] = np.float16(0.0)
    sub = rng.random(n) < 0.03
    v[sub] = np.frombuffer(rng.integers(1, 0x3FF, sub.sum(), dtype=np.uint16).tobytes(), dtype=np.float16)
    assert np.all(np.isfinite(v))
    return v.view(np.uint8).reshape(n, 2)


def make_random_k(rng, qtype, n_rows, n_cols):
    """Random valid K-quant blocks: random bytes for the quants and packed
    scales, realistic half d/dmin (positive mostly, some negative)."""
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    n_blocks = n_rows * n_cols // block_elems
    b = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):  # d, dmin, ...
        b[:, 0:2] = random_halves(rng, n_blocks, 2e-3)
        b[:, 2:4] = random_halves(rng, n_blocks, 5e-3)
    else:  # Q6_K: ql, qh, scales, d
        b[:, -2:] = random_halves(rng, n_blocks, 1e-3)
    b[0, :] = 0  # an all-zero block
    blocks = b.reshape(n_rows, -1)
    decoded = dequantize(blocks, qtype).astype(np.float32, copy=False)
    return blocks, decoded


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rng = np.random.default_rng(SEED)
    total = 0
    n_rows, n_cols = 16, 256
    edge = float_edge_row(n_cols)
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.F16, T.BF16):
        extra = (edge,) if qtype in (T.F16, T.BF16) else ()
        blocks, decoded, x = make_quantised(rng, qtype, n_rows, n_cols, extra)
        total += write_golden(os.path.join(out_dir, f"{qtype.name}.bin"), qtype, blocks, decoded, x)
    for qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        blocks, decoded = make_random_k(rng, qtype, 16, 512)
        total += write_golden(os.path.join(out_dir, f"{qtype.name}.bin"), qtype, blocks, decoded)
    print(f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}, "
          f"seed {SEED}: {total} bytes in {out_dir}")


if __name__ == "__main__":
    main()
