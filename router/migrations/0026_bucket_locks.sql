-- Key locks under a bucket lock. A transaction may hold only so many
-- locks (max_locks_per_transaction × connections in all: 12,800 with the
-- defaults here), and a directory rename or a restore locked every key it
-- moved: one of 20,000 keys failed with "out of shared memory". Now every
-- write of a key first takes its bucket's lock shared, then the key's
-- lock; a write of more than 1,000 keys takes the bucket's lock
-- exclusively instead of its keys' (it waits for the bucket's writers and
-- they for it). Up to 1,000 keys (a DeleteObjects, a batch) still lock
-- each key, in byte order, so such writes to one bucket run side by side.

-- The bigint advisory lock of a bucket's keys. (The bucket is the seed,
-- not part of the text: `text || bigint` is only stable, so the function
-- would not be inlined, and a call cost 10 µs instead of 1.)
CREATE FUNCTION bucket_lock(p_bucket bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('bucketfs bucket', p_bucket)
$$;

-- A transaction that holds its bucket's lock exclusively (named in the
-- transaction-local `bucketfs.locked_bucket`) takes no key lock: its
-- per-key statements would otherwise lock every key again.
CREATE FUNCTION lock_key(p_bucket bigint, p_key text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bucketfs.locked_bucket', true) IS DISTINCT FROM p_bucket::text THEN
        PERFORM pg_advisory_xact_lock_shared(bucket_lock(p_bucket));
        PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(p_key));
    END IF;
END $$;

-- Locks `p_keys` of `p_bucket` (duplicates and order do not matter).
CREATE FUNCTION lock_keys(p_bucket bigint, p_keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bucketfs.locked_bucket', true) = p_bucket::text THEN
        RETURN;
    ELSIF cardinality(p_keys) > 1000 THEN
        PERFORM pg_advisory_xact_lock(bucket_lock(p_bucket));
        PERFORM set_config('bucketfs.locked_bucket', p_bucket::text, true);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(bucket_lock(p_bucket));
        PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(s.k))
        FROM (SELECT DISTINCT u.k COLLATE "C" AS k FROM unnest(p_keys) AS u(k) ORDER BY 1) s;
    END IF;
END $$;

-- The functions that locked keys themselves, as their last migrations
-- made them, locking through these; link_key and restore_prefix as well
-- with shared chunk maps (migration 0025): link_key finds its source's map
-- in the statement that copies it (a map handed on meanwhile is found);
-- a restored version names the past version's map, under the family's
-- maps lock, taken after the keys' locks as a deleting statement takes it.
CREATE OR REPLACE FUNCTION commit_version(
    p_bucket bigint,
    p_key text,
    p_version_id text,
    p_size bigint,
    p_etag text,
    p_content_type text,
    p_metadata jsonb,
    p_parts_count integer,
    p_precondition text,
    p_precondition_etag text,
    p_offsets bigint[],
    p_chunk_ids text[],
    p_chunk_offsets integer[],
    p_lengths integer[],
    p_follow_links boolean DEFAULT false
) RETURNS SETOF versions LANGUAGE plpgsql AS $$
DECLARE
    v_current text;
    v_versioning text;
    v_row versions;
    v_group bigint;
    v_member text;
    v_member_row versions;
BEGIN
    PERFORM lock_key(p_bucket, p_key);
    IF p_follow_links THEN
        SELECT grp INTO v_group FROM links WHERE bucket_id = p_bucket AND key = p_key;
        IF FOUND THEN
            PERFORM pg_advisory_xact_lock(-v_group);
        END IF;
    ELSE
        PERFORM leave_link_group(p_bucket, p_key);
    END IF;
    IF p_precondition IS NOT NULL THEN
        SELECT v.etag INTO v_current FROM current_versions c JOIN versions v ON v.id = c.version
        WHERE c.bucket_id = p_bucket AND c.key = p_key;
        IF p_precondition = 'absent' AND FOUND THEN
            RAISE EXCEPTION 'precondition failed' USING ERRCODE = 'BF412';
        ELSIF p_precondition = 'etag' AND NOT FOUND THEN
            RAISE EXCEPTION 'no such key' USING ERRCODE = 'BF404';
        ELSIF p_precondition = 'etag' AND v_current <> p_precondition_etag THEN
            RAISE EXCEPTION 'precondition failed' USING ERRCODE = 'BF412';
        END IF;
    END IF;
    SELECT versioning INTO v_versioning FROM buckets WHERE id = p_bucket;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such bucket' USING ERRCODE = 'BF400';
    END IF;
    INSERT INTO versions (bucket_id, key, version_id, size, etag, content_type, metadata, parts_count)
    VALUES (p_bucket, p_key, CASE WHEN v_versioning = 'Enabled' THEN p_version_id ELSE 'null' END,
            p_size, p_etag, p_content_type, p_metadata, p_parts_count)
    RETURNING * INTO v_row;
    INSERT INTO version_chunks (version, idx, object_offset, chunk_id, chunk_offset, length)
    SELECT v_row.id, (u.ord - 1)::integer, u.o, u.c, u.co, u.l
    FROM unnest(p_offsets, p_chunk_ids, p_chunk_offsets, p_lengths) WITH ORDINALITY AS u(o, c, co, l, ord);
    INSERT INTO current_versions (bucket_id, key, version) VALUES (p_bucket, p_key, v_row.id)
    ON CONFLICT (bucket_id, key) DO UPDATE SET version = EXCLUDED.version;
    IF v_row.version_id = 'null' THEN
        DELETE FROM versions
        WHERE bucket_id = p_bucket AND key = p_key AND version_id = 'null' AND id <> v_row.id;
    END IF;
    -- Every other name of the group gets the same version (sharing its chunks).
    FOR v_member IN
        SELECT l.key FROM links l WHERE l.bucket_id = p_bucket AND l.grp = v_group AND l.key <> p_key
    LOOP
        INSERT INTO versions (bucket_id, key, version_id, size, etag, content_type, metadata, parts_count)
        VALUES (p_bucket, v_member, v_row.version_id, v_row.size, v_row.etag, v_row.content_type,
                v_row.metadata, v_row.parts_count)
        RETURNING * INTO v_member_row;
        INSERT INTO version_chunks (version, idx, object_offset, chunk_id, chunk_offset, length)
        SELECT v_member_row.id, idx, object_offset, chunk_id, chunk_offset, length
        FROM version_chunks WHERE version = v_row.id;
        INSERT INTO current_versions (bucket_id, key, version) VALUES (p_bucket, v_member, v_member_row.id)
        ON CONFLICT (bucket_id, key) DO UPDATE SET version = EXCLUDED.version;
        IF v_member_row.version_id = 'null' THEN
            DELETE FROM versions
            WHERE bucket_id = p_bucket AND key = v_member AND version_id = 'null' AND id <> v_member_row.id;
        END IF;
    END LOOP;
    RETURN NEXT v_row;
