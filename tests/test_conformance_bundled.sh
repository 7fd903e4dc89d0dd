#!/usr/bin/env bash
# `fairbench conformance` on every bundled plugin but cpu_ref (tested in
# test_conformance.sh) found in the build's plugin folder: where its probe
# finds the hardware it must pass at every precision it claims; where not,
# it must exit 77 with the probe's reason, a clean create refusal and every
# session check SKIPped (not failed).
#
#   test_conformance_bundled.sh FAIRBENCH PLUGIN_DIR TMP_DIR [EXPECTED...]
#
# EXPECTED: the plugins this build made (CMake's FB_BUNDLED_PLUGINS); each
# must be in PLUGIN_DIR. Every plugin checked must pass at least once, and
# the test fails when nothing was checked; with nothing built and nothing
# expected (no CUDA toolkit) it exits 77, skipped, saying so.
set -u
fairbench=$1 plugins=$2 tmp=$3/conformance_bundled
shift 3
rm -rf "$tmp" && mkdir -p "$tmp"
export TMPDIR=$tmp
pass=0 fail=0
n=0
for name in "$@"; do
  [[ -f $plugins/$name.so ]] || { fail=$((fail + 1)); echo "FAIL $name was built by this build but $plugins/$name.so is missing"; }
done
for so in "$plugins"/*.so; do
  [[ -e $so ]] || continue # the folder holds no .so at all
  name=$(basename "$so" .so)
  [[ $name == cpu_ref ]] && continue
  [[ $name == llamacpp ]] && continue # f32/f16 only on files of those types: test_llamacpp.sh runs it at native
  # a factory of Python backends: python_bridge runs conformance on numpy_ref, python_tinygrad on tinygrad
  [[ $name == python ]] && continue
  n=$((n + 1))
  passed_before=$pass failed_before=$fail
  for p in f32 f16 bf16 native; do
    out=$tmp/$name-$p.txt
    "$fairbench" conformance "$so" --precision $p >"$out" 2>"$tmp/$name-$p.err"; r=$?
    if (( r == 2 )) && grep -q "does not claim weight precision $p" "$tmp/$name-$p.err"; then
      echo "--   $name does not claim $p"; continue
    fi
    if (( r == 0 )) && grep -qE '^([0-9]+) checks: \1 passed, 0 failed, 0 skipped$' "$out"; then
      pass=$((pass + 1)); echo "ok   $name at $p passes"
    elif (( r == 77 )) && grep -q '^PASS probe: unavailable: ' "$out" && grep -q '^PASS create_unavailable: ' "$out" \
         && grep -qE '^[0-9]+ checks: 3 passed, 0 failed, [0-9]+ skipped$' "$out"; then
      pass=$((pass + 1)); echo "ok   $name: hardware absent, exit 77 ($(grep -m1 '^PASS probe: ' "$out" | cut -c1-110))"
      break # the same answer at every precision
    else
      fail=$((fail + 1)); echo "FAIL $name at $p (exit status $r):"
      sed 's/^/     | /' "$out"; sed 's/^/     ! /' "$tmp/$name-$p.err" | tail -5
      grep -q '^FAIL load: ' "$out" && break # nothing else to learn at other precisions
    fi
  done
  if (( pass == passed_before && fail == failed_before )); then
    fail=$((fail + 1)); echo "FAIL $name: not checked at any precision (it claims none of f32, f16, bf16, native)"
  fi
done
echo "$pass passed, $fail failed"
if (( n == 0 && fail == 0 )); then
  echo "skipped: no bundled plugin besides cpu_ref was built in $plugins (no CUDA toolkit), so nothing was checked"
  exit 77
fi
(( fail == 0 && pass > 0 ))
