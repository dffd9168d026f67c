DROP TRIGGER jobs_delete_runs ON jobs;
DROP FUNCTION runs_follow_their_job();
DELETE FROM runs r WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id);
ALTER TABLE runs ADD CONSTRAINT runs_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE;
