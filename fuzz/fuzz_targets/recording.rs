#![no_main]
//! Fuzz target: see `kekd::fuzzing::recording`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kekd::fuzzing::recording(data));
