#!/usr/bin/env bash
# The verdict and fault isolation, with backends that are wrong on purpose
# (tests/plugins/misbehave.c: the SDK example with one fault each). Every
# audit reason the runner gives, every WRONG bar, WRONG backends unranked,
# a crash / hang / error status in every phase with the others' results
# kept, a failing reference, out of memory under the default limit, a
# create() that stops when cancelled, skips, unknown names, an unwritable
# output path and Ctrl-C. Exit statuses are asserted with each.
set -u
fairbench=$1 tmp=$2/verdict mb=$3 faults=$4 profiles=$5
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/check.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/check.txt" | tail -15; fi
}
has() { grep -qF -- "$2" "$1"; } # file, fixed string
"$fairbench" synth --preset tiny --seed 21 -o "$tmp/tiny.gguf" 2>/dev/null
# f32, one thread, no JIT, no graphs: what the example does, so it is fair.
run() { "$fairbench" -c "$profiles/smoke.ini" --model "$tmp/tiny.gguf" -q --plugin-dir "$mb" \
          --set fairness.weight_precision=f32 --set fairness.threads=1 --set fairness.allow_jit=false \
          --set fairness.allow_graphs=false --set run.vary=none --set run.repetitions=2 "$@"; }
json() { # file, python expression over r (the report) that must hold
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); b = {x["label"]: x for x in r["backends"]}
asan = "sanitizer" in r["environment"].get("build", "")  # ASan's own SEGV handler ends a child with a status
ok = eval(sys.argv[2])
if not ok: print("false:", sys.argv[2]); print(json.dumps({k: (v["status"], v["reason"]) for k, v in b.items()}, indent=1)); print(r["fairness"])
sys.exit(0 if ok else 1)
PY
}

# --- the control: the example against cpu_ref is fair and ranked
run --backends vb_ok,cpu_ref --format json -o "$tmp/ok.json"; rc=$?
check "control: exit 0 (rc=$rc)" test $rc -eq 0
check "control: fair, both ok and ranked" json "$tmp/ok.json" \
  'r["fairness"]["verdict"] == "fair" and all(x["status"] == "ok" and (x["metrics"].get("advantage") or 0) > 0 for x in b.values())'

# --- every audit reason from what a backend says it did
run --backends vb_ok,vb_wrong_precision,vb_accumulates_f16,vb_jit,vb_graphs,vb_threads97 > "$tmp/audit.txt"; rc=$?
check "audit: exit 0, the backends computed right (rc=$rc)" test $rc -eq 0
check "audit: wrong precision" has "$tmp/audit.txt" "vb_wrong_precision was asked for f32 weights but ran f16"
check "audit: precision differs" has "$tmp/audit.txt" "weight precision differs: vb_ok f32, vb_wrong_precision f16"
check "audit: accumulate precision" has "$tmp/audit.txt" "vb_accumulates_f16 accumulated in f16, not f32"
check "audit: JIT when forbidden" has "$tmp/audit.txt" "vb_jit used JIT compilation, which the profile forbids"
check "audit: graphs when forbidden" has "$tmp/audit.txt" "vb_graphs replayed graphs, which the profile forbids"
check "audit: threads not honoured" has "$tmp/audit.txt" "vb_threads97 was asked for 1 thread but ran 97"
check "audit: the verdict is unfair" grep -q '^Fairness verdict: unfair: ' "$tmp/audit.txt"
run --backends cpu_ref,vb_threads97 --set fairness.threads=0 > "$tmp/threads.txt"; rc=$?
check "audit: threads differ between entries (rc=$rc)" has "$tmp/threads.txt" "CPU threads differ: cpu_ref "
check "audit: an override is named" bash -c "'$fairbench' -c '$profiles/smoke.ini' --model '$tmp/tiny.gguf' -q \
  --set run.vary=none | grep -q '^Fairness verdict: unfair: cpu_ref_b overrides threads; CPU threads differ: cpu_ref_a'"

# --- vary: the declared variable is the experiment, nothing else is
run --backends cpu_ref,vb_threads97 --set fairness.threads=0 --set run.vary=threads > "$tmp/vary.txt"
check "vary: a declared difference is fair by design" grep -q '^Fairness verdict: fair (varies by design: threads)$' "$tmp/vary.txt"
run --backends vb_ok,vb_wrong_precision --set run.vary=threads > "$tmp/vary2.txt"
check "vary: an undeclared difference is still unfair" grep -q '^Fairness verdict: unfair: vb_wrong_precision was asked' "$tmp/vary2.txt"
"$fairbench" -c "$profiles/smoke.ini" --model "$tmp/tiny.gguf" -q --set run.vary=thread 2> "$tmp/vary3.txt"; rc=$?
check "vary: a typo is status 2 with did you mean (rc=$rc)" bash -c "test $rc -eq 2 && grep -q \"did you mean 'threads'\" '$tmp/vary3.txt'"

