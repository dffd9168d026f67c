-- Jobs: what to run and when. The schedule and policy are jsonb (validated by overseer);
-- the columns the hot queries filter or sort on are denormalised next to them.
CREATE TABLE jobs (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL UNIQUE
                              CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
    kind          text        NOT NULL,
    payload       jsonb       NOT NULL DEFAULT '{}',
    schedule      jsonb       NOT NULL,
    policy        jsonb       NOT NULL,
    state         text        NOT NULL DEFAULT 'active'
                              CHECK (state IN ('active', 'paused', 'completed', 'cancelled')),
    next_fire_at  timestamptz,
    priority      smallint    NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 9),
    overlap       text        NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue', 'allow')),
    tags          text[]      NOT NULL DEFAULT '{}',
    metadata      jsonb       NOT NULL DEFAULT '{}'
                              CHECK (octet_length(metadata::text) <= 8192),
    -- 'config' for declarative jobs (upserted at start-up), 'api' otherwise.
    source        text        NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'config')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Due jobs: the scheduler's fire query.
CREATE INDEX jobs_due_idx ON jobs (next_fire_at) WHERE state = 'active';
-- Listing walks the unique index on name (keyset pagination, filters applied on the way);
-- tags also have their own index for rare tags. No index on kind or state: every fire
-- updates its job row, and each index costs that update (tests/plans.rs checks the plans).
CREATE INDEX jobs_tags_idx ON jobs USING gin (tags);

-- Runs: the execution history. One row per attempt of one fire.
CREATE TABLE runs (
    id             uuid        PRIMARY KEY,
    job_id         uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    fire_at        timestamptz NOT NULL,
    attempt        integer     NOT NULL CHECK (attempt >= 1),
    state          text        NOT NULL CHECK (state IN (
                       'pending', 'running', 'succeeded', 'failed', 'timed_out',
                       'missed', 'zombie', 'cancelled', 'deferred')),
    node_id        uuid,
    priority       smallint    NOT NULL DEFAULT 5,
    -- The job's overlap policy, copied so that dispatch never joins jobs.
    overlap        text        NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue', 'allow')),
    -- Fires this run stands for (a missed run can cover several).
    covers         integer     NOT NULL DEFAULT 1,
    queued_at      timestamptz NOT NULL DEFAULT now(),
    -- Earliest start (a retry waits for its delay).
    due_at         timestamptz NOT NULL,
    started_at     timestamptz,
    heartbeat_at   timestamptz,
    finished_at    timestamptz,
    error_kind     text,
    error_message  text,
    output         jsonb,
    lateness_ms    bigint,
    -- A fire can never produce two runs: executions are idempotent per (fire, attempt).
    UNIQUE (job_id, fire_at, attempt)
);

-- Dispatch: pending runs by due time.
CREATE INDEX runs_pending_idx ON runs (due_at) WHERE state = 'pending';
-- Overlap checks: a job's active runs.
CREATE INDEX runs_active_idx ON runs (job_id) WHERE state IN ('pending', 'running');
-- History of one job uses the unique key (job_id, fire_at, attempt). Every state change of a
-- run rewrites its index entries, so runs carry few indexes, most of them partial.
-- Finished runs by time (pruning, dead letters):
CREATE INDEX runs_finished_idx ON runs (finished_at) WHERE finished_at IS NOT NULL;
-- Listing, newest first:
CREATE INDEX runs_queued_idx ON runs (queued_at, id);
-- Running runs by node (the zombie detector).
CREATE INDEX runs_running_idx ON runs (node_id) WHERE state = 'running';

-- Idempotency-Key support for POST /api/v1/jobs.
CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash text        NOT NULL,
    status       smallint    NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
