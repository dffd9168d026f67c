-- A key whose run was interrupted inside the block by a shutdown — the run itself is given
-- back to run again, the same attempt — is uncertain, like one whose run died: that run does
-- not enter it again as its own (the block's effect may have happened).
ALTER TABLE once_keys ADD COLUMN interrupted_at timestamptz;