# --- WRONG: each bar, unranked, exit 1
run --backends vb_ok,vb_wrong_argmax,vb_logits_little,vb_logits_lot,vb_logits_swapped --format json -o "$tmp/wrong.json"; rc=$?
check "wrong: exit 1 (rc=$rc)" test $rc -eq 1
check "wrong: four WRONG, the control ok" json "$tmp/wrong.json" \
  'b["vb_ok"]["status"] == "ok" and all(b[k]["status"] == "WRONG" for k in ("vb_wrong_argmax", "vb_logits_little", "vb_logits_lot", "vb_logits_swapped"))'
check "wrong: not ranked (no advantage)" json "$tmp/wrong.json" \
  'all(not b[k]["metrics"].get("advantage") for k in b if k != "vb_ok") and b["vb_ok"]["metrics"]["advantage"] == 1.0'
check "wrong: argmax not its own logits'" json "$tmp/wrong.json" \
  '"the token returned is not the argmax of its own logits" in b["vb_wrong_argmax"]["reason"] and b["vb_wrong_argmax"]["agreement"]["top1"] == 1.0'
check "wrong: logits off by a little (max diff bar, top-1 and KL pass)" json "$tmp/wrong.json" \
  '"the largest |logit diff|" in b["vb_logits_little"]["reason"] and "the bar for f32 is 0.01%" in b["vb_logits_little"]["reason"] and b["vb_logits_little"]["agreement"]["top1"] == 1.0'
check "wrong: logits off by a lot (KL)" json "$tmp/wrong.json" '"mean KL" in b["vb_logits_lot"]["reason"] and "above the bar for f32" in b["vb_logits_lot"]["reason"]'
check "wrong: top-1" json "$tmp/wrong.json" '"top-1 agreement 0.0% is below the bar for f32 (99%)" in b["vb_logits_swapped"]["reason"]'
check "wrong: no comparison claimed" json "$tmp/wrong.json" '"no comparison was made: 1 of 5 backends were measured and correct" in r["fairness"]["verdict"]'
run --backends vb_ok,vb_logits_little > "$tmp/wrong.txt"
check "wrong: text report says WRONG and not ranked" bash -c "grep -qE '^Status +\\| +ok +\\| +WRONG' '$tmp/wrong.txt' && grep -qE '^Advantage.* \\| +- *$' '$tmp/wrong.txt' && grep -q '^vb_logits_little: WRONG: disagrees with cpu_ref (f32): .*; not ranked on speed' '$tmp/wrong.txt'"

# --- faults in every phase, all in one run: the right status each, the control's results kept
list=vb_ok
for phase in create prefill agreement destroy; do
  list+=,mb_crash_$phase,mb_hang_$phase
  [[ $phase != destroy ]] && list+=,mb_error_$phase
done
run --backends $list --set run.timeout_s=2 --set run.warmup=0 --format json -o "$tmp/faults.json"; rc=$?
check "faults: exit 1 (rc=$rc)" test $rc -eq 1
check "faults: the control measured in full" json "$tmp/faults.json" \
  'b["vb_ok"]["status"] == "ok" and len(b["vb_ok"]["samples"]["decode_latency_ms"]) == r["run"]["gen_tokens"] * r["run"]["repetitions"]'
for phase in create prefill agreement destroy; do
  check "$phase faults: crash, hang named" json "$tmp/faults.json" \
    "b['mb_crash_$phase']['status'] == 'crashed' and ('signal 11' in b['mb_crash_$phase']['reason'] or asan) and b['mb_hang_$phase']['status'] == 'timed out' and 'within 2 s; killed' in b['mb_hang_$phase']['reason']"
  [[ $phase != destroy ]] && check "$phase faults: error status named" json "$tmp/faults.json" \
    "b['mb_error_$phase']['status'] == 'failed' and 'a deliberate error' in b['mb_error_$phase']['reason']"
done
check "destroy faults: figures kept" json "$tmp/faults.json" \
  'len(b["mb_crash_destroy"]["samples"]["decode_latency_ms"]) > 0 and "in destroy, after its figures were in" in b["mb_crash_destroy"]["reason"]'
check "phases are named" json "$tmp/faults.json" \
  '"during loading (create" in b["mb_crash_create"]["reason"] and "during a repetition" in b["mb_crash_prefill"]["reason"] and "during the agreement pass" in b["mb_crash_agreement"]["reason"]'

# --- a failing reference: the others measured, nothing called correct, exit 1
run --backends vb_ok,cpu_ref --set run.reference=mb_crash_prefill --set run.timeout_s=3 --format json -o "$tmp/ref.json"; rc=$?
check "failing reference: exit 1 (rc=$rc)" test $rc -eq 1
check "failing reference: others measured, verdict says unchecked" json "$tmp/ref.json" \
  'r["reference"]["status"].startswith("crashed") and all(x["status"] == "ok" and x["samples"]["decode_latency_ms"] for x in b.values()) and "the reference mb_crash_prefill (f32) did not run" in r["fairness"]["verdict"]'

