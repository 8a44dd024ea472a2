ALTER TABLE patients DROP COLUMN merged_into;
