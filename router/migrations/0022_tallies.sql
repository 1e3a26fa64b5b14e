-- Running totals, so that the status, the space gauges and rebalance read a
-- few rows instead of grouping every chunk, replica and version (at a
-- million objects those scans took 1-3 s each, run every pass and on every
-- status call; at ten million, tens of seconds).
--
-- Every statement that changes chunks, chunk_replicas, versions or
-- current_versions appends one delta row per subject it touched
-- (statement-level triggers over the transition tables: a batch of 1,000
-- keys adds one row, and no two writers ever update the same row). A
-- reader sums a subject's rows; the worker's pass folds each subject's rows
-- into one (`fold_tallies`), so the table stays a few rows per subject.
--
--   kind 'chunks', subject ''       : items = chunks, bytes = their bytes
--   kind 'node',   subject node id  : items = replicas on it, bytes = theirs
--   kind 'bucket', subject bucket id: items = current keys, bytes = their
--                                     bytes, all_bytes = every version's
CREATE TABLE tallies (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    subject    text NOT NULL,
    items      bigint NOT NULL DEFAULT 0,
    bytes      bigint NOT NULL DEFAULT 0,
    all_bytes  bigint NOT NULL DEFAULT 0
);
CREATE INDEX tallies_by_subject ON tallies (kind, subject);

-- A replica's bytes are its chunk's size, read when the replica row comes
-- or goes; so a chunk's replicas must go before the chunk does. The foreign
-- key no longer cascades (NOT VALID: existing rows are not re-checked), so
-- a delete that forgot them fails instead of leaving the totals wrong.
ALTER TABLE chunk_replicas DROP CONSTRAINT chunk_replicas_chunk_id_fkey;
ALTER TABLE chunk_replicas ADD CONSTRAINT chunk_replicas_chunk_id_fkey
    FOREIGN KEY (chunk_id) REFERENCES chunks(id) NOT VALID;

CREATE FUNCTION tally_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies (kind, subject, items, bytes)
        SELECT 'chunks', '', count(*), sum(size) FROM changed HAVING count(*) > 0;
    ELSE
        INSERT INTO tallies (kind, subject, items, bytes)
        SELECT 'chunks', '', -count(*), -sum(size) FROM changed HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tally_chunks_added AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tally_chunks();
CREATE TRIGGER tally_chunks_removed AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tally_chunks();

CREATE FUNCTION tally_replicas() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO tallies (kind, subject, items, bytes)
    SELECT 'node', r.node_id, sign * count(*), sign * COALESCE(sum(c.size), 0)
    FROM changed r LEFT JOIN chunks c ON c.id = r.chunk_id
    GROUP BY r.node_id;
    RETURN NULL;
END $$;
CREATE TRIGGER tally_replicas_added AFTER INSERT ON chunk_replicas
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tally_replicas();
CREATE TRIGGER tally_replicas_removed AFTER DELETE ON chunk_replicas
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tally_replicas();

CREATE FUNCTION tally_versions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign integer := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    INSERT INTO tallies (kind, subject, all_bytes)
    SELECT 'bucket', bucket_id::text, sign * sum(size) FROM changed GROUP BY bucket_id;
    RETURN NULL;
END $$;
CREATE TRIGGER tally_versions_added AFTER INSERT ON versions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tally_versions();
CREATE TRIGGER tally_versions_removed AFTER DELETE ON versions
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tally_versions();

-- A current pointer's bytes are its version's size; the version row is
-- still there when the pointer moves or goes (the pointer references it).
CREATE FUNCTION tally_current() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tallies (kind, subject, items, bytes)
        SELECT 'bucket', n.bucket_id::text, count(*), COALESCE(sum(v.size), 0)
        FROM added n LEFT JOIN versions v ON v.id = n.version GROUP BY n.bucket_id;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO tallies (kind, subject, items, bytes)
        SELECT 'bucket', o.bucket_id::text, -count(*), -COALESCE(sum(v.size), 0)
        FROM removed o LEFT JOIN versions v ON v.id = o.version GROUP BY o.bucket_id;
    ELSE
        INSERT INTO tallies (kind, subject, bytes)
        SELECT 'bucket', t.bucket_id::text, sum(t.delta)
        FROM (SELECT n.bucket_id, v.size AS delta FROM added n JOIN versions v ON v.id = n.version
              UNION ALL
              SELECT o.bucket_id, -v.size FROM removed o JOIN versions v ON v.id = o.version) t
        GROUP BY t.bucket_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tally_current_added AFTER INSERT ON current_versions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION tally_current();
CREATE TRIGGER tally_current_removed AFTER DELETE ON current_versions
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION tally_current();
CREATE TRIGGER tally_current_moved AFTER UPDATE ON current_versions
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION tally_current();

-- What is there already, counted once.
INSERT INTO tallies (kind, subject, items, bytes)
SELECT 'chunks', '', count(*), COALESCE(sum(size), 0) FROM chunks;
INSERT INTO tallies (kind, subject, items, bytes)
SELECT 'node', r.node_id, count(*), sum(c.size)
FROM chunk_replicas r JOIN chunks c ON c.id = r.chunk_id GROUP BY r.node_id;
INSERT INTO tallies (kind, subject, all_bytes)
SELECT 'bucket', bucket_id::text, sum(size) FROM versions GROUP BY bucket_id;
INSERT INTO tallies (kind, subject, items, bytes)
SELECT 'bucket', c.bucket_id::text, count(*), sum(v.size)
FROM current_versions c JOIN versions v ON v.id = c.version GROUP BY c.bucket_id;
