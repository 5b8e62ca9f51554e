#![no_main]
//! Fuzz target: see `kekd::fuzzing::envelope_json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kekd::fuzzing::envelope_json(data));
