-- `once` blocks of browser scripts: a key is entered (`running`, by one run) before its
-- steps start and `done` when they all succeeded; a done key is never run again for the job.
-- A key left `running` by a run that died is "uncertain": its effect may have happened.
-- Kept with the job (not with run history, which is pruned).
CREATE TABLE once_keys (
    job_id       uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key          text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('running', 'done')),
    run_id       uuid        NOT NULL,
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    PRIMARY KEY (job_id, key)
);
