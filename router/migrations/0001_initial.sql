-- bucketfs metadata. Object data lives on storage nodes as immutable chunks;
-- these tables say which chunks make up each version and where they live.

CREATE TABLE access_keys (
    access_key  text PRIMARY KEY,
    secret_key  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buckets (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    -- '' (never enabled), 'Enabled' or 'Suspended', as S3 reports it.
    versioning  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per stored chunk. Ids are random; integrity comes from crc32c.
CREATE TABLE chunks (
    id          text PRIMARY KEY,
    size        integer NOT NULL,
    crc32c      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Where replicas of a chunk are durably stored: the truth for reads.
CREATE TABLE chunk_replicas (
    chunk_id    text NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    node_id     text NOT NULL,
    PRIMARY KEY (chunk_id, node_id)
);
CREATE INDEX chunk_replicas_node ON chunk_replicas (node_id);

-- Every modification is a new immutable version (delete markers included).
CREATE TABLE versions (
    id             bigserial PRIMARY KEY,
    bucket_id      bigint NOT NULL REFERENCES buckets(id),
    key            text COLLATE "C" NOT NULL,
    -- The id clients see: 'null' for versions written while versioning was off.
    version_id     text NOT NULL,
    delete_marker  boolean NOT NULL DEFAULT false,
    size           bigint NOT NULL DEFAULT 0,
    etag           text NOT NULL DEFAULT '',
    content_type   text,
    -- user metadata (x-amz-meta-*) and stored standard headers
    metadata       jsonb NOT NULL DEFAULT '{}',
    parts_count    integer,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX versions_by_key ON versions (bucket_id, key, id DESC);
CREATE UNIQUE INDEX versions_by_version_id ON versions (bucket_id, key, version_id) WHERE version_id <> 'null';

-- The version a plain GET of a key sees; absent when the key is deleted.
CREATE TABLE current_versions (
    bucket_id   bigint NOT NULL REFERENCES buckets(id),
    key         text COLLATE "C" NOT NULL,
    version     bigint NOT NULL REFERENCES versions(id),
    PRIMARY KEY (bucket_id, key)
);

-- The chunk map of a version: byte ranges of chunks, in object order.
-- Copies and multipart completion share chunks by reference.
CREATE TABLE version_chunks (
    version        bigint NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    idx            integer NOT NULL,
    object_offset  bigint NOT NULL,
    chunk_id       text NOT NULL REFERENCES chunks(id),
    chunk_offset   integer NOT NULL,
    length         integer NOT NULL,
    PRIMARY KEY (version, idx)
);
CREATE INDEX version_chunks_chunk ON version_chunks (chunk_id);

CREATE TABLE uploads (
    upload_id     text PRIMARY KEY,
    bucket_id     bigint NOT NULL REFERENCES buckets(id),
    key           text COLLATE "C" NOT NULL,
    content_type  text,
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_by_key ON uploads (bucket_id, key, upload_id);

CREATE TABLE parts (
    upload_id    text NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
    part_number  integer NOT NULL,
    size         bigint NOT NULL,
    etag         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE part_chunks (
    upload_id     text NOT NULL,
    part_number   integer NOT NULL,
    idx           integer NOT NULL,
    chunk_id      text NOT NULL REFERENCES chunks(id),
    chunk_offset  integer NOT NULL,
    length        integer NOT NULL,
    PRIMARY KEY (upload_id, part_number, idx),
    FOREIGN KEY (upload_id, part_number) REFERENCES parts(upload_id, part_number) ON DELETE CASCADE
);
CREATE INDEX part_chunks_chunk ON part_chunks (chunk_id);

-- Storage nodes ever seen, mirrored from ZooKeeper: lets any router reach a
-- replica's node by id, and reports membership.
CREATE TABLE nodes (
    id          text PRIMARY KEY,
    addr        text NOT NULL,
    capacity    bigint NOT NULL DEFAULT 0,
    free        bigint NOT NULL DEFAULT 0,
    last_seen   timestamptz NOT NULL DEFAULT now()
);
