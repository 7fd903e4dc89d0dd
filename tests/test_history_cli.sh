#!/usr/bin/env bash
# The results history from the command line: every run recorded (the
# default database under $XDG_DATA_HOME, --db, --no-db); a garbage database
# and a locked one give a warning while the report is still written; two runs
# at once both land; history lists (with filters), shows, exports and tags;
# compare takes tags; trend draws its chart, and --fail-on-regression exits 1
# on a deliberately slowed backend (slow_ref: cpu_ref + a sleep per decode)
# and 0 on an unchanged rerun.
set -u
fairbench=$1 tmp=$2/history_cli profiles=$3 slow=$4
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/check.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     /' "$tmp/check.txt" | tail -15; fi
}
runs() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM runs").fetchone()[0])' "$1"; }
"$fairbench" synth --preset tiny --seed 21 -o "$tmp/tiny.gguf" 2>/dev/null
run() { "$fairbench" -c "$profiles/smoke.ini" --model "$tmp/tiny.gguf" "$@"; }
db=$tmp/results.sqlite

# The default database: $XDG_DATA_HOME/fairbench/results.sqlite.
env -u FAIRBENCH_DB XDG_DATA_HOME="$tmp/xdg" "$fairbench" -c "$profiles/smoke.ini" --model "$tmp/tiny.gguf" -q >/dev/null 2>&1
check "a run is recorded in \$XDG_DATA_HOME/fairbench/results.sqlite by default" test "$(runs "$tmp/xdg/fairbench/results.sqlite")" = 1

run --db "$db" --format json -o "$tmp/a.json" >/dev/null 2>"$tmp/a.err"; rc=$?
check "run with --db exits 0 (rc=$rc)" test $rc -eq 0
check "stderr names the run and the database" grep -q "run 1 recorded in $db" "$tmp/a.err"
run --db "$db" -q --no-db >/dev/null 2>&1
check "--no-db records nothing" test "$(runs "$db")" = 1

# A garbage database: a warning, and the report is written all the same.
head -c 4096 /dev/urandom > "$tmp/garbage.sqlite"
run --db "$tmp/garbage.sqlite" -q --format json -o "$tmp/g.json" >/dev/null 2>"$tmp/g.err"; rc=$?
check "garbage database: exit 0 (rc=$rc)" test $rc -eq 0
check "garbage database: one warning naming the file and the cause" \
  grep -q "warning: results database $tmp/garbage.sqlite: .*not a database.*the report is written all the same" "$tmp/g.err"
check "garbage database: the JSON report is written" python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$tmp/g.json"

# A locked database (another process holds an exclusive lock past the busy
# timeout of 10 s, the lock held for the whole run): a warning, and the
# report is written.
cp "$db" "$tmp/locked.sqlite"
python3 - "$tmp/locked.sqlite" "$tmp/lock.ready" <<'PY' &
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA journal_mode = DELETE")
con.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(60)  # killed once the run is over
con.execute("ROLLBACK")
PY
locker=$!
for _ in $(seq 50); do [ -e "$tmp/lock.ready" ] && break; sleep 0.1; done
run --db "$tmp/locked.sqlite" -q --format json -o "$tmp/l.json" >/dev/null 2>"$tmp/l.err"; rc=$?
kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null
check "locked database: exit 0 (rc=$rc)" test $rc -eq 0
check "locked database: a warning that says locked" grep -q "warning: results database .*locked" "$tmp/l.err"
check "locked database: the JSON report is written" test -s "$tmp/l.json"

# Two runs at once into one database: both land.
run --db "$db" -q >/dev/null 2>"$tmp/c1.err" & p1=$!
run --db "$db" -q >/dev/null 2>"$tmp/c2.err" & p2=$!
wait $p1; wait $p2
check "two concurrent runs: both recorded (3 runs)" test "$(runs "$db")" = 3
check "two concurrent runs: no warning" bash -c "! grep -q warning '$tmp/c1.err' '$tmp/c2.err'"

