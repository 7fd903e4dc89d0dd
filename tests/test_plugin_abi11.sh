#!/usr/bin/env bash
# ABI 1.1 through the main job: a factory's backends are listed and run by
# their own names; per-backend options reach the plugin and come back in its
# effective settings; an option the plugin refuses, an option for a plugin
# that takes none, and a typo of a fairbench key are each exit 2 with
# "file:line: ..." before anything runs.
set -u
fairbench=$1 plugins=$2 tmp=$3/plugin_abi11
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/check.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/check.txt" | tail -15; fi
}
"$fairbench" synth --preset tiny --seed 5 -o "$tmp/tiny.gguf" 2>/dev/null
factory=$plugins/factory

"$fairbench" plugins --plugin-dir "$factory" >"$tmp/plugins.txt" 2>&1
check "plugins lists both backends of the factory, each with its own name" bash -c \
  "grep -qE '^factory_a +1\.1\.0 +1\.1 ' '$tmp/plugins.txt' && grep -qE '^factory_b +1\.1\.0 +1\.1 ' '$tmp/plugins.txt' \
   && grep -q \"published by factory's factory\" '$tmp/plugins.txt'"

profile() { # file, backend section lines...
  local f=$1; shift
  { printf '[run]\nmodel = %s\nbackends = cpu_ref, fb\nprompt_tokens = 4\ngen_tokens = 4\nwarmup = 0\nrepetitions = 2\ntimeout_s = 60\n' "$tmp/tiny.gguf"
    printf '[fairness]\nweight_precision = f32\nthreads = 1\n[backend.fb]\n'
    printf '%s\n' "$@"; } >"$f"
}
run() { "$fairbench" -c "$1" --plugin-dir "$factory" -q --format json -o "$tmp/$2.json" 2>"$tmp/$2.err"; echo $? >"$tmp/$2.rc"; }

profile "$tmp/ok.ini" "plugin = factory_b" "greeting = hello there" "rows = 8"
run "$tmp/ok.ini" ok
check "a factory's backend with options runs (rc=$(cat "$tmp/ok.rc"))" test "$(cat "$tmp/ok.rc")" -eq 0
check "the options asked and in effect are in the JSON report" python3 - "$tmp/ok.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fb = [b for b in r["backends"] if b["label"] == "fb"][0]
assert fb["settings"]["options"] == {"greeting": "hello there", "rows": "8"}, fb["settings"]
assert fb["effective_settings"]["options"] == "greeting=hello there, rows=8", fb["effective_settings"]
assert fb["status"] == "ok", fb["status"]
PY

profile "$tmp/refused.ini" "plugin = factory_a" "rows = 100"
run "$tmp/refused.ini" refused
check "a value the plugin refuses: exit 2, file:line and the plugin's sentence" bash -c \
  "test $(cat "$tmp/refused.rc") -eq 2 && grep -q 'refused.ini:14: \[backend.fb\] rows = 100: rows must be an integer from 1 to 64' '$tmp/refused.err'"

profile "$tmp/unknown.ini" "plugin = factory_a" "colour = red"
run "$tmp/unknown.ini" unknown
check "a key the plugin does not know: exit 2 with the known ones" bash -c \
  "test $(cat "$tmp/unknown.rc") -eq 2 && grep -q \"unknown.ini:14: \[backend.fb\] colour = red: unknown option 'colour' (known: greeting, rows)\" '$tmp/unknown.err'"

profile "$tmp/none.ini" "plugin = cpu_ref" "greeting = hi"
run "$tmp/none.ini" none
check "an option for a plugin without check_option: exit 2" bash -c \
  "test $(cat "$tmp/none.rc") -eq 2 && grep -q \"none.ini:14: \[backend.fb\] greeting = hi: backend 'cpu_ref' (ABI 1.1) takes no options\" '$tmp/none.err'"

profile "$tmp/typo.ini" "plugin = factory_a" "weight_precison = f32"
run "$tmp/typo.ini" typo
check "a typo of a fairbench key stays a fairbench error (did you mean)" bash -c \
  "test $(cat "$tmp/typo.rc") -eq 2 && grep -q \"typo.ini:14: unknown key 'weight_precison' in \[backend.fb\]; did you mean 'weight_precision'?\" '$tmp/typo.err'"

echo "$pass passed, $fail failed"
(( fail == 0 && pass > 0 ))
