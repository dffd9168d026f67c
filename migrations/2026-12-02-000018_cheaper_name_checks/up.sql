-- The name rules as CHECK constraints, written so that PostgreSQL's regex engine does not
-- expand a bounded repetition: `[…]{0,127}` compiled to a 128-state automaton and cost
-- every write of a jobs row ≈ 8 µs — and every fire writes its job row (`next_fire_at`),
-- so it was a third of the fire's job update (50,000-row SQL micro-benchmark). The same
-- rule: a first character from the first class, then at most 127 from the second; every
-- allowed character is ASCII, so length() counts bytes.
ALTER TABLE jobs DROP CONSTRAINT jobs_name_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_name_check
    CHECK (length(name) <= 128 AND name ~ '^[a-z0-9][a-z0-9._-]*$');
ALTER TABLE quotas DROP CONSTRAINT quotas_name_check;
ALTER TABLE quotas ADD CONSTRAINT quotas_name_check
    CHECK (length(name) <= 128 AND name ~ '^[a-z0-9][a-z0-9._:-]*$');
