-- Named moments of a versioned bucket (`bucketfs snapshot`): a past view
-- by name, whose versions lifecycle rules keep until it is deleted.
CREATE TABLE snapshots (
    bucket_id   bigint NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    name        text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (bucket_id, name)
);

-- The stamp now also names the writing transaction first (an xid is given
-- to it if it had none), so that a snapshot taken at T can wait for every
-- transaction stamped at or before T: each had its xid by then.
CREATE OR REPLACE FUNCTION commit_stamp() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT COALESCE(NULLIF(current_setting('bucketfs.commit_stamp', true), ''),
                    set_config('bucketfs.commit_stamp',
                               CASE WHEN pg_current_xact_id() IS NOT NULL THEN clock_timestamp()::text END,
                               true))::timestamptz
$$;

-- Each key of `p_bucket` under `p_prefix` as of `p_at`: its newest version
-- stamped no later (a delete marker where it was deleted). Keys' writers
-- queue on the key's lock, so the newest by id is the newest by stamp.
CREATE FUNCTION versions_as_of(p_bucket bigint, p_prefix text, p_at timestamptz)
RETURNS SETOF versions LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (v.key) v.*
    FROM versions v
    WHERE v.bucket_id = p_bucket AND v.key >= p_prefix AND starts_with(v.key, p_prefix)
      AND v.created_at <= p_at
    ORDER BY v.key, v.id DESC
$$;

-- A new bucket whose keys are `p_source`'s as of `p_at`: new version rows
-- sharing the source versions' chunks (no byte is copied), their tags, in
-- one statement. Versioned, owned by `p_owner`. Hard-link groups are not
-- carried over: each name becomes a file of its own.
CREATE FUNCTION fork_bucket(p_source bigint, p_name text, p_owner text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_bucket bigint;
    v_keys bigint;
BEGIN
    INSERT INTO buckets (name, owner_id, versioning) VALUES (p_name, p_owner, 'Enabled')
    ON CONFLICT (name) DO NOTHING RETURNING id INTO v_bucket;
    IF v_bucket IS NULL THEN
        RAISE EXCEPTION 'the bucket exists' USING ERRCODE = 'BF409';
    END IF;
    CREATE TEMP TABLE fork_map ON COMMIT DROP AS
        SELECT nextval(pg_get_serial_sequence('versions', 'id')) AS new_id, s.*
        FROM versions_as_of(p_source, '', p_at) s WHERE NOT s.delete_marker;
    INSERT INTO versions (id, bucket_id, key, version_id, delete_marker, size, etag, content_type,
                          metadata, parts_count, created_at)
    SELECT m.new_id, v_bucket, m.key, m.version_id, false, m.size, m.etag, m.content_type,
           m.metadata, m.parts_count, m.created_at
    FROM fork_map m;
    GET DIAGNOSTICS v_keys = ROW_COUNT;
    INSERT INTO version_chunks (version, idx, object_offset, chunk_id, chunk_offset, length)
    SELECT m.new_id, c.idx, c.object_offset, c.chunk_id, c.chunk_offset, c.length
    FROM fork_map m JOIN version_chunks c ON c.version = m.id;
    INSERT INTO object_tags (version, tags)
    SELECT m.new_id, t.tags FROM fork_map m JOIN object_tags t ON t.version = m.id;
    INSERT INTO current_versions (bucket_id, key, version)
    SELECT v_bucket, m.key, m.new_id FROM fork_map m;
    RETURN v_keys;
END $$;

-- Makes the keys of `p_bucket` under `p_prefix` what they were as of
-- `p_at`: a key whose current version differs gets a new version sharing
-- that version's chunks; a key made since gets a delete marker (its
-- versions stay); an unchanged key is left alone. Keys are locked in order
-- first (as every multi-key write). Answers (key, what) for each change:
-- 'restored' or 'deleted'.
CREATE FUNCTION restore_prefix(p_bucket bigint, p_prefix text, p_at timestamptz)
RETURNS TABLE (restored_key text, action text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
BEGIN
    SELECT versioning INTO v_versioning FROM buckets WHERE id = p_bucket;
    IF v_versioning IS DISTINCT FROM 'Enabled' THEN
        RAISE EXCEPTION 'restore needs a versioned bucket' USING ERRCODE = 'BF400';
    END IF;
    CREATE TEMP TABLE restore_plan ON COMMIT DROP AS
        WITH past AS (SELECT * FROM versions_as_of(p_bucket, p_prefix, p_at) WHERE NOT delete_marker),
             present AS (SELECT c.key, v.id, v.etag, v.size, v.metadata, v.content_type
                     FROM current_versions c JOIN versions v ON v.id = c.version
                     WHERE c.bucket_id = p_bucket AND c.key >= p_prefix AND starts_with(c.key, p_prefix))
        SELECT COALESCE(p.key, n.key) AS key, p.id AS past_id,
               nextval(pg_get_serial_sequence('versions', 'id')) AS new_id,
               CASE WHEN p.id IS NULL THEN 'deleted' ELSE 'restored' END AS action
        FROM past p FULL JOIN present n ON n.key = p.key
        WHERE n.id IS DISTINCT FROM p.id
          AND (p.id IS NULL OR n.id IS NULL OR n.etag <> p.etag OR n.size <> p.size
               OR n.metadata <> p.metadata OR n.content_type IS DISTINCT FROM p.content_type);
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(r.key))
    FROM (SELECT key FROM restore_plan ORDER BY key COLLATE "C") r;
    INSERT INTO versions (id, bucket_id, key, version_id, delete_marker, size, etag, content_type,
                          metadata, parts_count)
    SELECT r.new_id, p_bucket, r.key,
           lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
               || substr(md5(random()::text || r.key), 1, 20),
           r.action = 'deleted',
           COALESCE(v.size, 0), COALESCE(v.etag, ''), v.content_type, COALESCE(v.metadata, '{}'),
           v.parts_count
    FROM restore_plan r LEFT JOIN versions v ON v.id = r.past_id;
    INSERT INTO version_chunks (version, idx, object_offset, chunk_id, chunk_offset, length)
    SELECT r.new_id, c.idx, c.object_offset, c.chunk_id, c.chunk_offset, c.length
    FROM restore_plan r JOIN version_chunks c ON c.version = r.past_id;
    DELETE FROM current_versions c USING restore_plan r
    WHERE r.action = 'deleted' AND c.bucket_id = p_bucket AND c.key = r.key;
    INSERT INTO current_versions (bucket_id, key, version)
    SELECT p_bucket, r.key, r.new_id FROM restore_plan r WHERE r.action = 'restored'
    ON CONFLICT (bucket_id, key) DO UPDATE SET version = EXCLUDED.version;
    RETURN QUERY SELECT r.key, r.action FROM restore_plan r ORDER BY r.key COLLATE "C";
END $$;
