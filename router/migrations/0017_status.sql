-- What `router status` and the status page show beside the nodes' own
-- records: how many chunks each node has quarantined (from its ZooKeeper
-- record), and the background worker's progress, written by the elected
-- router at the start and end of each pass.
ALTER TABLE nodes ADD COLUMN quarantined bigint NOT NULL DEFAULT 0;

CREATE TABLE worker_status (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    leader         text NOT NULL,
    pass_started   timestamptz NOT NULL,
    pass_finished  timestamptz,
    passes         bigint NOT NULL DEFAULT 0,
    -- The last finished pass: replicas written, chunks left under-replicated
    -- (not yet old enough, or whose repair failed), chunks collected.
    repaired       bigint NOT NULL DEFAULT 0,
    repair_left    bigint NOT NULL DEFAULT 0,
    collected      bigint NOT NULL DEFAULT 0,
    last_error     text
);
