//! Multipart uploads: their parts and their completion.

use std::collections::HashMap;

use super::sql::*;
use super::*;
use crate::error::{Error, Result};

impl Meta {
    pub async fn create_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        content_type: Option<&str>,
        metadata: &HashMap<String, String>,
        settings: &Json,
    ) -> Result<String> {
        let upload_id = new_upload_id();
        sqlx::query(
            "INSERT INTO uploads (upload_id, bucket_id, key, content_type, metadata, settings)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&upload_id)
        .bind(bucket.id)
        .bind(key)
        .bind(content_type)
        .bind(serde_json::to_value(metadata).expect("metadata serialises"))
        .bind(settings)
        .execute(&self.pool)
        .await?;
        Ok(upload_id)
    }

    pub async fn upload(&self, bucket: &Bucket, key: &str, upload_id: &str) -> Result<Upload> {
        sqlx::query_as(
            "SELECT upload_id, bucket_id, key, content_type, metadata, settings, created_at FROM uploads
             WHERE upload_id = $1 AND bucket_id = $2 AND key = $3",
        )
        .bind(upload_id)
        .bind(bucket.id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NoSuchUpload)
    }

    /// Stores (or replaces) one part of an upload.
    pub async fn put_part(
        &self,
        upload_id: &str,
        part_number: i32,
        etag: &str,
        pieces: &[Piece],
    ) -> Result<()> {
        let size: i64 = pieces.iter().map(|p| p.length).sum();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM parts WHERE upload_id = $1 AND part_number = $2")
            .bind(upload_id)
            .bind(part_number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO parts (upload_id, part_number, size, etag) VALUES ($1, $2, $3, $4)")
            .bind(upload_id)
            .bind(part_number)
            .bind(size)
            .bind(etag)
            .execute(&mut *tx)
            .await?;
        for (idx, p) in pieces.iter().enumerate() {
            sqlx::query(
                "INSERT INTO part_chunks (upload_id, part_number, idx, chunk_id, chunk_offset, length)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(upload_id)
            .bind(part_number)
            .bind(idx as i32)
            .bind(&p.chunk_id)
            .bind(p.chunk_offset as i32)
            .bind(p.length as i32)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn parts(&self, upload_id: &str, after: i32, limit: i64) -> Result<Vec<Part>> {
        Ok(sqlx::query_as(
            "SELECT part_number, size, etag, created_at FROM parts
             WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3",
        )
        .bind(upload_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn part_pieces(&self, upload_id: &str, part_number: i32) -> Result<Vec<Piece>> {
        let rows = sqlx::query(
            "SELECT chunk_id, chunk_offset, length FROM part_chunks
             WHERE upload_id = $1 AND part_number = $2 ORDER BY idx",
        )
        .bind(upload_id)
        .bind(part_number)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(piece_from_row).collect())
    }

    pub async fn delete_upload(&self, upload_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn list_uploads(
        &self,
        bucket: &Bucket,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: i64,
    ) -> Result<Vec<Upload>> {
        Ok(sqlx::query_as(
            "SELECT upload_id, bucket_id, key, content_type, metadata, settings, created_at FROM uploads
             WHERE bucket_id = $1 AND key >= $2 AND (key > $3 OR (key = $3 AND upload_id > $4))
             ORDER BY key, upload_id LIMIT $5",
        )
        .bind(bucket.id)
        .bind(prefix)
        .bind(key_marker)
        .bind(upload_id_marker)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Commits a completed upload as a version and forgets the upload, atomically.
    pub async fn complete_upload(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        new: NewVersion,
    ) -> Result<Version> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(Error::NoSuchUpload);
        }
        let version = commit_in(&mut *tx, bucket, new, None).await?;
        tx.commit().await?;
        Ok(version)
    }
}
