#!/usr/bin/env bash
# `fairbench compare` on synthetic JSON reports (written below by Python with
# fixed seeds, laid out as core/report.c writes them):
#   identical  two runs of one busy machine, steps autocorrelated within each
#              repetition: "no significant difference", exit 0 (the fixture is
#              checked to be one that a test over every step calls different)
#   slow10     one backend 10% slower (20 repetitions): found, exit 1; the
#              other backend not
#   shift1     a quiet machine, 1% slower: significant but within the default
#              threshold, exit 0; with --threshold 0.5 it counts, exit 1
#   mismatch   each way two runs can differ gives its own warning line
#   and the errors: a file that is no report, a bad option, one repetition.
#
#   test_compare.sh FAIRBENCH TMP_DIR
set -u
fairbench=$1 tmp=$2/compare
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

python3 - "$tmp" <<'PY' || { echo "FAIL the fixtures could not be written"; exit 1; }
import copy, json, math, random, sys

out = sys.argv[1]

def run(seed, reps, steps, ms, rep_sigma, step_sigma, rho, slow=None):
    """A report's backends: each repetition at its own level (load that comes
    and goes), its steps an AR(1) walk about it (neighbours share fortune)."""
    rng = random.Random(seed)
    backends = []
    for label in ("cpu_ref_a", "cpu_ref_b"):
        scale = (slow or {}).get(label, 1.0)
        lat = []
        for _ in range(reps):
            level = math.log(ms * scale) + rep_sigma * rng.gauss(0, 1)
            e = step_sigma * rng.gauss(0, 1)
            for _ in range(steps):
                e = rho * e + math.sqrt(1 - rho * rho) * step_sigma * rng.gauss(0, 1)
                lat.append(round(math.exp(level + e), 6))
        backends.append({
            "label": label, "plugin": "cpu_ref", "plugin_version": "1.0.0", "status": "ok", "reason": "",
            "device": "", "settings": {"weight_precision": "f32", "accumulate_precision": "f32", "allow_jit": False,
                                       "allow_graphs": False, "jit_cache": "warm", "threads": 2},
            "effective_settings": {"weight_precision": "f32", "accumulate_precision": "f32", "jit": False,
                                   "graphs": False, "threads": 2, "kernel_cache_hit": -1,
                                   "device": "CPU: Test CPU, AVX2", "notes": "weights f32"},
            "metrics": {"load_s": 0.05, "cold_start_s": 0.001},
            "samples": {"decode_latency_ms": lat, "prefill_s": [0.01] * reps}})
    return {
        "schema_version": 1,
        "environment": {"fairbench_version": "0.1.0", "git_commit": "abc", "build": "release",
                        "cpu": "Test CPU 2000", "cores": 2, "memory": "8000000 kB", "kernel": "Linux 6 x86_64",
                        "date": "2026-01-01T00:00:00Z", "gpus": [], "devices": []},
        "profile": {"path": "smoke.ini", "sha256": "11" * 32, "text": "[run]\n", "overrides": ""},
        "model": {"path": "m.gguf", "bytes": 1000, "sha256": "22" * 32},
        "run": {"prompt": "Hello", "prompt_tokens": [1, 2], "gen_tokens": steps, "warmup": 1,
                "repetitions": reps, "order": "interleaved", "wall_s": 1.0},
        "reference": {"backend": "cpu_ref (f32)", "status": "ok", "tokens": []},
        "backends": backends,
        "fairness": {"fair": True, "verdict": "fair"}, "warnings": []}

def write(name, report):
    with open(f"{out}/{name}.json", "w") as f:
        json.dump(report, f, indent=1)

def step_z(a, b):
    """Mann-Whitney z over every step (normal approximation, no ties): what
    a test that takes steps for independent samples would see."""
    both = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    r = sum(i + 1 for i, (_, g) in enumerate(both) if g == 0)
    n1, n2 = len(a), len(b)
    u = r - n1 * (n1 + 1) / 2
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)

busy = dict(reps=5, steps=64, ms=20.0, rep_sigma=0.03, step_sigma=0.05, rho=0.98)
a, b = run(101, **busy), run(202, **busy)
write("identical_a", a)
write("identical_b", b)
z = [abs(step_z(x["samples"]["decode_latency_ms"], y["samples"]["decode_latency_ms"]))
     for x, y in zip(a["backends"], b["backends"])]
