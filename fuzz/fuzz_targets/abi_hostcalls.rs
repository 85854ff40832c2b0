//! A guest calling every proxy-wasm host call with arguments from the input: see
//! `wasmgate::fuzzing::fuzz_abi`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wasmgate::fuzzing::fuzz_abi(data));
