-- The hot tables are rewritten row by row all day (every fire updates its job, every run is
-- inserted and updated, pruning deletes): vacuum them after 2 % of their rows changed, not
-- PostgreSQL's default 20 %, and without cost pauses, so dead rows do not pile up between
-- passes. Free room on each page (fillfactor) lets updates that touch no indexed column
-- (run heartbeats, progress) stay on their page (HOT).
ALTER TABLE runs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    fillfactor = 90
);
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 80
);
ALTER TABLE notifications SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);
