#!/usr/bin/env bash
# gpu-build.sh - prepare, on a machine with the CUDA toolkit (no GPU needed),
# the folder that scripts/gpu-check.sh runs on a GPU machine.
#
#   scripts/gpu-build.sh            -> build-gpu/carry (ignored by git, about 3 MB; with
#                                      llamacpp, plus its xz'd CUDA libraries)
#   GPU_BUILD_JOBS=1 scripts/gpu-build.sh   the same on one core (default: all of them)
#
# Builds a Release tree in build-gpu/ with only what the check needs
# (fairbench, cpu_ref, eager_ops, jit_fused, their tests and bench_gpu),
# then copies into build-gpu/carry:
#   bin/      fairbench test_gpu_backend test_eager_ops_kernels bench_gpu
#   plugins/  cpu_ref.so eager_ops.so jit_fused.so; python.so and its Python files
#             when python3-dev is here (gpu-check --only python, and the
#             PyTorch rows of --only wall: without it they are left out);
#             llamacpp.so when configured (below)
#   lib/      the Debian runtime libraries those link that a GPU machine may
#             lack (libpcre2-8, and any other non-glibc, non-CUDA library
#             ldd shows), so the GPU machine needs none of our -dev packages.
# The CUDA runtime is linked statically into both CUDA plugins; cuBLAS
# (libcublas.so.13, eager_ops) and NVRTC (libnvrtc.so.13, jit_fused) come
# from the GPU machine's own CUDA 13 installation, found by gpu-check.sh. Carry build-gpu/carry to the GPU machine and run
#   bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build-gpu
carry=$build/carry
jobs=${GPU_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}

mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFB_WERROR=OFF >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; exit 1; }
grep -q 'CUDA toolkit found' "$build/configure.log" \
  || { echo "gpu-build: CMake found no CUDA toolkit (nvcc); the CUDA plugins cannot be built" >&2; exit 1; }
cmake --build "$build" -j "$jobs" --target fairbench cpu_ref eager_ops jit_fused test_gpu_backend test_eager_ops_kernels \
  bench_gpu
# llamacpp (when configured): the plugin, compiled against the CPU build's llama.h
# (scripts/setup-llamacpp.sh), runs llama.cpp's CUDA build on the GPU machine.
grep -q 'llama.cpp found' "$build/configure.log" && cmake --build "$build" -j "$jobs" --target llamacpp
# The Python bridge (gpu-check.sh --only python, and --only wall's PyTorch rows), when python3-dev is here.
if grep -q 'Python bridge plugin is skipped' "$build/configure.log"; then
  echo "gpu-build: no python.so (python3-dev is missing): gpu-check --only python cannot run, --only wall will have no PyTorch rows" >&2
else
  cmake --build "$build" -j "$jobs" --target python
fi

rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/plugins" "$carry/lib"
cp "$build/fairbench" "$build/test_gpu_backend" "$build/test_eager_ops_kernels" "$build/bench_gpu" "$carry/bin/"
cp "$build/plugins/cpu_ref.so" "$build/plugins/eager_ops.so" "$build/plugins/jit_fused.so" "$carry/plugins/"
if [[ -f $build/plugins/python.so ]]; then # with its Python files, and TinyGrad as a wheel (pure Python, 2.5 MB)
  cp -r "$build/plugins/python.so" "$build/plugins/python" "$carry/plugins/"
  mkdir -p "$carry/wheels"
  python3 -m pip download -q --no-deps -d "$carry/wheels" tinygrad==0.13.0 \
    || echo "gpu-build: could not download the tinygrad wheel; gpu-check --only python will lack tinygrad" >&2
fi
strip --strip-unneeded "$carry"/bin/* "$carry"/plugins/*.so 2>/dev/null || true

# Runtime libraries outside glibc, the GCC runtime and CUDA: carried along.
for f in "$carry"/bin/* "$carry"/plugins/*.so; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
    libcublas*|libcudart*|libcuda.so*|libnvrtc*) ;;
    *) cp -L "$lib" "$carry/lib/" && echo "gpu-build: carrying $(basename "$lib") from $lib" ;;
  esac
done

# The profiling pass's CUPTI recorder (docs/why.md) and the libcupti it links.
if cmake --build "$build" -j "$jobs" --target fb_cupti_recorder >/dev/null 2>&1; then
  cp "$build/lib/fb_cupti_recorder.so" "$carry/lib/"
  cupti=$(ldd "$carry/lib/fb_cupti_recorder.so" | awk '$1 ~ /^libcupti/ && $3 ~ /^\// {print $3}')
  [[ -n $cupti ]] && cp -L "$cupti" "$carry/lib/" && echo "gpu-build: carrying $(basename "$cupti") from $cupti"
else
  echo "gpu-build: no CUPTI recorder (CUPTI not found): the profiling pass will have no GPU kernel breakdown"
fi

# llama.cpp's CUDA libraries (scripts/setup-llamacpp.sh --cuda: sm_90, built once, long
# on 2 cores) as one xz archive, so the carried folder stays well under its 64 MiB.
lcpp_cuda=$("$root/scripts/setup-llamacpp.sh" --cuda-path)
if [[ -f $build/plugins/llamacpp.so && -f $lcpp_cuda/STAMP ]]; then
  cp "$build/plugins/llamacpp.so" "$carry/plugins/"
  strip --strip-unneeded "$carry/plugins/llamacpp.so" 2>/dev/null || true
  tmp_lib=$(mktemp -d)
  mkdir -p "$tmp_lib/lib"
  cp -P "$lcpp_cuda"/lib/lib*.so* "$tmp_lib/lib/"
  cp "$lcpp_cuda/STAMP" "$tmp_lib/"
  strip --strip-unneeded "$tmp_lib"/lib/*.so.*.* 2>/dev/null || true
  echo "gpu-build: llama.cpp CUDA libraries $(du -sh "$tmp_lib/lib" | cut -f1) stripped"
  tar -C "$tmp_lib" -cJf "$carry/llamacpp-cuda.tar.xz" lib STAMP
  rm -rf "$tmp_lib"
  echo "gpu-build: carrying llamacpp.so and llamacpp-cuda.tar.xz ($(du -sh "$carry/llamacpp-cuda.tar.xz" | cut -f1))"
else
  echo "gpu-build: no llamacpp (plugin: $build/plugins/llamacpp.so, CUDA build: $lcpp_cuda): run scripts/setup-llamacpp.sh --cuda first to check llamacpp on the GPU"
fi

git -C "$root" rev-parse --short=12 HEAD >"$carry/COMMIT" 2>/dev/null || echo unknown >"$carry/COMMIT"
echo "gpu-build: $(du -sh "$carry" | cut -f1) in $carry:"
(cd "$carry" && find . -type f | sort | xargs ls -l | awk '{printf "  %9d  %s\n", $5, $NF}')
