#!/usr/bin/env bash
# Installs the Debian packages fairbench needs to build and test, when they
# are missing. Safe to run again: it installs nothing that is already there.
set -euo pipefail

packages=(build-essential cmake pkg-config git python3 python3-pip ca-certificates
          libinih-dev libpcre2-dev libcjson-dev
          python3-dev python3-numpy) # the Python bridge's headers; numpy for its test backend
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 and pip may come from elsewhere (pyenv); accept them when they work.
if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  kept=()
  for p in "${missing[@]}"; do [[ $p == python3 || $p == python3-pip ]] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
if (( ${#missing[@]} == 0 )); then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
sudo=()
if (( EUID != 0 )); then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
