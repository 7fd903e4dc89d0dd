# The README's two commands:
#   make bench   set-up, build, fetch the default model, run the main job
#                (profiles/fair.ini where a GPU answers nvidia-smi, else profiles/cpu.ini;
#                PROFILE=... chooses another)
#   make test    set-up, build, fetch the default model, run the whole suite
# Other targets: build, sanitize (ASan + UBSan suite), fuzz (libFuzzer, clang), clean.

SHELL      := /bin/bash
BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# CI (CI=true) builds with -Werror; set WERROR=ON to do the same locally.
WERROR     ?= $(if $(filter true 1,$(CI)),ON,OFF)
CMAKE_ARGS ?=
FAIRBENCH  := $(BUILD)/fairbench

.PHONY: bench test setup build model sanitize fuzz fuzz-more clean frameworks

PROFILE    ?= $(if $(shell nvidia-smi -L 2>/dev/null | grep -q GPU && echo yes),fair.ini,cpu.ini)

bench: build model
	$(FAIRBENCH) -c profiles/$(PROFILE)

# ctest's summary line is repeated last, after its list of skipped tests.
test: build
	@scripts/fetch-model.sh >/dev/null || echo "make test: the default model could not be fetched; its tests will be skipped" >&2
	@set -o pipefail; ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) 2>&1 | tee $(BUILD)/ctest.log; \
	  rc=$$?; grep -E '^[0-9]+% tests passed' $(BUILD)/ctest.log | tail -n 1; exit $$rc

setup:
	@scripts/setup.sh

# A venv with pinned torch, tinygrad, numpy and gguf for the Python bridge (docs/python-backends.md).
frameworks:
	@scripts/setup-frameworks.sh

build: setup
	cmake -S . -B $(BUILD) -DFB_WERROR=$(WERROR) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

model: setup
	@scripts/fetch-model.sh >/dev/null

sanitize: setup
	cmake -S . -B build-asan -DFB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFB_WERROR=$(WERROR)
	cmake --build build-asan -j $(JOBS)
	@scripts/fetch-model.sh >/dev/null || true
	ctest --test-dir build-asan --output-on-failure -j $(JOBS)

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
	rm -rf $(BUILD) build-asan build-fuzz
