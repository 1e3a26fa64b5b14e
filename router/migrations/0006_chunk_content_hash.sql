-- A cryptographic hash of each chunk (BLAKE3, lowercase hex), checked by the
-- router on every whole-chunk read: a storage node that returns altered bytes
-- with a matching crc32c is caught. NULL for chunks written before it.
ALTER TABLE chunks ADD COLUMN content_hash text;
