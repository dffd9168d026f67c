-- Quotas: limits per calendar window (hour / day / week) in the quota's timezone.
CREATE TABLE quotas (
    name        text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._:-]{0,127}$'),
    hour_limit  bigint      CHECK (hour_limit > 0),
    day_limit   bigint      CHECK (day_limit > 0),
    week_limit  bigint      CHECK (week_limit > 0),
    timezone    text        NOT NULL DEFAULT 'UTC',
    week_start  text        NOT NULL DEFAULT 'monday',
    -- 'config' (declared in [[quotas]], upserted at start-up) or 'api'.
    source      text        NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (hour_limit IS NOT NULL OR day_limit IS NOT NULL OR week_limit IS NOT NULL)
);

-- Units used per window. Consumption locks the rows of every window it touches (in a fixed
-- order) before checking and adding, so concurrent consumers serialize on them.
CREATE TABLE quota_usage (
    quota        text        NOT NULL REFERENCES quotas (name) ON DELETE CASCADE,
    window_kind  text        NOT NULL CHECK (window_kind IN ('hour', 'day', 'week')),
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    used         bigint      NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (quota, window_kind, window_start)
);
-- Pruning old windows.
CREATE INDEX quota_usage_end_idx ON quota_usage (window_end);

-- Jobs declare the quotas each run consumes: [{"name": ..., "cost": ..., "refund_on_failure": ...}].
ALTER TABLE jobs ADD COLUMN quota jsonb NOT NULL DEFAULT '[]';

-- Deferred runs (refused by a quota) wait for their due_at like pending ones, and count as
-- the job's active run for overlap.
CREATE INDEX runs_deferred_idx ON runs (due_at) WHERE state = 'deferred';
DROP INDEX runs_active_idx;
CREATE INDEX runs_active_idx ON runs (job_id) WHERE state IN ('pending', 'running', 'deferred');
