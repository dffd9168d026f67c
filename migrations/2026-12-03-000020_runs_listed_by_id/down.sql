CREATE INDEX runs_queued_idx ON runs (queued_at, id);
DROP INDEX runs_queued_older_idx;
