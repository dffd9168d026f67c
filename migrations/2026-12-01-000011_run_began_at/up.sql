-- When the executor started a run's work (after its quota gate): began_at - fire_at is how
-- late the work really started (started_at is when the run was claimed). Written with the
-- result, in the same statement: no extra write per run.
ALTER TABLE runs ADD COLUMN began_at timestamptz;
