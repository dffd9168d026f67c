-- Listing runs newest first used runs_queued_idx on (queued_at, id) over every run: an
-- entry at each insert and a second one at each recorded result (a non-HOT update puts the
-- new row version's entry beside the old one, in the middle of the index) — ≈ 6–8 µs of
-- the ≈ 50 µs PostgreSQL spends writing a run (SQL micro-benchmark, docs/CAPACITY.md).
-- Run ids are time-ordered (UUIDv7): db::runs::list walks the primary key for the runs
-- created from 2026-12-03 on (db::runs::LISTED_BY_ID_FROM) and this partial index for the
-- older ones (random v4 ids, the first v7 ones), which pruning removes with time. Its
-- predicate is the exact complement of the listing's, so that the planner matches it.
CREATE INDEX runs_queued_older_idx ON runs (queued_at, id)
    WHERE NOT (id >= '01a23933-6800-7000-8000-000000000000' AND substring(id::text, 15, 1) = '7');
DROP INDEX runs_queued_idx;
