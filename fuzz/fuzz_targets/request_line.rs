//! Fuzzes `router::fuzzing::request_line`: it must return, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::request_line(data));
