-- The lab database's size, sampled hourly by housekeeping: the console reckons the daily growth from
-- the last day of samples, and from it and the disk's free space the days the lab can go on without
-- the cloud (issue 17). Eight days are kept.
CREATE TABLE storage_samples (
    at timestamptz PRIMARY KEY DEFAULT now(),
    database_bytes bigint NOT NULL CHECK (database_bytes >= 0)
);
