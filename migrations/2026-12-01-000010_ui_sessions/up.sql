-- Dashboard sessions: a login with an API token makes one (only the SHA-256 of the session
-- id is stored), with the token's name and role and the session's CSRF token. Idle
-- sessions expire ([ui] session_idle); logout deletes the row.
CREATE TABLE ui_sessions (
    id_hash       text        PRIMARY KEY,
    token_name    text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    csrf          text        NOT NULL,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen_at);
