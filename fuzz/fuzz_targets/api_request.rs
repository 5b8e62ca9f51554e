#![no_main]
//! Fuzz target: see `kekd::fuzzing::api_request`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kekd::fuzzing::api_request(data));
