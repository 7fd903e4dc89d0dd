#!/usr/bin/env bash
# setup-llamacpp.sh - llama.cpp's shared libraries for the llamacpp plugin.
#
#   scripts/setup-llamacpp.sh          # CPU build, once; prints the install folder
#   scripts/setup-llamacpp.sh --cuda   # also a CUDA build (needs nvcc; sm_90, or CUDA_ARCHS="80;90")
#   scripts/setup-llamacpp.sh --path   # print where the CPU build lives; build nothing
#   scripts/setup-llamacpp.sh --cuda-path
#
# Source: llama.cpp as vendored in the PyPI source distribution of
# llama-cpp-python (vendor/llama.cpp), at a pinned version whose SHA-256 is
# checked before anything is unpacked. Only libllama and ggml are built (no
# common library, examples, tools, server or tests), as shared libraries with
# RUNPATH $ORIGIN, so libllama.so finds its ggml siblings wherever the folder
# is copied:
#   $cache/<version>/src/     the unpacked llama.cpp source (kept for --cuda)
#   $cache/<version>/cpu/     include/llama.h, lib/libllama.so, libggml*.so
#   $cache/<version>/cuda/    the same with ggml's CUDA backend linked in
# $cache is ~/.cache/fairbench/llama.cpp (FAIRBENCH_LLAMACPP_CACHE overrides it).
# A finished build is never rebuilt: a STAMP file marks it complete.
#
# A user with a llama.cpp build of their own skips all this: configure
# fairbench with FAIRBENCH_LLAMACPP_DIR=<prefix> (a folder holding
# include/llama.h and lib/libllama.so, or llama.h and libllama.so).
set -euo pipefail

PACKAGE=llama-cpp-python
VERSION=0.3.36
SDIST=llama_cpp_python-0.3.36.tar.gz
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

cache=${FAIRBENCH_LLAMACPP_CACHE:-${HOME:-/root}/.cache/fairbench/llama.cpp}
base=$cache/$VERSION
src=$base/src
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

case ${1:-} in
  --path) echo "$base/cpu"; exit 0 ;;
  --cuda-path) echo "$base/cuda"; exit 0 ;;
  ""|--cuda) ;;
  *) echo "setup-llamacpp: unknown argument '$1' (known: --cuda, --path, --cuda-path)" >&2; exit 2 ;;
esac

say() { echo "setup-llamacpp: $*" >&2; }

# ---------------------------------------------------------------- the source
fetch_source() {
  [[ -f $src/include/llama.h && -f $src/.fairbench-complete ]] && return 0
  mkdir -p "$base"
  local tmp
  tmp=$(mktemp -d "$base/.fetch.XXXXXX")
  # (removed by the EXIT trap below, also on failure)
  trap 'rm -rf "$tmp"' EXIT
  say "downloading $PACKAGE==$VERSION's source distribution from PyPI (about 77 MB)"
  # (pip prepares the sdist's metadata, which fetches its build back-end, scikit-build-core, as a
  # wheel: --no-binary names only this package, so no build dependency is compiled from source)
  python3 -m pip download --quiet --no-deps --no-binary "$PACKAGE" -d "$tmp" "$PACKAGE==$VERSION" >&2
  [[ -f $tmp/$SDIST ]] || { say "$SDIST is not among the downloaded files"; exit 1; }
  [[ $(sha256sum "$tmp/$SDIST" | cut -d' ' -f1) == "$SDIST_SHA256" ]] \
    || { say "$SDIST has the wrong SHA-256 (expected $SDIST_SHA256)"; exit 1; }
  tar -xzf "$tmp/$SDIST" -C "$tmp" "${SDIST%.tar.gz}/vendor/llama.cpp"
  rm -rf "$src"
  mv "$tmp/${SDIST%.tar.gz}/vendor/llama.cpp" "$src"
  touch "$src/.fairbench-complete"
  rm -rf "$tmp"
  trap - EXIT
}

# ---------------------------------------------------------------- one build
# build NAME CMAKE_ARGS...: configure, build and install libllama + ggml into $base/NAME
build() {
  local name=$1
  shift
  local prefix=$base/$name build_dir=$base/build-$name
  if [[ -f $prefix/STAMP ]]; then
    say "$name build already in $prefix"
    return 0
  fi
  fetch_source
  local t0=$SECONDS
  rm -rf "$prefix" "$build_dir"
  say "building llama.cpp $VERSION ($name) with $jobs jobs into $prefix"
  cmake -S "$src" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF \
    -DLLAMA_BUILD_NUMBER=0 -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_INSTALL_RPATH='$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=OFF "$@" >"$base/configure-$name.log" 2>&1 \
    || { tail -n 30 "$base/configure-$name.log" >&2; say "configuring the $name build failed (log: $base/configure-$name.log)"; exit 1; }
  cmake --build "$build_dir" -j "$jobs" --target llama >"$base/build-$name.log" 2>&1 \
    || { tail -n 30 "$base/build-$name.log" >&2; say "the $name build failed (log: $base/build-$name.log)"; exit 1; }
  cmake --install "$build_dir" >"$base/install-$name.log" 2>&1 \
    || { tail -n 30 "$base/install-$name.log" >&2; say "installing the $name build failed"; exit 1; }
  [[ -f $prefix/include/llama.h && -e $prefix/lib/libllama.so ]] \
    || { say "the $name build left no lib/libllama.so and include/llama.h in $prefix"; exit 1; }
  rm -rf "$build_dir"
  echo "llama.cpp $VERSION ($PACKAGE sdist $SDIST_SHA256), $name build, $((SECONDS - t0)) s with $jobs jobs, $(date -u +%FT%TZ)" \
    >"$prefix/STAMP"
  say "$name build done in $((SECONDS - t0)) s"
}

# The CPU build: ggml's CPU backend for this machine's instruction set
# (GGML_NATIVE, as a user building llama.cpp here gets it), OpenMP threads.
build cpu -DGGML_NATIVE=ON
if [[ ${1:-} == --cuda ]]; then
  command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] \
    || { say "--cuda needs nvcc (the CUDA toolkit), which is not installed here"; exit 1; }
  export PATH=$PATH:/usr/local/cuda/bin
  # Only what the plugin runs: ggml's CUDA backend for the GPU machine's
  # architecture (sm_90 by default; CUDA_ARCHS="80;90" for both), the CPU
  # part built for a generic x86-64 so it runs on any host CPU.
  build cuda -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" -DGGML_NATIVE=OFF
  echo "$base/cuda"
fi
echo "$base/cpu"
