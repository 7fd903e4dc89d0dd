#!/usr/bin/env bash
# gpu-check.sh - the eager_ops checks that need a GPU, in one short run on a
# lent GPU machine (about 2 minutes on an H100; the step limits add up to 8).
#
# Prepare here (a machine with the CUDA toolkit, no GPU needed):
#     scripts/gpu-build.sh              # -> build-gpu/carry, about 3 MB
# Then, on the GPU machine, from the repository root, with build-gpu/carry
# carried along:
#     bash scripts/gpu-check.sh
#
# Steps, each under its own time limit:
#   1. the GPU (nvidia-smi) and the carried binaries' libraries (ldd)
#   2. `fairbench plugins`: eager_ops must be available
#   3. test_eager_ops_kernels: every op against its CPU twin
#   4. test_eager_ops: agreement with cpu_ref on a synthetic model of
#      realistic shape at f32, f16, bf16; prefill, decode, CUDA graphs
#   5. fairbench synth --preset llama3.2-1b --type F16 (in /tmp)
#   6. bench_gpu on it: f16 and f32, graphs off and on
#   7. test_eager_ops --model: agreement with cpu_ref on the 1B model, f16,
#      32 teacher-forced positions
# and prints a short table last. Everything is also written under $OUT
# (when set): gpu-check.log and summary.txt.
# Libraries: the CUDA runtime is inside eager_ops.so; cuBLAS is the
# machine's own libcublas.so.13 (searched below); Debian libraries the
# binaries link (libpcre2-8) are in build-gpu/carry/lib.
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
  counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/$name.out" | tail -n 1)
  printf '%-22s %-22s %5ss  %s\n' "$name" "$verdict" "$((SECONDS - t0))" "$counts" >>"$work/steps.txt"
  return "$rc"
}

main() {
  : >"$work/steps.txt"
  echo "gpu-check: $(date -u +%FT%TZ), commit $(cat "$carry/COMMIT" 2>/dev/null || echo '?'), $(uname -srm)"
  if [[ ! -x $carry/bin/fairbench || ! -f $carry/plugins/eager_ops.so ]]; then
    echo "gpu-check: $carry is missing: run scripts/gpu-build.sh here first and carry build-gpu/carry"
    return 2
  fi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
    || echo "gpu-check: nvidia-smi failed"

  # cuBLAS 13 from this machine's CUDA installation (or PyTorch's pip wheel)
  local cublas_dir=""
  cublas_dir=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 / {print $NF; exit}' | xargs -r dirname)
  if [[ -z $cublas_dir ]]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
             /usr/local/cuda-13*/targets/x86_64-linux/lib /usr/local/lib/python3*/dist-packages/nvidia/cu13/lib \
             /opt/*/.venv/lib/python3*/site-packages/nvidia/cu13/lib /opt/*/.venv/lib/python3*/site-packages/nvidia/cublas/lib \
             /usr/local/lib/python3*/dist-packages/nvidia/cublas/lib; do
      if [[ -e $d/libcublas.so.13 ]]; then cublas_dir=$d; break; fi
    done
  fi
  [[ -z $cublas_dir ]] && cublas_dir=$(find / -name 'libcublas.so.13' -not -path '/proc/*' 2>/dev/null | head -n 1 | xargs -r dirname)
  echo "gpu-check: libcublas.so.13 from ${cublas_dir:-nowhere}"
  export LD_LIBRARY_PATH=$carry/lib${cublas_dir:+:$cublas_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export FAIRBENCH_PLUGIN_PATH=$carry/plugins
  local missing
  missing=$(for f in "$carry"/bin/* "$carry"/plugins/*.so; do ldd "$f" | sed "s|^|$(basename "$f"): |"; done | grep 'not found')
  if [[ -n $missing ]]; then echo "gpu-check: missing libraries:"; echo "$missing"; else echo "gpu-check: all libraries found"; fi

  local bin=$carry/bin
  step plugins 30 "$bin/fairbench" plugins
  grep -qE '^eager_ops .* available: ' "$work/plugins.out" || echo "gpu-check: eager_ops is NOT available here"
  step op_kernels 60 "$bin/test_eager_ops_kernels"
  step agreement_synth 120 "$bin/test_eager_ops" "$work"
  step synth_1b 60 "$bin/fairbench" synth --preset llama3.2-1b --type F16 --threads 16 -o /tmp/gpu-check-1b.gguf
  if [[ -f /tmp/gpu-check-1b.gguf ]]; then
    step bench_1b 120 "$bin/bench_gpu" /tmp/gpu-check-1b.gguf --precision f16,f32 --graphs 0,1 --tokens 128 \
      --prompt 16 --warmup 8
    step agreement_1b 90 "$bin/test_eager_ops" "$work" --model /tmp/gpu-check-1b.gguf --positions 32
  fi
  rm -f /tmp/gpu-check-1b.gguf

  # ---------------------------------------------------------------- the table, last
  echo
  note "================================ gpu-check summary"
  note "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
  note ""
  note "$(printf '%-22s %-22s %6s  %s' step outcome time checks)"
  while read -r line; do note "$line"; done <"$work/steps.txt"
  if [[ -f $work/bench_1b.out ]]; then
    note ""
    note "llama3.2-1b (synthetic, F16 file), decode after 16 prompt tokens, 128 timed steps:"
    while read -r line; do note "  $line"; done < <(grep -E '^(backend|eager_ops) ' "$work/bench_1b.out")
    local f16_off f16_on
    f16_off=$(awk '$1 == "eager_ops" && $2 == "f16" && $3 ~ /^0\// {print $9}' "$work/bench_1b.out")
    f16_on=$(awk '$1 == "eager_ops" && $2 == "f16" && $3 ~ /^1\// {print $9}' "$work/bench_1b.out")
    note "targets at f16: graphs off >= 250 tok/s: ${f16_off:-?}; graphs on >= 500 tok/s: ${f16_on:-?}"
  fi
  if [[ -f $work/agreement_1b.out ]]; then
    note "$(grep -E 'top-1 [0-9]+/[0-9]+' "$work/agreement_1b.out" | sed 's/^ */1B agreement: /' | head -n 1)"
  fi
  if [[ -f $work/agreement_synth.out ]]; then
    note "synthetic model agreement with cpu_ref:"
    while read -r line; do note "  $line"; done < <(grep -E 'top-1 [0-9]+/[0-9]+' "$work/agreement_synth.out" | sed 's/^ *//')
  fi
  if grep -qvE ' ok ' "$work/steps.txt"; then note "gpu-check: SOME STEPS DID NOT PASS"; return 1; fi
  note "gpu-check: all steps passed"
}

main 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
