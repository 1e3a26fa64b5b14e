-- Deleting a key's current version in one round trip, as commit_version
-- (migration 0002) commits one: key lock, the bucket's versioning, the
-- current pointer, and the delete marker or the dropped null versions.
-- Done as five statements in a transaction it cost more than a small PUT.
--
-- Returns whether a delete marker was written and its version id (NULL when
-- versioning was never enabled). Raises SQLSTATE BF400 for no such bucket.
CREATE FUNCTION delete_current(
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
