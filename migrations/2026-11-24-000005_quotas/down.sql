DROP INDEX runs_active_idx;
CREATE INDEX runs_active_idx ON runs (job_id) WHERE state IN ('pending', 'running');
DROP INDEX runs_deferred_idx;
ALTER TABLE jobs DROP COLUMN quota;
DROP TABLE quota_usage;
DROP TABLE quotas;
