DROP TABLE idempotency_keys;
DROP TABLE runs;
DROP TABLE jobs;
