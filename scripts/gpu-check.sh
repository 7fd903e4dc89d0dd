#!/usr/bin/env bash
# gpu-check.sh - the checks of the CUDA backends (eager_ops, jit_fused) that
# need a GPU, in one short run on a lent GPU machine.
#
# Prepare here (a machine with the CUDA toolkit, no GPU needed):
#     scripts/gpu-build.sh              # -> build-gpu/carry, about 4 MB
# Then, on the GPU machine, from the repository root, with build-gpu/carry
# carried along:
#     bash scripts/gpu-check.sh [--only jit_fused|eager_ops|llamacpp|python|wall] [--skip-native]
#                               [--budget SECONDS]
#
# Modes and their device time. No row is a fresh measurement: "stated" is
# the figure this script gave before later steps were added (its origin is
# not recorded), every other figure is estimated, unmeasured; the step
# limits (or the budget) are what bounds a run.
#   mode              device time                            bounded by
#   (default)         about 4 min on an H100 before the      the step limits, about 23 min in all
#                     native steps (stated), + an estimated
#                     3-4 for them (unmeasured)
#   --skip-native     about 4 min (stated)                   the step limits
#   --only eager_ops  about 2-3 min (estimated, unmeasured)  the step limits
#   --only jit_fused  about 5-6 min (estimated, unmeasured)  the step limits
#   --only llamacpp   about 3 min (estimated, unmeasured)    the step limits
#   --only python     about 6 min (estimated, unmeasured)    the step limits, about 10 min
#   --only wall       about 8 min on an H200 (estimated,     --budget (480 s by default): no step
#                     unmeasured)                            starts past it; tables printed by then
#
# Default mode, steps each under its own time limit:
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
#   --only llamacpp runs just those (with steps 2 and 5, not the native one).
# and prints a short table last, with the targets of both backends.
#
#     bash scripts/gpu-check.sh --only python      (a separate run)
# runs instead the Python bridge's frameworks on the GPU: the machine's own
# Python with its own PyTorch (FAIRBENCH_PYTHON, else python3), TinyGrad from
# the wheel carried in build-gpu/carry/wheels (installed with --no-index into
# a venv over the machine's site packages), then profiles/frameworks.ini on
# the synthetic 1B model at f16 (torch, tinygrad, cpu_ref as reference, and
# the CUDA backends), and prints the report last.
#
#     bash scripts/gpu-check.sh --only wall [--budget SECONDS]   (a separate run)
# measures issue 17's figures, every step under its own limit (seconds) and
# none started past the budget:
#   plugins 30; synth_1b 60 (llama3.2-1b F16); agree_1b_jit_fused 90 and
#   agree_1b_eager_ops 90 (test_gpu_backend --model, f16, 32 positions);
#   agree_1b_jit_fused_kernels 60 (the same with decode = kernels);
#   bench_1b 120 (bench_gpu, eager_ops and jit_fused, f16, graphs on, warm
#   cache asked, prompts 16 and 2048); bench_1b_kernels 60 (jit_fused
#   with decode = kernels, its per-op graph, beside the persistent step
#   measured in bench_1b); fresh_1b_jit_fused 30 and
#   fresh_1b_eager_ops 30 (each a fresh process on the file just read, so in
#   the page cache, the kernel cache warm from bench_1b: load and cold start);
#   llamacpp_1b 60 (when carried: the same bench for llama.cpp, the prefill
#   target); synth_8b 150 (llama3-8b F16, 16 GB, when /tmp has 20 GiB free);
#   bench_8b 150; fresh_8b_jit_fused 45, fresh_8b_eager_ops 45; llamacpp_8b
#   90 (when carried); synth_1b_Q8_0 60 and bench_1b_native_Q8_0 60;
#   synth_1b_Q4_K_M 60, agree_1b_native_Q4_K_M 120 (jit_fused; eager_ops
#   refuses native) and bench_1b_native_Q4_K_M 60 (jit_fused at native,
#   prompts 16 and 2048); torch_1b 240 (PyTorch through the Python bridge,
#   the machine's own: torch.compile mode reduce-overhead, i.e. CUDA graphs,
#   f16, the same file, prompts and harness; its prefill is its decode step
#   token by token, and its cold start includes the compile); torch_8b 300,
#   only when 200 s of the budget are left. The limits add up to about 33
#   minutes (31 without llama.cpp): the budget (480 s by default), not their
#   sum, bounds the run, each limit is cut to what is left of it, and the
#   steps come in order of importance (what the table needs first). It prints every measured row (tok/s and % of copy bandwidth
#   at prompts 16 and 2048, prefill tok/s and time to first token, load,
#   cold start), then LAST a table with one row per figure of issue 17:
#   measured value, target, PASS / FAIL, or ? where it was not measured (a
#   step that failed, timed out or did not run, or a target this run lacks),
#   under the card's name and the copy bandwidth. Exit 0 only when every
#   step ran and passed and no figure FAILs.
#   `--report-from DIR` rebuilds that mode's tables from the step outputs
#   of an earlier run (DIR: the *.out files, e.g. $OUT/wall-steps.tar.gz
#   unpacked) without running anything.
#
# Every output is also written under $OUT (when set): gpu-check.log,
# summary.txt (and, for --only wall, wall-table.txt, wall-rows.txt and
# wall-steps.tar.gz, every step's output).
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

