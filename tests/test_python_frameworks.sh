#!/usr/bin/env bash
# test_python_frameworks.sh FRAMEWORK TEST_BIN FAIRBENCH PYTHON_SO TMPDIR - a real
# framework's backend (tinygrad or torch) through the Python bridge on a tiny
# synthetic model, against cpu_ref at f32 (<= 1e-4 relative error), with and
# without its JIT.
#
# tinygrad: when no Python at hand has tinygrad, the test makes a venv under
# TMPDIR (system site packages, for numpy) and installs tinygrad==0.13.0 from
# PyPI into it: a 2.5 MB pure-Python wheel, about 20 s here. Skips (77) when
# that cannot be done (no network).
# torch: too large to install in a test (about 2.7 GB of wheels); skips (77)
# unless a Python with torch is at hand (scripts/setup-frameworks.sh).
set -uo pipefail
framework=$1 test_bin=$2 fairbench=$3 python_so=$4 tmp=$5/python_$1
mkdir -p "$tmp"
tinygrad_pin=0.13.0

if "$fairbench" version | grep -q 'sanitizer build'; then
  echo "SKIP: the frameworks' native code is not built for the sanitizers (the bridge itself runs under them in python_bridge)"
  exit 77
fi

has() { "$1" -c "import numpy, $framework" >/dev/null 2>&1; }
python=""
for p in "${FAIRBENCH_PYTHON:-}" "$HOME/.cache/fairbench/venv/bin/python" "$tmp/venv/bin/python" \
         "$(command -v python3)" /usr/bin/python3; do
  if [[ -n $p && -x $p ]] && has "$p"; then python=$p; break; fi
done
if [[ -z $python && $framework == tinygrad ]]; then
  base=""
  for p in /usr/bin/python3 "$(command -v python3)"; do
    [[ -x $p ]] && "$p" -c 'import numpy, venv' 2>/dev/null && { base=$p; break; }
  done
  if [[ -n $base ]]; then
    echo "installing tinygrad==$tinygrad_pin into $tmp/venv (2.5 MB wheel)"
    start=$(date +%s)
    if "$base" -m venv --system-site-packages "$tmp/venv" >"$tmp/venv.log" 2>&1 &&
       "$tmp/venv/bin/pip" install -q --progress-bar off "tinygrad==$tinygrad_pin" >>"$tmp/venv.log" 2>&1; then
      echo "installed in $(( $(date +%s) - start )) s"
      python=$tmp/venv/bin/python
    else
      tail -3 "$tmp/venv.log"
    fi
  fi
fi
if [[ -z $python ]]; then
  echo "SKIP: no Python with $framework and numpy (scripts/setup-frameworks.sh installs them)"
  exit 77
fi
export FAIRBENCH_PYTHON=$python
echo "python: $python ($("$python" -c "import sys; from importlib.metadata import version as v; print('Python', sys.version.split()[0], '$framework', v('$framework'))"))"

failed=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi
}

"$fairbench" synth -o "$tmp/tiny.gguf" --seed 11 >/dev/null || exit 1
"$fairbench" synth -o "$tmp/tiny_q8.gguf" --seed 12 --type q8_0 --untied --llama3-rope >/dev/null || exit 1
list=$("$test_bin" "$python_so" "$tmp/tiny.gguf" list)
check "$framework is published and available" grep -q "^$framework"$'\t'"available" <<<"$list" || echo "$list"
if [[ $framework == tinygrad ]]; then # it always compiles kernels at run time; without TinyJit is an option
  check "tinygrad agrees with cpu_ref at f32, TinyJit off" \
    "$test_bin" "$python_so" "$tmp/tiny.gguf" agree tinygrad 21 device=cpu +jit tinyjit=false
else
  check "$framework agrees with cpu_ref at f32, no JIT" \
    "$test_bin" "$python_so" "$tmp/tiny.gguf" agree "$framework" 21 device=cpu
fi
check "$framework agrees with cpu_ref at f32, JIT and graphs allowed (Q8_0 file, Llama-3 RoPE)" \
  "$test_bin" "$python_so" "$tmp/tiny_q8.gguf" agree "$framework" 22 device=cpu +jit +graphs
if [[ $framework == torch ]]; then # a compile failure is PyTorch's message in a failed call, never eager instead
  CXX=/bin/false TORCHINDUCTOR_CACHE_DIR=$tmp/inductor-empty \
    "$test_bin" "$python_so" "$tmp/tiny.gguf" agree torch 23 device=cpu +jit >"$tmp/compile_fail.out" 2>&1
  compile_rc=$?
  grep -m1 'FAIL' "$tmp/compile_fail.out"
  check "a torch.compile failure is an error with PyTorch's message" \
    grep -q "torch: prefill: RuntimeError: torch.compile (mode default) failed: " "$tmp/compile_fail.out"
  check "... and the call fails" test "$compile_rc" -ne 0
fi
# The plugin ABI's contract, on its CPU device: tinygrad here (about 2
# minutes); torch's (each of its 18 checks imports torch in a fresh process,
# over 10 minutes on this 2-core machine) is run by hand:
#   FAIRBENCH_PYTHON=~/.cache/fairbench/venv/bin/python build/fairbench conformance build/plugins/python.so --backend torch
if [[ $framework == tinygrad ]]; then
  check "fairbench conformance passes on tinygrad" \
    "$fairbench" conformance "$python_so" --backend tinygrad --timeout 300
fi
echo "$failed failed"
exit $((failed > 0))
