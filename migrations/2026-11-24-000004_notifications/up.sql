-- The notification outbox. A row is written in the same transaction as the state change that
-- caused it (one row per routed channel), so a crash cannot lose or duplicate it; the notifier
-- delivers pending rows at least once, with the row's id as the receiver's idempotency key.
CREATE TABLE notifications (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    event           text        NOT NULL,
    severity        text        NOT NULL
                    CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    subject         text        NOT NULL,
    body            text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    channel         text        NOT NULL,
    -- What makes the event unique (plus the channel): a second write of it is dropped.
    dedupe_key      text        NOT NULL UNIQUE,
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- For a pending row being delivered, this is the claim's expiry: a node that dies
    -- mid-delivery leaves the row to be picked up again after it.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);

-- The notifier's claim: pending rows by due time.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
-- The API's listing (newest first, keyset) and pruning by age.
CREATE INDEX notifications_created ON notifications (created_at, id);
