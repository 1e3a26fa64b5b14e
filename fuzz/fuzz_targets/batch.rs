//! Fuzzes `router::fuzzing::batch`: it must return, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::batch(data));
