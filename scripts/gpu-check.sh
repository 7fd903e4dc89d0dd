#!/usr/bin/env bash
# gpu-check.sh - the checks of the CUDA backends (eager_ops, jit_fused) that
# need a GPU, in one short run on a lent GPU machine (about 4 minutes on an
# H100 before the native steps, which add an estimated 3-4: unmeasured; the
# step limits add up to about 23; `--only eager_ops` skips them). Pass
# `--skip-native` to leave the native steps out when device time is short.
#
# Prepare here (a machine with the CUDA toolkit, no GPU needed):
#     scripts/gpu-build.sh              # -> build-gpu/carry, about 4 MB
# Then, on the GPU machine, from the repository root, with build-gpu/carry
# carried along:
#     bash scripts/gpu-check.sh [--only jit_fused|eager_ops] [--skip-native]
#
# Steps, each under its own time limit:
#   1. the GPU (nvidia-smi) and the carried binaries' libraries (ldd)
#   2. `fairbench plugins`: both CUDA backends must be available
#   3. test_eager_ops_kernels: every eager op against its CPU twin
#   4. test_gpu_backend, per backend: agreement with cpu_ref on a synthetic
#      model of realistic shape at f32, f16, bf16; prefill, decode, CUDA
#      graphs; the session contract; jit_fused's kernel cache cold and warm
#   5. fairbench synth --preset llama3.2-1b --type F16 (in /tmp)
#   6. test_gpu_backend --model, per backend: agreement with cpu_ref on the
#      1B model at f16 over 32 teacher-forced positions
#   7. bench_gpu on it, eager_ops and jit_fused side by side in one process:
#      f16 (and eager_ops at f32), graphs off and on, jit_fused with a cold
#      and then a warm kernel cache; jit_fused once more without
#      programmatic dependent launch (FAIRBENCH_JIT_PDL=0), and its
#      tensor-core prefill on a 2048-token prompt at f16 and bf16
#   8. jit_fused at weight_precision = native, the file's own block formats
#      read in place, on the 1B shapes as Q8_0, Q4_0 and the Q4_K_M mix:
#      fairbench synth, agreement with cpu_ref's native path over 32
#      positions (test_gpu_backend --native), bench_gpu (warm cache, graphs)
#   9. fairbench conformance, per backend: the plugin ABI's contract
#  10. fairbench profile on the 1B model, both backends (docs/why.md): the
#      untimed profiling pass through CUPTI and NVML; its breakdowns are
#      printed last, beside the timed ms/token and graph node counts of step 7
#   llamacpp, when scripts/gpu-build.sh carried it (plugin + llama.cpp's CUDA
#   libraries, xz'd): listed by step 2; peers.ini on the 1B model (eager_ops,
#   jit_fused, llamacpp at f16) after step 7; jit_fused and llamacpp at native
#   on the Q4_K_M mix in step 8; conformance at native with step 9.
#   --only llamacpp runs just those (with steps 2 and 5, not the native one;
#   about 3 minutes expected, unmeasured).
# and prints a short table last, with the targets of both backends.
#
#     bash scripts/gpu-check.sh --only python      (a separate run, about 6 minutes)
# runs instead the Python bridge's frameworks on the GPU: the machine's own
# Python with its own PyTorch (FAIRBENCH_PYTHON, else python3), TinyGrad from
# the wheel carried in build-gpu/carry/wheels (installed with --no-index into
# a venv over the machine's site packages), then profiles/frameworks.ini on
# the synthetic 1B model at f16 (torch, tinygrad, cpu_ref as reference, and
# the CUDA backends), and prints the report last. Every
# output is also written under $OUT (when set): gpu-check.log, summary.txt.
# Libraries: the CUDA runtime is inside each plugin; cuBLAS and NVRTC are the
# machine's own libcublas.so.13 and libnvrtc.so.13 (searched below); Debian
# libraries the binaries link (libpcre2-8) are in build-gpu/carry/lib.
set -u -o pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
carry=$root/build-gpu/carry
out=${OUT:-/tmp/gpu-check}
work=/tmp/gpu-check-work
mkdir -p "$out" "$work"
log=$out/gpu-check.log
summary=$out/summary.txt
: >"$log"
: >"$summary"

