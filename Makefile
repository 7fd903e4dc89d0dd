# The README's two commands:
#   make bench   set-up, build, fetch the default model, run the main job
#                (profiles/fair.ini where a GPU answers nvidia-smi, else profiles/cpu.ini;
#                PROFILE=... chooses another)
#   make test    set-up, build, fetch the default model, run the whole suite
# Other targets: build, sanitize (ASan + UBSan suite), tsan (ThreadSanitizer: cpu_ref and the
# harness), fuzz (libFuzzer, clang), format-check (clang-format 14; run by CI), clean.
#
# CI runs `make test` through .ci/run, with CI=true REQUIRE_CUDA=ON SANITIZE=1.

SHELL      := /bin/bash
BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CI_ON      := $(filter true 1,$(CI))
# CI (CI=true) builds with -Werror, and a model that cannot be fetched fails
# the tests instead of skipping them; set WERROR=ON to do the same locally.
WERROR     ?= $(if $(CI_ON),ON,OFF)
# REQUIRE_CUDA=ON: configuring fails without a CUDA toolkit, instead of
# leaving out the CUDA plugins and their tests.
REQUIRE_CUDA ?= OFF
# SANITIZE=1: `make test` also runs the suite built with ASan + UBSan
# (build-asan), but for the tests in SANITIZE_SKIP (a ctest -E regex): the
# CPU emulation of eager_ops end to end, with chunked prefill, and its
# conformance run (8 minutes each under ASan, on a busy 2-core machine; its
# kernels run under ASan op by op in eager_ops_kernels_emulated), NVRTC's
# compilations (NVRTC's own time; jit_fused_host covers the code that
# generates their source), the native block formats' emulation (its f16
# twin, jit_fused_emulated, runs under ASan; the native one was run under
# ASan by hand for Q8_0 and Q6_K) and the tensor-core prefill's mutations
# (the prefill itself, jit_fused_prefill_emulated, runs under ASan).
SANITIZE   ?= 0
SANITIZE_ON := $(filter 1 ON on true yes,$(SANITIZE))
SANITIZE_SKIP ?= ^(eager_ops_emulated|eager_ops_emulated_chunked_prefill|eager_ops_emulated_conformance|jit_fused_nvrtc_.*|jit_fused_emulated_native|jit_fused_prefill_emulated_mutations)$$
# Under ASan the tests' plugin listings must not start a Python with PyTorch
# in it (the Python bridge's probe imports each framework: 80 s under ASan,
# and LSan then reports the interpreter's never-freed memory). The bridge's
# own tests pick a Python themselves, with their leak suppressions.
ASAN_TEST_ENV := FAIRBENCH_PYTHON=/nonexistent/python
CMAKE_ARGS ?=
FAIRBENCH  := $(BUILD)/fairbench
# Zero tests registered is a failure, not a pass.
CTEST      := ctest --output-on-failure --no-tests=error -j $(JOBS)

.PHONY: bench test setup build model sanitize sanitize-build tsan format-check fuzz fuzz-more clean llamacpp frameworks

PROFILE    ?= $(if $(shell nvidia-smi -L 2>/dev/null | grep -q GPU && echo yes),fair.ini,cpu.ini)

# The report's table on the terminal, then the same run (from the results
# database it was recorded in) as an HTML report; ends by naming both.
bench: build model
	@$(FAIRBENCH) -c profiles/$(PROFILE); rc=$$?; \
	  run=$$($(FAIRBENCH) history show last | sed -n '1s/^run \([0-9]*\):.*/\1/p'); \
	  $(FAIRBENCH) report $${run:-last} -o $(BUILD)/bench-report.html >/dev/null; \
	  echo "make bench: HTML report: $(BUILD)/bench-report.html"; \
	  echo "make bench: results database row: run $${run:-?} (fairbench history show $${run:-last})"; exit $$rc

# The default model, for the tests that read it: where it cannot be fetched
# they skip (exit 77), but under CI that fails the test command.
FETCH_FOR_TESTS = scripts/fetch-model.sh >/dev/null || { \
	  if [[ -n "$(CI_ON)" ]]; then echo "make test: the default model could not be fetched, and under CI (CI=$(CI)) its tests may not be skipped" >&2; exit 1; fi; \
	  echo "make test: the default model could not be fetched; its tests will be skipped" >&2; }

