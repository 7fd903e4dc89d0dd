#!/usr/bin/env bash
# test_python_bridge.sh TEST_BIN FAIRBENCH PYTHON_SO TMPDIR - the Python bridge
# with the numpy test backend, on a tiny synthetic model (and its Q8_0 twin,
# through the host's block decoder): listing and probes, agreement with
# cpu_ref at f32, exceptions to statuses, stdout kept clean, the GIL released
# between calls, and the bridge's own cost per decode call.
# Skips (77) when no Python with numpy is found (scripts/setup.sh installs
# python3-numpy).
set -uo pipefail
test_bin=$1 fairbench=$2 python_so=$3 tmp=$4/python_bridge
mkdir -p "$tmp"

# Under the sanitizers: what the never-finalised interpreter holds at exit
# is not the bridge's leak (see the file).
export LSAN_OPTIONS="suppressions=$(dirname "$0")/test_python_lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# A Python that has numpy: the one the user named, Debian's (numpy from
# scripts/setup.sh, no frameworks: quick to probe, also under the
# sanitizers), python3 on PATH, the frameworks venv.
pick_python() {
  for p in "${FAIRBENCH_PYTHON:-}" /usr/bin/python3 "$(command -v python3)" "$HOME/.cache/fairbench/venv/bin/python"; do
    [[ -n $p && -x $p ]] && "$p" -c 'import numpy' 2>/dev/null && { echo "$p"; return 0; }
  done
  return 1
}
if ! FAIRBENCH_PYTHON=$(pick_python); then
  echo "SKIP: no Python with numpy found (run scripts/setup.sh: python3-numpy)"
  exit 77
fi
export FAIRBENCH_PYTHON
echo "python: $FAIRBENCH_PYTHON"

failed=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi
}

"$fairbench" synth -o "$tmp/tiny.gguf" --seed 7 >/dev/null || exit 1
"$fairbench" synth -o "$tmp/tiny_q8.gguf" --seed 8 --type q8_0 --llama3-rope >/dev/null || exit 1

list=$("$test_bin" "$python_so" "$tmp/tiny.gguf" list)
echo "$list"
check "numpy_ref is published and available" grep -q $'^numpy_ref\tavailable\tCPU[:,] .*numpy' <<<"$list"
check "a missing framework is named in the probe" \
  grep -q $'^missing\tunavailable\tfairbench_no_such_framework is not installed in /' <<<"$list"
check "agreement with cpu_ref at f32 (F32 file)" "$test_bin" "$python_so" "$tmp/tiny.gguf" agree numpy_ref 1234
check "agreement with cpu_ref at f32 (Q8_0 file, Llama-3 RoPE)" "$test_bin" "$python_so" "$tmp/tiny_q8.gguf" agree numpy_ref 99
check "exceptions become statuses and sentences" "$test_bin" "$python_so" "$tmp/tiny.gguf" errors
"$test_bin" "$python_so" "$tmp/tiny.gguf" quiet >"$tmp/quiet.out" 2>"$tmp/quiet.err"
quiet_rc=$?
check "a backend's print() stays off stdout" test "$quiet_rc" -eq 0 -a ! -s "$tmp/quiet.out"
check "the GIL is free between calls (calls from other threads)" \
  timeout 60 "$test_bin" "$python_so" "$tmp/tiny.gguf" threads
check "bridge overhead per decode call under 20 us" "$test_bin" "$python_so" "$tmp/tiny.gguf" overhead 20
check "fairbench conformance passes on numpy_ref" \
  "$fairbench" conformance "$python_so" --backend numpy_ref --timeout 60

# Through the main job: an exception, a hang and a crash inside Python are
# contained like any plugin's (each backend runs in a child process); the
# others still run and the report is written. noop gives the harness-overhead
# row of a backend that does nothing but cross the bridge.
cat >"$tmp/faults.ini" <<INI
[run]
model = $tmp/tiny.gguf
backends = cpu_ref, numpy_ref, noop, raises, hangs, crashes
reference = cpu_ref
prompt_tokens = 4
gen_tokens = 16
warmup = 1
repetitions = 2
timeout_s = 10
[fairness]
weight_precision = f32
[backend.raises]
plugin = faulty
fault = raise
[backend.hangs]
plugin = faulty
fault = hang
[backend.crashes]
plugin = faulty
fault = crash
INI
"$fairbench" -c "$tmp/faults.ini" >"$tmp/faults.out" 2>"$tmp/faults.err"
faults_rc=$?
grep -E '^(Status|Harness overhead)' "$tmp/faults.out"
grep -E '^(raises|hangs|crashes): ' "$tmp/faults.out"
check "the run with failing backends ends with status 1" test "$faults_rc" -eq 1
check "statuses: ok, ok, WRONG (noop computes nothing), failed, timed out, crashed" \
  grep -qE '^Status +\| +ok +\| +ok +\| +WRONG +\| +failed +\| +timed out +\| +crashed *$' "$tmp/faults.out"
check "the exception's text is the failure's sentence" \
  grep -q '^raises: failed: .*faulty: [a-z]*: RuntimeError: deliberate failure in decode; second line' "$tmp/faults.out"
check "no Python traceback on stdout or stderr" bash -c "! grep -q Traceback '$tmp/faults.out' '$tmp/faults.err'"
echo "$failed failed"
exit $((failed > 0))
