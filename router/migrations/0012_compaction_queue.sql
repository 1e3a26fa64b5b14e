-- Versions whose chunk maps patches have fragmented (more than two pieces
-- in some 8 MiB part), for the worker to compact once they have been
-- current and quiet for a while. Compaction rewrites the map, never the
-- bytes or the version the user sees.
CREATE TABLE compaction_queue (
    version    bigint PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