print(f"fixture: a test over every step gives |z| = {z[0]:.1f} and {z[1]:.1f} for the identical runs")
with open(f"{out}/identical_step_z.txt", "w") as f:
    f.write(f"{min(z):.3f}\n")

# On a machine this busy, about 20 repetitions see a 10% slowdown reliably
# (5 see it about half the time: tests/test_stats.c).
busy20 = dict(busy, reps=20)
write("slow10_a", run(303, **busy20))
write("slow10_b", run(404, slow={"cpu_ref_b": 1.10}, **busy20))

quiet = dict(reps=5, steps=32, ms=20.0, rep_sigma=0.001, step_sigma=0.005, rho=0.5)
write("shift1_a", run(505, **quiet))
write("shift1_b", run(606, slow={"cpu_ref_a": 1.01, "cpu_ref_b": 1.01}, **quiet))

m = copy.deepcopy(a)
m["profile"]["sha256"] = "33" * 32
m["profile"]["overrides"] = "run.repetitions=5"
m["model"]["sha256"] = "44" * 32
m["environment"].update(cpu="Other CPU 3000", gpus=["NVIDIA H100, 550.54"], cuda_driver_version="12.4")
m["backends"][0]["plugin_version"] = "1.0.1"
m["backends"][0]["settings"]["threads"] = 1
m["backends"][1]["effective_settings"]["weight_precision"] = "f16"
write("mismatch_b", m)

one = run(707, **dict(busy, reps=1))
write("one_rep", one)
bad = copy.deepcopy(a)
bad["backends"][0]["samples"]["decode_latency_ms"][7] = None
del bad["backends"][1]["samples"]["decode_latency_ms"][-1]
write("bad_samples", bad)
lone = copy.deepcopy(a)
lone["backends"][1]["label"] = "cpu_ref_c"
write("relabelled", lone)
PY

# compare NAME ARGS...: runs fairbench compare, keeping output and status.
compare() {
  local name=$1; shift
  "$fairbench" compare "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; echo $? >"$tmp/$name.rc"
  sed 's/^/  | /' "$tmp/$name.out" "$tmp/$name.err"
}
# expect NAME DESCRIPTION STATUS REGEX...: the status, and each regex on some line.
expect() {
  local name=$1 what=$2 status=$3; shift 3
  local rc; rc=$(cat "$tmp/$name.rc")
  if [[ $rc != "$status" ]]; then bad "$what: exit status $rc, expected $status"; return; fi
  for re in "$@"; do
    if ! grep -qE -- "$re" "$tmp/$name.out" "$tmp/$name.err"; then bad "$what: no line matches: $re"; return; fi
  done
  ok "$what"
}
# refuse NAME DESCRIPTION REGEX: no line matches.
refuse() {
  if grep -qE -- "$3" "$tmp/$1.out"; then bad "$2: a line matches: $3"; else ok "$2"; fi
}

t=$tmp
z=$(cat "$t/identical_step_z.txt")
if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 2.576 else 1)" "$z"; then
  ok "the identical fixture is a hard case: a test over every step calls both backends different (|z| >= $z)"
else
  bad "the identical fixture is too easy (|z| = $z over every step)"
fi

compare identical "$t/identical_a.json" "$t/identical_b.json"
expect identical "(a) identical runs, autocorrelated steps: no significant difference" 0 \
  "^cpu_ref_a +5 +5 .* no significant difference$" "^cpu_ref_b +5 +5 .* no significant difference$" \
  "^2 backends compared, 0 with a significant decode-latency difference above 5%$"
refuse identical "(a) identical runs: no warning" "^warning:"

compare slow10 "$t/slow10_a.json" "$t/slow10_b.json"
expect slow10 "(b) a 10% slowdown is found, the unchanged backend is not" 1 \
  "^cpu_ref_b +20 +20 .* B slower by [0-9.]+%$" "^cpu_ref_a +20 +20 .* no significant difference$" \
  "^2 backends compared, 1 with a significant decode-latency difference above 5%$"
pct=$(grep -E '^cpu_ref_b ' "$t/slow10.out" | grep -oE 'slower by [0-9.]+' | grep -oE '[0-9.]+$')
if [[ -n $pct ]] && python3 -c "import sys; sys.exit(0 if 7 < float(sys.argv[1]) < 13 else 1)" "$pct"; then
  ok "(b) the slowdown is measured as about 10% ($pct%)"
else
  bad "(b) the slowdown is measured as ${pct:-nothing}%, not about 10%"
