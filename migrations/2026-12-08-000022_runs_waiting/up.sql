-- A running run that waits for a person (a `hand_over`): why, since when, until when, and
-- the live view to take over in. NULL otherwise (cleared when it goes on or ends).
ALTER TABLE runs ADD COLUMN waiting jsonb;
