-- Who may do what: users own access keys and buckets; buckets and objects
-- carry ACL grants, buckets a policy and a public access block.

CREATE TABLE users (
    -- The canonical user id S3 shows (64 lowercase hex digits).
    id          text PRIMARY KEY,
    -- The display name, unique.
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys made before users existed get a user each, named after the key.
INSERT INTO users (id, name)
    SELECT encode(sha256(convert_to(access_key, 'UTF8')), 'hex'), access_key FROM access_keys;
ALTER TABLE access_keys ADD COLUMN user_id text REFERENCES users(id);
UPDATE access_keys SET user_id = encode(sha256(convert_to(access_key, 'UTF8')), 'hex');
ALTER TABLE access_keys ALTER COLUMN user_id SET NOT NULL;
-- A revoked key signs nothing; its row stays to say when and whose it was.
ALTER TABLE access_keys ADD COLUMN revoked_at timestamptz;
CREATE INDEX access_keys_user ON access_keys (user_id);

-- NULL: a bucket made before owners existed, which every user may use
-- as before.
ALTER TABLE buckets ADD COLUMN owner_id text REFERENCES users(id);
-- Grants beyond the owner's full control: [{"grantee": .., "permission": ..}].
ALTER TABLE buckets ADD COLUMN acl jsonb NOT NULL DEFAULT '[]';
-- The bucket policy document as it was put (validated then).
ALTER TABLE buckets ADD COLUMN policy text;
-- {"block_public_acls": bool, "ignore_public_acls": bool,
--  "block_public_policy": bool, "restrict_public_buckets": bool}
ALTER TABLE buckets ADD COLUMN public_access_block jsonb;

-- Grants on one version beyond its bucket owner's full control; a version
-- without a row is private.
CREATE TABLE object_acls (
    version  bigint PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    grants   jsonb NOT NULL
);
