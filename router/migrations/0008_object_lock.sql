-- Object lock: WORM protection of versions, as S3 does it.

-- NULL: lock not enabled (it can only be enabled when the bucket is made).
-- {"mode": "GOVERNANCE"|"COMPLIANCE"|null, "days": n|null, "years": n|null}:
-- enabled, with the default retention new versions get.
ALTER TABLE buckets ADD COLUMN object_lock jsonb;

-- The lock of a version: a retention mode and date, a legal hold, or both.
-- RESTRICT: no statement can delete a locked version's row; a delete that
-- the rules allow removes the lock first, in the same transaction.
CREATE TABLE object_locks (
    version       bigint PRIMARY KEY REFERENCES versions(id) ON DELETE RESTRICT,
    mode          text CHECK (mode IN ('GOVERNANCE', 'COMPLIANCE')),
    retain_until  timestamptz,
    legal_hold    boolean NOT NULL DEFAULT false
);
