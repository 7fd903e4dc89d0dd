#!/usr/bin/env bash
# Installs the Debian packages fairbench needs to build and test, when they
# are missing. Safe to run again: it installs nothing that is already there.
set -euo pipefail

# clang-format-14: scripts/format-check.sh (make format-check).
packages=(build-essential cmake pkg-config git python3 python3-pip ca-certificates
          libinih-dev libpcre2-dev libcjson-dev libsqlite3-dev clang-format-14
          python3-dev python3-numpy) # the Python bridge's headers; numpy for its test backend
# Wanted by a test only: headless Chromium renders the HTML report
# (tests/test_html_browser.sh, skipped where it cannot be installed).
optional=(chromium)
missing=() missing_optional=()
for p in "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_optional+=("$p")
done
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 and pip may come from elsewhere (pyenv); accept them when they work.
if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  kept=()
  for p in "${missing[@]}"; do [[ $p == python3 || $p == python3-pip ]] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
if (( ${#missing[@]} + ${#missing_optional[@]} == 0 )); then
  exit 0
fi
echo "setup: installing ${missing[*]} ${missing_optional[*]}" >&2
sudo=()
if (( EUID != 0 )); then
  if ! command -v sudo >/dev/null; then
    if (( ${#missing[@]} == 0 )); then
      echo "setup: ${missing_optional[*]} not installed (needs root); the tests that need it will be skipped" >&2
      exit 0
    fi
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
if (( ${#missing[@]} )); then
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if (( ${#missing_optional[@]} )); then
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing_optional[@]}" >&2 ||
    echo "setup: could not install ${missing_optional[*]}; the tests that need it will be skipped" >&2
fi
