-- Locks between mounts (`bucketfs_common::file_locks`): one row per range a
-- lock owner of a mount's session holds on a key. A mount renews its
-- session's rows every few seconds; a row past `lease_until` no longer
-- counts and is deleted by the next change to its key, so a killed mount's
-- locks free themselves within the lease.
CREATE TABLE file_locks (
    bucket_id    bigint NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    key          text COLLATE "C" NOT NULL,
    session      text NOT NULL,
    owner        bigint NOT NULL,
    -- 'read' or 'write'
    kind         text NOT NULL,
    range_start  bigint NOT NULL,
    -- inclusive
    range_end    bigint NOT NULL,
    pid          integer NOT NULL,
    lease_until  timestamptz NOT NULL
);
CREATE INDEX file_locks_by_key ON file_locks (bucket_id, key);
CREATE INDEX file_locks_by_session ON file_locks (session);
