#!/usr/bin/env bash
# The llamacpp plugin as the host sees it:
#   1. `fairbench plugins` lists it available, and, with the library absent
#      (FAIRBENCH_LLAMACPP_LIB pointing nowhere), unavailable with the sentence
#      that says how to get it; the .so exports only fb_plugin_entry and
#      records no libllama (it is dlopen'd)
#   2. `fairbench conformance` at native: the ABI contract; since its models rotate
#      part of each head, which llama.cpp refuses, load and probe pass and every
#      session check fails only on that refusal's sentence
#   3. the main job on a synthetic F32 model at f32, cpu_ref and llamacpp side
#      by side: llamacpp's agreement with cpu_ref meets the f32 bar (top-1
#      >= 99%, mean KL <= 1e-4) and the report carries its options (n_batch = 7
#      from the profile) and notes; a misspelt option stops the run at file:line
#   4. `fairbench generate` through llamacpp at f16 on the F32 file: refused
#      with the sentence, exit status non-zero
#   test_llamacpp.sh FAIRBENCH PLUGIN_DIR TMP
set -u
fairbench=$1 plugins=$2 tmp=$3/llamacpp_harness
rm -rf "$tmp" && mkdir -p "$tmp"
export TMPDIR=$tmp
so=$plugins/llamacpp.so
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

# ---------------------------------------------------------------- 1. listing
out=$("$fairbench" plugins --plugin-dir "$plugins" 2>&1)
line=$(grep -E '^llamacpp ' <<<"$out" | head -n 1)
if grep -q ' unavailable: ' <<<"$line"; then
  echo "SKIP: llamacpp is unavailable here: ${line##* unavailable: }"
  exit 77
fi
grep -qE '^llamacpp +0\.1\.0 +1\.1 +cpu,f32,f16,bf16,native,threads +available: CPU(: [^,]+)?, llama\.cpp ' <<<"$line" \
  && ok "listed available: ${line##* available: }" || bad "llamacpp line: '$line'"

out=$(FAIRBENCH_LLAMACPP_LIB=$tmp/nowhere/libllama.so "$fairbench" plugins --plugin-dir "$plugins" 2>&1)
line=$(grep -E '^llamacpp ' <<<"$out" | head -n 1)
want="unavailable: llama.cpp is not installed (no $tmp/nowhere/libllama.so): run \`make llamacpp\` and rebuild fairbench"
[[ $line == *"$want"* ]] && ok "library absent: '${line##* unavailable: }'" || bad "library absent: '$line' lacks '$want'"
echo "not a library" >"$tmp/libllama.so"
line=$(FAIRBENCH_LLAMACPP_LIB=$tmp/libllama.so "$fairbench" plugins --plugin-dir "$plugins" 2>&1 | grep -E '^llamacpp ')
[[ $line == *"unavailable: llama.cpp's library did not load: "*"libllama.so"* ]] \
  && ok "library broken: '${line##* unavailable: }'" || bad "library broken: '$line'"

symbols=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBVW]$/ {print $3}' | sort | tr '\n' ' ')
[[ $symbols == "fb_plugin_entry " ]] && ok "exports only fb_plugin_entry" || bad "exports: $symbols"
needed=$(readelf -d "$so" | grep -E 'NEEDED' | grep -oE '\[[^]]+\]' | tr '\n' ' ')
[[ $needed != *llama* && $needed != *ggml* ]] && ok "links no llama.cpp library ($needed)" || bad "NEEDED: $needed"

# ---------------------------------------------------------------- 2. conformance at native
# Its models rotate part of each head (n_rot < head_dim), which llama.cpp's llama
# architecture refuses: then every session check must fail only on create's sentence
# saying so (test_llamacpp checks the session contract on a full-rotary model).
"$fairbench" conformance "$so" --plugin-dir "$plugins" --precision native >"$tmp/conformance.txt" 2>"$tmp/conformance.err"
rc=$?
n_fail=$(grep -c '^FAIL ' "$tmp/conformance.txt")
n_rot=$(grep -c "^FAIL .*llama.cpp's llama architecture rotates whole heads (n_rot = head_dim), but .* rotates [0-9]* of [0-9]* dimensions per head" "$tmp/conformance.txt")
if (( rc == 0 )) && grep -qE '^([0-9]+) checks: \1 passed, 0 failed, 0 skipped$' "$tmp/conformance.txt"; then
  ok "conformance at native: $(tail -n 1 "$tmp/conformance.txt")"
