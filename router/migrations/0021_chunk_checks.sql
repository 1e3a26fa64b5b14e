-- Repair and trim at scale: chunks whose replica count may be off, so that
-- a pass looks at these (and at the replicas on nodes that no longer count)
-- instead of grouping every replica of every chunk.
--
-- A chunk lands here when it is recorded with other than 3 replicas
-- (record_chunk), when a replica is added that makes more than 3
-- (add_replica), and when any replica row goes (this trigger: repair's
-- own drops, trim, rebalance, the inventory). The worker removes an entry
-- once its chunk holds exactly 3 replicas, all on counted nodes.
CREATE TABLE chunk_checks (
    chunk_id text PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    since timestamptz NOT NULL DEFAULT now()
);

INSERT INTO chunk_checks (chunk_id)
SELECT c.id FROM chunks c
WHERE (SELECT count(*) FROM chunk_replicas r WHERE r.chunk_id = c.id) <> 3;

-- `since` moves on every new reason, so the worker's removal of an entry it
-- checked before that reason arrived waits for it and then leaves the entry.
CREATE FUNCTION chunk_replica_dropped() RETURNS trigger AS $$
BEGIN
    INSERT INTO chunk_checks (chunk_id)
    SELECT OLD.chunk_id WHERE EXISTS (SELECT 1 FROM chunks WHERE id = OLD.chunk_id)
    ON CONFLICT (chunk_id) DO UPDATE SET since = now();
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER chunk_replica_dropped AFTER DELETE ON chunk_replicas
    FOR EACH ROW EXECUTE FUNCTION chunk_replica_dropped();
