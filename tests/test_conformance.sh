#!/usr/bin/env bash
# `fairbench conformance`: cpu_ref (at every precision) and the SDK's example
# pass with exit status 0; each deliberately broken plugin (tests/plugins/
# conform_broken.c) fails with exit status 1 and a FAIL line from the check
# that catches its defect, while its other checks still run; usage errors
# are status 2. (The bundled plugins: test_conformance_bundled.sh.)
# In the sanitizer build (build-asan) fairbench and every plugin here are
# built with ASan + UBSan, so this same script is conformance's sanitizer run.
set -u
fairbench=$1 dir=$2 cpu_ref=$3 tmp=$4/conformance
rm -rf "$tmp" && mkdir -p "$tmp"
export TMPDIR=$tmp # the models' temporary folders
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; fi
}
conform() { # label, args...: output in $tmp/label.txt, status in $tmp/label.rc
  local label=$1; shift
  "$fairbench" conformance "$@" >"$tmp/$label.txt" 2>"$tmp/$label.err"
  echo $? >"$tmp/$label.rc"
}
rc() { cat "$tmp/$1.rc"; }
has() { grep -qE "$2" "$tmp/$1.txt"; }
show() { sed 's/^/     | /' "$tmp/$1.txt"; sed 's/^/     ! /' "$tmp/$1.err" | tail -5; }

# ---- passing plugins: every check line is PASS, and the summary says so
for p in f32 f16 bf16 native; do
  conform cpu_ref_$p "$cpu_ref" --precision $p
  check "cpu_ref at $p: exit 0 (rc=$(rc cpu_ref_$p))" test "$(rc cpu_ref_$p)" -eq 0
  check "cpu_ref at $p: 19 checks, all PASS" bash -c "grep -q '^19 checks: 19 passed, 0 failed, 0 skipped$' '$tmp/cpu_ref_$p.txt' \
    && test \$(grep -cE '^PASS [a-z_/]+: ' '$tmp/cpu_ref_$p.txt') -eq 19"
  (( $(rc cpu_ref_$p) == 0 )) || show cpu_ref_$p
done
conform example "$dir/example/example_naive.so"
check "the SDK example: exit 0 (rc=$(rc example))" test "$(rc example)" -eq 0
check "the SDK example: 19 checks, all PASS" has example '^19 checks: 19 passed, 0 failed, 0 skipped$'
check "the SDK example is compared with cpu_ref" has example '^reference: cpu_ref [0-9.]+ \(.*cpu_ref\.so\), f32$'
(( $(rc example) == 0 )) || show example

# ---- ABI 1.0: a plugin built with the released 1.0 header still loads and passes
conform abi10 "$dir/abi10/example_naive.so"
check "an ABI 1.0 plugin: exit 0 (rc=$(rc abi10))" test "$(rc abi10)" -eq 0
check "an ABI 1.0 plugin: loaded as ABI 1.0, 19 checks, all PASS" bash -c \
  "grep -q '^PASS load: example_naive 1\.0\.0, ABI 1\.0, ' '$tmp/abi10.txt' && grep -q '^19 checks: 19 passed, 0 failed, 0 skipped$' '$tmp/abi10.txt'"
check "an ABI 1.0 plugin takes no options" has abi10 '^PASS options: ABI 1\.0, no check_option'
(( $(rc abi10) == 0 )) || show abi10

# ---- ABI 1.1 factory: one .so, two backends; conformance picks one by name
conform factory_b "$dir/factory/factory.so" --backend factory_b
check "a factory's backend by name: exit 0 (rc=$(rc factory_b))" test "$(rc factory_b)" -eq 0
check "a factory's backend: load names it, options refuse an unknown key with the plugin's sentence" bash -c \
  "grep -q '^PASS load: factory_b 1\.1\.0, ABI 1\.1, ' '$tmp/factory_b.txt' && grep -q \"^PASS options: an unknown key is refused (.unknown option 'fairbench_conformance_no_such_option' (known: greeting, rows).)\" '$tmp/factory_b.txt'"
(( $(rc factory_b) == 0 )) || show factory_b
conform factory_none "$dir/factory/factory.so"
check "a factory with two backends and no --backend: FAIL load naming both (rc=$(rc factory_none))" bash -c \
  "test $(rc factory_none) -eq 1 && grep -q '^FAIL load: .*factory.so: publishes 2 backends (factory_a, factory_b): name one' '$tmp/factory_none.txt'"
conform factory_typo "$dir/factory/factory.so" --backend factory_c
check "a factory backend that does not exist: FAIL load listing those that do" bash -c \
  "grep -q \"^FAIL load: .*publishes no backend named 'factory_c' (it has: factory_a, factory_b)\" '$tmp/factory_typo.txt'"

