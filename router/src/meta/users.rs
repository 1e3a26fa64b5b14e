//! Users and their access keys.

use time::OffsetDateTime;

use super::*;
use crate::error::Result;

/// A user: who owns buckets and signs requests with access keys.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// The canonical id S3 shows (64 lowercase hex digits).
    pub id: String,
    /// The display name.
    pub name: String,
}

/// What signing with an access key needs, and whose key it is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyOwner {
    pub secret_key: String,
    pub user_id: String,
    pub user_name: String,
}

/// An access key as listed (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyListing {
    pub access_key: String,
    pub user_name: String,
    pub user_id: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl Meta {
    /// The user named `name`, made (with a fresh canonical id) if new.
    pub async fn ensure_user(&self, name: &str) -> Result<User> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        Ok(sqlx::query_as(
            "WITH made AS (INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
                           RETURNING id, name)
             SELECT id, name FROM made UNION ALL SELECT id, name FROM users WHERE name = $2",
        )
        .bind(id)
        .bind(name)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Adds an access key for `user` (or gives an existing one a new secret
    /// and owner, and takes back its revocation).
    pub async fn put_access_key(&self, user: &User, access_key: &str, secret_key: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_keys (access_key, secret_key, user_id) VALUES ($1, $2, $3)
             ON CONFLICT (access_key) DO UPDATE
                 SET secret_key = EXCLUDED.secret_key, user_id = EXCLUDED.user_id, revoked_at = NULL",
        )
        .bind(access_key)
        .bind(secret_key)
        .bind(&user.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The secret and user of a key that is not revoked.
    pub async fn key_owner(&self, access_key: &str) -> Result<Option<KeyOwner>> {
        Ok(sqlx::query_as(
            "SELECT k.secret_key, u.id AS user_id, u.name AS user_name
             FROM access_keys k JOIN users u ON u.id = k.user_id
             WHERE k.access_key = $1 AND k.revoked_at IS NULL",
        )
        .bind(access_key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every key, or `user`'s, oldest first.
    pub async fn access_keys(&self, user: Option<&str>) -> Result<Vec<KeyListing>> {
        Ok(sqlx::query_as(
            "SELECT k.access_key, u.name AS user_name, u.id AS user_id, k.created_at, k.revoked_at
             FROM access_keys k JOIN users u ON u.id = k.user_id
             WHERE $1::text IS NULL OR u.name = $1
             ORDER BY k.created_at, k.access_key",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes a key; false if there is no such key (or it was revoked).
    pub async fn revoke_access_key(&self, access_key: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_keys SET revoked_at = now() WHERE access_key = $1 AND revoked_at IS NULL",
        )
        .bind(access_key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user with canonical id or name `who`.
    pub async fn user(&self, who: &str) -> Result<Option<User>> {
        Ok(
            sqlx::query_as("SELECT id, name FROM users WHERE id = $1 OR name = $1")
                .bind(who)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
