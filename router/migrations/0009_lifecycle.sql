-- Lifecycle rules of a bucket, as bucketfs stores them (see
-- router/src/lifecycle.rs); NULL: none. Applied by the elected worker.
ALTER TABLE buckets ADD COLUMN lifecycle jsonb;
