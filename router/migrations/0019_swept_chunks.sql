-- The orphan sweep (the worker's inventory of each node) removes chunk
-- files that no row names. A write stalled long enough could still be about
-- to record such a chunk for the first time, and would then name files
-- that are gone. So the sweep first leaves a tombstone here, and a chunk
-- whose id has one can never be recorded: the insert fails, and so does the
-- stalled write, which its client retries with new chunks. Both sides take
-- the same transaction-scoped advisory lock on the id, so the tombstone
-- and the insert cannot pass each other unseen. Tombstones go after a week.
CREATE TABLE swept_chunks (
    id        text PRIMARY KEY,
    swept_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION refuse_swept_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('chunk:' || NEW.id, 0));
    IF EXISTS (SELECT 1 FROM swept_chunks WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'chunk % was swept as an orphan before it was recorded', NEW.id
            USING ERRCODE = 'BF409';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER chunks_not_swept BEFORE INSERT ON chunks
    FOR EACH ROW EXECUTE FUNCTION refuse_swept_chunk();
