#!/usr/bin/env bash
# Every synth preset is written and read back by `fairbench inspect` with the
# shapes of the model it is named after; the same seed gives the same bytes;
# every encodable type round-trips through inspect. The large presets are
# written at a compact type (Q4_0) to keep the suite fast; llama3-8b (4.5 GB
# even then) is skipped unless FAIRBENCH_TEST_LARGE=1.
set -u
fairbench=$1 tmp=$2/synth
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/out.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/out.txt" | tail -5; fi
}
shape() { # file, expected "embd layers heads kv ff vocab"
  local out; out=$("$fairbench" inspect --no-tensors "$1") || return 1
  read -r embd layers heads kv ff vocab <<<"$2"
  grep -qE "^  embedding length +$embd\$" <<<"$out" && grep -qE "^  blocks +$layers\$" <<<"$out" &&
  grep -qE "^  heads / KV heads +$heads / $kv " <<<"$out" && grep -qE "^  feed-forward length +$ff\$" <<<"$out" &&
  grep -qE "^  vocabulary +$vocab\$" <<<"$out"
}

# tiny: every type it can be written in, under 2 MB at its default type.
check "tiny default type writes" "$fairbench" synth --preset tiny -o "$tmp/tiny.gguf"
check "tiny is under 2 MB" test "$(stat -c %s "$tmp/tiny.gguf")" -lt 2000000
check "tiny shapes" shape "$tmp/tiny.gguf" "64 2 4 2 192 512"
for type in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K; do
  check "tiny $type" "$fairbench" synth --preset tiny --type $type -o "$tmp/tiny-$type.gguf"
  check "tiny $type inspects" "$fairbench" inspect "$tmp/tiny-$type.gguf"
done
# K-quants need rows of 256: a custom shape where every matrix qualifies.
check "custom 256-wide Q4_K" "$fairbench" synth --preset tiny --dim 256 --ff 512 --type Q4_K -o "$tmp/k.gguf"
check "custom 256-wide Q4_K holds Q4_K matrices" bash -c "'$fairbench' inspect '$tmp/k.gguf' | grep -qE '^  blk.0.ffn_down.weight +Q4_K '"
# Seeds: same seed same bytes, other seed other bytes.
check "same seed, same file" bash -c "'$fairbench' synth --seed 7 -o '$tmp/a.gguf' && '$fairbench' synth --seed 7 --threads 1 -o '$tmp/b.gguf' && cmp -s '$tmp/a.gguf' '$tmp/b.gguf'"
check "other seed, other file" bash -c "'$fairbench' synth --seed 8 -o '$tmp/c.gguf' && ! cmp -s '$tmp/a.gguf' '$tmp/c.gguf'"
# Bad arguments are usage errors (status 2).
check "unknown preset is status 2" bash -c "'$fairbench' synth --preset nope -o '$tmp/x.gguf'; test \$? -eq 2"
check "unknown type is status 2" bash -c "'$fairbench' synth --type Q9_9 -o '$tmp/x.gguf'; test \$? -eq 2"

# Real shapes.
check "smollm2-135m" "$fairbench" synth --preset smollm2-135m --type Q4_0 -o "$tmp/smollm2.gguf"
check "smollm2-135m shapes" shape "$tmp/smollm2.gguf" "576 30 9 3 1536 49152"
rm -f "$tmp/smollm2.gguf"
check "llama3.2-1b" "$fairbench" synth --preset llama3.2-1b --type Q4_0 -o "$tmp/1b.gguf"
check "llama3.2-1b shapes" shape "$tmp/1b.gguf" "2048 16 32 8 8192 128256"
check "llama3.2-1b has Llama-3 RoPE factors" bash -c "'$fairbench' inspect --no-tensors '$tmp/1b.gguf' | grep -q 'Llama-3 frequency factors'"
rm -f "$tmp/1b.gguf"
if [[ ${FAIRBENCH_TEST_LARGE:-0} == 1 ]]; then
  check "llama3-8b" "$fairbench" synth --preset llama3-8b --type Q4_0 -o "$tmp/8b.gguf"
  check "llama3-8b shapes" shape "$tmp/8b.gguf" "4096 32 32 8 14336 128256"
  rm -f "$tmp/8b.gguf"
else
  echo "note: llama3-8b not written (FAIRBENCH_TEST_LARGE=1 to include it)"
fi
rm -rf "$tmp"
echo "$pass passed, $fail failed"
(( fail == 0 ))
