//! How cluster members prove themselves to each other: every router→node
//! request carries an HMAC-SHA256, under the cluster secret, of its method,
//! path and query, time and body hash. A node refuses a request whose
//! signature does not verify or whose time is more than [`MAX_SKEW`] from
//! its own clock (a replay past its window), and a PUT whose body does not
//! hash to what was signed.
//!
//! The secret is a file both processes read (`--cluster-secret-file`):
//! at least [`MIN_SECRET_LEN`] bytes, surrounding whitespace ignored. The
//! ZooKeeper credential of the cluster's members derives from it too
//! ([`ClusterSecret::zookeeper_password`]).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header with the request's time, in seconds since the Unix epoch.
pub const DATE_HEADER: &str = "x-bucketfs-date";
/// The header with the request's signature (lowercase hex).
pub const SIGNATURE_HEADER: &str = "x-bucketfs-signature";
/// The header with the BLAKE3 hash of the body (lowercase hex); a request
/// without a body signs the hash of nothing.
pub const CONTENT_HASH_HEADER: &str = "x-bucketfs-blake3";
/// How far a request's time may be from the receiver's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(120);
/// The shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a secret file or a request's credentials were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("cannot read the cluster secret file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the cluster secret in {path} is shorter than {MIN_SECRET_LEN} bytes")]
    TooShort { path: String },
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("request time is {0} s from this host's clock (more than the allowed skew)")]
    Skewed(u64),
    #[error("signature does not match")]
    BadSignature,
    #[error("body does not match its signed hash")]
    BodyMismatch,
}

/// The secret every router and node of a cluster shares.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// What a request signs besides the secret.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path and query, exactly as sent.
    pub path_and_query: &'a str,
    /// Seconds since the Unix epoch.
    pub date: u64,
    /// The body's BLAKE3 hash, lowercase hex.
    pub content_hash: &'a str,
}

/// The headers that authenticate one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub date: String,
    pub content_hash: String,
    pub signature: String,
}

impl ClusterSecret {
    /// Reads the secret from `path`.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| AuthError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::new(text.trim_ascii()).ok_or(AuthError::TooShort { path: shown })
    }

    /// A secret from its bytes; `None` when shorter than [`MIN_SECRET_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= MIN_SECRET_LEN).then(|| Self(bytes.to_vec()))
    }

    /// A fresh random secret, as hex text to write to a file.
    pub fn generate() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    fn mac(&self, request: &Signed<'_>) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for field in [
            request.method.as_bytes(),
            request.path_and_query.as_bytes(),
            request.date.to_string().as_bytes(),
            request.content_hash.as_bytes(),
        ] {
            mac.update(field);
            mac.update(b"\n");
        }
        mac
    }

    /// The credentials for a request sent now with a body hashing to
    /// `content_hash` (see [`content_hash`]).
    pub fn sign(&self, method: &str, path_and_query: &str, content_hash: String) -> Credentials {
        self.sign_at(unix_now(), method, path_and_query, content_hash)
    }

    /// [`Self::sign`] as of `date` (seconds since the Unix epoch).
    pub fn sign_at(
        &self,
        date: u64,
        method: &str,
        path_and_query: &str,
        content_hash: String,
    ) -> Credentials {
        let signature = hex::encode(
            self.mac(&Signed {
                method,
                path_and_query,
                date,
                content_hash: &content_hash,
            })
            .finalize()
            .into_bytes(),
        );
        Credentials {
            date: date.to_string(),
            content_hash,
            signature,
        }
    }

    /// Checks a received request's signature (in constant time) and its
    /// time against this host's clock.
    pub fn verify(&self, request: &Signed<'_>, signature: &str) -> Result<(), AuthError> {
        let skew = unix_now().abs_diff(request.date);
        if skew > MAX_SKEW.as_secs() {
            return Err(AuthError::Skewed(skew));
        }
        let signature = hex::decode(signature).map_err(|_| AuthError::Malformed(SIGNATURE_HEADER))?;
        self.mac(request)
            .verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)
    }

    /// The password of the cluster members' ZooKeeper identity: derived,
    /// so that ZooKeeper never holds the signing secret itself.
    pub fn zookeeper_password(&self) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(b"bucketfs zookeeper member");
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The BLAKE3 hash of a body, as [`CONTENT_HASH_HEADER`] carries it.
pub fn content_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

/// [`content_hash`] of a body that arrives in pieces.
#[derive(Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> ClusterSecret {
        ClusterSecret::new(&[byte; 32]).unwrap()
    }

    fn signed<'a>(c: &'a Credentials, path: &'a str) -> Signed<'a> {
        Signed {
            method: "PUT",
            path_and_query: path,
            date: c.date.parse().unwrap(),
            content_hash: &c.content_hash,
        }
    }

    #[test]
    fn a_signature_verifies_only_for_what_was_signed() {
        let key = secret(7);
        let c = key.sign("PUT", "/chunks/ab", content_hash(b"body"));
        assert_eq!(key.verify(&signed(&c, "/chunks/ab"), &c.signature), Ok(()));
        assert_eq!(
            key.verify(&signed(&c, "/chunks/cd"), &c.signature),
            Err(AuthError::BadSignature)
        );
        let other_body = Signed {
            content_hash: &content_hash(b"other"),
            ..signed(&c, "/chunks/ab")
        };
        assert_eq!(
            key.verify(&other_body, &c.signature),
            Err(AuthError::BadSignature)
        );
        let as_delete = Signed {
            method: "DELETE",
            ..signed(&c, "/chunks/ab")
        };
        assert_eq!(key.verify(&as_delete, &c.signature), Err(AuthError::BadSignature));
        assert_eq!(
            secret(8).verify(&signed(&c, "/chunks/ab"), &c.signature),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            key.verify(&signed(&c, "/chunks/ab"), "zz"),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn a_request_outside_its_window_is_refused() {
        let key = secret(1);
        for offset in [-(MAX_SKEW.as_secs() as i64) - 5, MAX_SKEW.as_secs() as i64 + 5] {
            // Signed with the right key, but too long ago or too far ahead.
            let date = unix_now().saturating_add_signed(offset);
            let c = key.sign_at(date, "GET", "/chunks", content_hash(b""));
            let request = Signed {
                method: "GET",
                ..signed(&c, "/chunks")
            };
            assert!(matches!(key.verify(&request, &c.signature), Err(AuthError::Skewed(s)) if s >= 125));
        }
    }

    #[test]
    fn short_secrets_are_refused_and_files_are_trimmed() {
        assert!(ClusterSecret::new(b"short").is_none());
        let dir = std::env::temp_dir().join(format!("bucketfs-secret-{}", std::process::id()));
        std::fs::write(&dir, format!("  {}\n", ClusterSecret::generate())).unwrap();
        let key = ClusterSecret::from_file(&dir).unwrap();
        assert_eq!(key.0.len(), 64);
        std::fs::write(&dir, "tiny\n").unwrap();
        assert!(matches!(
            ClusterSecret::from_file(&dir),
            Err(AuthError::TooShort { .. })
        ));
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            ClusterSecret::from_file(&dir),
            Err(AuthError::Unreadable { .. })
        ));
        assert_ne!(secret(1).zookeeper_password(), secret(2).zookeeper_password());
    }
}
