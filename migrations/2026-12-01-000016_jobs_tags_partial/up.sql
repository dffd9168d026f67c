-- Every fire rewrites its job row (next_fire_at, state), and a GIN index takes an entry for
-- every row version — an empty tag list included (GIN indexes empty arrays so that a full
-- index scan sees every row), queued in its pending list and merged in bursts inside
-- somebody's fire. Only jobs that have tags need the index: the tag filter of the jobs
-- listing adds `tags <> '{}'` (implied by any `tags @> ARRAY[tag]`) so that the planner can
-- use it (tests/plans.rs checks the plan).
DROP INDEX jobs_tags_idx;
CREATE INDEX jobs_tags_idx ON jobs USING gin (tags) WHERE tags <> '{}';