"$fairbench" history --db "$db" > "$tmp/list.txt"
check "history lists every run" test "$(grep -cE '^ +[0-9]+  ' "$tmp/list.txt")" = 3
check "history shows the backends" grep -q "cpu_ref_a:ok cpu_ref_b:ok" "$tmp/list.txt"
check "history --backend filters (match)" test "$("$fairbench" history --db "$db" --backend cpu_ref_b | grep -cE '^ +[0-9]+  ')" = 3
check "history --backend filters (no match)" test "$("$fairbench" history --db "$db" --backend nosuch | grep -cE '^ +[0-9]+  ')" = 0
check "history --model filters" test "$("$fairbench" history --db "$db" --model tiny.gguf | grep -cE '^ +[0-9]+  ')" = 3
check "history --profile filters" test "$("$fairbench" history --db "$db" --profile nosuch.ini | grep -cE '^ +[0-9]+  ')" = 0
check "history show 1" bash -c "'$fairbench' history --db '$db' show 1 | grep -qE '^cpu_ref_a +ok'"
"$fairbench" history --db "$db" export 1 -o "$tmp/export.json"
check "history export gives back the run's JSON (all but the date)" python3 - "$tmp/a.json" "$tmp/export.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for r in (a, b): r["environment"].pop("date")
assert a == b, "exported report differs"
PY
check "history tag 1 baseline" "$fairbench" history --db "$db" tag 1 baseline
check "history show baseline" bash -c "'$fairbench' history --db '$db' show baseline | grep -q '^run 1:'"
check "history of an unknown run: exit 2" bash -c "'$fairbench' history --db '$db' show nosuch; test \$? -eq 2"
FAIRBENCH_DB=$db "$fairbench" compare baseline last > "$tmp/compare.txt" 2>&1; rc=$?
check "compare baseline last reads the database (rc=$rc)" bash -c "[ $rc -le 1 ] && grep -q '^cpu_ref_a ' '$tmp/compare.txt'"

# The regression check on slow_ref (6 repetitions, so that per-repetition
# medians can reach significance).
cat > "$tmp/slow.ini" <<INI
[run]
model = $tmp/tiny.gguf
backends = slow_ref
reference = cpu_ref
prompt_tokens = 8
gen_tokens = 8
warmup = 1
repetitions = 6
timeout_s = 60

[fairness]
weight_precision = f32
accumulate_precision = f32
threads = 1
INI
tdb=$tmp/trend.sqlite
slow_run() { FB_TEST_DECODE_DELAY_US=$1 "$fairbench" -c "$tmp/slow.ini" --plugin-dir "$slow" --db "$tdb" -q >/dev/null 2>&1; }
slow_run 2000; slow_run 2000
check "slow_ref runs recorded" test "$(runs "$tdb")" = 2
"$fairbench" history --db "$tdb" tag 1 baseline >/dev/null
"$fairbench" trend decode_ms --db "$tdb" --fail-on-regression 25 -o "$tmp/trend.html" > "$tmp/t0.txt" 2>&1; rc=$?
check "unchanged rerun: trend --fail-on-regression exits 0 (rc=$rc)" test $rc -eq 0
check "the trend chart is written, one series for slow_ref" grep -q 'data-series="slow_ref"' "$tmp/trend.html"
slow_run 6000
"$fairbench" trend decode_ms --db "$tdb" --fail-on-regression 25 > "$tmp/t1.txt" 2>&1; rc=$?
check "slowed run: trend --fail-on-regression exits 1 (rc=$rc)" test $rc -eq 1
check "slowed run: named as a regression" grep -q '^  slow_ref .*REGRESSION' "$tmp/t1.txt"
"$fairbench" trend decode_ms --db "$tdb" --fail-on-regression 1000 > "$tmp/t2.txt" 2>&1; rc=$?
check "slowed run under a 1000% threshold: exit 0 (rc=$rc)" test $rc -eq 0
"$fairbench" trend tok_s --db "$tdb" --backend slow_ref > "$tmp/t3.txt"; rc=$?
check "trend tok_s prints a row per run (rc=$rc)" test "$(grep -c '^slow_ref ' "$tmp/t3.txt")" = 3
sed 's/^/     /' "$tmp/t1.txt"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
