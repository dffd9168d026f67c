ALTER TABLE runs RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay, fillfactor);
ALTER TABLE jobs RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor,
    autovacuum_vacuum_cost_delay, fillfactor);
ALTER TABLE notifications RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_cost_delay);