fi
compare slow10_reversed "$t/slow10_b.json" "$t/slow10_a.json"
expect slow10_reversed "(b) the other way round: B faster" 1 "^cpu_ref_b +20 +20 .* B faster by [0-9.]+%$"

compare shift1 "$t/shift1_a.json" "$t/shift1_b.json"
expect shift1 "(c) a significant 1% shift is within the default 5% threshold" 0 \
  "^cpu_ref_a .* B slower by (0\.[5-9]|1\.[0-4])%: significant, but within the 5% threshold$" \
  "^cpu_ref_b .* B slower by (0\.[5-9]|1\.[0-4])%: significant, but within the 5% threshold$"
compare shift1_threshold --threshold 0.5 "$t/shift1_a.json" "$t/shift1_b.json"
expect shift1_threshold "(c) with --threshold 0.5 the 1% shift counts" 1 \
  "^cpu_ref_a .* B slower by (0\.[5-9]|1\.[0-4])%$" "^2 backends compared, 2 with a significant decode-latency difference above 0\.5%$"

compare mismatch "$t/identical_a.json" "$t/mismatch_b.json"
expect mismatch "(d) every mismatch is named" 0 \
  "^warning: A and B differ in profile \(sha256 of its text\): '1111.*' in A, '3333.*' in B$" \
  "^warning: A and B differ in profile overrides \(--set\): '' in A, 'run.repetitions=5' in B$" \
  "^warning: A and B differ in model \(sha256\): '2222.*' in A, '4444.*' in B$" \
  "^warning: A and B differ in machine: cpu: 'Test CPU 2000' in A, 'Other CPU 3000' in B$" \
  "^warning: A and B differ in machine: gpus: \[\] in A, \[\"NVIDIA H100, 550.54\"\] in B$" \
  "^warning: A and B differ in machine: cuda_driver_version: \(absent\) in A, '12.4' in B$" \
  "^warning: A and B differ in cpu_ref_a: plugin version: '1.0.0' in A, '1.0.1' in B$" \
  "^warning: A and B differ in cpu_ref_a: settings threads: 2 in A, 1 in B$" \
  "^warning: A and B differ in cpu_ref_b: effective settings weight_precision: 'f32' in A, 'f16' in B$" \
  "; the runs differ \(see the warnings above\)$"
n=$(grep -c '^warning:' "$t/mismatch.out")
if [[ $n == 9 ]]; then ok "(d) nine differences, nine warnings"; else bad "(d) $n warnings for nine differences"; fi

compare one_rep "$t/identical_a.json" "$t/one_rep.json"
expect one_rep "one repetition: not tested, and said so" 0 "not tested: B has 1 repetition \(2 per side needed\)$"
compare bad_samples "$t/identical_a.json" "$t/bad_samples.json"
expect bad_samples "samples that cannot be used: not compared, and why" 0 \
  "^cpu_ref_a +not compared: B has decode sample 7 that is not a positive number$" \
  "^cpu_ref_b +not compared: B has 319 decode samples that are not whole repetitions of 64 steps$"
compare relabelled "$t/identical_a.json" "$t/relabelled.json"
expect relabelled "a backend in one report only is named" 0 "^cpu_ref_b +only in A$" "^cpu_ref_c +only in B$" \
  "^1 backend compared"

echo '{"schema_version": 1' >"$t/broken.json"
compare broken "$t/identical_a.json" "$t/broken.json"
expect broken "a file that is not a report: exit 2 naming it" 2 "broken\.json is not a fairbench JSON report"
compare missing "$t/identical_a.json" "$t/absent.json"
expect missing "a missing file: exit 2 naming it" 2 "cannot open .*absent\.json"
compare bad_threshold --threshold five "$t/identical_a.json" "$t/identical_b.json"
expect bad_threshold "--threshold five: exit 2" 2 "--threshold needs a percentage"
compare bad_alpha --alpha 1 "$t/identical_a.json" "$t/identical_b.json"
expect bad_alpha "--alpha 1: exit 2" 2 "--alpha needs a probability"
compare one_path "$t/identical_a.json"
expect one_path "one report: usage, exit 2" 2 "^usage: fairbench compare"
compare help --help
expect help "--help: usage on stdout, exit 0" 0 "^usage: fairbench compare \[--threshold PCT\] \[--alpha P\] A.json B.json$"

echo "$pass passed, $fail failed"
(( fail == 0 && pass > 0 ))
