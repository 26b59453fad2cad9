# Thin wrapper around CMake. `make run` and `make test` work on a fresh Debian
# machine: they install what is missing (as root) or print the command to run.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
RUN_FLAGS ?=

.PHONY: all build run test deps bench clean check-sanitize fuzz check-valgrind ci install
FUZZ_SECONDS ?= 30

all: build

build:
	@scripts/deps.sh build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The command, liboptimlab (.a and .so), the headers and optimlab.pc under
# PREFIX (default /usr/local): what plugins build against (docs/extending.md).
PREFIX ?=
install: build
	@cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

# Train the default model (ResNet-20 on Fashion-MNIST) with the default recipe.
run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory build
	$(BUILD)/optimlab train --out runs/default $(RUN_FLAGS)

test:
	@scripts/deps.sh test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DOL_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The unit tests under AddressSanitizer and UndefinedBehaviorSanitizer (with leak checks).
check-sanitize:
	@scripts/deps.sh test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOL_SANITIZE=ON -DOL_WERROR=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && OPTIMLAB_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -E "test_kill|test_interop"

# libFuzzer on every parser for FUZZ_SECONDS each; a crash is copied into
# fuzz/corpus/<parser>/ (replayed by `make test` from then on) and fails the target.
fuzz:
	@scripts/deps.sh fuzz
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOL_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_idx fuzz_cifar fuzz_checkpoint fuzz_config fuzz_grid
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

# A short training run under valgrind memcheck (reference and BLAS kernels:
# valgrind 3.19 has no AVX-512, and oneDNN's JIT code over-reads its own buffers).
check-valgrind:
	@scripts/deps.sh valgrind
	@cmake -S . -B build-vg -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOL_NATIVE=OFF -DOL_TESTS=OFF >/dev/null
	@cmake --build build-vg -j $(JOBS) --target optimlab_cli
	@scripts/valgrind.sh build-vg/optimlab

# Everything CI runs.
ci: test check-sanitize fuzz check-valgrind

bench: build
	$(BUILD)/optimlab bench train --model resnet20 --batch-size 128 --steps 20
	$(BUILD)/optimlab bench train --model mlp --batch-size 128 --steps 100

clean:
	rm -rf $(BUILD)
