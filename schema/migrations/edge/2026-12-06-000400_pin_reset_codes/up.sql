-- Issue 15 item 4. The one-time code a lab admin makes for a staff member who forgot their PIN: they
-- type it on a tablet with a new PIN, which works offline at the gateway. Kept by the SHA-256 of the
-- code (it is shown once, to the admin); one code per staff member, a new one replacing the last;
-- a used code stays until the housekeeping removes it, so that a second use is refused.
CREATE TABLE pin_reset_codes (
    staff_id uuid PRIMARY KEY REFERENCES staff (id) ON DELETE CASCADE,
    code_sha256 bytea NOT NULL CHECK (length(code_sha256) = 32),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    -- The tablet it was used on.
    device_id uuid
);
