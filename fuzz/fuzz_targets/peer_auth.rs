//! Fuzzes a node's check of a router's signature: any header values are
//! refused or accepted, never a panic.
#![no_main]

use bucketfs_common::peer_auth::{ClusterSecret, Signed};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let secret = ClusterSecret::new(&[7u8; 32]).expect("a long secret");
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (method, path, date, signature) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let signed = Signed {
        method,
        path_and_query: path,
        date: date.parse().unwrap_or(0),
        content_hash: "",
    };
    let _ = secret.verify(&signed, signature);
    let _ = ClusterSecret::new(data);
});
