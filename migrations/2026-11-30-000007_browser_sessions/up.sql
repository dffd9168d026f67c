-- Browser profiles and the state of their browser, per machine (a profile is a user-data-dir
-- under that machine's <state_dir>/profiles). Written by the browser pool; read at its start.
CREATE TABLE browser_sessions (
    hostname      text        NOT NULL,
    profile       text        NOT NULL,
    -- The node that last ran this profile's browser.
    node_id       uuid,
    state         text        NOT NULL DEFAULT 'closed'
                  CHECK (state IN ('running', 'closed', 'crashed')),
    pid           integer,
    launches      bigint      NOT NULL DEFAULT 0,
    crashes       bigint      NOT NULL DEFAULT 0,
    runs          bigint      NOT NULL DEFAULT 0,
    last_error    text,
    launched_at   timestamptz,
    last_used_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hostname, profile)
);