# ---- broken plugins: exit 1, the expected check fails with its reason
expect_fail() { # defect, regex of the FAIL line, [extra conformance args]
  local defect=$1 regex=$2; shift 2
  conform "$defect" "$dir/conform_$defect.so" "$@"
  if (( $(rc "$defect") == 1 )) && has "$defect" "^FAIL $regex" && has "$defect" '^PASS load: '; then
    pass=$((pass + 1)); echo "ok   conform_$defect fails: $(grep -m1 -E "^FAIL $regex" "$tmp/$defect.txt" | cut -c1-150)"
  else
    fail=$((fail + 1)); echo "FAIL conform_$defect: expected exit 1 and a line matching: FAIL $regex"; show "$defect"
  fi
}
expect_fail wrong_argmax 'prefill_lengths/tiny: prefill of 1 token at position 0 \(last logits\) returned next token [0-9]+, but the argmax of its own logits at position 0 is [0-9]+'
expect_fail ignores_reset 'reset: the same 6-token prompt after reset gives next token .*reset does not forget'
expect_fail crash_unsupported 'unsupported_precision: the check.s process (was killed by signal 11 \(Segmentation fault\)|ended with exit status [0-9]+ before reporting)'
expect_fail graphs_when_forbidden 'no_jit_no_graphs: reports graphs = 1 although allow_graphs = 0'
expect_fail wrong_precision 'effective_settings: reports weight precision f16 \(1\); f32 was asked and accepted'
expect_fail ignores_max_context 'context_end/gqa: prefill of 3 tokens at position 18 of a 20-position context returned FB_OK; it must be refused with FB_ERR_CONTEXT_FULL'
# Wrong forward passes, at the loosest bar (native: top-1 90%): each must miss the top-1 bar itself.
maths_fail() { # defect, check
  expect_fail "$1" "$2: .*disagrees with cpu_ref: top-1 agreement [0-9.]+% is below the bar for native \(90%\)" --precision native
}
maths_fail ignores_rope_freqs decode/gqa
maths_fail gqa_modulo decode/tiny
maths_fail gqa_modulo decode/gqa
maths_fail rope_sign decode/tiny
maths_fail rope_sign decode/gqa
maths_fail rope_neox decode/gqa
maths_fail eps_outside_sqrt decode/tiny
maths_fail ignores_n_rot decode/tiny
maths_fail ignores_n_rot decode/gqa
maths_fail attention_scale decode/gqa
expect_fail logits_wrong_position 'prefill_lengths/tiny: prefill of 5 tokens gives next token [0-9]+ without logits but [0-9]+ with them' --precision native
check "logits_wrong_position: decode (logits of its own position) still passes" has logits_wrong_position '^PASS decode/tiny: '
# The conventions (plugin.h), each broken once.
expect_fail invalid_before_full 'conventions: prefill of \[[0-9]+\] \(an invalid id\) at position 64, .* returned FB_ERR_INVALID_ARGUMENT; the ABI.s status for it is FB_ERR_CONTEXT_FULL'
expect_fail refuses_flag_bits 'conventions: prefill of 2 tokens with flags FB_LOGITS_LAST \| 0x100 \(a reserved bit, to be ignored\) returned FB_ERR_INVALID_ARGUMENT'
expect_fail accepts_null_next 'conventions: prefill with next_token = NULL returned FB_OK; it must be refused with FB_ERR_INVALID_ARGUMENT'
expect_fail refuses_long_context 'conventions: max_context 80 \(above n_ctx 64\).*returned FB_ERR_INVALID_ARGUMENT'
expect_fail refuses_device_index 'conventions: .*device_index 3 on a CPU backend: create .* returned FB_ERR_UNAVAILABLE'
expect_fail threads_unresolved 'conventions: with threads = 0 it reports 0 threads; 0 means the [0-9]+ CPUs of the process.s affinity mask'
expect_fail device_format "effective_settings: device 'plain C loops, one thread' does not follow plugin.h's format"
for d in invalid_before_full refuses_flag_bits accepts_null_next refuses_long_context refuses_device_index threads_unresolved; do
  check "$d: conventions is the only check that fails" has $d '^19 checks: 18 passed, 1 failed'
