-- A consistent cut for past views (`mount --at`, snapshots, forks, diffs,
-- ListObjectVersions): every version one transaction writes carries one
-- stamp, so a view "as of T" (each key's newest version stamped at or
-- before T) shows each transaction wholly or not at all. A 50-file `mv`
-- used to leave 23 distinct times over 4 ms, and views inside that window
-- showed half a rename.
--
-- The stamp is the clock when the transaction writes its first version. A
-- transaction that writes several keys locks them all before its first
-- version (`lock_keys`), and one key's writers queue on its lock, so a
-- transaction that saw or replaced another's version is stamped after it.
CREATE FUNCTION commit_stamp() RETURNS timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT COALESCE(NULLIF(current_setting('bucketfs.commit_stamp', true), ''),
                    set_config('bucketfs.commit_stamp', clock_timestamp()::text, true))::timestamptz
$$;

ALTER TABLE versions ALTER COLUMN created_at SET DEFAULT commit_stamp();
