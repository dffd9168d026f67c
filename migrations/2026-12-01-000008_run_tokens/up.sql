-- Run tokens: what a command run's program presents to the API (OVERSEER_RUN_TOKEN). Only
-- the SHA-256 of a token is stored. A token is valid while its run is `running` in the
-- attempt it was issued for; the row is deleted when the run ends (and with the run).
CREATE TABLE run_tokens (
    token_hash  text        PRIMARY KEY,
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    quotas      text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL
);
CREATE INDEX run_tokens_run ON run_tokens (run_id);

-- The latest progress note a running program posted (POST /api/v1/runs/{id}/progress).
ALTER TABLE runs ADD COLUMN progress text, ADD COLUMN progress_at timestamptz;