note() { echo "$*" | tee -a "$summary"; }

# step NAME SECONDS COMMAND...: run with a time limit, log everything, record the outcome
step() {
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== $name: $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$work/$name.out"
  local rc=${PIPESTATUS[0]}
  local verdict=ok
  case $rc in
    0) verdict=ok ;;
    77) verdict=SKIPPED ;;
    124|137) verdict="TIMED OUT after ${limit}s" ;;
    *) verdict="FAILED (exit $rc)" ;;
  esac
  local counts
  counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed|^[0-9]+ checks: ' "$work/$name.out" | tail -n 1)
  printf '%-22s %-22s %5ss  %s\n' "$name" "$verdict" "$((SECONDS - t0))" "$counts" >>"$work/steps.txt"
  return "$rc"
}

# find_lib NAME: the folder holding the shared library NAME, or nothing
find_lib() {
  local name=$1 dir
  dir=$(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n {print $NF; exit}' | xargs -r dirname)
  if [[ -z $dir ]]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
             /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/local/lib/python3*/dist-packages/nvidia/cu13/lib \
             /opt/*/.venv/lib/python3*/site-packages/nvidia/cu13/lib /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib \
             /usr/local/lib/python3*/dist-packages/nvidia/*/lib; do
      if [[ -e $d/$name ]]; then dir=$d; break; fi
    done
  fi
  [[ -z $dir ]] && dir=$(find / -name "$name" -not -path '/proc/*' 2>/dev/null | head -n 1 | xargs -r dirname)
  echo "$dir"
}

main() {
  : >"$work/steps.txt"
  echo "gpu-check: $(date -u +%FT%TZ), commit $(cat "$carry/COMMIT" 2>/dev/null || echo '?'), $(uname -srm)"
  if [[ ! -x $carry/bin/fairbench || ! -f $carry/plugins/eager_ops.so || ! -f $carry/plugins/jit_fused.so ]]; then
    echo "gpu-check: $carry is missing: run scripts/gpu-build.sh here first and carry build-gpu/carry"
    return 2
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
    || echo "gpu-check: nvidia-smi failed"

  # cuBLAS 13 and NVRTC 13 from this machine's CUDA installation (or PyTorch's pip wheels)
  local cublas_dir nvrtc_dir
  cublas_dir=$(find_lib libcublas.so.13)
  nvrtc_dir=$(find_lib libnvrtc.so.13)
  echo "gpu-check: libcublas.so.13 from ${cublas_dir:-nowhere}; libnvrtc.so.13 from ${nvrtc_dir:-nowhere}"
  export LD_LIBRARY_PATH=$carry/lib${cublas_dir:+:$cublas_dir}${nvrtc_dir:+:$nvrtc_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export FAIRBENCH_PLUGIN_PATH=$carry/plugins
  export FAIRBENCH_CUPTI_RECORDER=$carry/lib/fb_cupti_recorder.so
  local missing
  missing=$(for f in "$carry"/bin/* "$carry"/plugins/*.so; do ldd "$f" | sed "s|^|$(basename "$f"): |"; done | grep 'not found')
  if [[ -n $missing ]]; then echo "gpu-check: missing libraries:"; echo "$missing"; else echo "gpu-check: all libraries found"; fi

  local bin=$carry/bin
  if [[ $only == python ]]; then python_frameworks; return; fi
  local backends="eager_ops jit_fused"
  [[ -n $only ]] && backends=$only
  # llamacpp: its plugin and llama.cpp's CUDA libraries (scripts/gpu-build.sh carries both when built)
  local lcpp_lib=""
  if [[ -f $carry/plugins/llamacpp.so && -f $carry/llamacpp-cuda.tar.xz && ( -z $only || $only == llamacpp ) ]]; then
    rm -rf "$work/llamacpp" && mkdir -p "$work/llamacpp" && tar -C "$work/llamacpp" -xJf "$carry/llamacpp-cuda.tar.xz" \
      && lcpp_lib=$work/llamacpp/lib/libllama.so
    local cudart_dir
    cudart_dir=$(find_lib libcudart.so.13)
    export LD_LIBRARY_PATH=$LD_LIBRARY_PATH${cudart_dir:+:$cudart_dir}
    export FAIRBENCH_LLAMACPP_LIB=$lcpp_lib
    echo "gpu-check: llamacpp: ${lcpp_lib:-not unpacked}; libcudart.so.13 from ${cudart_dir:-nowhere}; $(cat "$work/llamacpp/STAMP" 2>/dev/null)"
    ldd "$work/llamacpp/lib/libggml-cuda.so" 2>&1 | grep 'not found' | sed 's/^/gpu-check: llamacpp: /'
  else
    echo "gpu-check: llamacpp not carried (scripts/setup-llamacpp.sh --cuda, then scripts/gpu-build.sh)"
  fi
  [[ $only == llamacpp ]] && backends=""
  export FAIRBENCH_JIT_CACHE=$work/jit-cache   # starts empty: the first jit_fused session compiles
  rm -rf "$FAIRBENCH_JIT_CACHE"
  step plugins 30 "$bin/fairbench" plugins
  [[ -n $lcpp_lib ]] && { grep -qE "^llamacpp .* available: " "$work/plugins.out" || echo "gpu-check: llamacpp is NOT available here"; }
  for b in $backends; do
    grep -qE "^$b .* available: " "$work/plugins.out" || echo "gpu-check: $b is NOT available here"
  done
  [[ $backends == *eager_ops* ]] && step op_kernels 60 "$bin/test_eager_ops_kernels"
  for b in $backends; do
    step "agree_synth_$b" 150 "$bin/test_gpu_backend" --backend "$b" "$work"
  done
  step synth_1b 60 "$bin/fairbench" synth --preset llama3.2-1b --type F16 --threads 16 -o /tmp/gpu-check-1b.gguf
  if [[ -f /tmp/gpu-check-1b.gguf ]]; then
    for b in $backends; do
      step "agree_1b_$b" 90 "$bin/test_gpu_backend" --backend "$b" "$work" --model /tmp/gpu-check-1b.gguf --positions 32
    done
    local list=${backends// /,}
    [[ -n $list ]] && step bench_1b 180 "$bin/bench_gpu" /tmp/gpu-check-1b.gguf --backend "$list" --precision f16 --graphs 0,1 \
      --jit-cache cold,warm --tokens 128 --prompt 16 --warmup 8
    if [[ $backends == *jit_fused* ]]; then # what programmatic dependent launch gives
      FAIRBENCH_JIT_PDL=0 step bench_1b_nopdl 90 "$bin/bench_gpu" /tmp/gpu-check-1b.gguf --backend jit_fused \
        --precision f16 --graphs 1 --jit-cache warm --tokens 128 --prompt 16 --warmup 8
      # the tensor-core prefill (jit_fused_prefill.cuh) on a 2048-token prompt, two chunks of 1024: issue 17's
      # figure is llama.cpp's 46,600 tok/s on an H200 (bench_gpu's prefill/s is the session's first prefill)
      step bench_1b_prefill 120 "$bin/bench_gpu" /tmp/gpu-check-1b.gguf --backend jit_fused \
        --precision f16,bf16 --graphs 1 --jit-cache warm --tokens 8 --prompt 2048 --warmup 2
    fi
    if [[ $backends == *eager_ops* ]]; then
      step bench_1b_f32 90 "$bin/bench_gpu" /tmp/gpu-check-1b.gguf --backend eager_ops --precision f32 --graphs 0,1 \
        --tokens 64 --prompt 16 --warmup 4
    fi
  fi
  # llamacpp: llama.cpp's CUDA build (carried as llamacpp-cuda.tar.xz) beside the others, peers.ini
  if [[ -n $lcpp_lib && -f /tmp/gpu-check-1b.gguf ]]; then
    step peers_1b 240 "$bin/fairbench" -c "$root/configs/profiles/peers.ini" --model /tmp/gpu-check-1b.gguf \
      --plugin-dir "$carry/plugins" ${only:+--backends $only} --set run.gen_tokens=64 --set run.repetitions=3
  fi
  if [[ -f /tmp/gpu-check-1b.gguf && -n $backends ]]; then # the profiling pass (docs/why.md), untimed, apart from bench_1b
    printf '[run]\nmodel = /tmp/gpu-check-1b.gguf\nbackends = %s\nprompt_tokens = 16\ntimeout_s = 120\n[fairness]\nweight_precision = f16\n' \
      "${backends// /, }" >"$work/why-1b.ini"
    rm -rf "$work/why-traces" && mkdir -p "$work/why-traces" "$out/why-traces"
    step why_1b 150 "$bin/fairbench" profile -c "$work/why-1b.ini" --steps 32 --warmup 8 --trace-dir "$work/why-traces"
    "$bin/fairbench" profile -c "$work/why-1b.ini" --steps 32 --warmup 8 --format json -o "$out/why_1b.json" >/dev/null 2>&1
    cp "$work"/why-traces/*.trace "$out/why-traces/" 2>/dev/null
  fi
  rm -f /tmp/gpu-check-1b.gguf
  if [[ $backends == *jit_fused* && $skip_native == 0 ]]; then
    local q f
    for q in Q8_0 Q4_0 Q4_K_M; do
      f=/tmp/gpu-check-1b-$q.gguf
      if [[ $q == Q4_K_M ]]; then
        step "synth_1b_$q" 60 "$bin/fairbench" synth --preset llama3.2-1b --mix q4_k_m --threads 16 -o "$f"
      else
        step "synth_1b_$q" 60 "$bin/fairbench" synth --preset llama3.2-1b --type "$q" --threads 16 -o "$f"
      fi
      [[ -f $f ]] || continue
      step "agree_1b_native_$q" 120 "$bin/test_gpu_backend" --backend jit_fused "$work" --model "$f" --positions 32 --native
      step "bench_1b_native_$q" 90 "$bin/bench_gpu" "$f" --backend jit_fused --precision native --graphs 1 \
        --jit-cache warm --tokens 128 --prompt 16 --warmup 8
      if [[ -n $lcpp_lib && $q == Q4_K_M ]]; then # the native comparison a GGUF user wants, on a GPU
        step peers_1b_native 180 "$bin/fairbench" -c "$root/configs/profiles/peers.ini" --model "$f" \
          --plugin-dir "$carry/plugins" --backends jit_fused,llamacpp --set fairness.weight_precision=native \
          --set run.gen_tokens=64 --set run.repetitions=3
      fi
      rm -f "$f"
    done
  fi
  for b in $backends; do
    step "conformance_$b" 150 "$bin/fairbench" conformance "$carry/plugins/$b.so" --timeout 60
  done
  if [[ -n $lcpp_lib ]]; then # its f32/f16 follow the file's types: the conformance models run at native
    step conformance_llamacpp 120 "$bin/fairbench" conformance "$carry/plugins/llamacpp.so" --precision native --timeout 60
  fi

  # ---------------------------------------------------------------- the table, last
  echo
  note "================================ gpu-check summary"
  note "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
  note ""
  note "$(printf '%-22s %-22s %6s  %s' step outcome time checks)"
  while read -r line; do note "$line"; done <"$work/steps.txt"
  for f in "$work"/agree_*.out; do
    [[ -f $f ]] || continue
    note "$(basename "$f" .out):"
    while read -r line; do note "  $line"; done < <(grep -E 'top-1 [0-9]+/[0-9]+|jit cache (cold|warm)' "$f" | sed 's/^ *//' | cut -c1-150)
  done
  local b1=$work/bench_1b.out
  if [[ -f $b1 ]]; then
    note ""
    note "llama3.2-1b (synthetic, F16 file), decode after 16 prompt tokens, 128 timed steps:"
    while read -r line; do note "  $line"; done < <(grep -E '^(backend|eager_ops|jit_fused) ' "$b1")
    [[ -f $work/bench_1b_f32.out ]] && while read -r line; do note "  $line"; done < <(grep -E '^eager_ops ' "$work/bench_1b_f32.out")
    [[ -f $work/bench_1b_nopdl.out ]] && while read -r line; do note "  $line  (FAIRBENCH_JIT_PDL=0)"; done < <(grep -E '^jit_fused ' "$work/bench_1b_nopdl.out")
    local copy
    copy=$(grep -m1 -oE 'copy bandwidth [0-9]+ GB/s' "$b1" | grep -oE '[0-9]+')
    # columns: backend prec graphs cache load_s cold_ms prefill/s ms/tok p90_ms tok/s bytes GB/s %copy peak
    local e_off e_on j_on j_load j_cold j_pct
    e_off=$(awk '$1 == "eager_ops" && $2 == "f16" && $3 ~ /^0\// {print $10}' "$b1")
    e_on=$(awk '$1 == "eager_ops" && $2 == "f16" && $3 ~ /^1\// {print $10}' "$b1")
    j_on=$(awk '$1 == "jit_fused" && $2 == "f16" && $3 ~ /^1\// && $4 ~ /^warm/ {print $10}' "$b1")
    j_pct=$(awk '$1 == "jit_fused" && $2 == "f16" && $3 ~ /^1\// && $4 ~ /^warm/ {print $13}' "$b1")
    j_load=$(awk '$1 == "jit_fused" && $2 == "f16" && $3 ~ /^1\// && $4 ~ /^warm/ {print $5}' "$b1")
    j_cold=$(awk '$1 == "jit_fused" && $2 == "f16" && $3 ~ /^1\// && $4 ~ /^warm/ {print $6}' "$b1")
    note "copy bandwidth (read + write) ${copy:-?} GB/s"
    local nodes # each backend's captured decode step, from its notes
    nodes=$(awk '$1 == "eager_ops" || $1 == "jit_fused" {b = $1}
                 match($0, /decode graph of [0-9]+ nodes/) {n[b] = substr($0, RSTART, RLENGTH)}
                 END {for (k in n) printf "%s: %s; ", k, n[k]}' "$b1")
    [[ -n $nodes ]] && note "${nodes%; }"
    [[ $backends == *eager_ops* ]] && note "eager_ops targets at f16: graphs off >= 250 tok/s: ${e_off:-?}; graphs on >= 500 tok/s: ${e_on:-?}"
    [[ $backends == *jit_fused* ]] && note "jit_fused targets at f16, warm cache, graphs on: decode >= 80% of copy bandwidth: ${j_pct:-?} (${j_on:-?} tok/s); cold start <= 50 ms: ${j_cold:-?} ms; load <= 1.5 s: ${j_load:-?} s"
    # native: tok/s against jit_fused's own f16 above (same card, same run), GB/s, % of copy bandwidth
    local q nb n_tok n_gbs n_pct want
    for q in Q8_0 Q4_0 Q4_K_M; do
      nb=$work/bench_1b_native_$q.out
      [[ -f $nb ]] || continue
      read -r n_tok n_gbs n_pct < <(awk '$1 == "jit_fused" && $2 == "native" {print $10, $12, $13}' "$nb")
      want="-"
      [[ $q == Q8_0 ]] && want=">= 1.7x"
      [[ $q == Q4_K_M ]] && want=">= 2.5x"
      note "jit_fused native $q: ${n_tok:-?} tok/s = $(awk -v a="${n_tok:-0}" -v b="${j_on:-0}" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "?"}') f16 (target $want), ${n_gbs:-?} GB/s, ${n_pct:-?} of copy bandwidth (target >= 60%)"
    done
  fi
  if [[ -f $work/why_1b.out ]]; then # the breakdowns, last (figures to reach: docs/why.md)
    note ""
    note "why (profiling pass, untimed; compare busy+idle with bench_1b's ms/tok, launches/token with the graph nodes above):"
    while read -r line; do note "$line"; done <"$work/why_1b.out"
  fi
  local peers what
  for peers in peers_1b peers_1b_native; do # llamacpp beside the CUDA backends
    [[ -f $work/$peers.out ]] || continue
    what="F16 file, f16"
    [[ $peers == peers_1b_native ]] && what="Q4_K_M mix, native"
    note ""
    note "peers.ini on llama3.2-1b (synthetic, $what), 64 steps x 3 (llamacpp: llama.cpp's CUDA build):"
    while read -r line; do note "  $line"; done < <(grep -E '^(Backend|Status|Throughput|Roofline|Top-1|Mean KL|Load|Cold start|Fairness verdict|llamacpp:)' "$work/$peers.out" | cut -c1-160)
  done
  if grep -qvE ' ok ' "$work/steps.txt"; then note "gpu-check: SOME STEPS DID NOT PASS"; return 1; fi
  note "gpu-check: all steps passed"
}

# --only python: the Python bridge's frameworks (torch, tinygrad) against
# cpu_ref and the CUDA backends on the 1B shapes, the report printed last.
python_frameworks() {
  local bin=$carry/bin py=${FAIRBENCH_PYTHON:-$(command -v python3)}
  if [[ ! -f $carry/plugins/python.so ]]; then
    echo "gpu-check: $carry/plugins/python.so is missing: run scripts/gpu-build.sh with python3-dev installed"
    return 2
  fi
  echo "gpu-check: the machine's Python: $py"
  "$py" -c 'import sys, torch, numpy; print("Python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available(), "numpy", numpy.__version__)' \
    || echo "gpu-check: $py has no torch or numpy: the torch column will say so"
  rm -rf "$work/pyvenv"
  if "$py" -m venv --system-site-packages "$work/pyvenv" &&
     "$work/pyvenv/bin/pip" install -q --no-index --no-deps "$carry"/wheels/tinygrad-*.whl; then
    export FAIRBENCH_PYTHON=$work/pyvenv/bin/python
  else
    echo "gpu-check: could not install the carried tinygrad wheel; tinygrad will be unavailable"
    export FAIRBENCH_PYTHON=$py
  fi
  step py_plugins 90 "$bin/fairbench" plugins
  step synth_1b 60 "$bin/fairbench" synth --preset llama3.2-1b --type F16 --threads 16 -o /tmp/gpu-check-1b.gguf
  # torch.compile (reduce-overhead) and TinyGrad's kernel compilation happen in
  # each backend's cold start, inside the run.
  step frameworks_1b 420 "$bin/fairbench" -c "$root/configs/profiles/frameworks.ini" --model /tmp/gpu-check-1b.gguf \
    --set run.timeout_s=300 -o "$out/frameworks_1b.txt"
  rm -f /tmp/gpu-check-1b.gguf
  echo
  note "================================ gpu-check --only python"
  note "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
  note "$(printf '%-22s %-22s %6s  %s' step outcome time checks)"
  while read -r line; do note "$line"; done <"$work/steps.txt"
  note "targets: each Python backend's top-1 agreement with cpu_ref at f16 >= 99%; torch on an H200 outside"
  note "fairbench: eager ~63, CUDA graphs ~320, compile reduce-overhead ~580 tok/s; tinygrad.llm ~34 tok/s"
  [[ -f $out/frameworks_1b.txt ]] && while IFS= read -r line; do note "$line"; done <"$out/frameworks_1b.txt"
}

only=""
skip_native=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --only) only=${2:-}; shift 2 ;;
    --skip-native) skip_native=1; shift ;;
    *) echo "usage: gpu-check.sh [--only jit_fused|eager_ops] [--skip-native]"; exit 2 ;;
  esac
done
main 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
