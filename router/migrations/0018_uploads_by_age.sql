-- The worker aborts uploads older than --abort-uploads-after-secs in every
-- bucket: it asks for the oldest first.
CREATE INDEX uploads_by_age ON uploads (created_at);
