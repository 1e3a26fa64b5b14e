//! Fuzzes `router::fuzzing::listing_token`: it must return, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| router::fuzzing::listing_token(data));
