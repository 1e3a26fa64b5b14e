//! Fuzzes the chunk file header a node reads from disk: decoding and
//! verifying any bytes returns an error, never panics.
#![no_main]

use bucketfs_common::blocks::Header;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = Header::block_count(data);
    if let Ok(header) = Header::decode(data) {
        let len = header.encoded_len();
        let blocks = header.covering_blocks(0, len.min(1 << 20));
        let _ = header.verify(blocks.start, &data[data.len().min(64)..]);
    }
});
