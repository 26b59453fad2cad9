# Thin wrapper around CMake. `make run` and `make test` work on a fresh Debian
# machine: they install what is missing (as root) or print the command to run.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
RUN_FLAGS ?=

.PHONY: all build run test deps bench clean

all: build

build:
	@scripts/deps.sh build
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

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

bench: build
	$(BUILD)/optimlab bench train --model resnet20 --batch-size 128 --steps 20
	$(BUILD)/optimlab bench train --model mlp --batch-size 128 --steps 100

clean:
	rm -rf $(BUILD)
