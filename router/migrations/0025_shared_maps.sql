-- Shared chunk maps. A fork or a restore makes versions with the same
-- bytes as existing ones; instead of copying each one's chunk map (a fork
-- of a million objects spent 24 of its 56 s copying and checking map
-- rows), the new version names the version whose map it reads: `map_of`
-- (NULL: its own rows in version_chunks). A map's owner never shares
-- another's, so one hop finds the rows: COALESCE(map_of, id).
--
-- When an owner is deleted while others share its map, the rows pass to
-- the lowest surviving sharer (the heir), whom the others then name. A
-- trigger on deleted versions does it, in place of the cascade from
-- version_chunks to versions, which would drop the rows before any
-- trigger could hand them on.
--
-- Buckets that share maps form a family (a fork joins its source's). A
-- fork or restore takes the family's maps lock exclusively while it points
-- new versions at existing maps; a statement deleting versions takes it
-- shared, so it either sees the new sharers (and hands the rows on) or
-- committed before the sharers were made (and they name other versions).
ALTER TABLE versions ADD COLUMN map_of bigint;
CREATE INDEX versions_sharing_map ON versions (map_of) WHERE map_of IS NOT NULL;
ALTER TABLE buckets ADD COLUMN family bigint;

-- The bigint advisory lock of a family's maps (the family is the seed:
-- with `'maps:' || family`, only stable, the call was not inlined).
CREATE FUNCTION maps_lock(p_family bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('bucketfs maps', p_family)
$$;

ALTER TABLE version_chunks DROP CONSTRAINT version_chunks_version_fkey;

CREATE FUNCTION hand_on_maps() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_heir bigint;
BEGIN
    IF OLD.map_of IS NOT NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(maps_lock(COALESCE(b.family, b.id)))
    FROM buckets b WHERE b.id = OLD.bucket_id;
    SELECT min(v.id) INTO v_heir FROM versions v WHERE v.map_of = OLD.id;
    IF v_heir IS NULL THEN
        DELETE FROM version_chunks WHERE version = OLD.id;
    ELSE
        UPDATE version_chunks SET version = v_heir WHERE version = OLD.id;
        UPDATE versions SET map_of = NULLIF(v_heir, id) WHERE map_of = OLD.id;
    END IF;
    RETURN NULL;
END $$;

-- Per row: a statement that deletes nothing (commit_version's removal of
-- a replaced null version, most often) costs nothing. Row triggers fire
-- when the statement is done, so the heir is one that survived it.
CREATE TRIGGER versions_deleted AFTER DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION hand_on_maps();

-- As migration 0024's, with shared maps: one statement makes the fork's
-- versions (naming their source's maps) and current pointers. The change
-- feed records nothing for it: no mount can have followed a bucket that
-- did not exist. The fork joins the source's family.
CREATE OR REPLACE FUNCTION fork_bucket(p_source bigint, p_name text, p_owner text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_bucket bigint;
    v_family bigint;
    v_keys bigint;
BEGIN
    SELECT COALESCE(family, id) INTO v_family FROM buckets WHERE id = p_source;
    INSERT INTO buckets (name, owner_id, versioning, family) VALUES (p_name, p_owner, 'Enabled', v_family)
    ON CONFLICT (name) DO NOTHING RETURNING id INTO v_bucket;
    IF v_bucket IS NULL THEN
        RAISE EXCEPTION 'the bucket exists' USING ERRCODE = 'BF409';
    END IF;
    PERFORM pg_advisory_xact_lock(maps_lock(v_family));
    PERFORM set_config('bucketfs.quiet_feed', 'on', true);
    WITH made AS (
        INSERT INTO versions (id, bucket_id, key, version_id, delete_marker, size, etag, content_type,
                              metadata, parts_count, created_at, map_of)
        SELECT nextval('versions_id_seq'), v_bucket, s.key, s.version_id, false,
               s.size, s.etag, s.content_type, s.metadata, s.parts_count, s.created_at,
               COALESCE(s.map_of, s.id)
        FROM versions_as_of(p_source, '', p_at) s WHERE NOT s.delete_marker
        RETURNING id, key
    )
    INSERT INTO current_versions (bucket_id, key, version) SELECT v_bucket, m.key, m.id FROM made m;
    GET DIAGNOSTICS v_keys = ROW_COUNT;
    PERFORM set_config('bucketfs.quiet_feed', '', true);
    IF EXISTS (SELECT 1 FROM object_tags t JOIN versions v ON v.id = t.version WHERE v.bucket_id = p_source) THEN
        INSERT INTO object_tags (version, tags)
        SELECT c.version, t.tags
        FROM versions_as_of(p_source, '', p_at) s
        JOIN object_tags t ON t.version = s.id
        JOIN current_versions c ON c.bucket_id = v_bucket AND c.key = s.key;
    END IF;
    RETURN v_keys;
END $$;

-- The change feed, as migration 0015's, but silent while a fork fills a
-- new bucket (`bucketfs.quiet_feed`).
CREATE OR REPLACE FUNCTION record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bucketfs.quiet_feed', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (bucket_id, key, etag) SELECT o.bucket_id, o.key, NULL FROM old_rows o;
    ELSE
        INSERT INTO changes (bucket_id, key, etag)
        SELECT n.bucket_id, n.key, v.etag FROM new_rows n JOIN versions v ON v.id = n.version;
    END IF;
    RETURN NULL;
END;
$$;

-- restore_prefix (a restored version names the past version's map) and
-- link_key (reads a shared map) are made in migration 0026, with its locks.
