-- Tags of a version (x-amz-tagging, PutObjectTagging): a JSON array of
-- [key, value] pairs as given. Changing them makes no new version, as in S3.
CREATE TABLE object_tags (
    version  bigint PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
    tags     jsonb NOT NULL
);

-- Bucket tags ([key, value] pairs) and CORS rules (see router/src/cors.rs);
-- NULL: none.
ALTER TABLE buckets ADD COLUMN tagging jsonb;
ALTER TABLE buckets ADD COLUMN cors jsonb;

-- What a multipart upload's first request asked of the version its
-- completion makes: ACL grants, object lock and tags (see s3::multipart).
ALTER TABLE uploads ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';
