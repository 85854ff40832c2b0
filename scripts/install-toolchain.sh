#!/usr/bin/env bash
# Installs what building and testing wasmgate needs on a fresh Debian 12 machine of the project's
# kind: the wasm toolchain (rustup's target where it can be had, Debian's rustc-web route otherwise,
# README: Building wasm here) and the command-line tools the tests and the demo use.
# Idempotent: it installs only what is missing.
set -euo pipefail

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
# The management page's end-to-end test renders it in headless Chromium.
command -v chromium >/dev/null || need_apt+=(chromium)

have_rustup_wasm=0
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -x wasm32-unknown-unknown >/dev/null; then
    have_rustup_wasm=1
elif command -v rustup >/dev/null && timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    have_rustup_wasm=1
fi

if [ "$have_rustup_wasm" = 0 ]; then
    # rustup's dist server is not reachable on these machines: build std for wasm from Debian's
    # rust source with Debian's rustc (lld links it).
    [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rustc-web cargo-web rust-web-src)
    [ -e /usr/bin/rust-lld ] || need_apt+=(lld-22)
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "install-toolchain: installing ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
