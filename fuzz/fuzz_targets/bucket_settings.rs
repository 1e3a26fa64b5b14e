//! Fuzzes `router::fuzzing::bucket_settings`: it must return, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::bucket_settings(data));
