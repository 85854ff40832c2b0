//! The path normaliser and the route prefix match: see `wasmgate::fuzzing::fuzz_path`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wasmgate::fuzzing::fuzz_path(data));
