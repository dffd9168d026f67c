DROP TABLE flag_overrides;
