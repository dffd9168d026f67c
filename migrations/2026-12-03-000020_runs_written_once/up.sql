-- Each run is written once into its history. Until now a run was one row of `runs`, inserted
-- open (pending or running) and updated to its result: two heap tuples and nine index
-- entries (five at insert, four again at the update, which could not be HOT since `state`,
-- `node_id` and `finished_at` are indexed), and a dead tuple for vacuum in every index.
-- Now an open run (pending, running, deferred) is a row of the narrow-indexed `runs_open`;
-- its result deletes it there and inserts the finished row into `runs_done`, which is
-- insert-only (pruning deletes whole old ranges). `runs` stays, as a view of both, for
-- everything that reads runs.
ALTER TABLE runs RENAME TO runs_open;
ALTER TABLE runs_open RENAME CONSTRAINT runs_pkey TO runs_open_pkey;
ALTER TABLE runs_open RENAME CONSTRAINT runs_job_id_fire_at_attempt_key TO runs_open_key;

CREATE TABLE runs_done (LIKE runs_open INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO runs_done SELECT * FROM runs_open WHERE state NOT IN ('pending', 'running', 'deferred');
DELETE FROM runs_open WHERE state NOT IN ('pending', 'running', 'deferred');

ALTER TABLE runs_open ADD CONSTRAINT runs_open_state CHECK (state IN ('pending', 'running', 'deferred'));
ALTER TABLE runs_done ADD CONSTRAINT runs_done_state CHECK (state NOT IN ('pending', 'running', 'deferred'));
ALTER TABLE runs_done ADD CONSTRAINT runs_done_pkey PRIMARY KEY (id);
-- The exactly-once key holds in each table; a run moves from one to the other only in the
-- statement that records it, and every insert checks both (db::runs::INSERT_OPEN_SQL).
ALTER TABLE runs_done ADD CONSTRAINT runs_done_key UNIQUE (job_id, fire_at, attempt);
-- Pruning and the activity buckets:
CREATE INDEX runs_done_finished_idx ON runs_done (finished_at);
-- Listing, newest first:
CREATE INDEX runs_done_queued_idx ON runs_done (queued_at, id);

-- Open runs: a job's are found by the exactly-once key's job_id prefix (every row is
-- active); none is finished. The listing index stays: a backlog can hold many open runs.
DROP INDEX runs_active_idx;
DROP INDEX runs_finished_idx;
ALTER INDEX runs_queued_idx RENAME TO runs_open_queued_idx;

-- runs_open is small and churns (every run is inserted and deleted): vacuum it often.
-- runs_done only grows until pruned: vacuumed for its visibility map after inserts.
ALTER TABLE runs_open SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE runs_done SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);

-- A run token is checked against its open, running run (db::run_tokens::lookup) and
-- revoked when the program ends; the key's cascade would cost every recorded run a
-- trigger query. Pruning deletes tokens whose run is no longer open.
ALTER TABLE run_tokens DROP CONSTRAINT run_tokens_run_id_fkey;

CREATE OR REPLACE FUNCTION runs_follow_their_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM runs_open WHERE job_id = OLD.id;
    DELETE FROM runs_done WHERE job_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE VIEW runs AS
    SELECT * FROM runs_open
    UNION ALL
    SELECT * FROM runs_done;
