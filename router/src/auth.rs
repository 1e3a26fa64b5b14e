//! Access keys for SigV4: s3s verifies signatures, this looks up secrets in
//! Postgres (cached briefly, so a key added on one router works on all of them
//! within seconds and a Postgres blip does not fail every request).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::meta::Meta;

const CACHE_TTL: Duration = Duration::from_secs(30);

pub struct PostgresAuth {
    meta: Meta,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl PostgresAuth {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for PostgresAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Some((secret, at)) = self.cache.lock().unwrap().get(access_key) {
            if at.elapsed() < CACHE_TTL {
                return Ok(SecretKey::from(secret.clone()));
            }
        }
        match self.meta.secret_key(access_key).await {
            Ok(Some(secret)) => {
                self.cache
                    .lock()
                    .unwrap()
                    .insert(access_key.to_string(), (secret.clone(), Instant::now()));
                Ok(SecretKey::from(secret))
            }
            Ok(None) => Err(s3_error!(InvalidAccessKeyId, "The access key does not exist")),
            Err(e) => Err(e.into()),
        }
    }
}
