# wasmgate: `make demo` builds everything and starts the demo; `make test` runs the whole suite.
# Both install what is missing first (the wasm toolchain included: scripts/install-toolchain.sh).

CARGO ?= cargo

.PHONY: all toolchain wasm build demo test lint fmt clean fuzz-smoke bench bench-load bench-count

all: build

toolchain:
	scripts/install-toolchain.sh

# Every plugin and test fixture, as target/wasm/NAME.wasm.
wasm: toolchain
	scripts/build-wasm.sh

# The gateway binary at target/release/wasmgate, and the plugins.
build: wasm
	$(CARGO) build --release -p wasmgate

demo: build
	target/release/wasmgate demo

# Clippy for the host and, where the toolchain has it, for the wasm target (the SDK's ABI code
# and the plugins' exports compile only there).
lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/build-wasm.sh --clippy

# Tests run in release: wasmtime compiles plugins far faster optimised, and `make build` shares
# the dependencies.
test: wasm lint
	$(CARGO) test --workspace --release

fmt:
	$(CARGO) fmt --all

# A bounded fuzz run of both cargo-fuzz targets (docs/fuzzing.md): FUZZ_SECONDS per target.
fuzz-smoke:
	scripts/fuzz-smoke.sh

# Criterion benchmarks of the plugin path (BENCHMARKS.md).
bench: wasm
	$(CARGO) bench -p wasmgate-benches --bench plugin_path

# wasmgate against nginx + Lua under wrk and h2load on loopback, one core each (BENCHMARKS.md).
# Installs nginx, its Lua module, wrk and h2load when missing; not part of `make test`.
bench-load: wasm
	scripts/bench-load.sh

# Instructions per request (callgrind): the plugin path's criterion benches and the whole
# gateway under wrk. Exact where times vary by 15-20% on this machine (BENCHMARKS.md).
bench-count: wasm
	scripts/count-instructions.sh

clean:
	$(CARGO) clean
