#!/usr/bin/env bash
# Checks the C, C++ and CUDA sources under core/ plugins/ tests/ bench/
# examples/ against .clang-format with clang-format 14 (`make format-check`).
#
#   scripts/format-check.sh          list the files that would change; exit 1 if any
#   scripts/format-check.sh --fix    reformat them in place
#   scripts/format-check.sh --diff   show the changes it would make
#
# Only clang-format 14: other versions lay out the same file differently.
# CLANG_FORMAT names the binary (default: clang-format-14, else clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=check
case ${1:-} in
  "") ;;
  --fix) mode=fix ;;
  --diff) mode=diff ;;
  *) echo "usage: scripts/format-check.sh [--fix | --diff]" >&2; exit 2 ;;
esac

cf=${CLANG_FORMAT:-}
if [[ -z $cf ]]; then
  for candidate in clang-format-14 clang-format; do
    command -v "$candidate" >/dev/null && { cf=$candidate; break; }
  done
fi
if [[ -z $cf ]] || ! "$cf" --version 2>/dev/null | grep -qE 'version 14\.'; then
  echo "format-check: clang-format 14 not found${cf:+ ($cf is $("$cf" --version 2>/dev/null | head -1))};" \
       "install it with scripts/setup.sh or apt-get install clang-format-14" >&2
  exit 2
fi

# Tracked files and new ones git does not ignore (build folders are ignored).
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- core plugins tests bench examples |
                     grep -E '\.(c|h|cc|cpp|hpp|cu|cuh)$' | sort -u)
(( ${#files[@]} > 0 )) || { echo "format-check: no sources found under core/ plugins/ tests/ bench/ examples/" >&2; exit 2; }

if [[ $mode == fix ]]; then
  "$cf" -i --style=file "${files[@]}"
  echo "format-check: reformatted ${#files[@]} files with $cf"
  exit 0
fi

n_bad=0 n_lines=0
for f in "${files[@]}"; do
  if ! changes=$("$cf" --style=file "$f" | diff -u "$f" -); then
    n_bad=$((n_bad + 1))
    lines=$(grep -c '^-[^-]' <<<"$changes" || true)
    n_lines=$((n_lines + lines))
    if [[ $mode == diff ]]; then echo "$changes"; else echo "$f: $lines lines would change"; fi
  fi
done
if (( n_bad )); then
  echo "format-check: $n_bad of ${#files[@]} files ($n_lines lines) differ from .clang-format; scripts/format-check.sh --fix reformats them"
  exit 1
fi
echo "format-check: all ${#files[@]} files match .clang-format"
