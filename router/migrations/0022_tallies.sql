-- Running totals of chunks and replicas, so that the status, the space
-- gauges and rebalance read a few rows instead of grouping every chunk and
-- replica (at a million objects those scans took 1-3 s each, run every
-- pass and on every status call; at ten million, tens of seconds).
--
-- Every statement that adds or removes chunks or replica rows appends one
-- delta row per subject it touched (statement-level triggers over the
-- transition tables: recording a chunk and its 3 replicas adds 4 rows, and
-- no two writers ever update the same row). A reader sums a subject's
-- rows; the worker's pass folds each subject's rows into one
-- (`fold_tallies`), so the table stays a few rows per subject.
--
--   kind 'chunks', subject ''      : items = chunks, bytes = their bytes
--   kind 'node',   subject node id : items = replicas on it, bytes = theirs
--
-- Versions are not tallied this way: their statements run key by key
-- inside commit_version, and the triggers halved the batch extension's
-- rate (10,400 to 5,700 keys/s). Bucket figures are a slower census.
CREATE TABLE tallies (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    subject    text NOT NULL,
    items      bigint NOT NULL DEFAULT 0,
    bytes      bigint NOT NULL DEFAULT 0
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

-- What is there already, counted once.
INSERT INTO tallies (kind, subject, items, bytes)
SELECT 'chunks', '', count(*), COALESCE(sum(size), 0) FROM chunks;
INSERT INTO tallies (kind, subject, items, bytes)
SELECT 'node', r.node_id, count(*), sum(c.size)
FROM chunk_replicas r JOIN chunks c ON c.id = r.chunk_id GROUP BY r.node_id;