elif grep -q '^PASS load: ' "$tmp/conformance.txt" && grep -q '^PASS probe: available: CPU' "$tmp/conformance.txt" \
     && grep -q '^PASS unsupported_precision: ' "$tmp/conformance.txt" && (( n_fail > 0 && n_fail == n_rot )); then
  ok "conformance at native: load, probe, unsupported_precision pass; $n_fail checks' partial-rotary models refused with the sentence"
else
  bad "conformance at native (exit $rc, $n_fail failures, $n_rot of them the partial-rotary refusal)"
  sed 's/^/     | /' "$tmp/conformance.txt" | cut -c1-220; tail -n 5 "$tmp/conformance.err"
fi

# ---------------------------------------------------------------- 3. the main job at f32
"$fairbench" synth --preset tiny --seed 31 -o "$tmp/tiny-f32.gguf" >/dev/null 2>&1 || bad "synth tiny"
cat >"$tmp/peers-f32.ini" <<'EOF'
[run]
backends = cpu_ref, llamacpp
reference = cpu_ref
prompt_tokens = 16
gen_tokens = 32
warmup = 1
repetitions = 2
timeout_s = 120

[fairness]
weight_precision = f32
accumulate_precision = f32
threads = 2

[backend.llamacpp]
; a per-backend option: prefill in llama_decode calls of 7 tokens
n_batch = 7
EOF
"$fairbench" -c "$tmp/peers-f32.ini" --model "$tmp/tiny-f32.gguf" --plugin-dir "$plugins" -q --format json \
  -o "$tmp/report.json" 2>"$tmp/run.err"
rc=$?
if python3 - "$tmp/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b = {x["label"]: x for x in r["backends"]}
lc = b["llamacpp"]
assert lc["status"] == "ok", (lc["status"], lc["reason"])
a = lc["agreement"]
print(f"     llamacpp f32 against cpu_ref: top-1 {a['top1']:.4f}, mean KL {a['mean_kl']:.3g}, "
      f"max |logit diff| {a['max_abs_logit_diff']:.3g} ({a['bar']})")
assert a["top1"] >= 0.99 and a["mean_kl"] <= 1e-4 and not a["wrong"], a
e = lc["effective_settings"]
assert e["weight_precision"] == "f32" and e["threads"] == 2, e
assert "8 bits" in e["notes"] and "KV f32" in e["notes"], e["notes"]
assert e["options"] == "flash_attn=off, n_batch=7, kv_type=f32", e["options"]
PY
then ok "main job at f32 on an F32 model: llamacpp agrees with cpu_ref within the f32 bar (exit $rc)"
else bad "main job at f32 (exit $rc)"; tail -n 5 "$tmp/run.err"
fi

# a misspelt option: the profile's file:line and llamacpp's sentence, nothing runs
sed 's/^n_batch = 7$/flash_atn = on/' "$tmp/peers-f32.ini" >"$tmp/typo.ini"
"$fairbench" -c "$tmp/typo.ini" --model "$tmp/tiny-f32.gguf" --plugin-dir "$plugins" -q >/dev/null 2>"$tmp/typo.err"
rc=$?
want="typo.ini:17: [backend.llamacpp] flash_atn = on: unknown option 'flash_atn' (known: flash_attn, n_batch, kv_type)"
if (( rc == 2 )) && grep -qF "$want" "$tmp/typo.err"; then ok "a misspelt option is refused: $(grep -m1 -F 'typo.ini:' "$tmp/typo.err")"
else bad "misspelt option (exit $rc), expected '$want':"; cat "$tmp/typo.err"
fi

# ---------------------------------------------------------------- 4. a refusal through generate
"$fairbench" generate --model "$tmp/tiny-f32.gguf" --backend llamacpp --precision f16 --plugin-dir "$plugins" \
  --ids 1,2,3 -n 4 >"$tmp/gen.out" 2>"$tmp/gen.err"
rc=$?
if (( rc != 0 )) && grep -q "weight precision f16 needs a file whose matrices are all F16, but blk.0.attn_q.weight is F32 (use weight_precision = native)" "$tmp/gen.err"; then
  ok "generate at f16 on an F32 file refused: $(grep -m1 -o 'llamacpp: .*' "$tmp/gen.err" | cut -c1-120)..."
else
  bad "generate at f16 on an F32 file (exit $rc):"; cat "$tmp/gen.err"
fi

echo "$pass passed, $fail failed"
(( fail == 0 ))
