#!/usr/bin/env bash
# A CUDA plugin (eager_ops, jit_fused) as the host and the dynamic linker see
# it, on any machine: `fairbench plugins` lists it as usable, with
# "unavailable: <CUDA's reason>" where no GPU or driver is present (or
# "available: <device>" where one is), with its version, ABI and
# capabilities; the .so exports exactly one dynamic symbol, fb_plugin_entry
# (the static CUDA runtime inside it stays hidden), and records neither
# libcudart nor libcuda (so it loads where no driver is installed).
#   test_cuda_plugin_listing.sh FAIRBENCH PLUGIN_SO NAME CAPABILITIES
set -u
fairbench=$1 so=$2 name=$3 caps=$4
pass=0 fail=0
ok()   { pass=$((pass + 1)); echo "ok   $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL $1"; }

out=$("$fairbench" plugins --plugin-dir "$(dirname "$so")" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
(( rc == 0 )) && ok "fairbench plugins exits 0" || bad "fairbench plugins exit status $rc"
line=$(grep -E "^$name " <<<"$out" | head -n 1)
if [[ -z $line ]]; then
  bad "$name is listed as a usable backend"
elif grep -qE ' available: .+' <<<"$line"; then
  ok "$name listed, available: ${line##* available: }"
elif grep -qE ' unavailable: [A-Za-z].{10,}' <<<"$line" && ! grep -q 'unavailable: unavailable' <<<"$line"; then
  ok "$name listed, unavailable with a reason: ${line##* unavailable: }"
else
  bad "$name line has neither 'available: DEVICE' nor 'unavailable: REASON': $line"
fi
# With no driver library at all, the reason says so in plain words (not CUDA's
# "driver version is insufficient").
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  grep -q ' unavailable: no NVIDIA driver or GPU found' <<<"$line" \
    && ok "no driver here: 'no NVIDIA driver or GPU found'" || bad "no driver here, but the reason is: ${line##* unavailable: }"
fi
grep -qE "^$name +1\.0\.0 +1\.1 +$caps " <<<"$line" \
  && ok "version, ABI and capabilities ($caps)" || bad "version, ABI and capabilities: $line"
grep -q "$name.so" <<<"$(sed -n '/^unusable:/,$p' <<<"$out")" && bad "$name.so is in the unusable list" \
  || ok "$name.so is not in the unusable list"

if command -v nm >/dev/null; then
  syms=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort -u)
  echo "  dynamic symbols: $(tr '\n' ' ' <<<"$syms")"
  [[ $syms == fb_plugin_entry ]] && ok "exactly one dynamic symbol, fb_plugin_entry" \
    || bad "exported symbols are not exactly fb_plugin_entry: $(wc -l <<<"$syms") of them"
else
  echo "skip nm not installed: symbol check not run"
fi
if command -v ldd >/dev/null; then
  deps=$(ldd "$so" 2>&1)
  grep -q 'libcudart' <<<"$deps" && bad "links libcudart dynamically (must be static)" || ok "CUDA runtime linked statically"
  grep -q 'libcuda\.so' <<<"$deps" && bad "records libcuda.so: would not load without a driver" \
    || ok "no libcuda.so recorded: loads without a driver"
fi
# jit_fused's per-backend option is vetted before anything runs, GPU or not:
# a bad value is file:line and the plugin's sentence, exit 2.
if [[ $name == jit_fused ]]; then
  tmp=$(mktemp -d)
  "$fairbench" synth --preset tiny -o "$tmp/tiny.gguf" >/dev/null 2>&1
  printf '[run]\nmodel = %s\nbackends = cpu_ref, jit_fused\n[backend.jit_fused]\ndecode = fast\n' "$tmp/tiny.gguf" >"$tmp/bad.ini"
  msg=$("$fairbench" -c "$tmp/bad.ini" --plugin-dir "$(dirname "$so")" 2>&1)
  rc=$?
  (( rc == 2 )) && grep -q "bad.ini:5: \[backend.jit_fused\] decode = fast: .*'persistent'.*'kernels'" <<<"$msg" \
    && ok "decode = fast refused before the run: ${msg##*: }" || bad "decode = fast: exit $rc: $msg"
  sed -i 's/decode = fast/decode = kernels/' "$tmp/bad.ini"
  msg=$("$fairbench" -c "$tmp/bad.ini" --plugin-dir "$(dirname "$so")" 2>&1)
  rc=$?
  (( rc != 2 )) && ! grep -q "bad.ini:5" <<<"$msg" && grep -q "^Backend .*jit_fused" <<<"$msg" \
    && ok "decode = kernels accepted: the run goes on (exit $rc)" || bad "decode = kernels: exit $rc: $msg"
  rm -rf "$tmp"
fi
echo "$pass passed, $fail failed"
(( fail == 0 ))