# ctest's summary line is repeated last, after its list of skipped tests.
# With SANITIZE=1 the sanitizer suite runs second, and both summaries close
# the output: the last line is the failing suite's, else the plain suite's.
test: build $(if $(SANITIZE_ON),sanitize-build)
	@$(FETCH_FOR_TESTS)
	@set -o pipefail; \
	  $(CTEST) --test-dir $(BUILD) 2>&1 | tee $(BUILD)/ctest.log; rc=$$?; \
	  summary="$$(grep -E '^[0-9]+% tests passed' $(BUILD)/ctest.log | tail -n 1)"; \
	  if [[ -z "$(SANITIZE_ON)" ]]; then echo "$$summary"; exit $$rc; fi; \
	  echo "make test: the suite built with ASan + UBSan (build-asan), but for: $(SANITIZE_SKIP)"; \
	  $(ASAN_TEST_ENV) $(CTEST) --test-dir build-asan -E '$(SANITIZE_SKIP)' 2>&1 | tee build-asan/ctest.log; rc_asan=$$?; \
	  summary_asan="$$(grep -E '^[0-9]+% tests passed' build-asan/ctest.log | tail -n 1)"; \
	  plain=("make test: the suite ($(BUILD)):" "$$summary"); \
	  asan=("make test: the suite under ASan + UBSan (build-asan, but for $(SANITIZE_SKIP)):" "$$summary_asan"); \
	  if (( rc_asan != 0 && rc == 0 )); then printf '%s\n' "$${plain[@]}" "$${asan[@]}"; \
	  else printf '%s\n' "$${asan[@]}" "$${plain[@]}"; fi; \
	  (( rc == 0 && rc_asan == 0 ))

setup:
	@scripts/setup.sh

# A venv with pinned torch, tinygrad, numpy and gguf for the Python bridge (docs/python-backends.md).
frameworks:
	@scripts/setup-frameworks.sh

build: setup llamacpp
	cmake -S . -B $(BUILD) -DFB_WERROR=$(WERROR) -DFB_REQUIRE_CUDA=$(REQUIRE_CUDA) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# llama.cpp's CPU libraries for the llamacpp plugin, built once into ~/.cache (docs/llamacpp.md);
# where that fails, the plugin is skipped and everything else builds, but under CI (CI=true) the
# failure stops the build: CI must not lose the plugin's tests without saying so.
llamacpp: setup
	@scripts/setup-llamacpp.sh >/dev/null || { \
	  if [[ -n "$(CI_ON)" ]]; then echo "make llamacpp: llama.cpp could not be built, and under CI (CI=$(CI)) its plugin's tests may not be lost" >&2; exit 1; fi; \
	  echo "make llamacpp: llama.cpp could not be built; the llamacpp plugin is skipped" >&2; }

model: setup
	@scripts/fetch-model.sh >/dev/null

# The whole suite under ASan + UBSan (make test SANITIZE=1 runs most of it).
sanitize: sanitize-build
	@$(FETCH_FOR_TESTS)
	$(ASAN_TEST_ENV) $(CTEST) --test-dir build-asan

sanitize-build: setup
	cmake -S . -B build-asan -DFB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFB_WERROR=$(WERROR) \
	  -DFB_REQUIRE_CUDA=$(REQUIRE_CUDA) $(CMAKE_ARGS)
	cmake --build build-asan -j $(JOBS)

# C, C++ and CUDA sources against .clang-format (clang-format 14); .ci/run
# runs it first (scripts/format-check.sh --fix reformats).
format-check: setup
	@scripts/format-check.sh

# ThreadSanitizer: only what the short run needs (cmake/tsan.cmake, tests/test_tsan.sh).
tsan: setup
	cmake -S . -B build-tsan -DFB_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFB_WERROR=$(WERROR)
	cmake --build build-tsan -j $(JOBS) --target fairbench cpu_ref
	ctest --test-dir build-tsan --output-on-failure -R '^tsan_threads$$'

fuzz: setup
	CC=clang cmake -S . -B build-fuzz -DFB_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target fuzz_gguf
	mkdir -p build-fuzz/corpus
	build-fuzz/tests/fuzz_gguf -max_total_time=$${FUZZ_SECONDS:-600} -timeout=10 -rss_limit_mb=2048 \
	  build-fuzz/corpus tests/fuzz/corpus tests/data/bad

# The tokenizer and the profile parser: build-fuzz/tests/fuzz_tokenize.
fuzz-more: setup
	CC=clang cmake -S . -B build-fuzz -DFB_FUZZ=ON -DFB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target fuzz_tokenize
	mkdir -p build-fuzz/corpus-tokenize
	build-fuzz/tests/fuzz_tokenize -max_total_time=$${FUZZ_SECONDS:-300} -timeout=10 -rss_limit_mb=2048 \
	  -max_len=4096 build-fuzz/corpus-tokenize

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
