DROP TRIGGER jobs_metadata_size ON jobs;
DROP FUNCTION jobs_metadata_size();
ALTER TABLE jobs ADD CONSTRAINT jobs_metadata_check CHECK (octet_length(metadata::text) <= 8192);
