-- The claim (db::runs::CLAIM_SQL) takes pending runs highest priority first, then by due
-- time: this index hands them over in that order, so a claim reads `limit` rows instead of
-- sorting every pending run (a burn-down with 100,000 pending runs spent 40 % of the
-- database's time there).
CREATE INDEX runs_claim_idx ON runs (priority DESC, due_at) WHERE state = 'pending';
