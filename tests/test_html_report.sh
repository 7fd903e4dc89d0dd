#!/usr/bin/env bash
# The HTML report without a browser: made from a real run's JSON (smoke
# profile, synthetic model), every figure recomputed (no difference on an
# untouched report; a tampered stored figure named on stderr and in the page,
# exit 1); several reports in one page; a file that is not a report refused
# (exit 2); and the offline rule: no external URL in the report, the
# --format html page or the trend page (the check itself must reject copies
# with an external image, stylesheet import or CSS url()).
set -u
fairbench=$1 tmp=$2/html_report profiles=$3
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/check.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/check.txt" | tail -15; fi
}
"$fairbench" synth --preset tiny --seed 21 -o "$tmp/tiny.gguf" 2>/dev/null
# vary = none: smoke.ini declares threads as its variable; here the override must count as unfair.
run() { "$fairbench" -c "$profiles/smoke.ini" --model "$tmp/tiny.gguf" --set run.vary=none -q --db "$tmp/db.sqlite" "$@"; }
run --format json -o "$tmp/run.json" >/dev/null 2>&1
run --format html -o "$tmp/run.html" >/dev/null 2>&1

"$fairbench" report "$tmp/run.json" -o "$tmp/report.html" 2>"$tmp/report.err"; rc=$?
check "report of an untouched run: exit 0 (rc=$rc)" test $rc -eq 0
check "report of an untouched run: no difference noted" bash -c "! grep -qE 'differs? from' '$tmp/report.err' '$tmp/report.html'"
check "--format html writes the same kind of page" grep -q 'data-chart="r0-throughput"' "$tmp/run.html"
check "the page has the header, verdict and table" bash -c "grep -q '<dt>Model</dt>' '$tmp/report.html' && grep -q 'Fairness verdict: unfair' '$tmp/report.html' && grep -q '<th>Throughput (tok/s)</th>' '$tmp/report.html'"
check "the verdict's reasons are listed" grep -q '<li>cpu_ref_b overrides threads</li>' "$tmp/report.html"
check "the profiling pass: a why section per backend, cpu_ref's spans by class" bash -c \
  "test \$(grep -c 'class=\"why\"' '$tmp/report.html') -eq 2 && grep -q 'named spans (plugin): step' '$tmp/report.html' && grep -q '<th>matvec</th>' '$tmp/report.html'"
check "hover text carries exact values" grep -qE '<title>cpu_ref_a: [0-9.e+]+ tok/s \(95% CI' "$tmp/report.html"

# A stored summary that disagrees with the samples.
python3 - "$tmp/run.json" "$tmp/tampered.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["backends"][0]["metrics"]["decode_mean_ms"] *= 1.1
json.dump(r, open(sys.argv[2], "w"))
PY
"$fairbench" report "$tmp/tampered.json" -o "$tmp/tampered.html" 2>"$tmp/tampered.err"; rc=$?
check "tampered report: exit 1 (rc=$rc)" test $rc -eq 1
check "tampered report: stderr names the backend and the figure" grep -q "warning: .*cpu_ref_a: the stored decode_mean_ms .* differs from .* recomputed" "$tmp/tampered.err"
check "tampered report: the page says so" grep -q '1 stored figure differs from the raw samples' "$tmp/tampered.html"
check "tampered report: only that figure" test "$(grep -c differs "$tmp/tampered.err")" = 1

"$fairbench" report "$tmp/run.json" "$tmp/tampered.json" -o "$tmp/two.html" 2>/dev/null
check "two reports: two sections" test "$(grep -c '<section class="run">' "$tmp/two.html")" = 2
echo '{"hello": 1}' > "$tmp/not.json"
"$fairbench" report "$tmp/not.json" -o "$tmp/not.html" 2>"$tmp/not.err"; rc=$?
check "a JSON file that is not a report: exit 2 (rc=$rc)" bash -c "[ $rc -eq 2 ] && grep -q 'not a fairbench JSON report' '$tmp/not.err'"
check "a stored run by id: report 1 from the database" "$fairbench" report --db "$tmp/db.sqlite" 1 -o "$tmp/stored.html"

run >/dev/null 2>&1
"$fairbench" trend decode_ms --db "$tmp/db.sqlite" -o "$tmp/trend.html" 2>/dev/null
check "trend page: one series per backend" test "$(grep -o 'class="series" data-series' "$tmp/trend.html" | wc -l)" = 2

# The offline rule: nothing in the page may make the browser fetch anything.
offline() { # file: 0 when it has no external reference
  ! grep -Eiq '(src|href|action|data|poster)[[:space:]]*=[[:space:]]*["'\'']?[[:space:]]*([a-z]+:)?//|@import|url\([[:space:]]*["'\'']?[[:space:]]*([a-z]+:)?//|https?:|<(link|iframe|img|object|embed|base)[[:space:]>]|fetch\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon' "$1"
}
for f in report.html run.html tampered.html trend.html; do
  check "offline: $f has no external reference" offline "$tmp/$f"
done
sed 's|<body>|<body><img src="https://example.org/x.png">|' "$tmp/report.html" > "$tmp/m1.html"
sed 's|<style>|<style>@import "style.css";|' "$tmp/report.html" > "$tmp/m2.html"
sed 's|<style>|<style>body { background: url(//example.org/b.png); }|' "$tmp/report.html" > "$tmp/m3.html"
for m in m1 m2 m3; do
  check "offline check rejects a page with an external reference ($m)" bash -c "! { $(declare -f offline); offline '$tmp/$m.html'; }"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
