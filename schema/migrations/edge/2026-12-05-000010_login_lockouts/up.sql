-- Lockouts per (login, authenticated device) for PINs and per (login, address) for the console, with
-- lockout periods that grow with each lockout in a row (issue 12): a login is never locked lab-wide,
-- so nobody can lock a colleague out from another tablet or address. The counters of the previous
-- scheme (per login, lab-wide) mean nothing in this one and are dropped.
DELETE FROM login_failures;
ALTER TABLE login_failures
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    ADD COLUMN kind text NOT NULL CHECK (kind IN ('pin', 'admin')),
    ADD COLUMN login text NOT NULL,
    ADD COLUMN device_id uuid,
    ADD COLUMN source text,
    ADD COLUMN lockouts integer NOT NULL DEFAULT 0;
CREATE INDEX login_failures_locked ON login_failures (locked_until) WHERE locked_until IS NOT NULL;
