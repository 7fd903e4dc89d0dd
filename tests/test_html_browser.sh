#!/usr/bin/env bash
# The HTML report of a real run in a real browser (headless Chromium, the
# Debian package `chromium`, installed by scripts/setup.sh): the page loads
# with no script error and no console error, the page's own count of each
# chart's series (its data-series attribute, written by the inline script)
# matches what the run's JSON says each chart must show, and a screenshot is
# saved (BUILD/tests/html_report.png); the trend page of that run renders
# too. The run: the smoke profile's two cpu_ref entries, slow_ref (cpu_ref
# slowed by a sleep) and "wrong" (a stand-in the agreement check calls WRONG),
# on a synthetic model.
# Without Chromium: exit 77 (skipped), except in CI, where it is a failure.
set -u
fairbench=$1 tmp=$2/html_browser profiles=$3 plugins=$4
rm -rf "$tmp" && mkdir -p "$tmp"
tmp=$(cd "$tmp" && pwd) out=$(cd "$5" && pwd) # file:// URLs need absolute paths
browser=
for b in chromium chromium-browser google-chrome; do
  command -v "$b" >/dev/null && { browser=$b; break; }
done
if [ -z "$browser" ]; then
  echo "no headless Chromium here (scripts/setup.sh installs the Debian package chromium)"
  [ -n "${CI:-}" ] && exit 1
  exit 77
fi
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/check.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/check.txt" | tail -15; fi
}
"$fairbench" synth --preset tiny --seed 21 -o "$tmp/tiny.gguf" 2>/dev/null
cat > "$tmp/four.ini" <<INI
[run]
model = $tmp/tiny.gguf
backends = cpu_ref_a, cpu_ref_b, slow_ref, wrong
reference = cpu_ref
prompt_tokens = 8
gen_tokens = 8
warmup = 1
repetitions = 3
timeout_s = 60

[fairness]
weight_precision = f32
accumulate_precision = f32
threads = 2

[backend.cpu_ref_a]
plugin = cpu_ref

[backend.cpu_ref_b]
plugin = cpu_ref
threads = 1
INI
FB_TEST_DECODE_DELAY_US=300 "$fairbench" -c "$tmp/four.ini" --plugin-dir "$plugins" --db "$tmp/db.sqlite" -q --format json \
  -o "$tmp/run.json" >/dev/null 2>"$tmp/run.err"
check "the run wrote its JSON report" test -s "$tmp/run.json"
html=$out/html_report.html png=$out/html_report.png
rm -f "$png"
"$fairbench" report "$tmp/run.json" -o "$html" 2>"$tmp/report.err"; rc=$?
check "fairbench report exits 0 (rc=$rc)" test $rc -eq 0

# Chromium in a fresh profile, no network use expected (the page is offline).
chrome() {
  timeout 90 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
    --hide-scrollbars --enable-logging=stderr --v=0 "$@"
}
chrome --dump-dom "file://$html" > "$tmp/dom.html" 2> "$tmp/console.log"; rc=$?
check "chromium renders the page (rc=$rc)" grep -q 'data-rendered="yes"' "$tmp/dom.html"
check "no script error on the page" bash -c "grep -q 'data-rendered=' '$tmp/dom.html' && ! grep -q 'data-errors=' '$tmp/dom.html'"
check "no console message from the page" bash -c "test -s '$tmp/dom.html' && ! grep -E 'CONSOLE|Uncaught' '$tmp/console.log'"
check "every chart has the series the run's JSON calls for" python3 - "$tmp/run.json" "$tmp/dom.html" <<'PY'
import json, math, re, sys
r = json.load(open(sys.argv[1]))
gen = r["run"]["gen_tokens"]
bs = r["backends"]
def num(x): return isinstance(x, (int, float))
timed = [b for b in bs if b["samples"]["decode_latency_ms"]]
started = [b for b in bs if b["status"] in ("ok", "WRONG") and num(b["metrics"].get("load_s")) and num(b["metrics"].get("cold_start_s"))]
want = {
    "throughput": len(timed),
    "latency-box": len(timed),
    "steps": sum(math.ceil(len(b["samples"]["decode_latency_ms"]) / gen) for b in timed),
    "roofline": len([b for b in timed if b["metrics"].get("ceiling_gb_s", 0) > 0 and b["metrics"].get("bytes_per_step", 0) > 0]),
    "startup": len(started),
    "break-even": len([b for b in started if b["status"] == "ok" and b in timed]),
    "agreement": len([b for b in bs if "agreement" in b]),
}
assert any(b["status"] == "WRONG" for b in bs), "the run should have a WRONG backend"
m = re.search(r'<html[^>]* data-series="([^"]*)"', open(sys.argv[2]).read())
assert m, "no data-series attribute: the page's script did not run"
got = dict((k[3:], int(v)) for k, v in (p.rsplit(":", 1) for p in m.group(1).split()))
print("want", want)
print("got ", got)
assert got == want, "series counts differ"
assert all(v > 0 for v in want.values()), "a chart with no series"
PY
check "WRONG backend drawn grey, not ranked" bash -c "grep -q 'class=\"series wrong\" data-series=\"wrong\"' '$tmp/dom.html' && grep -q 'not ranked (WRONG)' '$tmp/dom.html'"

chrome --window-size=1400,3400 --screenshot="$png" "file://$html" >/dev/null 2>&1
check "screenshot saved ($png)" python3 - "$png" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
print(w, "x", h, len(data), "bytes")
assert w >= 1000 and h >= 2000 and len(data) > 50000, "screenshot too small to show the charts"
PY

# The trend page of the same run, from the database: one series per backend.
"$fairbench" trend decode_ms --db "$tmp/db.sqlite" -o "$tmp/trend.html" 2>/dev/null
chrome --dump-dom "file://$tmp/trend.html" > "$tmp/trend-dom.html" 2> "$tmp/trend-console.log"
check "trend page: rendered without error, one series per backend" bash -c "grep -q 'data-series=\"r0-trend:4\"' '$tmp/trend-dom.html' && ! grep -q 'data-errors=' '$tmp/trend-dom.html' && ! grep -E 'CONSOLE|Uncaught' '$tmp/trend-console.log'"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
