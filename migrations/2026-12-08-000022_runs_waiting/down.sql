ALTER TABLE runs DROP COLUMN waiting, DROP COLUMN waited_ms;
