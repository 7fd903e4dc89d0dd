#!/usr/bin/env bash
# `fairbench plugins` over a folder of broken plugins: each is listed as
# unusable with a sentence naming its file and the reason; cpu_ref (from the
# build tree) is still found and available.
set -u
fairbench=$1 dir=$2
out=$("$fairbench" plugins --plugin-dir "$dir" 2>&1)
rc=$?
pass=0 fail=0
expect() { # description, regex
  if grep -qE "$2" <<<"$out"; then pass=$((pass + 1)); echo "ok   $1"
  else fail=$((fail + 1)); echo "FAIL $1: no line matches: $2"; fi
}
if (( rc == 0 )); then pass=$((pass + 1)); echo "ok   exit status 0"
else fail=$((fail + 1)); echo "FAIL exit status $rc, expected 0 (broken plugins are listed, not fatal)"; fi
expect "the folders searched are listed" "^plugin folders searched:"
expect "cpu_ref still available" "^cpu_ref +1\.0\.0 +1\.[0-9]+ .* available: "
expect "missing dependency" "bad_missing_dependency\.so: cannot be loaded: .*libfb_test_dependency\.so"
expect "no entry symbol" "bad_no_symbol\.so: no entry point fb_plugin_entry"
expect "entry returns NULL" "bad_returns_null\.so: fb_plugin_entry\(\) returned NULL"
expect "another ABI major" "bad_other_major\.so: speaks plugin ABI 2\.[0-9]+, but this fairbench speaks ABI 1\.[0-9]+"
expect "table too small" "bad_small_table\.so: declares a plugin table of 24 bytes, but ABI 1\.0 needs at least [0-9]+"
expect "required call missing" "bad_missing_call\.so: backend 'bad_missing_call' lacks the required call 'decode'"
expect "bad name" "bad_bad_name\.so: backend name 'Bad-Name' is not"
expect "duplicate name" "bad_duplicate2\.so: backend name 'twin' is already taken by .*bad_duplicate\.so"
expect "the first twin is usable" "^twin +0\.0\.1"
echo "$out" | sed 's/^/  | /'
echo "$pass passed, $fail failed"
(( fail == 0 ))
