//! Access keys to users: s3s asks for a key's secret to check a signature,
//! the access check for the user who signed. Both read one cache, so a
//! request costs at most one lookup; entries live `CACHE_TTL`, so a key
//! added or revoked on one router is seen by all within that time, and a
//! Postgres blip does not fail every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::error::Result;
use crate::meta::{KeyOwner, Meta};

/// How long a key's lookup is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Keys kept at most; past it the cache starts again empty.
const CACHE_LIMIT: usize = 10_000;

#[derive(Clone)]
pub struct Identities {
    meta: Meta,
    cache: Arc<Mutex<HashMap<String, (KeyOwner, Instant)>>>,
}

impl Identities {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            cache: Arc::default(),
        }
    }

    /// The secret and user of a key that exists and is not revoked.
    pub async fn owner(&self, access_key: &str) -> Result<Option<KeyOwner>> {
        if let Some((owner, at)) = self.cache.lock().unwrap().get(access_key) {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(owner.clone()));
            }
        }
        let owner = self.meta.key_owner(access_key).await?;
        let mut cache = self.cache.lock().unwrap();
        match &owner {
            Some(o) => {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(access_key.to_string(), (o.clone(), Instant::now()));
            }
            None => {
                cache.remove(access_key);
            }
        }
        Ok(owner)
    }
}

#[async_trait::async_trait]
impl S3Auth for Identities {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.owner(access_key).await {
            Ok(Some(owner)) => Ok(SecretKey::from(owner.secret_key)),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId, "The access key does not exist")),
            Err(e) => Err(e.into()),
        }
    }
}
