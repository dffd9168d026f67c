-- A running run that waits for a person (a `hand_over`): why, since when (the database's
-- clock), until when, and the live view to take over in. NULL otherwise (cleared when it
-- goes on or ends). `waited_ms` adds up its waits: the zombie detector does not count them
-- against the job's timeout.
ALTER TABLE runs ADD COLUMN waiting jsonb;
ALTER TABLE runs ADD COLUMN waited_ms bigint NOT NULL DEFAULT 0;