END;
$$;

CREATE OR REPLACE FUNCTION delete_current(
    p_bucket bigint,
    p_key text,
    p_version_id text
) RETURNS TABLE (delete_marker boolean, version_id text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
    v_marker versions;
BEGIN
    PERFORM lock_key(p_bucket, p_key);
    SELECT b.versioning INTO v_versioning FROM buckets b WHERE b.id = p_bucket;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such bucket' USING ERRCODE = 'BF400';
    END IF;
    PERFORM leave_link_group(p_bucket, p_key);
    DELETE FROM current_versions c WHERE c.bucket_id = p_bucket AND c.key = p_key;
    IF v_versioning = '' THEN
        DELETE FROM versions v WHERE v.bucket_id = p_bucket AND v.key = p_key AND v.version_id = 'null';
        RETURN QUERY SELECT false, NULL::text;
        RETURN;
    END IF;
    INSERT INTO versions (bucket_id, key, version_id, delete_marker)
    VALUES (p_bucket, p_key, CASE WHEN v_versioning = 'Enabled' THEN p_version_id ELSE 'null' END, true)
    RETURNING * INTO v_marker;
    IF v_marker.version_id = 'null' THEN
        DELETE FROM versions v
        WHERE v.bucket_id = p_bucket AND v.key = p_key AND v.version_id = 'null' AND v.id <> v_marker.id;
    END IF;
    RETURN QUERY SELECT true, v_marker.version_id;
END;
$$;

CREATE OR REPLACE FUNCTION delete_current_many(
    p_bucket bigint,
    p_keys text[],
    p_version_ids text[]
) RETURNS TABLE (deleted_key text, delete_marker boolean, version_id text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
    v_key text;
BEGIN
    PERFORM lock_keys(p_bucket, p_keys);
    SELECT b.versioning INTO v_versioning FROM buckets b WHERE b.id = p_bucket;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such bucket' USING ERRCODE = 'BF400';
    END IF;
    FOR v_key IN
        SELECT l.key FROM links l JOIN unnest(p_keys) AS u(k) ON l.key = u.k
        WHERE l.bucket_id = p_bucket ORDER BY l.grp
    LOOP
        PERFORM leave_link_group(p_bucket, v_key);
    END LOOP;
    DELETE FROM current_versions c USING unnest(p_keys) AS u(k) WHERE c.bucket_id = p_bucket AND c.key = u.k;
    IF v_versioning = 'Enabled' THEN
        INSERT INTO versions (bucket_id, key, version_id, delete_marker)
        SELECT p_bucket, u.k, u.vid, true FROM unnest(p_keys, p_version_ids) AS u(k, vid);
        RETURN QUERY SELECT u.k, true, u.vid FROM unnest(p_keys, p_version_ids) AS u(k, vid);
        RETURN;
    END IF;
    DELETE FROM versions v USING unnest(p_keys) AS u(k)
    WHERE v.bucket_id = p_bucket AND v.key = u.k AND v.version_id = 'null';
    IF v_versioning = '' THEN
        RETURN QUERY SELECT u.k, false, NULL::text FROM unnest(p_keys) AS u(k);
        RETURN;
    END IF;
    INSERT INTO versions (bucket_id, key, version_id, delete_marker)
    SELECT p_bucket, u.k, 'null', true FROM unnest(p_keys) AS u(k);
    RETURN QUERY SELECT u.k, true, 'null'::text FROM unnest(p_keys) AS u(k);
END;
$$;

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
    PERFORM lock_keys(p_bucket, ARRAY[p_from, p_to]);
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
    PERFORM lock_keys(p_bucket, ARRAY(SELECT key FROM restore_plan));
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
