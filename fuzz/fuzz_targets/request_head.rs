//! Fuzzes `router::fuzzing::request_head`: it must return, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::request_head(data));
