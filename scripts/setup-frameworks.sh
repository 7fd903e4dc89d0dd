#!/usr/bin/env bash
# setup-frameworks.sh - a Python venv with the frameworks the Python bridge
# runs (torch, tinygrad) and what its backends need (numpy, gguf), at pinned
# versions from PyPI. The bridge uses this venv by default
# (FAIRBENCH_PYTHON or a profile's `python` option choose another).
#
#   scripts/setup-frameworks.sh [--venv DIR] [--python PYTHON] [--without-torch]
#
#   --venv DIR        where (default ~/.cache/fairbench/venv)
#   --python PYTHON   the interpreter to base it on (default python3 on PATH;
#                     it needs a shared libpython, as Debian's and pyenv's have)
#   --without-torch   tinygrad, numpy and gguf only (about 25 MB)
#
# Sizes, measured on Linux x86_64 with Python 3.11 (2026-11): PyPI has only
# CUDA builds of torch for Linux x86_64 (the CPU-only wheels live on
# PyTorch's own index, which this project does not use), so torch 2.11.0
# brings its CUDA 13 libraries: about 2.7 GB to download (torch 531 MB,
# nvidia-* and triton 2.2 GB) and 4.7 GB on disk; 1.5 minutes here on a fast
# link. Without torch: about 25 MB to download, 20 s. Safe to run again: pip
# skips what is already installed.
set -euo pipefail

torch_pin=2.11.0
tinygrad_pin=0.13.0   # 0.14.0's wheel lacks tinygrad.llm.kernels: its own LLaMA does not import
numpy_pin=2.4.6       # needs Python 3.11+; older Pythons get the newest numpy they support
gguf_pin=0.19.0

venv=${FAIRBENCH_VENV:-$HOME/.cache/fairbench/venv}
python=python3
with_torch=1
while (( $# )); do
  case $1 in
    --venv) venv=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --without-torch) with_torch=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "setup-frameworks: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

command -v "$python" >/dev/null || { echo "setup-frameworks: no $python on PATH (--python names another)" >&2; exit 1; }
read -r version shared < <("$python" -c 'import sys, sysconfig; print("%d.%d" % sys.version_info[:2], sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)')
if [[ $shared != 1 ]]; then
  echo "setup-frameworks: $python (Python $version) has no shared libpython: the bridge cannot load it; --python names another" >&2
  exit 1
fi
numpy_spec="numpy==$numpy_pin"
[[ $version == 3.9 || $version == 3.10 ]] && numpy_spec="numpy<2.3"

packages=("$numpy_spec" "gguf==$gguf_pin" "tinygrad==$tinygrad_pin")
(( with_torch )) && packages+=("torch==$torch_pin")
echo "setup-frameworks: venv $venv from $python (Python $version): ${packages[*]}"
if (( with_torch )); then
  echo "setup-frameworks: download about 2.7 GB (torch $torch_pin with its CUDA libraries; PyPI has no CPU-only torch), 4.7 GB on disk"
else
  echo "setup-frameworks: download about 25 MB"
fi

start=$SECONDS
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --progress-bar off -q "${packages[@]}"
echo "setup-frameworks: done in $((SECONDS - start)) s; $(du -sh "$venv" | cut -f1) in $venv"
"$venv/bin/python" - <<'PY'
from importlib.metadata import PackageNotFoundError, version
for name in ("numpy", "gguf", "tinygrad", "torch"):
    try:
        print(f"  {name} {version(name)}")
    except PackageNotFoundError:
        print(f"  {name}: not installed")
PY
