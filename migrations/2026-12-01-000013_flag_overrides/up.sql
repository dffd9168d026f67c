-- Feature flags changed at runtime (PUT /api/v1/flags/{name}): they win over the
-- configuration until deleted; every node re-reads them every few seconds. `percent` is
-- 100 for on, 0 for off, or a rollout share for a flag that has a subject (profiles).
CREATE TABLE flag_overrides (
    name     text        PRIMARY KEY,
    percent  smallint    NOT NULL CHECK (percent BETWEEN 0 AND 100),
    set_by   text        NOT NULL,
    set_at   timestamptz NOT NULL
);