# step NAME SECONDS COMMAND...: run with a time limit, log everything, record the outcome.
# Under a budget (deadline > 0, in $SECONDS) the limit is cut to what is left, and a step
# with under 10 s left is not started (recorded as NOT RUN, status 125).
deadline=0
step() {
  local name=$1 limit=$2
  shift 2
  if ((deadline > 0)); then
    local left=$((deadline - SECONDS))
    if ((left < 10)); then
      echo
      echo "=== $name: not run, the time budget is spent"
      printf '%-24s %-22s %5ss/%-4s %s\n' "$name" "NOT RUN (no time left)" 0 "$limit" "" >>"$work/steps.txt"
      return 125
    fi
    ((limit > left)) && limit=$left
  fi
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
  printf '%-24s %-22s %5ss/%-4s %s\n' "$name" "$verdict" "$((SECONDS - t0))" "$limit" "$counts" >>"$work/steps.txt"
  return "$rc"
}

# bench_value FILE COLUMN [NAME=VALUE | NAME~REGEX]...: the COLUMN of the first row of
# bench_gpu's table in FILE whose columns match every condition, columns found by their
# header names (never by position: columns get added); nothing when there is no such row
# or column. A trailing % is dropped.
bench_value() {
  local file=$1 col=$2
  shift 2
  [[ -f $file ]] || return 0
  awk -v col="$col" -v conds="$*" '
    BEGIN { nc = split(conds, c, " ") }
    $1 == "backend" && $2 == "prec" { delete idx; for (i = 1; i <= NF; i++) idx[$i] = i; width = NF; next }
    width && NF == width && $1 !~ /^#/ {
      ok = 1
      for (k = 1; k <= nc && ok; k++) {
        if (!match(c[k], /[=~]/)) { ok = 0; break }
        name = substr(c[k], 1, RSTART - 1); op = substr(c[k], RSTART, 1); want = substr(c[k], RSTART + 1)
        if (!(name in idx)) { ok = 0; break }
        v = $(idx[name])
        if (op == "=" ? v != want : v !~ want) ok = 0
      }
      if (ok && (col in idx)) { v = $(idx[col]); sub(/%$/, "", v); print v; exit }
    }' "$file"
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
  rm -f "$work"/*.out # a step that does not run this time must not be summarised from an earlier run
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
  if [[ -f $carry/plugins/llamacpp.so && -f $carry/llamacpp-cuda.tar.xz && ( -z $only || $only == llamacpp || $only == wall ) ]]; then
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
  if [[ $only == wall ]]; then wall_check "$lcpp_lib"; return; fi
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
  note "$(printf '%-24s %-22s %11s %s' step outcome time/limit checks)"
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
    # bench_gpu's columns, read by their header names
    local e_off e_on j_on j_load j_cold j_pct
    e_off=$(bench_value "$b1" tok/s backend=eager_ops prec=f16 graphs~^0/)
    e_on=$(bench_value "$b1" tok/s backend=eager_ops prec=f16 graphs~^1/)
    j_on=$(bench_value "$b1" tok/s backend=jit_fused prec=f16 graphs~^1/ cache~^warm)
    j_pct=$(bench_value "$b1" %copy backend=jit_fused prec=f16 graphs~^1/ cache~^warm)
    j_load=$(bench_value "$b1" load_s backend=jit_fused prec=f16 graphs~^1/ cache~^warm)
    j_cold=$(bench_value "$b1" cold_ms backend=jit_fused prec=f16 graphs~^1/ cache~^warm)
    note "copy bandwidth (read + write) ${copy:-?} GB/s"
    local nodes # each backend's captured decode step, from its notes
    nodes=$(awk '$1 == "eager_ops" || $1 == "jit_fused" {b = $1}
                 match($0, /decode graph of [0-9]+ nodes/) {n[b] = substr($0, RSTART, RLENGTH)}
                 END {for (k in n) printf "%s: %s; ", k, n[k]}' "$b1")
    [[ -n $nodes ]] && note "${nodes%; }"
    [[ $backends == *eager_ops* ]] && note "eager_ops targets at f16: graphs off >= 250 tok/s: ${e_off:-?}; graphs on >= 500 tok/s: ${e_on:-?}"
    [[ $backends == *jit_fused* ]] && note "jit_fused targets at f16, warm cache, graphs on: decode >= 80% of copy bandwidth: ${j_pct:+$j_pct%}${j_pct:-?} (${j_on:-?} tok/s); cold start <= 50 ms: ${j_cold:-?} ms; load <= 1.5 s: ${j_load:-?} s"
    # native: tok/s against jit_fused's own f16 above (same card, same run), GB/s, % of copy bandwidth
    local q nb n_tok n_gbs n_pct want
    for q in Q8_0 Q4_0 Q4_K_M; do
      nb=$work/bench_1b_native_$q.out
      [[ -f $nb ]] || continue
      n_tok=$(bench_value "$nb" tok/s backend=jit_fused prec=native)
      n_gbs=$(bench_value "$nb" GB/s backend=jit_fused prec=native)
      n_pct=$(bench_value "$nb" %copy backend=jit_fused prec=native)
      want="-"
      [[ $q == Q8_0 ]] && want=">= 1.7x"
      [[ $q == Q4_K_M ]] && want=">= 2.5x"
      note "jit_fused native $q: ${n_tok:-?} tok/s = $(awk -v a="${n_tok:-0}" -v b="${j_on:-0}" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "?"}') f16 (target $want), ${n_gbs:-?} GB/s, ${n_pct:+$n_pct%}${n_pct:-?} of copy bandwidth (target >= 60%)"
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
  note "$(printf '%-24s %-22s %11s %s' step outcome time/limit checks)"
  while read -r line; do note "$line"; done <"$work/steps.txt"
  note "targets: each Python backend's top-1 agreement with cpu_ref at f16 >= 99%; torch on an H200 outside"
  note "fairbench: eager ~63, CUDA graphs ~320, compile reduce-overhead ~580 tok/s; tinygrad.llm ~34 tok/s"
  [[ -f $out/frameworks_1b.txt ]] && while IFS= read -r line; do note "$line"; done <"$out/frameworks_1b.txt"
}

# ---------------------------------------------------------------- --only wall (issue 17)
# The figures of issue 17 in one run under a time budget: decode tok/s and % of copy
# bandwidth at prompts 16 and 2048 (1B and 8B at f16, the 1B shapes at native Q8_0 and
# Q4_K_M), prefill at 2048, load from the page cache, cold start with a warm kernel cache,
# agreement with cpu_ref; eager_ops, PyTorch (and llama.cpp when carried) beside jit_fused.
wall_check() {
  local lcpp_lib=$1 bin=$carry/bin
  deadline=$((wall_budget - 25)) # seconds since the script started; the last 25 s are the tables'
  local d1=/tmp/gpu-check-1b.gguf d8=/tmp/gpu-check-8b.gguf
  # the presets; other (smaller) ones only for a dry run of this flow on a machine without a GPU
  local p1=${GPU_CHECK_PRESET_1B:-llama3.2-1b} p8=${GPU_CHECK_PRESET_8B:-llama3-8b}
  # the same harness and shapes for every backend: 128 timed decode steps after 8, prompts 16 and 2048
  local bench=(--graphs 1 --jit-cache warm --tokens 128 --warmup 8 --prompt "16,2048")
  # a fresh process on a file just read (page cache) with the kernel cache the bench filled: load, cold start
  local fresh=(--precision f16 --graphs 1 --jit-cache warm --tokens 16 --warmup 4 --prompt 16 --prefill-reps 1)
  echo "gpu-check --only wall: budget ${wall_budget}s (no step starts after ${deadline}s)"
  # nothing of an earlier run (of any mode) may stand in for a step of this one
  rm -f "$work"/card.txt "$work"/size_*.txt "$d1" "$d8" /tmp/gpu-check-1b-*.gguf
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 >"$work/card.txt"
  # PyTorch: the machine's own Python (FAIRBENCH_PYTHON, else python3) through the Python bridge
  local py=${FAIRBENCH_PYTHON:-$(command -v python3)} torch_ok=0
  if [[ ! -f $carry/plugins/python.so ]]; then
    echo "gpu-check: $carry/plugins/python.so is missing (scripts/gpu-build.sh with python3-dev): no PyTorch rows"
  elif [[ -n $py ]] && "$py" -c 'import sys, torch, numpy; print("gpu-check: Python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 1)'; then
    export FAIRBENCH_PYTHON=$py
    torch_ok=1
  else
    echo "gpu-check: ${py:-python3} has no torch with CUDA: no PyTorch rows"
  fi
  step plugins 30 "$bin/fairbench" plugins
  local b
  for b in eager_ops jit_fused ${lcpp_lib:+llamacpp}; do
    grep -qE "^$b .* available: " "$work/plugins.out" || echo "gpu-check: $b is NOT available here"
  done
  df -h /tmp | sed 's/^/gpu-check: /'

  # ---- 1B at f16: agreement, bench at prompts 16 and 2048, fresh processes for load and cold start
  step synth_1b 60 "$bin/fairbench" synth --preset "$p1" --type F16 --threads 16 -o "$d1"
  if [[ -f $d1 ]]; then
    stat -c %s "$d1" >"$work/size_1b.txt"
    for b in jit_fused eager_ops; do
      step "agree_1b_$b" 90 "$bin/test_gpu_backend" --backend "$b" "$work" --model "$d1" --positions 32
    done
    # jit_fused's per-op decode too (its default, checked above, is the persistent step)
    step agree_1b_jit_fused_kernels 60 "$bin/test_gpu_backend" --backend jit_fused "$work" --model "$d1" \
      --positions 32 --option decode=kernels
    cat "$d1" >/dev/null
    step bench_1b 120 "$bin/bench_gpu" "$d1" --backend eager_ops,jit_fused --precision f16 "${bench[@]}"
    # jit_fused's per-op decode (a kernel per fused op, ~5 per layer, in a graph) beside its persistent step
    step bench_1b_kernels 60 "$bin/bench_gpu" "$d1" --backend jit_fused --precision f16 "${bench[@]}" \
      --option jit_fused:decode=kernels
    for b in jit_fused eager_ops; do
      cat "$d1" >/dev/null # in the page cache: the load measures conversion and upload, not the disk
      step "fresh_1b_$b" 30 "$bin/bench_gpu" "$d1" --backend "$b" "${fresh[@]}"
    done
    [[ -n $lcpp_lib ]] && step llamacpp_1b 60 "$bin/bench_gpu" "$d1" --backend llamacpp --precision f16 "${bench[@]}"
  fi

  # ---- 8B at f16 (16 GB): bench, fresh processes
  local free_kib
  free_kib=$(df -Pk /tmp | awk 'NR == 2 {print $4}')
  if ((${free_kib:-0} >= 20 * 1048576)); then
    step synth_8b 150 "$bin/fairbench" synth --preset "$p8" --type F16 --threads 16 -o "$d8"
  else
    echo "gpu-check: /tmp has $((${free_kib:-0} / 1048576)) GiB free, under the 20 GiB the 8B file needs: no 8B rows"
  fi
  if [[ -f $d8 ]]; then
    stat -c %s "$d8" >"$work/size_8b.txt"
    cat "$d8" >/dev/null
    step bench_8b 150 "$bin/bench_gpu" "$d8" --backend eager_ops,jit_fused --precision f16 "${bench[@]}"
    for b in jit_fused eager_ops; do
      cat "$d8" >/dev/null
      step "fresh_8b_$b" 45 "$bin/bench_gpu" "$d8" --backend "$b" "${fresh[@]}"
    done
    [[ -n $lcpp_lib ]] && step llamacpp_8b 90 "$bin/bench_gpu" "$d8" --backend llamacpp --precision f16 "${bench[@]}"
  fi

  # ---- the 1B shapes at native (jit_fused; eager_ops refuses native): Q8_0, the Q4_K_M mix
  local q f
  for q in Q8_0 Q4_K_M; do
    f=/tmp/gpu-check-1b-$q.gguf
    if [[ $q == Q4_K_M ]]; then
      step "synth_1b_$q" 60 "$bin/fairbench" synth --preset "$p1" --mix q4_k_m --threads 16 -o "$f"
    else
      step "synth_1b_$q" 60 "$bin/fairbench" synth --preset "$p1" --type "$q" --threads 16 -o "$f"
    fi
    [[ -f $f ]] || continue
    [[ $q == Q4_K_M ]] &&
      step "agree_1b_native_$q" 120 "$bin/test_gpu_backend" --backend jit_fused "$work" --model "$f" --positions 32 --native
    step "bench_1b_native_$q" 60 "$bin/bench_gpu" "$f" --backend jit_fused --precision native "${bench[@]}"
    rm -f "$f"
  done

  # ---- PyTorch: torch.compile mode reduce-overhead (CUDA graphs), the same files and harness.
  # Its prefill is its decode step token by token (the bridge's default), one timed prefill.
  if ((torch_ok)); then
    [[ -f $d1 ]] && step torch_1b 240 "$bin/bench_gpu" "$d1" --backend torch --precision f16 "${bench[@]}" --prefill-reps 1
    if [[ -f $d8 ]] && ((deadline - SECONDS >= 200)); then
      step torch_8b 300 "$bin/bench_gpu" "$d8" --backend torch --precision f16 "${bench[@]}" --prefill-reps 1
    elif [[ -f $d8 ]]; then
      echo "gpu-check: torch_8b not run: under 200 s of the budget left"
    fi
  fi
  rm -f "$d1" "$d8"
  wall_report "$work"
}

# bench_header FILE REGEX: the first of bench_gpu's column names in FILE matching REGEX
bench_header() {
  [[ -f $1 ]] && awk -v re="$2" '$1 == "backend" && $2 == "prec" {for (i = 1; i <= NF; i++) if ($i ~ re) {print $i; exit}}' "$1"
}

# bench_rows FILE LABEL COPY_GBS: every row of bench_gpu's table in FILE, the columns the
# wall report shows, by name; % of copy bandwidth computed against COPY_GBS (marked *)
# for a backend that measures none of its own (PyTorch, llama.cpp)
bench_rows() {
  [[ -f $1 ]] || return 0
  awk -v label="$2" -v copy="${3:-0}" '
    function get(n) { return (n in idx) ? $(idx[n]) : "?" }
    $1 == "backend" && $2 == "prec" {
      delete idx; lg = ""
      for (i = 1; i <= NF; i++) { idx[$i] = i; if ($i ~ /^load.*GB/) lg = $i }
      width = NF; next
    }
    width && NF == width && $1 !~ /^#/ {
      pct = get("%copy")
      if (pct == "-" && copy > 0 && get("GB/s") + 0 > 0) pct = sprintf("%.0f%%*", 100 * get("GB/s") / copy)
      printf "%-12s %-9s %-6s %-6s %-7s %6s %9s %6s %10s %9s %7s %9s %s\n", label, get("backend"), get("prec"),
             get("graphs"), get("cache"), get("prompt"), get("tok/s"), pct, get("warm_pf/s"), get("ttft_ms"),
             get("load_s"), get("cold_ms"), lg == "" ? "" : get(lg)
    }
    width && $1 !~ /^#/ && / failed/ { print label, $0 }' "$1"
}

# agreement FILE: "TOP1_PERCENT RELATIVE_ERROR" from test_gpu_backend --model's line, or nothing
agreement() {
  [[ -f $1 ]] && grep -oE 'top-1 [0-9]+/[0-9]+ \([0-9.]+%\), logits relative error [0-9.eE+-]+' "$1" | tail -n 1 |
    sed -E 's/.*\(([0-9.]+)%\), logits relative error (.*)/\1 \2/'
}

# figure LABEL BACKEND VALUE OP TARGET UNIT [NOTE]: one row of the last table. PASS or FAIL
# only when both VALUE and TARGET are numbers (so measured, with a target), else ?.
figure() {
  local label=$1 backend=$2 value=$3 op=$4 target=$5 unit=$6 note=${7:-} verdict='?'
  local num='^[0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?$'
  if [[ $value =~ $num && $target =~ $num ]]; then
    verdict=$(awk -v v="$value" -v t="$target" -v op="$op" 'BEGIN {print (op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0) ? "PASS" : "FAIL"}')
  fi
  printf '%-40s %-9s %11s  %-2s %-11s %-4s  %s\n' "$label" "$backend" "${value:-?}${value:+$unit}" "$op" \
    "${target:-?}${target:+$unit}" "$verdict" "$note" >>"$figures"
}

# wall_report DIR: the rows and the figures table of --only wall from the step outputs in DIR
wall_report() {
  local rd=$1 figures=$work/wall-figures.txt rows=$out/wall-rows.txt table=$out/wall-table.txt line
  : >"$figures"
  local card copy copies
  card=$(head -n 1 "$rd/card.txt" 2>/dev/null)
  # the copy bandwidth each CUDA session measured (read + write), the first 1B one as the run's
  copies=$(cat "$rd"/bench_*.out "$rd"/fresh_*.out 2>/dev/null | grep -oE '^# +copy bandwidth [0-9]+ GB/s' | grep -oE '[0-9]+' | sort -n)
  copy=$(grep -hoE '^# +copy bandwidth [0-9]+ GB/s' "$rd/bench_1b.out" 2>/dev/null | head -n 1 | grep -oE '[0-9]+')
  [[ -z $copy ]] && copy=$(head -n 1 <<<"$copies")
  echo
  note "================================ gpu-check --only wall: every measured row"
  {
    printf '%-12s %-9s %-6s %-6s %-7s %6s %9s %6s %10s %9s %7s %9s %s\n' model backend prec graphs cache prompt \
      tok/s %copy warm_pf/s ttft_ms load_s cold_ms "load GB/s"
    local s label
    for s in bench_1b bench_1b_kernels llamacpp_1b torch_1b fresh_1b_jit_fused fresh_1b_eager_ops bench_8b llamacpp_8b torch_8b \
             fresh_8b_jit_fused fresh_8b_eager_ops bench_1b_native_Q8_0 bench_1b_native_Q4_K_M; do
      case $s in
        *native_Q8_0) label=1B-Q8_0 ;;
        *native_Q4_K_M) label=1B-Q4_K_M ;;
        *_kernels) label=1B-kernels ;;
        fresh_1b*) label=1B-fresh ;;
        fresh_8b*) label=8B-fresh ;;
        *_1b) label=1B ;;
        *_8b) label=8B ;;
      esac
      bench_rows "$rd/$s.out" "$label" "$copy"
    done
    echo "(prompt: tokens before the timed decode; %copy: of the session's own copy bandwidth, * against the run's,"
    echo " ${copy:-?} GB/s; warm_pf/s: prompt / ttft_ms, the prefill timed after a warm-up prefill; load_s, cold_ms:"
    echo " a session's first row only; fresh: a new process, file in the page cache, kernel cache warm)"
  } >"$rows"
  while IFS= read -r line; do note "$line"; done <"$rows"
  for s in agree_1b_jit_fused agree_1b_jit_fused_kernels agree_1b_eager_ops agree_1b_native_Q4_K_M; do
    line=$(grep -soE 'top-1 [0-9]+/[0-9]+.*' "$rd/$s.out" | tail -n 1)
    [[ -n $line ]] && note "$s: $line"
  done
  note "(step outputs: $out/wall-steps.tar.gz)"

  # ---- the figures of issue 17, one row each
  local m M f b v t16 t2048 want pct_target lcpp_pf note hit size load_s col top1 rel
  for m in 1b 8b; do
    M=${m^^}
    pct_target=85
    [[ $m == 8b ]] && pct_target=90
    f=$rd/bench_$m.out
    for b in jit_fused eager_ops; do
      v=$(bench_value "$f" %copy backend="$b" prec=f16 graphs=1/1 prompt=16)
      note=""
      [[ -z $v && -n $(bench_value "$f" %copy backend="$b" prec=f16 prompt=16) ]] && note="graphs not used"
      figure "decode $M f16, prompt 16: % of copy bw" "$b" "$v" ">=" "$pct_target" "%" "$note"
    done
    for b in jit_fused eager_ops; do
      t16=$(bench_value "$f" tok/s backend="$b" prec=f16 graphs=1/1 prompt=16)
      t2048=$(bench_value "$f" tok/s backend="$b" prec=f16 graphs=1/1 prompt=2048)
      v=""
      [[ -n $t16 && -n $t2048 ]] && v=$(awk -v a="$t2048" -v b="$t16" 'BEGIN {if (b > 0) printf "%.1f", 100 * a / b}')
      figure "decode $M f16, prompt 2048 / prompt 16" "$b" "$v" ">=" 85 "%" "${t2048:-?} / ${t16:-?} tok/s"
    done
  done
  for m in 1b 8b; do
    M=${m^^}
    # the prefill target: llama.cpp in this run, else its 46,600 tok/s on an H200 (1B only)
    lcpp_pf=$(bench_value "$rd/llamacpp_$m.out" warm_pf/s backend=llamacpp prec=f16 prompt=2048)
    want=""
    if [[ -n $lcpp_pf ]]; then
      want=$lcpp_pf
      note="llama.cpp in this run"
    elif [[ $m == 1b && $card == *H200* ]]; then
      want=46600
      note="llama.cpp's figure on an H200 (issue 17)"
    elif [[ $m == 1b ]]; then
      note="no llama.cpp in this run; 46,600 is an H200 figure"
    else
      note="no llama.cpp in this run"
    fi
    for b in jit_fused eager_ops; do
      v=$(bench_value "$rd/bench_$m.out" warm_pf/s backend="$b" prec=f16 graphs=1/1 prompt=2048)
      figure "prefill $M f16, prompt 2048: tok/s" "$b" "$v" ">=" "$want" "" "$note"
    done
  done
  for m in 1b 8b; do
    M=${m^^}
    size=$(cat "$rd/size_$m.txt" 2>/dev/null)
    for b in jit_fused eager_ops; do
      f=$rd/fresh_${m}_$b.out
      col=$(bench_header "$f" '^load.*GB')
      if [[ -n $col ]]; then
        v=$(bench_value "$f" "$col" backend="$b" prec=f16 prompt=16)
        note="bench_gpu's $col"
      else
        load_s=$(bench_value "$f" load_s backend="$b" prec=f16 prompt=16)
        v=""
        [[ -n $load_s && -n $size ]] && v=$(awk -v b="$size" -v s="$load_s" 'BEGIN {if (s > 0) printf "%.2f", b / s / 1e9}')
        note="file bytes / load_s (${load_s:-?} s)"
      fi
      figure "load $M f16 from the page cache: GB/s" "$b" "$v" ">=" 5 "" "$note"
    done
  done
  for m in 1b 8b; do
    M=${m^^}
    for b in jit_fused eager_ops; do
      f=$rd/fresh_${m}_$b.out
      v=$(bench_value "$f" cold_ms backend="$b" prec=f16 prompt=16)
      hit=$(bench_value "$f" cache backend="$b" prec=f16 prompt=16)
      note="fresh process, cache ${hit:-?}"
      if [[ $b == jit_fused && -n $v && $hit != warm/1 ]]; then
        note="kernel cache not hit ($hit): $v ms is not a warm-cache figure"
        v=""
      fi
      [[ $b == eager_ops ]] && note="fresh process, precompiled kernels"
      figure "cold start $M f16, warm kernel cache: ms" "$b" "$v" "<=" 50 "" "$note"
    done
  done
  for b in jit_fused jit_fused_kernels eager_ops; do # jit_fused_kernels: jit_fused with decode = kernels
    read -r top1 rel < <(agreement "$rd/agree_1b_$b.out")
    figure "agreement 1B f16: top-1 vs cpu_ref" "$b" "${top1:-}" ">=" 99 "%"
    figure "agreement 1B f16: logits relative error" "$b" "${rel:-}" "<=" 1e-3 ""
  done
  read -r top1 rel < <(agreement "$rd/agree_1b_native_Q4_K_M.out")
  figure "agreement 1B Q4_K_M native: top-1" jit_fused "${top1:-}" ">=" 99 "%" "logits relative error ${rel:-?}"

  # ---- the steps, then the table, last
  echo
  note "================================ gpu-check --only wall: steps (time used / limit)"
  while IFS= read -r line; do note "$line"; done <"$rd/steps.txt"
  local failed_steps=0 fails=0
  grep -qvE ' ok ' "$rd/steps.txt" && failed_steps=1
  grep -qE ' FAIL ' "$figures" && fails=1
  {
    echo "================================ gpu-check --only wall: issue 17's figures"
    echo "card: ${card:-?}; copy bandwidth (read + write, measured in this run): ${copy:-?} GB/s" \
      "(all sessions: $(if [[ -n $copies ]]; then tr '\n' ' ' <<<"$copies" | sed 's/ $//'; else echo none; fi))"
    printf '%-40s %-9s %11s  %-14s %-4s  %s\n' figure backend measured target verdict note
    cat "$figures"
    echo "(? : not measured in this run, or no target to compare with; PASS/FAIL only for a measured figure)"
    if ((failed_steps)); then echo "gpu-check: SOME STEPS DID NOT PASS (see the steps above)"; fi
    if ((fails)); then echo "gpu-check: SOME FIGURES FAIL"; fi
    if ((!failed_steps && !fails)); then echo "gpu-check: all steps passed, no figure fails"; fi
  } >"$table"
  echo
  while IFS= read -r line; do note "$line"; done <"$table"
  tar -C "$rd" -czf "$out/wall-steps.tar.gz" --exclude='*-kernel-cache' --exclude=jit-cache --exclude=llamacpp \
    --exclude=pyvenv --exclude='*.gguf' . 2>/dev/null
  ((failed_steps || fails)) && return 1
  return 0
}

usage() {
  echo "usage: gpu-check.sh [--only jit_fused|eager_ops|llamacpp|python|wall] [--skip-native] [--budget SECONDS]"
  echo "       gpu-check.sh --only wall --report-from DIR    (the wall tables from an earlier run's step outputs)"
  exit 2
}
only=""
skip_native=0
wall_budget=480
report_from=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --only) only=${2:-}; shift 2 || usage ;;
    --skip-native) skip_native=1; shift ;;
    --budget) wall_budget=${2:-}; shift 2 || usage ;;
    --report-from) report_from=${2:-}; shift 2 || usage ;;
    *) usage ;;
  esac
done
case $only in
  ""|jit_fused|eager_ops|llamacpp|python|wall) ;;
  *) echo "gpu-check: --only takes jit_fused, eager_ops, llamacpp, python or wall, not '$only'"; usage ;;
esac
if [[ ! $wall_budget =~ ^[0-9]+$ ]] || ((wall_budget < 60)); then
  echo "gpu-check: --budget takes a whole number of seconds, 60 or more, not '$wall_budget'"
  usage
fi
if [[ -n $report_from ]]; then
  [[ -f $report_from/steps.txt ]] || { echo "gpu-check: $report_from has no steps.txt: not the step outputs of a --only wall run"; exit 2; }
  work=$(mktemp -d) # its own scratch folder: a report never touches a run's
  wall_report "$report_from" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  rm -rf "$work"
  exit "$rc"
fi
main 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
