#!/usr/bin/env bash
# `fairbench generate` end to end: on a synthetic model (always) and on
# SmolLM2 (when fetched): text in, sensible text out; ids out; the logits
# dump's size; usage errors exit 2 and name what is wrong.
set -u
fairbench=$1 tmp=$2/generate
mkdir -p "$tmp"
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/out.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/out.txt" | tail -5; fi
}
status_is() { # expected status, command...: the command must exit with it
  local want=$1; shift
  "$@"; [[ $? == "$want" ]]
}

"$fairbench" synth --preset tiny --seed 5 -o "$tmp/tiny.gguf" 2>/dev/null
check "tiny: 16 ids" bash -c "'$fairbench' generate -m '$tmp/tiny.gguf' --ids 3,4,5 -n 16 --ignore-eos --print-ids | grep -qE '^([0-9]+,){15}[0-9]+\$'"
check "tiny: text prompt" "$fairbench" generate -m "$tmp/tiny.gguf" -p "hello world" -n 4 --threads 1
check "tiny: 1 thread and 2 threads give the same ids" bash -c \
  "a=\$('$fairbench' generate -m '$tmp/tiny.gguf' --ids 9,8,7 -n 12 --ignore-eos --print-ids --threads 1); \
   b=\$('$fairbench' generate -m '$tmp/tiny.gguf' --ids 9,8,7 -n 12 --ignore-eos --print-ids --threads 2); [[ \$a == \$b ]]"
check "tiny: dump holds 3 + 7 positions of 512 logits" bash -c \
  "'$fairbench' generate -m '$tmp/tiny.gguf' --ids 1,2,3 -n 8 --ignore-eos --print-ids --dump-logits '$tmp/d.bin' >/dev/null && \
   test \$(stat -c %s '$tmp/d.bin') -eq \$((16 + 10 * 4 + 10 * 512 * 4)) && head -c 4 '$tmp/d.bin' | grep -q FBLG"
check "unknown backend is status 2" status_is 2 "$fairbench" generate -m "$tmp/tiny.gguf" --ids 1 --backend nope
check "bad precision is status 2" status_is 2 "$fairbench" generate -m "$tmp/tiny.gguf" --ids 1 --precision f8
check "id outside the vocabulary is status 2" status_is 2 "$fairbench" generate -m "$tmp/tiny.gguf" --ids 512
check "both -p and --ids is status 2" status_is 2 "$fairbench" generate -m "$tmp/tiny.gguf" --ids 1 -p x
check "missing model is status 2" status_is 2 "$fairbench" generate -m "$tmp/absent.gguf" --ids 1

model=$("$(dirname "$0")/../scripts/fetch-model.sh" --path)
if [[ -f $model ]]; then
  check "SmolLM2: 'The capital of France is' continues with Paris" bash -c \
    "'$fairbench' generate -m '$model' -p 'The capital of France is' -n 6 --precision native | grep -q 'The capital of France is Paris'"
  check "SmolLM2: chat template with --special ends at <|im_end|>" bash -c \
    "'$fairbench' generate -m '$model' --special -n 40 --precision native -p \$'<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n' | grep -q 'Paris.*<|im_end|>\$'"
else
  echo "note: $model absent: SmolLM2 checks skipped"
fi
rm -rf "$tmp"
echo "$pass passed, $fail failed"
(( fail == 0 ))
