#!/usr/bin/env bash
# `fairbench inspect` on the downloaded SmolLM2-135M-Instruct (Q4_1) must show
# its true shapes, read from its own metadata. Skipped (77) when the model has
# not been fetched (scripts/fetch-model.sh; the test command fetches it).
set -u
fairbench=$1
model=$("$(dirname "$0")/../scripts/fetch-model.sh" --path)
if [[ ! -f $model ]]; then
  echo "skipped: $model is absent (run scripts/fetch-model.sh)"
  exit 77
fi
out=$("$fairbench" inspect "$model") || { echo "FAIL: inspect exited $?"; exit 1; }
fail=0
expect() {
  if grep -qE "$1" <<<"$out"; then echo "ok   $1"; else echo "FAIL missing: $1"; fail=1; fi
}
expect '^architecture  llama'
expect '^  embedding length +576$'
expect '^  blocks +30$'
expect '^  heads / KV heads +9 / 3 \(head dimension 64\)$'
expect '^  feed-forward length +1536$'
expect '^  vocabulary +49152$'
expect '^  RoPE +base 100000, 64 dimensions$'
expect '^  output +tied to token_embd$'
expect '^tokenizer +gpt2 \(pre-tokenizer smollm\), 49152 tokens, 48900 merges$'
expect '^tensors \(272\)$'
expect '^  token_embd.weight +Q8_0 +576 x 49152 '
expect '^  blk.29.ffn_down.weight +Q4_1 +1536 x 576 '
expect '^  Q4_1 +210 tensors'
expect '^  F32 +61 tensors'
exit $fail
