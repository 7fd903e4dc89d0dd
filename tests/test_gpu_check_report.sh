#!/usr/bin/env bash
# The tables of `scripts/gpu-check.sh --only wall`, built without a GPU from
# step outputs written below. EVERY FIGURE IN THESE FIXTURES IS INVENTED for
# this test (round numbers chosen to land on each side of the targets); none
# is a measurement. Checks: bench_gpu's columns are found by their header
# names (a column appended at the end, as another change adds, moves
# nothing); each figure gets PASS or FAIL only when it was measured and has a
# target, and ? otherwise (a missing, failed or not-run step, a row without
# graphs, a jit_fused cold start that missed its kernel cache, the H200
# prefill figure on another card); the exit status says a figure failed.
# With BENCH_GPU and FAIRBENCH, also that the fixtures' header is the one
# bench_gpu prints (on cpu_ref, which runs anywhere).
#
#   test_gpu_check_report.sh REPO TMP_DIR [BENCH_GPU FAIRBENCH]
# ok and bad always succeed, so `test && ok ... || bad ...` is an if-then-else here:
# shellcheck disable=SC2015
set -u
repo=$1 tmp=$2/gpu_check_report
bench_gpu=${3:-} fairbench=${4:-}
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

header='backend   prec   graphs cache   prompt  load_s   cold_ms   prefill/s   warm_pf/s   ttft_ms    ms/tok    p90_ms    tok/s   bytes/step     GB/s   %copy  peak_MiB  load_GB/s'

if [[ -n $bench_gpu && -n $fairbench ]]; then
  "$fairbench" synth --preset tiny --type F16 -o "$tmp/tiny.gguf" >/dev/null 2>&1
  got=$("$bench_gpu" "$tmp/tiny.gguf" --backend cpu_ref --precision f16 --graphs 0 --tokens 4 --warmup 1 \
          --prompt 4,8 --prefill-reps 1 | awk '$1 == "backend" && $2 == "prec"' | tr -s ' ')
  if [[ $got == "$(tr -s ' ' <<<"$header")" ]]; then ok "the fixtures' header is bench_gpu's"
  else bad "bench_gpu's header changed: '$got' (update this test's fixtures)"; fi
fi

# ---- run A, an H200: everything there, figures on both sides of the targets (INVENTED)
a=$tmp/a
mkdir -p "$a"
echo "NVIDIA H200" >"$a/card.txt"
echo 2471000000 >"$a/size_1b.txt"
echo 16060000000 >"$a/size_8b.txt"
for s in synth_1b agree_1b_jit_fused agree_1b_eager_ops bench_1b fresh_1b_jit_fused fresh_1b_eager_ops synth_8b \
         bench_8b fresh_8b_jit_fused torch_1b; do
  printf '%-24s %-22s %5ss/%-4s %s\n' "$s" ok 10 60 "" >>"$a/steps.txt"
