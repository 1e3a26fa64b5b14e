-- Hard links. Names that share an inode are a link group: one `links` row
-- per name. Every name stays an ordinary object (its own current version,
-- readable by any S3 client); a commit that follows links (the mount's
-- writes, `p_follow_links`) gives every name of the group the same new
-- version, in the same transaction. Any other commit to a name (a plain
-- PUT, a copy onto it, a rename onto it), a DELETE of it or the removal of
-- its current version takes that name out of its group. A group's link
-- count is its number of rows; a lone row left behind counts 1.
--
-- Locking: a name's key lock (as everywhere), then its group's lock, a
-- bigint advisory lock on the negated group id (a key space apart from
-- the two-integer key locks). A member is written under the group lock
-- alone: whoever changes a member's own version takes its key lock and
-- then the group lock, so it waits for, and then sees, the group commit.
CREATE TABLE links (
    bucket_id  bigint NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    key        text COLLATE "C" NOT NULL,
    grp        bigint NOT NULL,
    PRIMARY KEY (bucket_id, key)
);
CREATE INDEX links_by_group ON links (bucket_id, grp);
CREATE SEQUENCE link_groups;

-- Takes `p_key` out of its link group, if it has one. The caller holds the
-- key lock.
CREATE FUNCTION leave_link_group(p_bucket bigint, p_key text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_group bigint;
BEGIN
    SELECT grp INTO v_group FROM links WHERE bucket_id = p_bucket AND key = p_key;
    IF FOUND THEN
        PERFORM pg_advisory_xact_lock(-v_group);
        DELETE FROM links WHERE bucket_id = p_bucket AND key = p_key;
    END IF;
END;
$$;

-- As migration 0002's, plus `p_follow_links` (see the top).
DROP FUNCTION commit_version(bigint, text, text, bigint, text, text, jsonb, integer, text, text,
                             bigint[], text[], integer[], integer[]);
CREATE FUNCTION commit_version(
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
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(p_key));
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

-- As migration 0003's, and the deleted name leaves its link group.
CREATE OR REPLACE FUNCTION delete_current(
    p_bucket bigint,
    p_key text,
    p_version_id text
) RETURNS TABLE (delete_marker boolean, version_id text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
    v_marker versions;
BEGIN
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(p_key));
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

-- As migration 0005's, and the deleted names leave their link groups (a
-- lookup per batch while no name of it is linked).
CREATE OR REPLACE FUNCTION delete_current_many(
    p_bucket bigint,
    p_keys text[],
    p_version_ids text[]
) RETURNS TABLE (deleted_key text, delete_marker boolean, version_id text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
    v_key text;
BEGIN
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(u.k))
    FROM unnest(p_keys) WITH ORDINALITY AS u(k, n) ORDER BY u.n;
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

-- `ln p_from p_to`: p_to becomes a name of p_from's group (made if p_from
-- has none), and the group commits a new version of p_from's current
-- content (its chunks shared, its ETag kept) with `p_metadata`'s user
-- metadata when given (a link changes the inode's ctime), so every name,
-- p_to included, has it. Raises BF404 when p_from has no current version,
-- BF412 when p_to has one.
CREATE FUNCTION link_key(
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
        ARRAY(SELECT object_offset FROM version_chunks WHERE version = v_source.id ORDER BY idx),
        ARRAY(SELECT chunk_id FROM version_chunks WHERE version = v_source.id ORDER BY idx),
        ARRAY(SELECT chunk_offset FROM version_chunks WHERE version = v_source.id ORDER BY idx),
        ARRAY(SELECT length FROM version_chunks WHERE version = v_source.id ORDER BY idx),
        true);
END;
$$;
