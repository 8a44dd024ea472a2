-- Tablet and staff authentication at the gateway: enrollment codes, staff sessions with rotating
-- refresh tokens, lockouts, admin console sessions, the token signing key ring, local revocations.

-- One-time codes a lab admin gives a tablet to enroll. Only their SHA-256 is kept: a code has 40 bits
-- of entropy, lives ten minutes and enrollment is rate limited, so a fast hash is enough.
CREATE TABLE enrollment_codes (
    code_sha256 bytea PRIMARY KEY,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    device_id uuid
);

-- A staff member's session on a device, from PIN login to logout, revocation or the offline grace
-- bound: its refresh tokens form one family.
CREATE TABLE auth_sessions (
    id uuid PRIMARY KEY,
    device_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    -- SHA-256 (hex) of the client certificate the session is bound to (RFC 8705), if any.
    cert_sha256 text,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The offline grace bound: after it, the staff member logs in with the PIN again.
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX auth_sessions_device ON auth_sessions (device_id) WHERE revoked_at IS NULL;
CREATE INDEX auth_sessions_staff ON auth_sessions (staff_id) WHERE revoked_at IS NULL;

-- Rotating refresh tokens, kept by their SHA-256. A spent token presented again revokes its session.
CREATE TABLE refresh_tokens (
    token_sha256 bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES auth_sessions (id),
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Consecutive failed logins, per login on one device (device_id set) and per login on any device
-- (device_id NULL). Keyed by the login as typed, so an unknown login locks out like a known one.
CREATE TABLE login_failures (
    scope text PRIMARY KEY,
    failures integer NOT NULL,
    locked_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Admin console sessions (cookie), by the SHA-256 of the cookie value.
CREATE TABLE admin_sessions (
    id_sha256 bytea PRIMARY KEY,
    staff_id uuid NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- HMAC keys signing the access tokens. The newest active key signs; every key not retired verifies,
-- so a rotation logs nobody out.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    secret bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);

-- Staff revoked by the lab admin at this gateway. Staff rows come from the cloud and are overwritten
-- by the sync; a local revocation must survive that.
CREATE TABLE staff_revocations (
    staff_id uuid PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    revoked_by uuid,
    reason text
);
