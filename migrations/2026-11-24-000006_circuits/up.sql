-- Per-domain circuit breakers for browser runs: closed → open after N consecutive failures;
-- open for a period that doubles with each consecutive opening; then half-open: one run tries.
CREATE TABLE circuits (
    domain      text        PRIMARY KEY,
    state       text        NOT NULL DEFAULT 'closed'
                CHECK (state IN ('closed', 'open', 'half_open')),
    failures    integer     NOT NULL DEFAULT 0,
    -- Consecutive openings (the backoff exponent); reset when the circuit closes.
    opens       integer     NOT NULL DEFAULT 0,
    open_until  timestamptz,
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
