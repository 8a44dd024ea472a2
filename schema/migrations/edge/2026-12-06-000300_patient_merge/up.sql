-- A patient the LIS merged into another: kept so that reads of the old id lead to the survivor.
ALTER TABLE patients ADD COLUMN merged_into uuid;
