-- `router drain NODE`: the node takes no new replicas, its replicas stop
-- counting towards the 3 a chunk needs (so repair copies them elsewhere),
-- and once copied its own are trimmed, until it holds none.
ALTER TABLE nodes ADD COLUMN draining boolean NOT NULL DEFAULT false;
