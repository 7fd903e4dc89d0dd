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

# A Python that has numpy: the one the user named, the frameworks venv,
# python3 on PATH, Debian's.
pick_python() {
  for p in "${FAIRBENCH_PYTHON:-}" "$HOME/.cache/fairbench/venv/bin/python" "$(command -v python3)" /usr/bin/python3; do
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
check "numpy_ref is published and available" grep -q $'^numpy_ref\tavailable\tCPU: numpy' <<<"$list"
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
echo "$failed failed"
exit $((failed > 0))
