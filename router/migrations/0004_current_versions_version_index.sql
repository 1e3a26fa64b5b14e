-- current_versions.version references versions(id): every delete of a
-- version row (a DELETE, an overwrite dropping the old null version) checks
-- that no current_versions row points at it. Without an index that check
-- scanned the whole table, so deleting cost O(keys in the store): with
-- 2,000 keys, 0.8 ms of Postgres CPU per delete.
CREATE INDEX current_versions_version ON current_versions (version);
