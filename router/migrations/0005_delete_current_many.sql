-- Deleting many keys' current versions (a DeleteObjects batch) with one
-- statement per step instead of one delete_current call (four statements)
-- per key: 3,000 keys cost 250 ms of Postgres CPU that way, about 100 ms
-- so, most of it the foreign-key triggers every deleted version row fires.
-- Same effects, key by key, as delete_current (migration 0003).
--
-- Keys are joined with unnest, not matched with `= ANY(p_keys)`: the
-- cached generic plan of the latter filtered a scan of the table with the
-- whole array.
--
-- Keys are locked in the order given (the caller sorts them, as
-- commit_version's batches do) and must be distinct. Returns each key with
-- whether a delete marker was written and its version id.
CREATE FUNCTION delete_current_many(
    p_bucket bigint,
    p_keys text[],
    p_version_ids text[]
) RETURNS TABLE (deleted_key text, delete_marker boolean, version_id text) LANGUAGE plpgsql AS $$
DECLARE
    v_versioning text;
BEGIN
    PERFORM pg_advisory_xact_lock(p_bucket::integer, hashtext(u.k))
    FROM unnest(p_keys) WITH ORDINALITY AS u(k, n) ORDER BY u.n;
    SELECT b.versioning INTO v_versioning FROM buckets b WHERE b.id = p_bucket;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such bucket' USING ERRCODE = 'BF400';
    END IF;
    DELETE FROM current_versions c USING unnest(p_keys) AS u(k) WHERE c.bucket_id = p_bucket AND c.key = u.k;
    IF v_versioning = 'Enabled' THEN
        INSERT INTO versions (bucket_id, key, version_id, delete_marker)
        SELECT p_bucket, u.k, u.vid, true FROM unnest(p_keys, p_version_ids) AS u(k, vid);
        RETURN QUERY SELECT u.k, true, u.vid FROM unnest(p_keys, p_version_ids) AS u(k, vid);
        RETURN;
    END IF;
    -- Off or suspended: the null version goes (a suspended bucket's marker
    -- takes its place).
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

-- ANALYZE (autovacuum's, after every tenth of the table changed) sorted
-- the metadata jsonb of every sampled row: 40% of Postgres's CPU while
-- 5,000 files were deleted. No query filters or sorts on these columns.
ALTER TABLE versions
    ALTER COLUMN metadata SET STATISTICS 0,
    ALTER COLUMN etag SET STATISTICS 0,
    ALTER COLUMN content_type SET STATISTICS 0,
    ALTER COLUMN size SET STATISTICS 0,
    ALTER COLUMN parts_count SET STATISTICS 0,
    ALTER COLUMN created_at SET STATISTICS 0;
