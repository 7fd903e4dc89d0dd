#!/bin/sh
# `fairbench profile` end to end on cpu_ref and a tiny synthetic model: the
# JSON breakdown per backend, cpu_ref's per-layer, per-op spans covering the
# step (within a few %), its span count from the model's shape, the plugin's
# class refinement and bytes (GB/s), missing CUPTI/NVML/perf/RAPL as "not
# available" with exit status 0, the text output, and usage errors.
# usage: test_profiling_cmd.sh FAIRBENCH TMP_DIR DATA_DIR
set -eu
fairbench=$1
tmp=$2/profiling_cmd
rm -rf "$tmp"
mkdir -p "$tmp/traces"
command -v python3 >/dev/null || { echo "python3 is absent"; exit 77; }
seed=21
echo "synthetic model seed $seed"
"$fairbench" synth --preset tiny --seed $seed -o "$tmp/tiny.gguf" 2>/dev/null
n_layer=$("$fairbench" inspect "$tmp/tiny.gguf" | sed -n "s/^ *blocks *\([0-9][0-9]*\)$/\1/p" | head -1)
[ -n "$n_layer" ] || { echo "FAIL: no layer count from fairbench inspect"; exit 1; }

"$fairbench" profile -c smoke.ini --model "$tmp/tiny.gguf" --steps 8 --warmup 2 --format json \
    -o "$tmp/why.json" --trace-dir "$tmp/traces"

python3 - "$tmp/why.json" "$n_layer" "$tmp/traces" <<'PY'
import json, os, sys
report = json.load(open(sys.argv[1]))
n_layer = int(sys.argv[2])
failed = 0
def check(cond, what):
    global failed
    if not cond:
        failed += 1
        print("FAIL:", what)
check(report["why_schema_version"] == 1, "why_schema_version")
check(len(report["backends"]) == 2, "two entries in smoke.ini")
for b in report["backends"]:
    label = b["label"]
    check(b["status"] == "ok", f"{label}: status {b['status']} {b.get('reason')}")
    why = b["why"]
    sp = why["spans"]
    check(sp["available"], f"{label}: spans available")
    check(sp["steps"] == 8, f"{label}: 8 steps recorded, got {sp['steps']}")
    # per op: embed; 11 per layer; output_norm, lm_head, argmax
    check(sp["spans_per_token"] == 1 + 11 * n_layer + 3, f"{label}: spans/token {sp['spans_per_token']} for {n_layer} layers")
    # spans back to back: their sum is the busy time (no overlap), and in a
    # typical step (the median: one step preempted outside the spans on this
    # shared machine must not fail the test) they cover 95-100% of it
    covered = sum(sp["class_ms"].values()) / sp["step_ms"]
    check(abs(sp["busy_fraction"] - covered) < 1e-6, f"{label}: spans do not overlap (busy {sp['busy_fraction']} vs {covered})")
    median = sp["busy_fraction_median"]
    check(0.95 <= median <= 1.0 + 1e-9, f"{label}: the spans cover {median:.4f} of a step (median; mean {covered:.4f})")
    check(sp["launches_per_token"] == 0, f"{label}: a CPU backend launches nothing")
    tops = {t["name"]: t for t in sp["top"]}
    for name in ("qkv", "attn_output", "ffn_gate_up", "ffn_down", "lm_head"):
        t = tops.get(name)
        check(t is not None and t["class"] == "matvec" and t["gb_per_s"] is not None and t["gb_per_s"] > 0,
              f"{label}: {name} is a matvec with a bandwidth (cpu_ref's table): {t}")
    check(tops.get("attention", {}).get("class") == "attention", f"{label}: attention span")
    check(tops.get("attention", {}).get("gb_per_s", 0) is None, f"{label}: attention has no bytes, no GB/s")
    check(sp["class_ms"]["matvec"] > 0 and sp["class_ms"]["norm"] > 0, f"{label}: classes filled")
    check(why["plugin_class_entries"] == 5, f"{label}: cpu_ref's 5 class entries")
    check(not why["gpu"]["available"] and why["gpu"]["why_not"].startswith("not available"), f"{label}: no CUPTI for a CPU backend")
    check("gpu_energy" not in why, f"{label}: no GPU energy for a CPU backend")
    for k in ("cycles", "instructions", "llc_misses"):
        v = why["hw_counters"][k]
        check(isinstance(v, (int, float)) and v > 0 or isinstance(v, str) and v.startswith("not available"),
              f"{label}: {k} = {v}")
    e = why["cpu_energy"]
    check(e["available"] and e["j_per_token"] >= 0 or e["why_not"].startswith("not available"), f"{label}: cpu energy {e}")
    check(os.path.getsize(os.path.join(sys.argv[3], label + ".spans.trace")) > 0, f"{label}: its spans trace kept")
if failed:
    sys.exit(1)
print("json checks passed")
PY

# the text report names every part
"$fairbench" profile -c smoke.ini --model "$tmp/tiny.gguf" --steps 4 >"$tmp/why.txt"
for want in "== cpu_ref_a (cpu_ref)" "== cpu_ref_b (cpu_ref)" "named spans (plugin): step" "spans/token" \
            "time by class" "top spans by time" "gpu kernels (CUPTI): not available" "cpu counters per step" \
            "cpu energy (RAPL)"; do
    grep -qF "$want" "$tmp/why.txt" || { echo "FAIL: the text lacks '$want'"; cat "$tmp/why.txt"; exit 1; }
done

# a backend no plugin provides is skipped, not failed; usage errors are 2
"$fairbench" profile -c smoke.ini --model "$tmp/tiny.gguf" --steps 2 \
    --set backend.cpu_ref_b.plugin=no_such_plugin >"$tmp/skip.txt"
grep -q "== cpu_ref_b: skipped: no usable plugin" "$tmp/skip.txt" || { echo "FAIL: no skip line"; cat "$tmp/skip.txt"; exit 1; }
set +e
"$fairbench" profile -c smoke.ini --steps 0 2>"$tmp/err.txt"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q -- "--steps expects" "$tmp/err.txt" || { echo "FAIL: --steps 0 gave $rc"; exit 1; }
# a hand-written trace replayed through the same parser and analysis
"$fairbench" profile --replay "$3/small.trace" >"$tmp/replay.txt"
for want in "busy 0.004 ms (45.0%; median step 45.0%)" "2.0 gaps/step, longest 1.5 us" \
            "launches/token 3.5 (kernels 3.0, copies and sets 0.5)"; do
    grep -qF "$want" "$tmp/replay.txt" || { echo "FAIL: the replay lacks '$want'"; cat "$tmp/replay.txt"; exit 1; }
done
"$fairbench" profile --replay "$3/small.trace" --format json | python3 -c '
import json, sys
g = json.load(sys.stdin)["gpu"]
assert abs(g["busy_fraction"] - 0.45) < 1e-9 and g["records_outside_steps"] == 1, g' \
    || { echo "FAIL: replay JSON"; exit 1; }
printf '# fairbench trace 1\nstep 5 1\n' >"$tmp/bad.trace"
set +e
"$fairbench" profile --replay "$tmp/bad.trace" 2>"$tmp/err.txt"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "bad.trace:2: the end (1) is before the start (5)" "$tmp/err.txt" \
    || { echo "FAIL: a bad trace gave $rc: $(cat "$tmp/err.txt")"; exit 1; }
echo "profiling_cmd: all checks passed"
