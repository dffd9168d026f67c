ALTER TABLE once_keys DROP COLUMN interrupted_at;