done
cat >"$a/bench_1b.out" <<F
model    /tmp/gpu-check-1b.gguf (INVENTED FIXTURE)
$header
eager_ops f16    1/1    -           16    1.00     100.0      1000.0      2000.0      8.00     1.000     1.100   1000.0   2500000000   2500.0     70%      3000          -
eager_ops f16    1/1    -         2048       -         -     30000.0     30000.0     68.27     1.111     1.200    900.0   2600000000   2340.0     65%      3100          -
#   copy bandwidth 4000 GB/s (read + write); notes: INVENTED
jit_fused f16    1/1    warm/0      16    1.00     200.0      1000.0      2000.0      8.00     0.667     0.700   1500.0   2500000000   3520.0     88%      3000          -
jit_fused f16    1/1    warm/0    2048       -         -     50000.0     50000.0     40.96     0.833     0.900   1200.0   2600000000   3120.0     78%      3100          -
#   copy bandwidth 4000 GB/s (read + write); notes: INVENTED
F
# 8B: load_GB/s filled in (1B's rows leave it out) and a failed row
cat >"$a/bench_8b.out" <<F
$header
eager_ops f16    1/1    -           16    4.00     100.0      1000.0      9000.0      1.78     5.000     5.100    200.0  16060000000   3212.0     80%     17000      4.0
eager_ops f16    1/1    -         2048 failed: INVENTED out of memory
#   copy bandwidth 4000 GB/s (read + write); notes: INVENTED
jit_fused f16    1/1    warm/0      16    2.00     200.0      1000.0     12000.0      1.33     4.400     4.500    227.3  16060000000   3650.0     91%     17000      8.0
jit_fused f16    1/1    warm/0    2048       -         -     12000.0     12000.0    170.67     4.600     4.700    217.4  16100000000   3500.0     88%     17100      8.0
#   copy bandwidth 4000 GB/s (read + write); notes: INVENTED
F
cat >"$a/fresh_1b_jit_fused.out" <<F
$header
jit_fused f16    1/1    warm/1      16    0.40      30.0      1000.0      2000.0      8.00     0.667     0.700   1500.0   2500000000   3520.0     88%      3000       6.18
F
# an older bench_gpu without load_GB/s: the table divides the file's bytes by load_s
cat >"$a/fresh_1b_eager_ops.out" <<F
${header%  load_GB/s}
eager_ops f16    1/1    -           16    1.00      80.0      1000.0      2000.0      8.00     1.000     1.100   1000.0   2500000000   2500.0     70%      3000
F
cat >"$a/fresh_8b_jit_fused.out" <<F
$header
jit_fused f16    1/1    warm/0      16    2.00      30.0      1000.0     12000.0      1.33     4.400     4.500    227.3  16060000000   3650.0     91%     17000      8.0
F
cat >"$a/torch_1b.out" <<F
$header
torch     f16    1/1    warm/-1     16   10.00   60000.0        10.0       600.0     26.67     1.667     1.700    600.0   2500000000   1500.0       -      4000          -
torch     f16    1/1    warm/-1   2048       -         -       600.0       600.0   3413.33     1.754     1.800    570.0   2600000000   1482.0       -      4100          -
#   notes: INVENTED
F
echo "  llama3.2-1b f16 graphs on                     top-1 32/32 (100.0%), logits relative error 0.000412" >"$a/agree_1b_jit_fused.out"
echo "  llama3.2-1b f16 graphs on                     top-1 31/32 (96.9%), logits relative error 0.0021" >"$a/agree_1b_eager_ops.out"

OUT=$tmp/out-a bash "$repo/scripts/gpu-check.sh" --only wall --report-from "$a" >"$tmp/a.txt" 2>&1
rc=$?
table=$tmp/out-a/wall-table.txt
row() { grep -F "$1" "$table" | grep -E "(^| )$2( |$)"; }
expect() { # expect LABEL BACKEND VERDICT [MEASURED]
  local line
  line=$(row "$1" "$2")
  if [[ -z $line ]]; then bad "no row '$1' for $2"; return; fi
  local verdict
  verdict=$(awk '{for (i = 1; i <= NF; i++) if ($i == "PASS" || $i == "FAIL" || $i == "?") {print $i; exit}}' <<<"$line")
  if [[ $verdict != "$3" ]]; then bad "'$1' $2: $verdict, want $3: $line"; return; fi
  if [[ -n ${4:-} && $line != *" $4 "* ]]; then bad "'$1' $2: measured not '$4': $line"; return; fi
  ok "'$1' $2: $3${4:+ ($4)}"
}
[[ $rc == 1 ]] && ok "exit 1 when a figure fails" || bad "exit $rc with failing figures, want 1"
[[ -f $table && -f $tmp/out-a/wall-rows.txt && -f $tmp/out-a/wall-steps.tar.gz ]] && ok "tables and step outputs under OUT" \
  || bad "OUT lacks wall-table.txt, wall-rows.txt or wall-steps.tar.gz"
[[ $(tail -n 1 "$tmp/a.txt") == "gpu-check: SOME FIGURES FAIL" ]] && ok "the table is printed last" \
  || bad "the last line is '$(tail -n 1 "$tmp/a.txt")'"
grep -q "card: NVIDIA H200; copy bandwidth (read + write, measured in this run): 4000 GB/s" "$table" \
  && ok "card and copy bandwidth" || bad "card or copy bandwidth missing: $(grep card: "$table")"
