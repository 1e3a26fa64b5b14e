-- The change feed: every change of a key's current version (a commit, a
-- delete, both ends of a rename, every name of a link group), for mounts
-- to follow (`GET /{bucket}?bucketfs-changes`) and drop what they cache of
-- the key. `etag` is the new current version's, NULL when the key is gone.
-- Rows are recorded by statement triggers on `current_versions`, the one
-- table every such change writes; the feed trims rows after a while.
CREATE TABLE changes (
    seq        bigserial PRIMARY KEY,
    bucket_id  bigint NOT NULL,
    key        text COLLATE "C" NOT NULL,
    etag       text,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_by_bucket ON changes (bucket_id, seq);

CREATE FUNCTION record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (bucket_id, key, etag) SELECT o.bucket_id, o.key, NULL FROM old_rows o;
    ELSE
        INSERT INTO changes (bucket_id, key, etag)
        SELECT n.bucket_id, n.key, v.etag FROM new_rows n JOIN versions v ON v.id = n.version;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER current_versions_inserted AFTER INSERT ON current_versions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes();
CREATE TRIGGER current_versions_updated AFTER UPDATE ON current_versions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes();
CREATE TRIGGER current_versions_deleted AFTER DELETE ON current_versions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_changes();
