//! Flexible checksums (`x-amz-checksum-*`): what newer S3 clients send with a
//! body, either as a header or as an aws-chunked trailer announced by
//! `x-amz-trailer`. The router computes the named checksum while the body
//! streams in and refuses the write (BadDigest, no version) on a mismatch.
//! CRC64NVME is accepted unverified.

use base64::Engine;
use http::HeaderMap;
use md5::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
}

impl Algorithm {
    const ALL: [Algorithm; 4] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn from_header(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }
}

/// A checksum the client says its body has.
#[derive(Debug, Clone)]
pub struct Claim {
    pub algorithm: Algorithm,
    /// The base64 value from a header; `None` when it comes as a trailer.
    pub value: Option<String>,
}

impl Claim {
    /// The claim made by a request's headers, if any.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        for algorithm in Algorithm::ALL {
            if let Some(v) = headers.get(algorithm.header()).and_then(|v| v.to_str().ok()) {
                return Some(Claim {
                    algorithm,
                    value: Some(v.trim().to_string()),
                });
            }
        }
        let trailer = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok())?;
        let algorithm = trailer.split(',').find_map(Algorithm::from_header)?;
        Some(Claim {
            algorithm,
            value: None,
        })
    }
}

/// Computes one checksum over a stream of bytes.
pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Hasher::Crc32c(0),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The checksum in S3's form: base64 of the big-endian bytes.
    pub fn finish(self) -> String {
        let bytes = match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(algorithm: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        for part in data.chunks(3) {
            h.update(part);
        }
        h.finish()
    }

    #[test]
    fn known_values() {
        // Values S3 documents / returns for the body "hello".
        assert_eq!(sum(Algorithm::Crc32, b"hello"), "NhCmhg==");
        assert_eq!(sum(Algorithm::Crc32c, b"hello"), "mnG7TA==");
        assert_eq!(sum(Algorithm::Sha1, b"hello"), "qvTGHdzF6KLavt4PO0gs2a6pQ00=");
        assert_eq!(
            sum(Algorithm::Sha256, b"hello"),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
    }

    #[test]
    fn claims_come_from_headers_or_trailer_announcements() {
        let mut h = HeaderMap::new();
        assert!(Claim::from_headers(&h).is_none());
        h.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        let c = Claim::from_headers(&h).unwrap();
        assert_eq!((c.algorithm, c.value), (Algorithm::Crc32, None));
        h.insert("x-amz-checksum-sha256", "abc=".parse().unwrap());
        let c = Claim::from_headers(&h).unwrap();
        assert_eq!(
            (c.algorithm, c.value.as_deref()),
            (Algorithm::Sha256, Some("abc="))
        );
    }
}
