DROP INDEX jobs_tags_idx;
CREATE INDEX jobs_tags_idx ON jobs USING gin (tags);
