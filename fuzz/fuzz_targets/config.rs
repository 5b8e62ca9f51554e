#![no_main]
//! Fuzz target: see `kekd::fuzzing::config`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kekd::fuzzing::config(data));
