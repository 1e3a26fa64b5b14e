//! Fuzzes chunk id parsing: an id parses only from its own text.
#![no_main]

use bucketfs_common::ChunkId;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<ChunkId>() {
            assert_eq!(id.to_string(), text);
        }
    }
});
