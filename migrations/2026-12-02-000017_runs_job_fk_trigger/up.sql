-- The foreign key runs.job_id → jobs checked every inserted run with a per-row trigger query
-- (`SELECT 1 FROM jobs … FOR KEY SHARE`): 4–5 µs of the ≈ 70 µs PostgreSQL spends per run,
-- measured 4–10 % of its CPU in the burn-down. Every path that inserts a run has just read
-- (the fire: locked FOR UPDATE) the job it belongs to, and overseer never deletes a job, so
-- the check never refuses anything; what the key did for a job deleted by hand — take its
-- runs with it — a trigger on jobs does, on the rare delete instead of on every insert.
-- (With the key, a retry inserted for a job deleted meanwhile failed its whole result batch
-- again and again; now it is an orphan run that no claim returns.)
ALTER TABLE runs DROP CONSTRAINT runs_job_id_fkey;

CREATE FUNCTION runs_follow_their_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM runs WHERE job_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER jobs_delete_runs AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION runs_follow_their_job();
