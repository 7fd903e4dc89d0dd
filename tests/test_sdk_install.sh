#!/usr/bin/env bash
# The plugin SDK end to end: `cmake --install` into a temporary prefix; the
# example backend (examples/plugin) built out of tree against that prefix
# alone, with its CMake package and with pkg-config; the installed binary,
# run from another working folder, finds its plugins and profiles in the
# prefix (never the build tree), runs a profile with cpu_ref and the example
# (dropped into a plugin folder of its own) and sees them agree; the example
# passes `fairbench conformance`; the quick start's own skeleton (from the
# installed PLUGINS.md) builds and loads; fairbench_add_plugin links m and
# Threads; the prefix still works after it is moved.
set -u
mkdir -p "$3"
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) tmp=$(cd "$3" && pwd)/sdk_install
rm -rf "$tmp" && mkdir -p "$tmp"
prefix=$tmp/prefix
pass=0 fail=0
check() { # description, command...
  local what=$1; shift
  if "$@" >"$tmp/check.txt" 2>&1; then pass=$((pass + 1)); echo "ok   $what"
  else fail=$((fail + 1)); echo "FAIL $what"; sed 's/^/     | /' "$tmp/check.txt" | tail -20; fi
}
finish() { echo "$pass passed, $fail failed"; (( fail == 0 )); exit; }

# ---- install
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; rc=$?
check "cmake --install into $prefix (rc=$rc)" bash -c "test $rc -eq 0 || { tail '$tmp/install.log'; false; }"
(( rc == 0 )) || finish
check "the layout: binary, plugins, profiles, header, CMake package, pkg-config file" bash -c "
  cd '$prefix' && test -x bin/fairbench && test -f lib/fairbench/plugins/cpu_ref.so \
  && test -f share/fairbench/profiles/fair.ini && test -f share/fairbench/profiles/smoke.ini \
  && test -f include/fairbench/plugin.h && test -f lib/cmake/fairbench/fairbenchConfig.cmake \
  && test -f lib/cmake/fairbench/fairbenchConfigVersion.cmake && test -f lib/cmake/fairbench/fairbenchTargets.cmake \
  && test -f lib/pkgconfig/fairbench.pc && test -f share/doc/fairbench/PLUGINS.md \
  && test -f share/doc/fairbench/docs/forward-pass.md \
  && test -f share/doc/fairbench/examples/plugin/example_naive.c"
