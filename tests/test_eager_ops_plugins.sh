#!/usr/bin/env bash
# eager_ops as the host and the dynamic linker see it, on any machine:
# `fairbench plugins` lists it as usable, with "unavailable: <CUDA's reason>"
# where no GPU or driver is present (or "available: <device>" where one is),
# and the .so exports exactly one dynamic symbol, fb_plugin_entry (the static
# CUDA runtime inside it stays hidden).
#   test_eager_ops_plugins.sh FAIRBENCH EAGER_OPS_SO
set -u
fairbench=$1 so=$2
pass=0 fail=0
ok()   { pass=$((pass + 1)); echo "ok   $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL $1"; }

out=$("$fairbench" plugins --plugin-dir "$(dirname "$so")" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
(( rc == 0 )) && ok "fairbench plugins exits 0" || bad "fairbench plugins exit status $rc"
line=$(grep -E '^eager_ops ' <<<"$out" | head -n 1)
if [[ -z $line ]]; then
  bad "eager_ops is listed as a usable backend"
elif grep -qE ' available: .+' <<<"$line"; then
  ok "eager_ops listed, available: ${line##* available: }"
elif grep -qE ' unavailable: [A-Za-z].{10,}' <<<"$line" && ! grep -q 'unavailable: unavailable' <<<"$line"; then
  ok "eager_ops listed, unavailable with a reason: ${line##* unavailable: }"
else
  bad "eager_ops line has neither 'available: DEVICE' nor 'unavailable: REASON': $line"
fi
grep -qE '^eager_ops +1\.0\.0 +1\.0 +gpu,f32,f16,bf16,graphs,copy-probe ' <<<"$line" \
  && ok "version, ABI and capabilities" || bad "version, ABI and capabilities: $line"
grep -q 'eager_ops.so' <<<"$(sed -n '/^unusable:/,$p' <<<"$out")" && bad "eager_ops.so is in the unusable list" \
  || ok "eager_ops.so is not in the unusable list"

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
fi
echo "$pass passed, $fail failed"
(( fail == 0 ))
