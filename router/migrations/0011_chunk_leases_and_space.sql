-- Prompt garbage collection. A chunk is out of the collector's reach until
-- its lease runs out: a writer records it with a lease of --gc-grace-secs
-- and renews the lease while its request still streams, so the collector
-- can free unreferenced chunks as soon as their lease ends instead of
-- waiting an hour for any write that might still be going on.
ALTER TABLE chunks ADD COLUMN lease_until timestamptz;
-- Chunks of writes under way during the upgrade keep the hour they had.
UPDATE chunks SET lease_until = created_at + interval '1 hour';
ALTER TABLE chunks ALTER COLUMN lease_until SET NOT NULL;
ALTER TABLE chunks ALTER COLUMN lease_until SET DEFAULT now();

-- Space accounting: what each node's chunk files take on disk, as it
-- reports in ZooKeeper, beside the logical bytes the versions hold.
ALTER TABLE nodes ADD COLUMN chunk_disk_bytes bigint NOT NULL DEFAULT 0;
