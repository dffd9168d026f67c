ALTER TABLE runs DROP COLUMN progress, DROP COLUMN progress_at;
DROP TABLE run_tokens;