expect "decode 1B f16, prompt 16: % of copy bw" jit_fused PASS 88%
expect "decode 1B f16, prompt 16: % of copy bw" eager_ops FAIL 70%
expect "decode 8B f16, prompt 16: % of copy bw" jit_fused PASS 91%
expect "decode 1B f16, prompt 2048 / prompt 16" jit_fused FAIL 80.0%
expect "decode 1B f16, prompt 2048 / prompt 16" eager_ops PASS 90.0%
expect "decode 8B f16, prompt 2048 / prompt 16" jit_fused PASS 95.6%
expect "decode 8B f16, prompt 2048 / prompt 16" eager_ops "?"
expect "prefill 1B f16, prompt 2048: tok/s" jit_fused PASS 50000.0
expect "prefill 1B f16, prompt 2048: tok/s" eager_ops FAIL 30000.0
expect "prefill 8B f16, prompt 2048: tok/s" jit_fused "?" 12000.0
expect "load 1B f16 from the page cache: GB/s" jit_fused PASS 6.18
expect "load 1B f16 from the page cache: GB/s" eager_ops FAIL 2.47
expect "load 8B f16 from the page cache: GB/s" jit_fused PASS 8.0
expect "load 8B f16 from the page cache: GB/s" eager_ops "?"
expect "cold start 1B f16, warm kernel cache: ms" jit_fused PASS 30.0
expect "cold start 1B f16, warm kernel cache: ms" eager_ops FAIL 80.0
expect "cold start 8B f16, warm kernel cache: ms" jit_fused "?"
expect "agreement 1B f16: top-1 vs cpu_ref" jit_fused PASS 100.0%
expect "agreement 1B f16: top-1 vs cpu_ref" eager_ops FAIL 96.9%
expect "agreement 1B f16: logits relative error" jit_fused PASS 0.000412
expect "agreement 1B f16: logits relative error" eager_ops FAIL 0.0021
expect "agreement 1B Q4_K_M native: top-1" jit_fused "?"
grep -qE '^1B +torch +f16 .* 38%\* ' "$tmp/out-a/wall-rows.txt" && ok "PyTorch's % of copy bandwidth against the run's (*)" \
  || bad "no torch row with 38%*: $(grep torch "$tmp/out-a/wall-rows.txt")"
grep -q "^8B eager_ops f16 .*2048 failed" "$tmp/out-a/wall-rows.txt" && ok "a failed row is shown" || bad "the failed row is missing"

# ---- run B, an H100, nothing measured: every figure ?, never PASS (INVENTED step list)
b=$tmp/b
mkdir -p "$b"
echo "NVIDIA H100 80GB HBM3" >"$b/card.txt"
printf '%-24s %-22s %5ss/%-4s %s\n' synth_1b "TIMED OUT after 60s" 60 60 "" bench_1b "NOT RUN (no time left)" 0 120 "" >"$b/steps.txt"
cat >"$b/bench_1b.out" <<F
$header
jit_fused f16    1/1    warm/0    2048       -         -     50000.0     50000.0     40.96     0.833     0.900   1200.0   2600000000   3120.0     78%      3100          -
F
OUT=$tmp/out-b bash "$repo/scripts/gpu-check.sh" --only wall --report-from "$b" >"$tmp/b.txt" 2>&1
rc=$?
table=$tmp/out-b/wall-table.txt
[[ $rc == 1 ]] && ok "exit 1 when steps did not pass" || bad "exit $rc with failed steps, want 1"
grep -q "SOME STEPS DID NOT PASS" "$table" && ok "failed steps are said" || bad "failed steps not said"
n_pass=$(grep -cE '^(decode|prefill|load|cold|agreement) .* PASS ' "$table")
[[ $n_pass == 0 ]] && ok "nothing measured: no PASS" || bad "$n_pass PASS rows without measurements"
expect "prefill 1B f16, prompt 2048: tok/s" jit_fused "?" 50000.0
grep -F "prefill 1B f16, prompt 2048: tok/s" "$table" | grep -q "46,600 is an H200 figure" \
  && ok "the H200 prefill figure is not applied to an H100" || bad "prefill note on an H100"

echo "$pass passed, $fail failed"
((fail == 0))
