-- Every overseer process registers itself here and refreshes last_seen while it lives.
CREATE TABLE nodes (
    id          uuid        PRIMARY KEY,
    hostname    text        NOT NULL,
    pid         integer     NOT NULL,
    version     text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    stopped_at  timestamptz
);

-- "Which nodes went silent?" (the zombie detector) and listing live nodes.
CREATE INDEX nodes_last_seen_idx ON nodes (last_seen) WHERE stopped_at IS NULL;