# --- cancellation: a long create() asked to stop before the deadline
run --backends vb_ok,mb_cancellable_create --set run.timeout_s=2 --format json -o "$tmp/cancel.json"; rc=$?
check "cancel: create stopped when asked (rc=$rc)" json "$tmp/cancel.json" \
  'b["mb_cancellable_create"]["status"] == "timed out" and "stopped when asked" in b["mb_cancellable_create"]["reason"] and b["vb_ok"]["status"] == "ok"'

# --- progress from the child reaches a terminal (script gives fairbench one)
if command -v script > /dev/null; then
  script -qec "'$fairbench' -c '$profiles/smoke.ini' --model '$tmp/tiny.gguf' --backends cpu_ref \
    --set run.repetitions=2 -o '$tmp/progress.txt'" /dev/null > "$tmp/progress.tty" 2>&1
  check "progress: the child's load progress, with its fraction and MB" \
    grep -qE 'fairbench: cpu_ref: cpu_ref: converting weights +100% \(0\.[0-9] of 0\.[0-9] MB\)' "$tmp/progress.tty"
  check "progress: cold start and rounds with time left" bash -c \
    "grep -q 'cold start' '$tmp/progress.tty' && grep -qE 'round 3 of 3, about [0-9]+ s left' '$tmp/progress.tty'"
else
  fail=$((fail + 1)); echo "FAIL script (util-linux) is missing"
fi

# --- skips
run --backends vb_ok,vb_unavailable > "$tmp/skip.txt"; rc=$?
check "skip: exit 1 without --allow-skips (rc=$rc)" test $rc -eq 1
check "skip: named, and no comparison claimed" bash -c "grep -q '^vb_unavailable: skipped: unavailable: its device is absent' '$tmp/skip.txt' && grep -q '^Fairness verdict: unfair: no comparison was made: 1 of 2' '$tmp/skip.txt'"
run --backends vb_ok,vb_unavailable --allow-skips > /dev/null; rc=$?
check "skip: exit 0 with --allow-skips (rc=$rc)" test $rc -eq 0
run --backends vb_ok,vb_okk 2> "$tmp/name.txt" > "$tmp/name.out"; rc=$?
check "unknown backend: exit 2, did you mean, nothing ran (rc=$rc)" bash -c \
  "test $rc -eq 2 && grep -q \"no plugin provides backend 'vb_okk'; did you mean 'vb_ok'?\" '$tmp/name.txt' && test ! -s '$tmp/name.out'"

# --- output path checked first
start=$SECONDS
run --backends vb_ok -o "$tmp/no/such/dir/report.txt" 2> "$tmp/out.txt"; rc=$?
check "unwritable output: exit 2 at once (rc=$rc)" bash -c "test $rc -eq 2 && test $((SECONDS - start)) -lt 3 && grep -q 'cannot write the report to' '$tmp/out.txt'"

# --- Ctrl-C: children stopped, partial results kept, exit 130
(exec "$fairbench" -c "$profiles/smoke.ini" --model "$tmp/tiny.gguf" -q --plugin-dir "$mb" --set fairness.weight_precision=f32 \
   --set fairness.threads=1 --backends vb_ok,mb_hang_prefill --set run.timeout_s=60 -o "$tmp/int.txt" 2> "$tmp/int.err") & pid=$!
sleep 6; kill -INT $pid; start=$SECONDS; wait $pid; rc=$?
check "Ctrl-C: exit 130, well before the 60 s time-out (rc=$rc)" bash -c "test $rc -eq 130 && test $((SECONDS - start)) -lt 30"
check "Ctrl-C: partial results in a named file, a message" bash -c "test -s '$tmp/int.txt.interrupted' && test ! -e '$tmp/int.txt' && grep -q 'interrupted (Ctrl-C): children stopped; partial results in' '$tmp/int.err' && grep -q '^Fairness verdict: none: the run was interrupted' '$tmp/int.txt.interrupted'"
check "Ctrl-C: no child left" bash -c "! pgrep -P $pid"

# --- out of memory under the default limit (no FAIRBENCH_MEMORY_LIMIT_MB),
# bounded by the limit fairbench itself is started with. Not under ASan.
if "$fairbench" version | grep -q 'sanitizer build'; then
  echo "note: sanitizer build: the memory-hog case is not run (ASan needs an unlimited address space)"
elif command -v prlimit > /dev/null; then
  (unset FAIRBENCH_MEMORY_LIMIT_MB; prlimit --as=$((2048 << 20)) "$fairbench" -c "$profiles/smoke.ini" \
     --model "$tmp/tiny.gguf" -q --plugin-dir "$faults" --backends cpu_ref,hog --set run.timeout_s=30 \
     --format json -o "$tmp/oom.json"); rc=$?
  check "oom: exit 1 (rc=$rc)" test $rc -eq 1
  check "oom: out of memory, not crashed, under the default limit" json "$tmp/oom.json" \
    'b["hog"]["status"] == "out of memory" and "of the 2147 MB memory limit" in b["hog"]["reason"] and b["cpu_ref"]["status"] == "ok"'
else
  fail=$((fail + 1)); echo "FAIL prlimit (util-linux) is missing"
fi
echo "$pass passed, $fail failed"
(( fail == 0 && pass > 0 ))