done
expect_fail leaks_sessions 'create_destroy: (resident memory grew by [0-9.]+ MB over 6 create/destroy cycles|the check reported .* exit status [0-9]+)'
expect_fail hangs_in_memory 'memory: no answer within 2 s: the check.s process was killed' --timeout 2
expect_fail writes_stdout 'create_destroy: the plugin wrote [0-9]+ bytes to stdout \("conform_writes_stdout: loading the model'
expect_fail aborts_on_bad_token 'invalid_token: the check.s process (was killed by signal 6 \(Aborted\)|ended with exit status [0-9]+ before reporting)'
# A defect is that check's failure alone: the others still pass.
check "crash_unsupported: the crash took down only its own check" has crash_unsupported '^19 checks: 18 passed, 1 failed'
check "graphs_when_forbidden: effective_settings itself passes (graphs were allowed there)" has graphs_when_forbidden '^PASS effective_settings: '
check "ignores_max_context: the model's own context end still passes" has ignores_max_context '^PASS context_end/tiny: '
check "ignores_rope_freqs: the tiny model (no RoPE factors) still passes" has ignores_rope_freqs '^PASS decode/tiny: '
# cpu_ref's threads = 0 is the affinity mask (one CPU under taskset), reported resolved.
if command -v taskset >/dev/null; then
  taskset -c 0 "$fairbench" conformance "$cpu_ref" --threads 0 >"$tmp/cpu_ref_one_cpu.txt" 2>&1
  check "cpu_ref under taskset -c 0: threads = 0 ran 1" has cpu_ref_one_cpu '^PASS conventions: .*threads -1 refused, 0 ran 1 \(the affinity mask\)'
fi
# --no-rss-check (a plugin built with a sanitizer): said in the header and by create_destroy.
conform no_rss "$dir/example/example_naive.so" --no-rss-check
check "--no-rss-check is said in the settings line and by create_destroy" bash -c \
  "grep -q '^settings: .*; resident memory not checked' '$tmp/no_rss.txt' && grep -q '^PASS create_destroy: .*(RSS not checked: --no-rss-check)' '$tmp/no_rss.txt'"
check "hangs_in_memory: the other checks ran" has hangs_in_memory '^PASS no_jit_no_graphs: '

# ---- a plugin built with ASan + UBSan, run by a release fairbench with the runtime preloaded
# and --no-rss-check (PLUGINS.md); only in a build that made them (not the sanitizer builds)
if [[ -f $dir/asan/example.so ]]; then
  libasan=$(${CC:-cc} -print-file-name=libasan.so)
  asan() { # label, plugin
    LD_PRELOAD=$libasan ASAN_OPTIONS=quarantine_size_mb=0:detect_leaks=1 \
      "$fairbench" conformance "$2" --no-rss-check >"$tmp/$1.txt" 2>"$tmp/$1.err"; echo $? >"$tmp/$1.rc"
  }
  asan asan_example "$dir/asan/example.so"
  check "the example built with ASan, libasan preloaded, --no-rss-check: 19 checks pass (rc=$(rc asan_example))" \
    bash -c "test $(rc asan_example) -eq 0 && grep -q '^19 checks: 19 passed' '$tmp/asan_example.txt' \
      && grep -q '^PASS create_destroy: .*(RSS not checked: --no-rss-check)' '$tmp/asan_example.txt'"
  (( $(rc asan_example) == 0 )) || show asan_example
  asan asan_leaks "$dir/asan/leaks_sessions.so"
  check "a leaking plugin built with ASan still fails create_destroy by its leak report (rc=$(rc asan_leaks))" \
    bash -c "test $(rc asan_leaks) -eq 1 && grep -q '^FAIL create_destroy: the check reported .pass: .*exit status [0-9]* (a leak' '$tmp/asan_leaks.txt'"
fi

# ---- a plugin the loader refuses: FAIL load with the loader's sentence
conform other_major "$(dirname "$dir")/bad_plugins/bad_other_major.so"
check "a plugin of another ABI major: exit 1, FAIL load naming both ABIs (rc=$(rc other_major))" bash -c \
  "test $(rc other_major) -eq 1 && grep -qE '^FAIL load: .*speaks plugin ABI 2\.[0-9]+, but this fairbench speaks ABI 1\.1' '$tmp/other_major.txt'"

# ---- usage
"$fairbench" conformance "$tmp/no-such.so" >/dev/null 2>"$tmp/usage.err"; r=$?
check "a missing plugin file is status 2 (rc=$r)" bash -c "test $r -eq 2 && grep -q 'no-such.so: not a file' '$tmp/usage.err'"
conform native_example "$dir/example/example_naive.so" --precision native
check "a precision the plugin does not claim is status 2 (rc=$(rc native_example))" bash -c \
  "test $(rc native_example) -eq 2 && grep -q 'example_naive does not claim weight precision native (capabilities: cpu,f32)' '$tmp/native_example.err'"
"$fairbench" conformance --help >"$tmp/help.txt"; r=$?
check "--help lists the checks and the exit statuses (rc=$r)" bash -c "test $r -eq 0 && grep -q 'context_end/gqa' '$tmp/help.txt' \
  && grep -q '^77 the plugin' '$tmp/help.txt'"
check "the temporary model folders are removed" bash -c "! ls -d '$tmp'/fairbench-conformance.* 2>/dev/null | grep -q ."

echo "$pass passed, $fail failed"
(( fail == 0 ))
