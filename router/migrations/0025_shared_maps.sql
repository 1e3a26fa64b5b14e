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

-- As migration 0024's, with shared maps: a restored version names the
-- past version's map. The family's maps lock is taken after the keys'
-- locks, the order a deleting statement takes them in.
CREATE OR REPLACE FUNCTION restore_prefix(p_bucket bigint, p_prefix text, p_at timestamptz)
RETURNS TABLE (restored_key text, action text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
    v_family bigint;
BEGIN
    SELECT versioning, COALESCE(family, id) INTO v_versioning, v_family FROM buckets WHERE id = p_bucket;
    IF v_versioning IS DISTINCT FROM 'Enabled' THEN
        RAISE EXCEPTION 'restore needs a versioned bucket' USING ERRCODE = 'BF400';
    END IF;
    CREATE TEMP TABLE restore_plan ON COMMIT DROP AS
        WITH past AS (SELECT * FROM versions_as_of(p_bucket, p_prefix, p_at) WHERE NOT delete_marker),
             present AS (SELECT c.key, v.id, v.etag, v.size, v.metadata, v.content_type
                     FROM current_versions c JOIN versions v ON v.id = c.version
                     WHERE c.bucket_id = p_bucket AND c.key >= p_prefix AND starts_with(c.key, p_prefix))
        SELECT COALESCE(p.key, n.key) AS key, p.id AS past_id,
               nextval('versions_id_seq') AS new_id,
               CASE WHEN p.id IS NULL THEN 'deleted' ELSE 'restored' END AS action
        FROM past p FULL JOIN present n ON n.key = p.key
        WHERE n.id IS DISTINCT FROM p.id
          AND (p.id IS NULL OR n.id IS NULL OR n.etag <> p.etag OR n.size <> p.size
               OR n.metadata <> p.metadata OR n.content_type IS DISTINCT FROM p.content_type);
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(r.key))
    FROM (SELECT key FROM restore_plan ORDER BY key COLLATE "C") r;
    PERFORM pg_advisory_xact_lock(maps_lock(v_family));
    INSERT INTO versions (id, bucket_id, key, version_id, delete_marker, size, etag, content_type,
                          metadata, parts_count, map_of)
    SELECT r.new_id, p_bucket, r.key,
           lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
               || substr(md5(random()::text || r.key), 1, 20),
           r.action = 'deleted',
           COALESCE(v.size, 0), COALESCE(v.etag, ''), v.content_type, COALESCE(v.metadata, '{}'),
           v.parts_count, COALESCE(v.map_of, v.id)
    FROM restore_plan r LEFT JOIN versions v ON v.id = r.past_id;
    -- A past version deleted since the plan was made: its map is gone.
    IF EXISTS (SELECT 1 FROM restore_plan r LEFT JOIN versions v ON v.id = r.past_id
               WHERE r.action = 'restored' AND v.id IS NULL) THEN
        RAISE EXCEPTION 'a version to restore was deleted meanwhile' USING ERRCODE = '40001';
    END IF;
    DELETE FROM current_versions c USING restore_plan r
    WHERE r.action = 'deleted' AND c.bucket_id = p_bucket AND c.key = r.key;
    INSERT INTO current_versions (bucket_id, key, version)
    SELECT p_bucket, r.key, r.new_id FROM restore_plan r WHERE r.action = 'restored'
    ON CONFLICT (bucket_id, key) DO UPDATE SET version = EXCLUDED.version;
    RETURN QUERY SELECT r.key, r.action FROM restore_plan r ORDER BY r.key COLLATE "C";
END $$;

-- As migration 0013's, reading the source's map where it is shared (in the
-- statement that copies it: a map handed on meanwhile is found).
CREATE OR REPLACE FUNCTION link_key(
    p_bucket bigint,
    p_from text,
    p_to text,
    p_version_id text,
    p_metadata jsonb
) RETURNS SETOF versions LANGUAGE plpgsql AS $$
DECLARE
    v_source versions;
    v_group bigint;
    v_metadata jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(k))
    FROM unnest(ARRAY[p_from, p_to]) AS u(k) ORDER BY k COLLATE "C";
    IF EXISTS (SELECT 1 FROM current_versions WHERE bucket_id = p_bucket AND key = p_to) THEN
        RAISE EXCEPTION 'the new name exists' USING ERRCODE = 'BF412';
    END IF;
    SELECT v.* INTO v_source FROM current_versions c JOIN versions v ON v.id = c.version
    WHERE c.bucket_id = p_bucket AND c.key = p_from;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such key' USING ERRCODE = 'BF404';
    END IF;
    SELECT grp INTO v_group FROM links WHERE bucket_id = p_bucket AND key = p_from;
    IF NOT FOUND THEN
        v_group := nextval('link_groups');
        INSERT INTO links (bucket_id, key, grp) VALUES (p_bucket, p_from, v_group);
    END IF;
    PERFORM pg_advisory_xact_lock(-v_group);
    PERFORM leave_link_group(p_bucket, p_to);
    INSERT INTO links (bucket_id, key, grp) VALUES (p_bucket, p_to, v_group);
    v_metadata := v_source.metadata;
    IF p_metadata IS NOT NULL THEN
        -- Stored standard headers (names starting with ':') stay.
        v_metadata := COALESCE((SELECT jsonb_object_agg(m.key, m.value) FROM jsonb_each(v_source.metadata) m
                                WHERE m.key LIKE ':%'), '{}'::jsonb) || p_metadata;
    END IF;
    RETURN QUERY SELECT * FROM commit_version(
        p_bucket, p_from, p_version_id, v_source.size, v_source.etag, v_source.content_type, v_metadata,
        v_source.parts_count, NULL, NULL,
        ARRAY(SELECT object_offset FROM version_chunks WHERE version = (SELECT COALESCE(map_of, id) FROM versions WHERE id = v_source.id) ORDER BY idx),
        ARRAY(SELECT chunk_id FROM version_chunks WHERE version = (SELECT COALESCE(map_of, id) FROM versions WHERE id = v_source.id) ORDER BY idx),
        ARRAY(SELECT chunk_offset FROM version_chunks WHERE version = (SELECT COALESCE(map_of, id) FROM versions WHERE id = v_source.id) ORDER BY idx),
        ARRAY(SELECT length FROM version_chunks WHERE version = (SELECT COALESCE(map_of, id) FROM versions WHERE id = v_source.id) ORDER BY idx),
        true);
END;
$$;
