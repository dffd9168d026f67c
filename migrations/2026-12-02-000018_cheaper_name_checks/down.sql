ALTER TABLE jobs DROP CONSTRAINT jobs_name_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,127}$');
ALTER TABLE quotas DROP CONSTRAINT quotas_name_check;
ALTER TABLE quotas ADD CONSTRAINT quotas_name_check CHECK (name ~ '^[a-z0-9][a-z0-9._:-]{0,127}$');
