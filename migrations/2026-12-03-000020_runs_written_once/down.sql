DROP VIEW runs;

CREATE OR REPLACE FUNCTION runs_follow_their_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM runs WHERE job_id = OLD.id;
    RETURN OLD;
END;
$$;

ALTER TABLE runs_open DROP CONSTRAINT runs_open_state;
ALTER TABLE runs_open RESET (autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay);
INSERT INTO runs_open SELECT * FROM runs_done;
DROP TABLE runs_done;
ALTER TABLE runs_open RENAME CONSTRAINT runs_open_pkey TO runs_pkey;
ALTER TABLE runs_open RENAME CONSTRAINT runs_open_key TO runs_job_id_fire_at_attempt_key;
ALTER TABLE runs_open RENAME TO runs;

CREATE INDEX runs_active_idx ON runs (job_id) WHERE state IN ('pending', 'running', 'deferred');
CREATE INDEX runs_finished_idx ON runs (finished_at) WHERE finished_at IS NOT NULL;
ALTER INDEX runs_open_queued_idx RENAME TO runs_queued_idx;

DELETE FROM run_tokens t WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = t.run_id);
ALTER TABLE run_tokens ADD CONSTRAINT run_tokens_run_id_fkey
    FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
