DROP INDEX login_failures_locked;
ALTER TABLE login_failures
    DROP COLUMN id,
    DROP COLUMN kind,
    DROP COLUMN login,
    DROP COLUMN device_id,
    DROP COLUMN source,
    DROP COLUMN lockouts;