check "every plugin of the build is installed" bash -c "
  for so in '$build'/plugins/*.so; do test -f '$prefix/lib/fairbench/plugins/'\$(basename \$so) || { echo missing \$so; exit 1; }; done"
check "the installed header is the source's" cmp "$src/core/include/fairbench/plugin.h" "$prefix/include/fairbench/plugin.h"

# ---- the example, out of tree, with the CMake package alone
cp -r "$src/examples/plugin" "$tmp/example-src"
rm -rf "$tmp/example-src/build"
cmake -S "$tmp/example-src" -B "$tmp/example-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="-Werror" >"$tmp/example-configure.log" 2>&1; rc=$?
check "examples/plugin configures against the prefix (rc=$rc)" bash -c "test $rc -eq 0 || { cat '$tmp/example-configure.log'; false; }"
check "find_package(fairbench) found the prefix's package" \
  grep -qx "fairbench_DIR:PATH=$prefix/lib/cmake/fairbench" "$tmp/example-build/CMakeCache.txt"
cmake --build "$tmp/example-build" >"$tmp/example-build.log" 2>&1; rc=$?
check "examples/plugin builds with -Werror (rc=$rc)" bash -c "test $rc -eq 0 || { cat '$tmp/example-build.log'; false; }"
so=$tmp/example-build/example_naive.so
check "example_naive.so exports fb_plugin_entry and nothing else" bash -c \
  "test \"\$(nm -D --defined-only '$so' | awk '{print \$3}')\" = fb_plugin_entry"
check "the include path comes from the prefix" bash -c \
  "grep -rqE -- '(-I|-isystem )$prefix/include' '$tmp/example-build/CMakeFiles/example_naive.dir/flags.make'"

# ---- the same with pkg-config and a plain compiler
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
check "pkg-config --cflags fairbench names the prefix's include folder" bash -c \
  "test \"\$(realpath \"\$(pkg-config --cflags fairbench | sed 's/^-I//; s/ *$//')\")\" = '$prefix/include'"
check "pkg-config's plugindir is the prefix's plugin folder" bash -c \
  "test \"\$(realpath \"\$(pkg-config --variable=plugindir fairbench)\")\" = '$prefix/lib/fairbench/plugins'"
mkdir -p "$tmp/pc"
cc -std=c11 -O2 -Wall -Wextra -Werror $(pkg-config --cflags fairbench) $(pkg-config --variable=plugin_cflags fairbench) \
   "$tmp/example-src/example_naive.c" -o "$tmp/pc/example_naive.so" $(pkg-config --variable=plugin_ldflags fairbench) -lm \
   >"$tmp/pc.log" 2>&1; rc=$?
check "example_naive.c builds with pkg-config's flags alone (rc=$rc)" bash -c "test $rc -eq 0 || { cat '$tmp/pc.log'; false; }"
check "... and exports only fb_plugin_entry" bash -c \
  "test \"\$(nm -D --defined-only '$tmp/pc/example_naive.so' | awk '{print \$3}')\" = fb_plugin_entry"
unset PKG_CONFIG_PATH

# ---- the quick start (PLUGINS.md): a new backend of its own, two files taken from the installed
# guide, built against the prefix alone; conformance says 77 (its probe says unavailable)
qs=$tmp/my_backend
mkdir -p "$qs"
quick_start() { # the fenced block after <!-- quick-start: NAME -->
  awk -v name="$1" '$0 == "<!-- quick-start: " name " -->" {on = 1; next} on && /^```/ {if (inside) exit; inside = 1; next} inside' \
    "$prefix/share/doc/fairbench/PLUGINS.md"
}
quick_start CMakeLists.txt >"$qs/CMakeLists.txt"
quick_start my_backend.c >"$qs/my_backend.c"
check "the quick start's two files are in the installed PLUGINS.md" bash -c \
  "grep -q '^fairbench_add_plugin(my_backend my_backend.c)' '$qs/CMakeLists.txt' && grep -q 'fb_plugin_entry' '$qs/my_backend.c'"
cmake -S "$qs" -B "$qs/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$qs/configure.log" 2>&1 \
  && cmake --build "$qs/build" >"$qs/build.log" 2>&1; rc=$?
check "the quick start builds my_backend.so from the installed package with -Werror (rc=$rc)" bash -c \
  "test $rc -eq 0 && test -f '$qs/build/my_backend.so' || { cat '$qs/configure.log' '$qs/build.log' 2>/dev/null | tail -30; false; }"
check "... exporting only fb_plugin_entry" bash -c \
  "test \"\$(nm -D --defined-only '$qs/build/my_backend.so' | awk '{print \$3}')\" = fb_plugin_entry"
(cd / && "$prefix/bin/fairbench" conformance "$qs/build/my_backend.so") >"$qs/conformance.txt" 2>&1; rc=$?
check "conformance on the skeleton: 77, load and probe pass, create refuses with its sentence (rc=$rc)" bash -c "test $rc -eq 77 \
  && grep -q '^PASS load: my_backend 0\.1\.0, ABI 1\.1, ' '$qs/conformance.txt' \
  && grep -q '^PASS create_unavailable: create refused with FB_ERR_UNAVAILABLE: my_backend: the forward pass is not written yet' '$qs/conformance.txt' \
  || { cat '$qs/conformance.txt'; false; }"
# fairbench_add_plugin links libm and the threads library: a source using both links with --no-undefined.
mkdir -p "$tmp/libs"
cat >"$tmp/libs/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(libs_check LANGUAGES C)
find_package(fairbench 0.1 REQUIRED)
fairbench_add_plugin(libs_check ../my_backend/my_backend.c uses_libs.c)
CM
cat >"$tmp/libs/uses_libs.c" <<'SRC'
#include <math.h>
#include <pthread.h>
static void *work(void *arg) { return arg; }
double libs_check_maths(double x);
double libs_check_maths(double x) { return cbrt(x) + sqrt(x); }
int libs_check_thread(void);
int libs_check_thread(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, work, NULL)) return -1;
    return pthread_join(t, NULL);
}
SRC
cmake -S "$tmp/libs" -B "$tmp/libs/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/libs/log" 2>&1 \
  && cmake --build "$tmp/libs/build" >>"$tmp/libs/log" 2>&1; rc=$?
check "fairbench_add_plugin links m and Threads: cbrt, sqrt, pthread_create link with --no-undefined (rc=$rc)" bash -c \
  "test $rc -eq 0 && grep -qE -- ' -lm( |$)' '$tmp/libs/build/CMakeFiles/libs_check.dir/link.txt' \
   || { tail -20 '$tmp/libs/log'; cat '$tmp/libs/build/CMakeFiles/libs_check.dir/link.txt'; false; }"
# (Threads::Threads adds -pthread only where the C library lacks the threads functions; with
# glibc 2.34 and later it adds nothing, and pthread_create above links either way.)

# ---- the installed binary, from another working folder
fairbench=$prefix/bin/fairbench
mkdir -p "$tmp/my-plugins" "$tmp/run"
cp "$so" "$tmp/my-plugins/"
(cd / && "$fairbench" synth -o "$tmp/run/tiny.gguf" --seed 3 2>/dev/null)
(cd / && "$fairbench" plugins) >"$tmp/plugins.txt" 2>&1
check "the installed binary searches only the prefix's plugin folder (not the build tree)" bash -c \
  "sed -n '/^plugin folders searched:/,/^$/p' '$tmp/plugins.txt' | grep '^  ' | tr -d ' ' | grep -qx '$prefix/lib/fairbench/plugins' \
   && test \$(sed -n '/^plugin folders searched:/,/^$/p' '$tmp/plugins.txt' | grep -c '^  ') -eq 1"
check "... and finds cpu_ref there" grep -qE '^cpu_ref +1\.0\.0 +1\.1 .* available: ' "$tmp/plugins.txt"

cat >"$tmp/run/sdk.ini" <<'INI'
; cpu_ref and a third-party plugin, side by side
[run]
model = tiny.gguf
backends = cpu_ref, example_naive
prompt_tokens = 8
gen_tokens = 16
warmup = 1
repetitions = 2
timeout_s = 60

[fairness]
weight_precision = f32
threads = 1
INI
(cd / && FAIRBENCH_PLUGIN_PATH="$tmp/my-plugins" "$fairbench" -c "$tmp/run/sdk.ini" --format json -o "$tmp/run/report.json" -q) \
  2>"$tmp/run/stderr.txt"; rc=$?
check "a profile with cpu_ref and example_naive runs from / (rc=$rc)" bash -c "test $rc -eq 0 || { cat '$tmp/run/stderr.txt'; false; }"
check "both columns have results, and example_naive agrees with cpu_ref" python3 - "$tmp/run/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b = {x["label"]: x for x in r["backends"]}
assert set(b) == {"cpu_ref", "example_naive"}, list(b)
for name, x in b.items():
    assert x["status"] == "ok", (name, x["status"], x.get("reason"))
    assert len(x["samples"]["decode_latency_ms"]) == 16 * 2, name
    assert x["metrics"]["throughput_tok_s"] > 0, name
a = b["example_naive"]["agreement"]
assert a["top1"] >= 0.99 and a["mean_kl"] <= 1e-4 and not a["wrong"], a
assert b["example_naive"]["effective_settings"]["weight_precision"] == "f32", b["example_naive"]["effective_settings"]
assert b["example_naive"]["plugin_version"] == "1.0.0"
print("example_naive: top-1", a["top1"], "max |diff|", a["max_abs_logit_diff"], "KL", a["mean_kl"])
PY

(cd / && "$fairbench" -c smoke.ini --model "$tmp/run/tiny.gguf" --set run.repetitions=1 --set run.warmup=0 --format json \
   -o "$tmp/run/smoke.json" -q) 2>"$tmp/run/smoke.err"; rc=$?
check "-c smoke.ini from / reads the prefix's installed profile (rc=$rc)" python3 - "$tmp/run/smoke.json" "$prefix" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
path = os.path.realpath(r["profile"]["path"])
assert path == os.path.realpath(sys.argv[2] + "/share/fairbench/profiles/smoke.ini"), path
assert all(x["status"] == "ok" for x in r["backends"]), [x["status"] for x in r["backends"]]
PY

(cd / && "$fairbench" conformance "$so") >"$tmp/conformance.txt" 2>&1; rc=$?
check "fairbench conformance passes the out-of-tree example (rc=$rc)" bash -c "test $rc -eq 0 \
  && grep -q '^19 checks: 19 passed, 0 failed, 0 skipped$' '$tmp/conformance.txt' || { cat '$tmp/conformance.txt'; false; }"
check "... against the prefix's cpu_ref" grep -q "^reference: cpu_ref .*($prefix/lib/fairbench/plugins/cpu_ref.so)" "$tmp/conformance.txt"

# A .so dropped into the prefix's own plugin folder needs no option at all.
cp "$tmp/pc/example_naive.so" "$prefix/lib/fairbench/plugins/"
(cd / && "$fairbench" plugins) >"$tmp/plugins2.txt" 2>&1
check "dropped into lib/fairbench/plugins, example_naive is found with no option" \
  grep -qE '^example_naive +1\.0\.0 +1\.1 +cpu,f32 +available: ' "$tmp/plugins2.txt"

# ---- relocatable: the whole prefix moved elsewhere
mv "$prefix" "$tmp/moved"
(cd / && "$tmp/moved/bin/fairbench" plugins) >"$tmp/plugins3.txt" 2>&1
check "after moving the prefix, the binary finds the plugins beside it" bash -c \
  "grep -qx '  $tmp/moved/lib/fairbench/plugins' '$tmp/plugins3.txt' && grep -qE '^cpu_ref .* available: ' '$tmp/plugins3.txt'"
cmake -S "$tmp/example-src" -B "$tmp/example-build-moved" -DCMAKE_PREFIX_PATH="$tmp/moved" >"$tmp/moved.log" 2>&1 \
  && cmake --build "$tmp/example-build-moved" >>"$tmp/moved.log" 2>&1; rc=$?
check "... and the example builds against the moved package (rc=$rc)" bash -c \
  "test $rc -eq 0 && grep -qx 'fairbench_DIR:PATH=$tmp/moved/lib/cmake/fairbench' '$tmp/example-build-moved/CMakeCache.txt' \
   || { cat '$tmp/moved.log'; false; }"
check "... with the moved include folder" bash -c \
  "grep -rqE -- '(-I|-isystem )$tmp/moved/include' '$tmp/example-build-moved/CMakeFiles/example_naive.dir/flags.make'"
finish
