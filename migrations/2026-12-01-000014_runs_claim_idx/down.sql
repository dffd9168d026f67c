DROP INDEX runs_claim_idx;
