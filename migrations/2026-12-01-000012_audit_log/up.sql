-- The audit log: one row per API call that changes something (or tried to), written in the
-- transaction of the change; refused and failed attempts get a row of their own. `actor` is
-- a token's name (never the secret); NULL when the caller did not authenticate.
CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text,
    role        text,
    run_id      uuid,
    action      text        NOT NULL,
    target      text,
    outcome     text        NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    status      smallint    NOT NULL,
    reason      text,
    diff        jsonb,
    request_id  text,
    source      text,
    node_id     uuid
);
-- Pruning and time filters; the listing walks the primary key backwards.
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
