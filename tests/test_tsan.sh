#!/usr/bin/env bash
# ThreadSanitizer run (build-tsan, `make tsan`): cpu_ref's thread pool and
# the conformance harness, with every report fatal (halt_on_error). cpu_ref
# at 3 threads (an uneven split of rows and heads; the count at which a race
# in attention_worker was once reported) and at 2, through `fairbench
# conformance`, which drives prefill, decode, reset, two sessions and
# create/destroy cycles. Prints each run's time.
set -u
fairbench=$1 cpu_ref=$2 tmp=$3/tsan
rm -rf "$tmp" && mkdir -p "$tmp"
export TMPDIR=$tmp
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
fail=0
for threads in 3 2; do
  start=$(date +%s%N)
  "$fairbench" conformance "$cpu_ref" --threads $threads --no-rss-check >"$tmp/t$threads.txt" 2>"$tmp/t$threads.err"
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs=$((ms / 1000)).$(printf %03d $((ms % 1000)))
  if (( rc == 0 )) && ! grep -q 'ThreadSanitizer' "$tmp/t$threads.err"; then
    echo "ok   cpu_ref at $threads threads under ThreadSanitizer: $(tail -1 "$tmp/t$threads.txt") (${secs} s)"
  else
    fail=1; echo "FAIL cpu_ref at $threads threads under ThreadSanitizer (rc=$rc, ${secs} s)"
    grep -E '^FAIL' "$tmp/t$threads.txt"; grep -A30 -m1 'WARNING: ThreadSanitizer' "$tmp/t$threads.err"
  fi
done
exit $fail
