#!/usr/bin/env bash
# Builds every wasm plugin crate of the workspace and copies the modules to target/wasm/NAME.wasm.
# Uses rustup's wasm32-unknown-unknown target where it is installed, and otherwise Debian's rustc
# with -Zbuild-std (README: Building wasm here). Run scripts/install-toolchain.sh first on a new machine.
#
# `build-wasm.sh --clippy` runs clippy over the same crates and the SDK for the wasm target
# instead, warnings denied (`make lint`): the SDK's ABI code and the plugins' exports are
# compiled only there.
set -euo pipefail
cd "$(dirname "$0")/.."

clippy=0
if [ "${1:-}" = --clippy ]; then clippy=1; shift; fi

# The crates that build to a .wasm module, and the file name each gets under target/wasm/.
crates=(key-auth instance-header path-rewrite jwt-auth pw-add-header pw-deny sdk-stamp)
if [ "$#" -gt 0 ]; then crates=("$@"); fi

out=target/wasm
mkdir -p "$out"
# `tail` goes last, after any cargo flag added below: clippy's own arguments.
tail=()
if [ "$clippy" = 1 ]; then
    args=(clippy --target wasm32-unknown-unknown --target-dir target/wasm-build -p wasmgate-sdk)
    tail=(-- -D warnings)
else
    args=(build --release --target wasm32-unknown-unknown --target-dir target/wasm-build)
fi
for c in "${crates[@]}"; do args+=(-p "$c"); done

# An outer cargo (make, a build script) may have set these for the host toolchain.
unset RUSTC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_TARGET_DIR CARGO_BUILD_TARGET RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
# Plugins ship without debug info: it is most of a module's size. Fat LTO in one codegen unit
# lets the SDK and std's small helpers inline into the plugin: 4% fewer instructions per request
# for the seed's chain (BENCHMARKS.md, round 4). Set here, not in Cargo.toml: the host's release
# build would pay for it in build time.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo
export CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -x wasm32-unknown-unknown >/dev/null; then
    # (Not `grep -q`: it stops reading at the first match, and under pipefail rustup's failed
    # write would make the test false.)
    cargo "${args[@]}" "${tail[@]}"
elif [ "$clippy" = 1 ]; then
    # Debian ships no clippy beside its rustc-web; the host-target clippy still runs.
    echo "build-wasm: no clippy for the Debian wasm toolchain: wasm-target lints skipped" >&2
    exit 0
elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
    RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo "${args[@]}" -Zbuild-std=std,panic_abort
else
    echo "build-wasm: no wasm toolchain; run scripts/install-toolchain.sh" >&2
    exit 1
fi

if [ "$clippy" = 1 ]; then
    echo "build-wasm: clippy clean for the wasm target: wasmgate-sdk ${crates[*]}" >&2
    exit 0
fi
for c in "${crates[@]}"; do
    cp "target/wasm-build/wasm32-unknown-unknown/release/${c//-/_}.wasm" "$out/$c.wasm"
done
echo "build-wasm: ${crates[*]} -> $out/" >&2
