#!/usr/bin/env bash
# A short, bounded fuzz run of both cargo-fuzz targets (docs/fuzzing.md), for CI: installs
# cargo-fuzz if missing, builds the targets, and runs each for FUZZ_SECONDS (default 60),
# seeded with the committed corpus. Exits non-zero on a crash, an invariant violation, a slow
# input or a run that outlives its bound; the input that failed is left in fuzz/artifacts/.
#
#   FUZZ_SECONDS=60          run time per target
#   FUZZ_SANITIZER=address   or `none` (faster to build and run, catches panics only)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
targets=(path_normalize abi_hostcalls)

# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov...); the stable toolchain
# accepts them under RUSTC_BOOTSTRAP. The fuzz crate has its own workspace and target dir.
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    timeout 900 cargo install cargo-fuzz --locked
fi

started=$(date +%s)
# The build is bounded too: a cold ASan build of wasmtime takes minutes, never an hour.
timeout --kill-after=30 3600 cargo fuzz build -s "$sanitizer"
echo "fuzz-smoke: built in $(( $(date +%s) - started )) s" >&2

# The built binaries are run directly: `cargo fuzz run` would build again with other profile
# settings (line-tables-only debug info), which is a second full ASan build of wasmtime.
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
for target in "${targets[@]}"; do
    # New inputs go to a scratch corpus; the committed seeds in fuzz/corpus stay as they are.
    work="fuzz/work/$target"
    mkdir -p "$work" "fuzz/artifacts/$target"
    echo "fuzz-smoke: $target for ${seconds} s" >&2
    # libFuzzer stops itself after max_total_time; the outer timeout is for a hang it cannot
    # stop. -timeout fails any single input that runs over 30 s.
    timeout --kill-after=30 $(( seconds + 120 )) \
        "$bin/$target" "$work" "fuzz/corpus/$target" \
        -artifact_prefix="fuzz/artifacts/$target/" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1
done
echo "fuzz-smoke: done in $(( $(date +%s) - started )) s" >&2
